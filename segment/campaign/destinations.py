"""Delivery destinations: a local folder or ``sftp://user@host:port/path``.

Where a campaign's files go is campaign configuration: parsing and the destination models
only here (the loader checks ``destination:`` before any data is read); the transfers live
in the export stage.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from segment.errors import DeliveryError


@dataclass(frozen=True)
class FolderDestination:
    """A local folder."""

    path: Path

    def describe(self) -> str:
        """A PHI- and secret-free description for manifests and messages."""
        return str(self.path)


@dataclass(frozen=True)
class SftpDestination:
    """A remote folder on an SFTP server (no secrets: those come from the environment)."""

    user: str
    host: str
    port: int
    path: str

    def describe(self) -> str:
        """A PHI- and secret-free description for manifests and messages."""
        return f"sftp://{self.user}@{self.host}:{self.port}{self.path}"


Destination = FolderDestination | SftpDestination


def destination_url(dest: Destination) -> str:
    """The destination as :func:`parse_destination` reads it back from any folder.

    An absolute folder path, or the SFTP URL (no secrets). Recorded in the delivery
    journal so a later run can reconcile the delivery.
    """
    if isinstance(dest, FolderDestination):
        return str(dest.path.absolute())
    return dest.describe()


def parse_destination(dest: str | Path) -> Destination:
    """Parse ``DEST``: a folder path, or ``sftp://user@host[:port]/path``.

    A password in the URL, a missing user or host, NUL bytes and ``..`` in the remote
    path are refused.
    """
    text = str(dest)
    if "\x00" in text:
        raise DeliveryError("destination contains a NUL byte")
    if not text.lower().startswith("sftp://"):
        if "://" in text:
            raise DeliveryError(
                f"destination scheme not supported: {text.split('://', 1)[0]!r}; "
                "use a folder or sftp://user@host:port/path"
            )
        return FolderDestination(Path(text).expanduser())
    parts = urlsplit(text)
    if parts.password is not None:
        raise DeliveryError(
            "a password in the SFTP URL is refused; put it in an environment variable "
            "named by `sftp: {password_env: SEGMENT_SFTP_PASSWORD}`"
        )
    if not parts.username or not parts.hostname:
        raise DeliveryError("an SFTP destination needs a user and a host: sftp://user@host:port/path")
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise DeliveryError("the SFTP port is not a number between 1 and 65535") from exc
    raw_path = unquote(parts.path or "/")
    if "\x00" in raw_path or any(seg == ".." for seg in raw_path.split("/")):
        raise DeliveryError("the SFTP path may not contain `..` or NUL bytes")
    remote = posixpath.normpath(raw_path) if raw_path else "/"
    if not remote.startswith("/"):
        remote = "/" + remote
    return SftpDestination(unquote(parts.username), parts.hostname, port, remote)
