"""OpenPGP encryption of vendor files to a vendor key pinned by fingerprint (GnuPG)."""

from __future__ import annotations

import os
from pathlib import Path

import gnupg

from segment.campaign.model import Encrypt
from segment.errors import DeliveryError


def _gpg(keyring: Path | None) -> gnupg.GPG:
    home = keyring or (Path(os.environ["GNUPGHOME"]) if os.environ.get("GNUPGHOME") else None)
    try:
        return gnupg.GPG(gnupghome=str(home) if home else None)
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"cannot run GnuPG ({type(exc).__name__})") from exc


def check_recipient(spec: Encrypt) -> str:
    """The recipient's full fingerprint, after checking the key is in the keyring."""
    gpg = _gpg(spec.keyring)
    wanted = spec.recipient.upper()
    for key in gpg.list_keys():
        fprs = [key.get("fingerprint", ""), *list(key.get("subkey_info", {}) or {})]
        if wanted in (f.upper() for f in fprs if f):
            return wanted
    raise DeliveryError(
        f"encryption key {wanted} is not in the keyring"
        + (f" at {spec.keyring}" if spec.keyring else "")
        + "; import the vendor's public key first (gpg --import)"
    )


def encrypt_bytes(data: bytes, spec: Encrypt) -> bytes:
    """``data`` encrypted to ``spec.recipient`` (binary OpenPGP unless ``armor``)."""
    fingerprint = check_recipient(spec)
    gpg = _gpg(spec.keyring)
    # the fingerprint is pinned in the campaign file, so the key needs no web-of-trust
    result = gpg.encrypt(data, [fingerprint], always_trust=True, armor=spec.armor)
    if not result.ok:
        raise DeliveryError(f"GnuPG could not encrypt ({result.status})")
    return bytes(result.data)
