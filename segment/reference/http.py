"""HTTP for reference downloads and the online geocoder: retries, backoff, timeouts, resume.

One :func:`make_session` for every remote call: a ``requests.Session`` whose adapter
retries connection errors and 429/5xx answers with exponential backoff (urllib3
``Retry``, honouring ``Retry-After``), and a descriptive User-Agent (the Census Bureau's
servers reject some default agents). :func:`download` resumes an interrupted file with an
HTTP Range request from its ``.part`` file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from segment import __version__, progress
from segment.config import Settings
from segment.errors import NetworkError
from segment.log import get_logger
from segment.reference.pack import sha256_file

USER_AGENT = f"segment/{__version__} (reference data; +https://github.com/segment-health/segment)"
RETRY_STATUS = (429, 500, 502, 503, 504)
log = get_logger("reference")

_SECRET_PARAM = re.compile(r"((?:^|[?&\s])key=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of any ``key=`` query parameter (an API key) masked."""
    return _SECRET_PARAM.sub(r"\1***", text)


class _RedactKeys(logging.Filter):
    """Mask ``key=...`` in urllib3's log records: it logs request URLs, query included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        record.msg = redact(str(record.msg))
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactKeys) for f in _logger.filters):
        _logger.addFilter(_RedactKeys())


class BackoffRetry(Retry):
    """urllib3 ``Retry`` that also waits before the *first* retry.

    urllib3 2.x retries the first failure at once and only backs off from the second;
    an overloaded server answering 503 deserves a pause every time:
    ``backoff_factor * 2 ** (n - 1)`` seconds before retry ``n`` (capped at ``backoff_max``),
    or the server's ``Retry-After`` when it sends one.
    """

    def get_backoff_time(self) -> float:
        """Seconds to wait before the next retry."""
        errors = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            errors += 1
        if errors == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * (2 ** (errors - 1))))


def make_session(settings: Settings, *, backoff: float = 0.5, allow_post: bool = False
                 ) -> requests.Session:
    """A Session that retries transient failures with exponential backoff."""
    methods = {"GET", "HEAD", *({"POST"} if allow_post else set())}
    retry = BackoffRetry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=backoff,
        backoff_max=30.0,
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


def host_of(url: str) -> str:
    """``host:port`` of a URL, for messages."""
    return urlsplit(url).netloc or url


def _content_range_start(resp: requests.Response) -> int | None:
    """The first byte of a 206 answer's ``Content-Range: bytes N-M/T``, if it says one."""
    found = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(found.group(1)) if found else None


_INTERRUPTED = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)


def _blocks(resp: requests.Response, chunk: int) -> Iterator[bytes]:
    """The body as it arrives (``read1``), so bytes before a cut are kept for the resume.

    ``iter_content`` reads whole chunks and drops a short last one when the connection
    breaks; reading what is available keeps every byte that arrived.
    """
    raw = resp.raw
    while True:
        block = raw.read1(chunk, decode_content=True)
        if not block:
            return
        yield block


def download(session: requests.Session, url: str, target: Path, *, timeout: float,
             attempts: int = 4, chunk: int = 1 << 16) -> Download:
    """Download ``url`` to ``target``, resuming from ``target.part`` after an interruption.

    A partial file is continued with ``Range: bytes=N-``; a server that ignores the range
    (status 200) or answers another range restarts the file. A complete file already at
    ``target`` is kept. A transfer cut off part way is resumed up to ``attempts`` times; a
    server that cannot be reached at all fails at once, since the session's adapter has
    already retried the connection with backoff. Raises :class:`NetworkError` (naming the
    URL, never any patient data or secret) on an HTTP error or after ``attempts``
    interrupted transfers.
    """
    if target.exists():
        return Download(target, url, target.stat().st_size, sha256_file(target), False)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    resumed = False
    last_error: Exception | None = None
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        # byte ranges count the bytes as stored: no transfer compression
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            resp = session.get(url, headers=headers, stream=True, timeout=timeout)
        except _INTERRUPTED as exc:  # never got an answer, after the adapter's retries
            raise NetworkError(
                f"cannot reach {host_of(url)} ({type(exc).__name__}) downloading {url}"
            ) from exc
        try:
            with resp:
                if resp.status_code == 416 and have:  # the .part is already complete
                    break
                if resp.status_code == 404:
                    raise NetworkError(f"not found on the server (HTTP 404): {url}")
                if resp.status_code not in (200, 206):
                    raise NetworkError(f"HTTP {resp.status_code} from {url}")
                append = (resp.status_code == 206 and have > 0
                          and _content_range_start(resp) == have)
                if resp.status_code == 206 and not append:  # not the range asked for
                    part.unlink(missing_ok=True)
                    log.warning("unexpected byte range; restarting", file=target.name)
                    continue
                resumed = resumed or append
                expected = resp.headers.get("Content-Length")
                written = 0
                advance = progress.step("reference", f"downloading {target.name}", int(expected) if expected else None, unit="bytes")
                with open(part, "ab" if append else "wb") as fh:
                    for block in _blocks(resp, chunk):
                        fh.write(block)
                        written += len(block)
                        advance(len(block))
                if expected is not None and written < int(expected):
                    raise requests.exceptions.ChunkedEncodingError(
                        f"connection closed after {written} of {expected} bytes")
            break
        except _INTERRUPTED as exc:
            last_error = exc
            log.warning("download interrupted; resuming", file=target.name,
                        bytes=part.stat().st_size if part.exists() else 0)
    else:
        raise NetworkError(
            f"download failed after {attempts} interrupted attempts "
            f"({type(last_error).__name__}): {url}"
        ) from last_error
    os.replace(part, target)
    return Download(target, url, target.stat().st_size, sha256_file(target), resumed)
