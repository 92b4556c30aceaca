"""HTTP for reference downloads and the online geocoder: retries, backoff, timeouts, resume.

One :func:`make_session` for every remote call: a ``requests.Session`` whose adapter
retries connection errors and 429/5xx answers with exponential backoff (urllib3
``Retry``, honouring ``Retry-After``), and a descriptive User-Agent (the Census Bureau's
servers reject some default agents). :func:`download` resumes an interrupted file with an
HTTP Range request from its ``.part`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from segment import __version__
from segment.config import Settings
from segment.errors import NetworkError
from segment.log import get_logger
from segment.reference.pack import sha256_file

USER_AGENT = f"segment/{__version__} (reference data; +https://github.com/segment-health/segment)"
RETRY_STATUS = (429, 500, 502, 503, 504)
log = get_logger("reference")


def make_session(settings: Settings, *, backoff: float = 0.5, allow_post: bool = False
                 ) -> requests.Session:
    """A Session that retries transient failures with exponential backoff."""
    methods = {"GET", "HEAD", *({"POST"} if allow_post else set())}
    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset(methods),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


@dataclass(frozen=True)
class Download:
    """A finished download: where it is, its size and checksum, whether it was resumed."""

    path: Path
    url: str
    bytes: int
    sha256: str
    resumed: bool


def download(session: requests.Session, url: str, target: Path, *, timeout: float,
             attempts: int = 4, chunk: int = 1 << 16) -> Download:
    """Download ``url`` to ``target``, resuming from ``target.part`` after an interruption.

    A partial file is continued with ``Range: bytes=N-``; a server that ignores the range
    (status 200) restarts the file. A complete file already at ``target`` is kept.
    Raises :class:`NetworkError` (naming the URL, never any patient data) after
    ``attempts`` interrupted transfers or on an HTTP error.
    """
    if target.exists():
        return Download(target, url, target.stat().st_size, sha256_file(target), False)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    resumed = False
    last_error: Exception | None = None
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                if resp.status_code == 416 and have:  # already complete
                    break
                if resp.status_code == 404:
                    raise NetworkError(f"not found on the server (HTTP 404): {url}")
                if resp.status_code not in (200, 206):
                    raise NetworkError(f"HTTP {resp.status_code} from {url}")
                mode = "ab" if resp.status_code == 206 and have else "wb"
                resumed = resumed or mode == "ab"
                expected = resp.headers.get("Content-Length")
                written = 0
                with open(part, mode) as fh:
                    for block in resp.iter_content(chunk):
                        fh.write(block)
                        written += len(block)
                if expected is not None and written < int(expected):
                    raise requests.exceptions.ChunkedEncodingError(
                        f"connection closed after {written} of {expected} bytes")
            break
        except NetworkError:
            raise
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            last_error = exc
            log.warning("download interrupted; resuming", file=target.name,
                        bytes=part.stat().st_size if part.exists() else 0)
    else:
        raise NetworkError(
            f"download failed after {attempts} attempts ({type(last_error).__name__}): {url}"
        ) from last_error
    os.replace(part, target)
    return Download(target, url, target.stat().st_size, sha256_file(target), resumed)
