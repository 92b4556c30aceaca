"""Decoding a small text file (a suppression list, a reply export) whatever it was saved as.

Spreadsheet tools save "Unicode text" as UTF-16 and CSV as UTF-8 with a byte-order mark;
read naively, the first gives text full of NULs that matches nothing and the second
glues ``\\ufeff`` to the first entry. :func:`decode_text` reads the byte-order marks
(UTF-8, UTF-16 and UTF-32), recognizes UTF-16 without one (by its NUL bytes, as
:func:`~segment.ingest.readers.files.guess_encoding` does) and otherwise insists on
UTF-8, naming what the file is when it is not text
(:func:`~segment.ingest.readers.files.what_is`) and the line that is not UTF-8
(:func:`~segment.ingest.readers.files.check_utf8`).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from segment.errors import InputDataError
from segment.ingest.readers.files import check_readable, check_utf8, guess_encoding, what_is

#: a suppression or reply file larger than this is not a list someone keeps by hand
MAX_TEXT_BYTES = 512 * 1024 * 1024

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8 with byte-order mark"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def _utf16_order(sample: bytes) -> str:
    """``utf-16-le`` or ``utf-16-be`` for BOM-less UTF-16: where the NULs of ASCII text fall."""
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    return "utf-16-le" if odd >= even else "utf-16-be"


def decode_text(path: Path, *, max_bytes: int = MAX_TEXT_BYTES) -> tuple[str, str]:
    """The text of a small file and the encoding it was read as (a name for reports).

    Raises a one-line :class:`InputDataError` when the file is missing, not text (gzip,
    a workbook, Parquet...), too large, or in an encoding that cannot be told (with the
    line that is not UTF-8).
    """
    check_readable(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputDataError(
            f"file is {size // (1024 * 1024)} MiB; a list larger than {max_bytes // (1024 * 1024)} MiB is refused",
            path=path,
        )
    data = path.read_bytes()
    if (kind := what_is(data[:8])) is not None:
        raise InputDataError(f"file is not text but {kind}", path=path)
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom):], codec, label, path), label
    if guess_encoding(data[:4096]).startswith("UTF-16"):
        codec = _utf16_order(data[:4096])
        return _decode(data, codec, "UTF-16 (no byte-order mark)", path), "UTF-16 (no byte-order mark)"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        check_utf8(path)  # raises, naming the likely encoding and the line
        raise InputDataError("file is not UTF-8", path=path) from None


def _decode(data: bytes, codec: str, label: str, path: Path) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(codec, errors="replace").count("\n") + 1
        raise InputDataError(f"file is not valid {label} text", path=path, line=line) from None
