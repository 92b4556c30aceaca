"""Encryption round trip with a test key, and SFTP delivery to a real server with a fault."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import gnupg
import pytest

from segment.campaign.model import Sftp
from segment.errors import DeliveryError
from segment.export import export_campaign
from segment.export.deliver import SftpDestination, parse_destination
from segment.export.transfer import SftpTransport
from tests.export.conftest import AS_OF
from tests.export.helpers import export_campaign_file


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    key = gpg.gen_key(gpg.gen_key_input(
        key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH", subkey_curve="cv25519",
        name_email="vendor@example.org", no_protection=True, expire_date=0,
    ))
    assert key.fingerprint
    return home, str(key.fingerprint)


def test_encryption_round_trip(gpg_home: tuple[Path, str], workdir: Path, tmp_path: Path) -> None:
    home, fpr = gpg_home
    camp = export_campaign_file(
        tmp_path / "c", channels=["email"],
        vendors={"email": {"profile": "mailchimp", "fields": ["first_name"],
                           "encrypt": {"recipient": fpr, "keyring": str(home)}}},
    )
    out = tmp_path / "out"
    res = export_campaign(camp, workdir, out, as_of=AS_OF, run_id="run1")
    (f,) = res.files
    assert f.name.endswith(".csv.gpg") and f.encrypted_to == fpr
    data = (out / f.name).read_bytes()
    assert b"eve@example.org" not in data
    plain = gnupg.GPG(gnupghome=str(home)).decrypt(data)
    assert plain.ok
    text = bytes(plain.data).decode()
    assert text.startswith("Email Address,First Name,Tags\n") and "eve@example.org" in text
    assert res.manifest_path == out / f"manifest-{res.campaign_code}-run1.json"
    manifest = json.loads(res.manifest_path.read_text())
    assert manifest["encryption"] == {"email": fpr}
    import hashlib
    assert manifest["files"][0]["plaintext_sha256"] == hashlib.sha256(bytes(plain.data)).hexdigest()


def test_unknown_encryption_key_refused_before_data(gpg_home: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = gpg_home
    camp = export_campaign_file(
        tmp_path / "c", channels=["email"],
        vendors={"email": {"profile": "mailchimp", "encrypt": {"recipient": "A" * 40, "keyring": str(home)}}},
    )
    with pytest.raises(DeliveryError, match="not in the keyring"):
        export_campaign(camp, tmp_path / "no-such-workdir", tmp_path / "out", as_of=AS_OF)


# -- a real SFTP server on 127.0.0.1 (asyncssh) --------------------------------------
class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "mkt" and password == "s3cret-test"


class SftpServer:
    """asyncssh SFTP server in a background thread; can drop the first upload mid-way."""

    def __init__(self, root: Path, host_key: asyncssh.SSHKey) -> None:
        self.root = root
        self.host_key = host_key
        self.drop_next_upload = False
        self.visible_partials: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        server = self

        class Handler(asyncssh.SFTPServer):
            def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
                super().__init__(chan, chroot=str(server.root).encode())

            def write(self, file_obj, offset, data):  # type: ignore[no-untyped-def]
                if server.drop_next_upload and offset > 0:
                    server.drop_next_upload = False
                    self.channel.get_connection().abort()  # type: ignore[attr-defined]
                    raise asyncssh.SFTPConnectionLost("dropped by test")
                # at every write, nothing partial may be visible under a final name
                for p in server.root.iterdir():
                    if not p.name.startswith(".") and p.suffix == ".csv":
                        size = p.stat().st_size
                        if size == 0:
                            server.visible_partials.append(p.name)
                return super().write(file_obj, offset, data)

        async def listen() -> asyncssh.SSHAcceptor:
            return await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[self.host_key], server_factory=_Server,
                sftp_factory=Handler, allow_scp=False,
            )

        acceptor = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        self.acceptor = acceptor
        self.port = acceptor.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.acceptor.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[tuple[SftpServer, Path]]:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = SftpServer(root, key)
    server.start()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {key.export_public_key().decode().strip()}\n")
    yield server, known
    server.stop()


def test_sftp_delivery_survives_a_dropped_connection(
    sftp_server: tuple[SftpServer, Path], workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, known = sftp_server
    monkeypatch.setenv("SEGMENT_SFTP_PASSWORD", "s3cret-test")
    camp = export_campaign_file(
        tmp_path / "c",
        sftp={"password_env": "SEGMENT_SFTP_PASSWORD", "known_hosts": str(known), "use_agent": False,
              "retries": 4, "backoff_s": 0.05},
    )
    server.drop_next_upload = True
    dest = f"sftp://mkt@127.0.0.1:{server.port}/in"
    # a bigger file so the upload takes several writes (the drop happens after the first)
    from tests.export.conftest import write_workdir
    work = write_workdir(tmp_path / "big", n_extra=3000)
    res = export_campaign(camp, work, dest, as_of=AS_OF)
    assert not server.drop_next_upload, "the fault was injected"
    remote = server.root / "in"
    names = sorted(p.name for p in remote.iterdir())
    assert names == sorted([f.name for f in res.files] + [res.trigger])  # no .part leftovers
    for f in res.files:
        assert (remote / f.name).stat().st_size == f.size
    assert server.visible_partials == []
    assert not any(n.startswith("manifest") for n in names)  # the manifest (rule ids) stays local
    assert res.manifest_path is not None and res.manifest_path.is_relative_to(work)
    assert "s3cret-test" not in res.manifest_path.read_text()


def test_sftp_unknown_host_key_refused(sftp_server: tuple[SftpServer, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = sftp_server
    monkeypatch.setenv("SEGMENT_SFTP_PASSWORD", "s3cret-test")
    other = tmp_path / "other_known_hosts"
    other.write_text("")
    t = SftpTransport(
        SftpDestination("mkt", "127.0.0.1", server.port, "/in"),
        Sftp(password_env="SEGMENT_SFTP_PASSWORD", known_hosts=other, use_agent=False, retries=1),
    )
    with pytest.raises(DeliveryError, match="not in known_hosts"):
        t.put("x.csv", b"a\n")
    assert not (server.root / "in" / "x.csv").exists()


@pytest.mark.parametrize("url", ["sftp://mkt@host/in/../../etc", "sftp://mkt:pw@host/in", "sftp://host/in",
                                 "ftp://mkt@host/in"])
def test_bad_sftp_urls(url: str) -> None:
    with pytest.raises(DeliveryError):
        parse_destination(url)


def test_missing_password_variable_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_SFTP_PASSWORD", raising=False)
    t = SftpTransport(SftpDestination("mkt", "127.0.0.1", 1, "/in"),
                      Sftp(password_env="SEGMENT_SFTP_PASSWORD", retries=1))
    with pytest.raises(DeliveryError, match="SEGMENT_SFTP_PASSWORD is not set"):
        t.put("x.csv", b"a\n")
