"""Encryption round trip with a test key, and SFTP delivery to a real server with a fault."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import gnupg
import pytest

from segment.campaign.destinations import SftpDestination, parse_destination
from segment.campaign.model import Sftp
from segment.errors import DeliveryError
from segment.export import export_campaign
from segment.export.transfer import SftpTransport
from tests.export.conftest import AS_OF, write_workdir
from tests.export.helpers import export_campaign_file
from tests.export.sftpd import PASSWORD, USER, FaultySftpServer, sftp_settings, sftpd  # noqa: F401


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
    assert manifest["files"][0]["plaintext_sha256"] == hashlib.sha256(bytes(plain.data)).hexdigest()


def test_unknown_encryption_key_refused_before_data(gpg_home: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = gpg_home
    camp = export_campaign_file(
        tmp_path / "c", channels=["email"],
        vendors={"email": {"profile": "mailchimp", "encrypt": {"recipient": "A" * 40, "keyring": str(home)}}},
    )
    with pytest.raises(DeliveryError, match="not in the keyring"):
        export_campaign(camp, tmp_path / "no-such-workdir", tmp_path / "out", as_of=AS_OF)


def test_sftp_delivery_survives_a_dropped_connection(
    sftpd: FaultySftpServer, tmp_path: Path  # noqa: F811
) -> None:
    camp = export_campaign_file(
        tmp_path / "c", sftp=sftp_settings(sftpd.known_hosts(tmp_path / "known_hosts"), retries=4, backoff_s=0.05),
    )
    sftpd.drop_next_upload_midway = True
    # a bigger file so the upload takes several writes (the drop happens after the first)
    work = write_workdir(tmp_path / "big", n_extra=3000)
    res = export_campaign(camp, work, sftpd.url(), as_of=AS_OF)
    assert not sftpd.drop_next_upload_midway and sftpd.drops == 1, "the fault was injected"
    remote = sftpd.root / "in"
    names = sorted(p.name for p in remote.iterdir())
    assert names == sorted([f.name for f in res.files] + [res.trigger])  # no .part leftovers
    for f in res.files:
        assert (remote / f.name).stat().st_size == f.size
    # nothing partial is ever visible under a final name: every byte goes to a hidden .part
    assert sftpd.write_modes
    assert all(n.startswith(".") and n.endswith(".part") for n, _ in sftpd.write_modes)
    assert not any(n.startswith("manifest") for n in names)  # the manifest (rule ids) stays local
    assert res.manifest_path is not None and res.manifest_path.is_relative_to(work)
    assert PASSWORD not in res.manifest_path.read_text()


def test_sftp_unknown_host_key_refused(sftpd: FaultySftpServer, tmp_path: Path) -> None:  # noqa: F811
    other = tmp_path / "other_known_hosts"
    other.write_text("")
    t = SftpTransport(
        SftpDestination(USER, "127.0.0.1", sftpd.port, "/in"),
        Sftp(password_env="SEGMENT_SFTP_PASSWORD", known_hosts=other, use_agent=False, retries=1),
    )
    with pytest.raises(DeliveryError, match="not in known_hosts"):
        t.put("x.csv", b"a\n")
    assert not (sftpd.root / "in" / "x.csv").exists()


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
