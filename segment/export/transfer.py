"""Putting files at a destination: a local folder or an SFTP server.

Both follow one protocol: every file is first written under a temporary dot-name
(``.<name>.part``, owner-only before any byte is written), its size checked, and only
later renamed to its final name; :mod:`segment.export.delivery` decides when. Removal
reports whether the name is confirmed gone, so a failure can say exactly what is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import socket
import stat
import time
from collections.abc import Callable
from typing import Protocol

import paramiko

from segment.campaign.destinations import Destination, FolderDestination, SftpDestination
from segment.campaign.model import Sftp
from segment.errors import DeliveryError
from segment.log import get_logger
from segment.workdir import FILE_MODE, ensure_private_dir

log = get_logger("export")

_CHUNK = 1 << 20


class Transport(Protocol):
    """Where files go."""

    def stage(self, name: str, data: bytes) -> None:
        """Write ``data`` under the temporary name for ``name`` and check its size."""

    def publish(self, name: str) -> None:
        """Rename the staged ``name`` to its final name (done already: no-op)."""

    def put(self, name: str, data: bytes) -> None:
        """Stage and publish in one step."""

    def exists(self, name: str) -> bool:
        """True when a regular file is at the final ``name``."""

    def is_staged(self, name: str) -> bool:
        """True when the temporary file of ``name`` is there."""

    def remove(self, name: str, *, staged: bool) -> bool:
        """Remove the final (or temporary) file of ``name``; True when it is confirmed gone.

        Raises :class:`DeliveryError` when the destination cannot be reached at all.
        """

    def close(self) -> None:
        """Release connections."""


def temp_name(name: str) -> str:
    """The temporary name a file is staged under (hidden from vendors: a dot-name)."""
    return f".{name}.part"


class FolderTransport:
    """A local folder (created owner-only)."""

    def __init__(self, dest: FolderDestination) -> None:
        self.root = dest.path

    def _sync_dir(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def stage(self, name: str, data: bytes) -> None:
        """Write the staged file, owner-only from creation, flushed to disk."""
        ensure_private_dir(self.root)
        tmp = self.root / temp_name(name)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # a leftover of an earlier attempt (maybe with other permissions)
        # O_EXCL never opens an existing path (a planted symlink included); O_NOFOLLOW says so twice
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if tmp.stat().st_size != len(data):
            raise DeliveryError(f"size check failed for {name}")

    def publish(self, name: str) -> None:
        """Rename the staged file into place."""
        tmp, final = self.root / temp_name(name), self.root / name
        if final.is_symlink():
            raise DeliveryError(
                f"refusing to deliver {name}: a symbolic link with that name is in the drop folder "
                "(someone planted it; remove it and run again)"
            )
        if not tmp.exists() and final.is_file():
            return
        os.replace(tmp, final)
        self._sync_dir()

    def put(self, name: str, data: bytes) -> None:
        """Stage and publish."""
        self.stage(name, data)
        self.publish(name)

    def exists(self, name: str) -> bool:
        """True when ``name`` is a file in the folder (a symbolic link someone planted is not ours)."""
        path = self.root / name
        return path.is_file() and not path.is_symlink()

    def is_staged(self, name: str) -> bool:
        """True when the staged file of ``name`` is there."""
        return (self.root / temp_name(name)).is_file()

    def remove(self, name: str, *, staged: bool) -> bool:
        """Remove the file (never a folder someone put under that name); True when gone."""
        path = self.root / (temp_name(name) if staged else name)
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOTDIR:
                log.warning(f"could not remove {path.name} ({type(exc).__name__})")
        gone = not (path.is_symlink() or path.is_file())
        if gone:
            self._sync_dir()
        return gone

    def close(self) -> None:
        """Nothing to release."""


_RETRYABLE = (OSError, EOFError, paramiko.SSHException, socket.error)


class SftpTransport:
    """An SFTP folder through paramiko, with reconnects and backoff on dropped connections."""

    def __init__(self, dest: SftpDestination, settings: Sftp, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.dest = dest
        self.settings = settings
        self.sleep = sleep
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self.attempts = 0

    # -- connection -------------------------------------------------------
    def _password(self) -> str | None:
        env = self.settings.password_env
        if env is None:
            return None
        value = os.environ.get(env)
        if not value:
            raise DeliveryError(f"the SFTP password variable {env} is not set")
        return value

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        client = paramiko.SSHClient()
        if self.settings.host_key_checking:
            with contextlib.suppress(OSError):
                client.load_system_host_keys()
            if self.settings.known_hosts is not None:
                try:
                    client.load_host_keys(str(self.settings.known_hosts))
                except OSError as exc:
                    raise DeliveryError("cannot read the known_hosts file", path=self.settings.known_hosts) from exc
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            log.warning("SFTP host key checking is off for this destination")
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        passphrase = None
        if self.settings.key_passphrase_env:
            passphrase = os.environ.get(self.settings.key_passphrase_env)
        try:
            client.connect(
                self.dest.host, port=self.dest.port, username=self.dest.user,
                password=self._password(),
                key_filename=str(self.settings.key_file) if self.settings.key_file else None,
                passphrase=passphrase,
                allow_agent=self.settings.use_agent, look_for_keys=False,
                timeout=self.settings.timeout_s, banner_timeout=self.settings.timeout_s,
                auth_timeout=self.settings.timeout_s,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise DeliveryError(
                f"the SFTP host key of {self.dest.host} does not match known_hosts; refusing"
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise DeliveryError(f"SFTP authentication failed for {self.dest.user}@{self.dest.host}") from exc
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise DeliveryError(
                    f"the SFTP host {self.dest.host} is not in known_hosts; add its key "
                    "(sftp.known_hosts) or, for a test server only, set host_key_checking: false"
                ) from exc
            raise
        self._client = client
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(self.settings.timeout_s)  # type: ignore[union-attr]
        self._sftp = sftp
        return sftp

    def _drop(self) -> None:
        for closer in (self._sftp, self._client):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self._sftp, self._client = None, None

    def _retry(self, what: str, action: Callable[[paramiko.SFTPClient], None]) -> None:
        last: BaseException | None = None
        for attempt in range(self.settings.retries):
            self.attempts += 1
            try:
                action(self._connect())
                return
            except DeliveryError:
                raise
            except _RETRYABLE as exc:
                last = exc
                self._drop()
                wait = self.settings.backoff_s * (2 ** attempt)
                log.warning(f"SFTP {what} failed ({type(exc).__name__}); retrying", attempt=attempt + 1)
                if attempt + 1 < self.settings.retries:
                    self.sleep(wait)
        raise DeliveryError(
            f"SFTP {what} failed after {self.settings.retries} attempts ({type(last).__name__})"
        ) from last

    def _path(self, name: str) -> str:
        return posixpath.join(self.dest.path, name)

    # -- protocol ---------------------------------------------------------
    def stage(self, name: str, data: bytes) -> None:
        """Upload under the temporary name (owner-only before any byte) and verify the size."""
        tmp = self._path(temp_name(name))

        def upload(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(OSError):
                sftp.remove(tmp)  # a leftover from a dropped attempt
            with sftp.open(tmp, "wb") as fh:
                with contextlib.suppress(OSError):
                    fh.chmod(FILE_MODE)
                fh.set_pipelined(True)
                for start in range(0, len(data), _CHUNK):
                    fh.write(data[start:start + _CHUNK])
            size = sftp.stat(tmp).st_size
            if size != len(data):
                raise OSError(f"size mismatch after upload ({size} != {len(data)})")

        self._retry(f"upload of {name}", upload)

    def publish(self, name: str) -> None:
        """Rename the uploaded file to its final name (atomically where the server can)."""
        tmp, final = self._path(temp_name(name)), self._path(name)

        def rename(sftp: paramiko.SFTPClient) -> None:
            try:
                sftp.posix_rename(tmp, final)
            except OSError:
                try:
                    sftp.stat(tmp)
                except OSError:
                    # an earlier attempt renamed it before the connection dropped
                    sftp.stat(final)
                    return
                with contextlib.suppress(OSError):
                    sftp.remove(final)
                sftp.rename(tmp, final)

        self._retry(f"rename of {name}", rename)

    def put(self, name: str, data: bytes) -> None:
        """Upload and rename."""
        self.stage(name, data)
        self.publish(name)

    def _is_file(self, path: str) -> bool:
        found: list[bool] = []

        def look(sftp: paramiko.SFTPClient) -> None:
            try:
                mode = sftp.stat(path).st_mode
                found.append(mode is None or stat.S_ISREG(mode))
            except FileNotFoundError:
                found.append(False)

        self._retry(f"look-up of {posixpath.basename(path)}", look)
        return bool(found and found[-1])

    def exists(self, name: str) -> bool:
        """True when ``name`` is on the server under its final name."""
        return self._is_file(self._path(name))

    def is_staged(self, name: str) -> bool:
        """True when the temporary upload of ``name`` is on the server."""
        return self._is_file(self._path(temp_name(name)))

    def remove(self, name: str, *, staged: bool) -> bool:
        """Remove the file from the server; True when it is confirmed gone."""
        path = self._path(temp_name(name) if staged else name)
        gone: list[bool] = []

        def delete(sftp: paramiko.SFTPClient) -> None:
            try:
                mode = sftp.stat(path).st_mode
            except FileNotFoundError:
                gone.append(True)
                return
            if mode is not None and not stat.S_ISREG(mode):
                gone.append(True)  # not a file of ours (a folder someone made)
                return
            try:
                sftp.remove(path)
            except FileNotFoundError:
                pass
            except PermissionError:
                gone.append(False)
                return
            try:
                sftp.stat(path)
                gone.append(False)
            except FileNotFoundError:
                gone.append(True)

        self._retry(f"removal of {posixpath.basename(path)}", delete)
        return bool(gone and gone[-1])

    def close(self) -> None:
        """Close the connection."""
        self._drop()


def open_transport(dest: Destination, settings: Sftp) -> Transport:
    """The transport for a parsed destination."""
    if isinstance(dest, FolderDestination):
        return FolderTransport(dest)
    return SftpTransport(dest, settings)
