"""A real SFTP server on 127.0.0.1 (asyncssh, in a thread) with faults a test can switch on.

- ``drop_uploads_matching``: every write to a file whose name matches drops the
  connection (so retries fail too, until the test switches it off);
- ``drop_next_upload_midway``: the next write past a file's first chunk drops the
  connection, once (a transient fault the retries must get over);
- ``refuse_removes``: every ``remove`` drops the connection (``refuse_removes_after_drop``:
  from the first upload drop on);
- ``write_modes``: the permission bits of each file at each write (nothing may be
  written to a file others can read).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

USER, PASSWORD = "mkt", "s3cret-test"


class _Auth(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


class FaultySftpServer:
    """asyncssh SFTP server rooted at ``root`` (chroot), with switchable faults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.drop_uploads_matching: re.Pattern[str] | None = None
        self.drop_next_upload_midway = False
        self.refuse_removes = False
        self.refuse_removes_after_drop = False
        self.drops = 0
        self.write_modes: list[tuple[str, int]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        server = self

        class Handler(asyncssh.SFTPServer):
            def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
                super().__init__(chan, chroot=str(server.root).encode())
                self.names: dict[int, str] = {}

            def _drop(self) -> None:
                server.drops += 1
                self.channel.get_connection().abort()  # type: ignore[attr-defined]
                raise asyncssh.SFTPConnectionLost("dropped by test")

            def open(self, path: bytes, pflags: int, attrs: Any) -> Any:  # type: ignore[override]
                obj = super().open(path, pflags, attrs)
                self.names[id(obj)] = os.path.basename(path.decode())
                return obj

            def write(self, file_obj: Any, offset: int, data: bytes) -> Any:  # type: ignore[override]
                name = self.names.get(id(file_obj), "?")
                pattern = server.drop_uploads_matching
                if pattern is not None and pattern.search(name):
                    if server.refuse_removes_after_drop:
                        server.refuse_removes = True
                    self._drop()
                if server.drop_next_upload_midway and offset > 0:
                    server.drop_next_upload_midway = False
                    self._drop()
                server.write_modes.append((name, stat.S_IMODE(os.fstat(file_obj.fileno()).st_mode)))
                return super().write(file_obj, offset, data)

            def remove(self, path: bytes) -> Any:  # type: ignore[override]
                if server.refuse_removes:
                    self._drop()
                return super().remove(path)

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[self.host_key], server_factory=_Auth,
                sftp_factory=Handler, allow_scp=False,
            )

        self.acceptor = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        self.port = self.acceptor.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            # on the loop's own thread: asyncio's server is not thread-safe (closed from the
            # test's thread it raced the loop: "'NoneType' object is not iterable" at teardown)
            self.acceptor.close()
            await self.acceptor.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def known_hosts(self, path: Path) -> Path:
        path.write_text(f"[127.0.0.1]:{self.port} {self.host_key.export_public_key().decode().strip()}\n")
        return path

    def url(self, folder: str = "/in") -> str:
        return f"sftp://{USER}@127.0.0.1:{self.port}{folder}"


@pytest.fixture
def sftpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultySftpServer]:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    server = FaultySftpServer(root)
    server.start()
    monkeypatch.setenv("SEGMENT_SFTP_PASSWORD", PASSWORD)
    yield server
    server.stop()


def sftp_settings(known_hosts: Path, **over: Any) -> dict[str, Any]:
    """The campaign's ``sftp:`` block for the test server."""
    return {"password_env": "SEGMENT_SFTP_PASSWORD", "known_hosts": str(known_hosts), "use_agent": False,
            "retries": 2, "backoff_s": 0.01, "timeout_s": 10, **over}
