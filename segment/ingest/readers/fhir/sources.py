"""Opening FHIR files: gzip told by its magic bytes, UTF-8 checked, read in batches.

- NDJSON (``.ndjson``, ``.jsonl``, optionally ``.gz``) is read in batches of whole lines
  (:data:`BATCH_BYTES` of decompressed text at a time), never the whole file at once.
- A JSON document (``.json``, optionally ``.gz``) holds a Bundle or one resource: a
  Bundle is walked by :mod:`.documents`, a single resource read whole (:func:`read_whole`).

Every failure to read (not UTF-8, corrupt or truncated gzip, a document that is not JSON)
is a one-line :class:`~segment.errors.InputDataError` naming the file.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers.files import check_readable, guess_encoding

GZIP_MAGIC = b"\x1f\x8b"
#: decompressed bytes decoded per NDJSON batch
BATCH_BYTES = 16 * 1024 * 1024
#: the largest single resource (or Bundle entry) read
WHOLE_DOCUMENT_LIMIT = 256 * 1024 * 1024
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
JSON_SUFFIXES = (".json", ".json.gz")
_RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:')


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def is_fhir_file(path: Path) -> bool:
    """A FHIR file by a cheap look: NDJSON by name, JSON when its first bytes name a ``resourceType``."""
    name = path.name.lower()
    if not path.is_file():
        return False
    if name.endswith(NDJSON_SUFFIXES):
        return True
    if not name.endswith(JSON_SUFFIXES):
        return False
    try:
        with _open(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    return _RESOURCE_TYPE.search(head) is not None


def _open(path: Path) -> BinaryIO:
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_chunks(path: Path, size: int) -> Generator[bytes, None, None]:
    """The file's (decompressed) bytes in chunks of ``size``; gzip damage is an InputDataError."""
    check_readable(path)
    compressed = is_gzip(path)
    with _open(path) as fh:
        while True:
            try:
                chunk = fh.read(size)
            except (OSError, EOFError, zlib.error) as exc:
                if not compressed:
                    raise InputDataError(f"cannot read file ({exc})", path=path) from exc
                raise InputDataError(
                    f"gzip data is corrupt or truncated ({str(exc).rstrip('.')})", path=path
                ) from exc
            if not chunk:
                return
            yield chunk


def not_utf8(path: Path, data: bytes, first_line: int, exc: UnicodeDecodeError) -> InputDataError:
    """The error for ``data`` (starting on ``first_line``) that is not UTF-8, at the line of the bad byte."""
    line = first_line + data.count(b"\n", 0, exc.start)
    return InputDataError(
        f"file is not UTF-8 (looks like {guess_encoding(data)}); re-save it as UTF-8", path=path, line=line
    )


def check_bom(path: Path, head: bytes) -> bytes:
    """Refuse UTF-16/32; drop a UTF-8 byte-order mark."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputDataError(
            f"file is not UTF-8 (looks like {guess_encoding(head)}); re-save it as UTF-8", path=path, line=1
        )
    return head.removeprefix(codecs.BOM_UTF8)


def ndjson_batches(path: Path, batch_bytes: int | None = None) -> Iterator[pl.DataFrame]:
    """Batches of non-blank lines: ``_row`` (1-based line number, Int64) and ``line`` (text).

    A batch is the whole lines of one chunk; the line cut at the chunk's end is carried
    into the next batch (it is decoded with the bytes that complete it, as a line break
    never falls inside a UTF-8 character).
    """
    carry = b""
    line_no = 1
    first = True
    for chunk in read_chunks(path, batch_bytes or BATCH_BYTES):
        if first:
            chunk, first = check_bom(path, chunk), False
        last = chunk.rfind(b"\n")
        if last < 0:
            carry += chunk
            continue
        head_end = chunk.find(b"\n")
        view = memoryview(chunk)
        head = _decode(path, carry + chunk[:head_end], line_no)
        body = _decode(path, view[head_end + 1 : last], line_no + 1)
        lines = [head, *body.split("\n")] if head_end < last else [head]
        yield _frame(lines, line_no)
        line_no += len(lines)
        carry = chunk[last + 1 :]
    if carry:
        yield _frame([_decode(path, carry, line_no)], line_no)


def _decode(path: Path, data: bytes | memoryview, line_no: int) -> str:
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, bytes(data), line_no, exc) from None


def _frame(lines: list[str], line_no: int) -> pl.DataFrame:
    frame = pl.DataFrame({"line": lines}, schema={"line": pl.String}).with_row_index("_row", offset=line_no)
    return frame.select(pl.col("_row").cast(pl.Int64), "line").filter(pl.col("line").str.contains(r"\S"))


def read_whole(path: Path, limit: int = WHOLE_DOCUMENT_LIMIT) -> str:
    """A JSON document (one resource) as one line of text: UTF-8 checked, line breaks blanked."""
    parts: list[bytes] = []
    size = 0
    for chunk in read_chunks(path, BATCH_BYTES):
        parts.append(check_bom(path, chunk) if not parts else chunk)
        size += len(chunk)
        if size > limit:
            raise InputDataError(f"a single FHIR resource larger than {limit // 2**20} MB", path=path)
    data = b"".join(parts)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, data, 1, exc) from None
    # JSON strings cannot hold a raw line break, so blanking them keeps the document intact
    return text.replace("\r", " ").replace("\n", " ")
