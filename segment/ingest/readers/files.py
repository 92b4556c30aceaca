"""Opening extract files safely: existence, what the file really is, encoding, headers.

A file that is not text gets a message naming what it is (gzip, an Excel workbook, a zip
archive, Parquet, PDF, UTF-16 text) instead of "not UTF-8". A gzip-compressed CSV
(``.csv.gz``) is read: it is decompressed, streaming, into an owner-only temporary file
that :func:`cleanup_temporary` removes when ingest ends.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import mmap
import os
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from segment.errors import InputDataError

_CHUNK = 16 * 1024 * 1024
#: bytes per block of the row-length check: small enough for its arrays to stay in the CPU
#: cache (a 1 MiB block counts three times faster than a 64 MiB one)
_COUNT_BLOCK = 1024 * 1024
#: bytes searched at a time by :func:`has_byte`
_FIND_WINDOW = 64 * 1024 * 1024
#: a CSV file with no double quote in its first bytes is opened on the unquoted path; the rest is
#: searched for quotes by its row-length check, in the same pass (a 9 GB events file was read
#: once more for quotes alone: 16 s of the first step at 10M people)
_QUOTE_PROBE = 64 * 1024 * 1024
_TEMP_DIRS: list[Path] = []

#: leading bytes -> what the file is (checked before any text decoding)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one): save the sheet as CSV (UTF-8)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other Office file: save the sheet as CSV (UTF-8)"),
    (b"PAR1", "a Parquet file: name it .parquet"),
    (b"%PDF", "a PDF document, not a data file"),
    (b"BZh", "bzip2-compressed: decompress it first"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first"),
)


def what_is(head: bytes) -> str | None:
    """What a file is by its first bytes, when it is not plain text (else None)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def decompressed(path: Path) -> Path:
    """A plain copy of a gzip file in an owner-only temporary folder (removed by :func:`cleanup_temporary`).

    A corrupt or truncated archive is a one-line :class:`InputDataError`.
    """
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name + ".txt"
    target = _private_temp(name)
    try:
        with gzip.open(path, "rb") as src, open(target, "wb") as dst:
            os.chmod(target, 0o600)
            shutil.copyfileobj(src, dst, _CHUNK)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputDataError(f"gzip file is corrupt or truncated ({type(exc).__name__})", path=path) from exc
    return target


def _private_temp(name: str) -> Path:
    """A path named ``name`` in a new owner-only temporary folder that :func:`cleanup_temporary` removes."""
    folder = Path(tempfile.mkdtemp(prefix="segment-"))
    os.chmod(folder, 0o700)
    _TEMP_DIRS.append(folder)
    return folder / name


def cleanup_temporary() -> None:
    """Remove the temporary files made by :func:`decompressed` and :func:`readable`."""
    _READ_AS.clear()
    RAGGED.clear()
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


#: an input file -> the plain copy it is read from (decompressed, or with its line ends fixed)
_READ_AS: dict[Path, Path] = {}


def read_as(path: Path) -> Path:
    """The file read for ``path`` so far: its plain copy once :func:`readable` made one, else itself."""
    return _READ_AS.get(path, path)


def readable(path: Path) -> Path:
    """The file to read for ``path``: itself, or an owner-only plain copy made once.

    A gzip file (``.gz``) is decompressed; a file whose lines end in a carriage return
    alone (classic Mac OS) gets ``\n`` line ends, which Polars' CSV reader needs (it would
    otherwise read the whole file as one header line and lose every row).
    """
    if path in _READ_AS:
        return _READ_AS[path]
    target = path
    if path.name.lower().endswith(".gz") and path.is_file() and is_gzip(path):
        target = decompressed(path)
    with open(target, "rb") as fh:
        head = fh.read(_HEAD)
    if b"\r" in head and b"\n" not in head:
        fixed = _private_temp(target.name)
        with open(target, "rb") as src, open(fixed, "wb") as dst:
            os.chmod(fixed, 0o600)
            while chunk := src.read(_CHUNK):
                dst.write(chunk.replace(b"\r", b"\n"))
        target = fixed
    _READ_AS[path] = target
    return target


def check_readable(path: Path) -> None:
    """Raise a one-line InputDataError when ``path`` is missing, a folder or unreadable."""
    if not path.exists():
        raise InputDataError("file not found", path=path)
    if path.is_dir():
        raise InputDataError("expected a file, found a folder", path=path)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputDataError(f"cannot read file ({exc.strerror or type(exc).__name__})", path=path) from exc


def guess_encoding(sample: bytes) -> str:
    """A best guess at a non-UTF-8 encoding, to name it in the error."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "UTF-32"
    if sample.count(b"\x00") > len(sample) // 4:
        return "UTF-16 (no byte-order mark)"
    try:
        sample.decode("cp1252")
        return "Windows-1252 or Latin-1"
    except UnicodeDecodeError:
        return "an unknown non-UTF-8 encoding"


def check_utf8(path: Path) -> None:
    """Stream the file through a strict UTF-8 decoder; name the encoding and line if not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    line = 1
    with open(path, "rb") as fh:
        first = True
        while chunk := fh.read(_CHUNK):
            if first and chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise InputDataError(
                    "file is UTF-16 text, not UTF-8: re-save it as UTF-8", path=path, line=1
                )
            if first and (kind := what_is(chunk[:8])) is not None:
                raise InputDataError(f"file is not text but {kind}", path=path)
            first = False
            if not decoder.getstate()[0] and chunk.isascii():
                # plain ASCII is valid UTF-8: skip the (much slower) decode of the chunk
                line += chunk.count(b"\n")
                continue
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk.count(b"\n", 0, exc.start)
                raise InputDataError(
                    f"file is not UTF-8 (looks like {guess_encoding(chunk)}); re-save it as UTF-8",
                    path=path,
                    line=bad_line,
                ) from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputDataError("file is not UTF-8 (truncated character at the end)", path=path) from None


_HEAD = 1024 * 1024


def csv_header(path: Path) -> list[str]:
    """The header of a CSV file, from its first megabyte (which must be UTF-8 text).

    The rest of the file is checked while Polars reads it (strict UTF-8): a failure there
    is turned into the same one-line error with its line by :func:`locate_bad_utf8`.
    """
    check_readable(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if (kind := what_is(head[:8])) is not None and not (kind == "gzip-compressed" and path.name.lower().endswith(".gz")):
        raise InputDataError(f"file is not text but {kind}", path=path)
    source = readable(path)
    with open(source, "rb") as fh:
        head = fh.read(_HEAD)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputDataError("file is UTF-16 text, not UTF-8: re-save it as UTF-8", path=path, line=1)
    if (kind := what_is(head[:8])) is not None:
        raise InputDataError(f"file is not text but {kind}", path=path)
    if guess_encoding(head[:4096]) == "UTF-16 (no byte-order mark)":
        raise InputDataError(
            "file is UTF-16 text without a byte-order mark, not UTF-8: re-save it as UTF-8", path=path, line=1
        )
    # a whole first megabyte may end inside a character: decode up to its last line break
    cut = head.rfind(b"\n") if len(head) == _HEAD else len(head)
    if cut <= 0:
        cut = len(head)
    try:
        text = head[:cut].decode("utf-8")
    except UnicodeDecodeError:
        check_utf8(path)  # raises, naming the likely encoding and the line
        raise InputDataError("file is not UTF-8", path=path) from None
    first = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), None)
    if not first or first == [""]:
        raise InputDataError("empty file (no header row)", path=path)
    if len(first) == 1 and "\t" in first[0]:
        raise InputDataError(
            "file is tab-separated (TSV), not comma-separated: save it as CSV (comma-separated)",
            path=path, line=1,
        )
    header = [h.strip().lstrip("\ufeff") for h in first]
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise InputDataError(
                f"ambiguous header: column `{name}` appears twice (columns {seen[name]} and {i}); "
                "rename one so it is clear which holds the data",
                path=path, line=1, column=name,
            )
        seen[name] = i
    return header


#: an input file -> (its rows with a wrong number of fields: ``_row``, ``_fields``, or the
#: check still running on another thread; the header's count). Read it with :func:`ragged_found`.
RAGGED: dict[str, tuple[pl.DataFrame | Future[pl.DataFrame], int]] = {}
_RAGGED_SCHEMA = {"_row": pl.Int64, "_fields": pl.UInt32}
_CHECKS: ThreadPoolExecutor | None = None


def ragged_found() -> dict[str, tuple[pl.DataFrame, int]]:
    """The files with rows of a wrong number of fields (waiting for checks still running)."""
    found = {}
    for file, (bad, expected) in RAGGED.items():
        rows = bad.result() if isinstance(bad, Future) else bad
        if rows.height:
            found[file] = (rows, expected)
    return found


def has_byte(path: Path, byte: bytes, within: int | None = None) -> bool:
    """True when ``byte`` occurs in the file (``within``: its first ``within`` bytes); one
    ``memchr`` pass, no decoding."""
    size = path.stat().st_size if within is None else min(path.stat().st_size, within)
    if size == 0:
        return False
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for start in range(0, size, _FIND_WINDOW):
            if mm.find(byte, start, min(start + _FIND_WINDOW, size)) >= 0:
                return True
            _done_with(mm, start, start + _FIND_WINDOW)
    return False


def _done_with(mm: mmap.mmap, start: int, end: int) -> None:
    """Drop the resident pages of ``mm`` between ``start`` and ``end`` (read, not needed again):
    a scan of a 9 GB file then keeps one window resident, not the file (where the OS allows)."""
    low = start - start % mmap.PAGESIZE
    if hasattr(mmap, "MADV_DONTNEED") and end > low:
        mm.madvise(mmap.MADV_DONTNEED, low, min(end, len(mm)) - low)


def _lines_if_all_hold(block: np.ndarray, per_line: int) -> int | None:
    """The number of lines of a block of whole lines when every line holds exactly ``per_line``
    commas, else None (a blank line, a line of another length, or no line break at the end).

    One pass finds every comma and line break at once: when each line holds ``per_line``
    commas, every ``per_line + 1``-th of those positions is a line break. Conversely, when
    there are lines x (``per_line`` + 1) of them and each of those positions is a line break,
    the lines' breaks are exactly those, so each line holds its own ``per_line`` commas. About
    a third of the time of finding the commas and the breaks apart (0.44 s against 1.63 s
    for the 880 MB of events at 1M people, one core).
    """
    if block.size == 0 or block[-1] != 10:
        return None
    breaks = block == 10
    lines = int(np.count_nonzero(breaks))
    found = np.flatnonzero(np.logical_or(block == 44, breaks, out=breaks))
    if found.size != lines * (per_line + 1):
        return None
    return lines if bool((block[found[per_line::per_line + 1]] == 10).all()) else None


def ragged_rows_unquoted(path: Path, n_fields: int, *, stop_at_quote: bool = False) -> pl.DataFrame | None:
    """:func:`ragged_rows` for a file with no double quote anywhere: fields are commas + 1.

    Without quotes a line is a row, so the count needs no text: the bytes are scanned in
    blocks (vectorized, on the memory map), blank lines left aside. Runs on its own thread
    while the rest of ingest goes on (NumPy releases the GIL). ``stop_at_quote``: None as
    soon as a block holds a double quote (the count would be wrong).
    """
    rows: list[np.ndarray] = []
    fields: list[np.ndarray] = []
    size = path.stat().st_size
    if size:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            first = mm.find(b"\n")
            pos, row = (first + 1, 1) if first >= 0 else (size, 1)
            view = memoryview(mm)
            try:
                while pos < size:
                    end = min(pos + _COUNT_BLOCK, size)
                    if end < size:  # whole lines only
                        cut = mm.rfind(b"\n", pos, end)
                        end = cut + 1 if cut >= 0 else (mm.find(b"\n", end) + 1 or size)
                    if stop_at_quote and mm.find(b'"', pos, end) >= 0:  # memchr, not a NumPy pass
                        return None
                    block = np.frombuffer(view[pos:end], dtype=np.uint8)
                    lines = _lines_if_all_hold(block, n_fields - 1)
                    if lines is not None:  # the common case: nothing to count line by line
                        row += lines
                        del block
                        _done_with(mm, pos, end)
                        pos = end
                        continue
                    ends = np.flatnonzero(block == 10)
                    if block[-1] != 10:
                        ends = np.append(ends, len(block))
                    starts = np.empty_like(ends)
                    starts[0] = 0
                    starts[1:] = ends[:-1] + 1
                    commas = np.flatnonzero(block == 44)
                    # commas before each line end, minus those before the previous one
                    counts = np.diff(np.searchsorted(commas, ends), prepend=0) + 1
                    length = ends - starts
                    blank = (length == 0) | ((length == 1) & (block[np.minimum(starts, len(block) - 1)] == 13))
                    bad = np.flatnonzero((counts != n_fields) & ~blank)
                    if bad.size:
                        rows.append(bad + row)
                        fields.append(counts[bad])
                    row += len(ends)
                    del block
                    _done_with(mm, pos, end)
                    pos = end
            finally:
                view.release()
    return pl.DataFrame(
        {"_row": np.concatenate(rows) if rows else np.empty(0, np.int64),
         "_fields": np.concatenate(fields) if fields else np.empty(0, np.int64)},
        schema=_RAGGED_SCHEMA,
    )


def ragged_rows_after_probe(path: Path, n_fields: int) -> pl.DataFrame:
    """The row-length check of a file with no double quote in its first :data:`_QUOTE_PROBE`
    bytes, which was opened on the unquoted path without reading it all for quotes.

    Usually there is none further on either: :func:`ragged_rows_unquoted`'s count, in the one
    pass that also looks for quotes. Else the quote-aware :func:`ragged_rows`, and where that
    cannot count line by line (a line break inside a quoted field), a CSV parser's count
    (:func:`ragged_rows_parsed`): the frame was opened without Polars' own check, so these
    rows must be found here.
    """
    found = ragged_rows_unquoted(path, n_fields, stop_at_quote=True)
    if found is not None:
        return found
    bad = ragged_rows(path, n_fields)
    return bad if bad is not None else ragged_rows_parsed(path, n_fields)


def ragged_rows_parsed(path: Path, n_fields: int) -> pl.DataFrame:
    """Data rows (``_row``, ``_fields``) whose number of fields differs from ``n_fields``,
    counted by Python's CSV parser (quoted fields may hold line breaks; blank lines are left
    aside but numbered). Slow: only for a file :func:`ragged_rows` cannot check."""
    rows: list[int] = []
    fields: list[int] = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)  # the header
        for row, record in enumerate(reader, start=1):
            if record and len(record) != n_fields:
                rows.append(row)
                fields.append(len(record))
    return pl.DataFrame({"_row": rows, "_fields": fields}, schema=_RAGGED_SCHEMA)


def _checks() -> ThreadPoolExecutor:
    global _CHECKS
    if _CHECKS is None:
        _CHECKS = ThreadPoolExecutor(2, thread_name_prefix="segment-ragged")
    return _CHECKS


def ragged_rows(path: Path, n_fields: int) -> pl.DataFrame | None:
    """Data rows (``_row``, ``_fields``) whose number of fields differs from the header's.

    A short row is usually a cut-off one (a truncated transfer, a producer bug); Polars
    would fill its missing fields with nulls, turning a cut ``do_not_contact=Y`` into
    "not flagged". Fields are counted per line, outside double-quoted text; a file with a
    line break inside quotes cannot be checked this way: None.
    """
    lines = pl.scan_csv(
        readable(path), has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
        infer_schema=False, encoding="utf8", skip_rows=1,
    ).with_row_index("_row", offset=1)
    line = pl.col("line").fill_null("")
    quoted = line.str.contains('"', literal=True)
    bare = pl.when(quoted).then(line.str.replace_all(r'"[^"]*"', "")).otherwise(line)
    counted = lines.select(
        pl.col("_row").cast(pl.Int64),
        (bare.str.count_matches(",", literal=True) + 1).alias("_fields"),
        (quoted & bare.str.contains('"', literal=True)).alias("_open_quote"),
        (line == "").alias("_blank"),
    )
    try:
        found = counted.filter(
            ((pl.col("_fields") != n_fields) & ~pl.col("_blank")) | pl.col("_open_quote")
        ).collect(engine="streaming")
    except pl.exceptions.NoDataError:  # a header and no data rows
        return pl.DataFrame(schema={"_row": pl.Int64, "_fields": pl.UInt32})
    except pl.exceptions.PolarsError:
        # a line holding the unit-separator byte, or bytes that are not UTF-8: not checkable
        # this way (the main read reports an encoding problem itself)
        return None
    if found["_open_quote"].any():
        return None
    return found.select("_row", "_fields")


def locate_bad_utf8(paths: list[Path]) -> None:
    """Raise the one-line error (file, line, likely encoding) for the first file that is not UTF-8."""
    for path in paths:
        if path.is_file() and not is_gzip(path):
            check_utf8(path)


def scan_csv_text(path: Path, header: list[str] | None = None, categorical: Sequence[str] = ()) -> pl.LazyFrame:
    """All columns as text with a 1-based ``_row``; header names trimmed.

    ``header`` is the file's :func:`csv_header` when the caller already has it (reading
    it again would check the whole file's encoding a second time). The columns named in
    ``categorical`` are read as Categorical text, each with a mapping of its own (a small
    integer per row instead of a string, for columns of few distinct values).
    """
    header = header if header is not None else csv_header(path)
    # rows with too many or too few fields are left out here and listed in RAGGED, so the
    # caller rejects them with their reason (when the file cannot be checked line by line,
    # Polars' own check stays: a long row is an error, a short one is read)
    source = readable(path)
    if not has_byte(source, b'"', _QUOTE_PROBE):
        # the common case: checked on another thread, and waited for only when the rows are read
        check = _checks().submit(ragged_rows_after_probe, source, len(header))
        RAGGED[str(path)] = (check, len(header))
        frame = _scan_text(source, header, truncate=True, categorical=categorical)
        return frame.join(pl.defer(check.result, schema=_RAGGED_SCHEMA).select("_row"), on="_row", how="anti")
    bad = ragged_rows(path, len(header))
    frame = _scan_text(source, header, truncate=bad is not None, categorical=categorical)
    if bad is not None and bad.height:
        RAGGED[str(path)] = (bad, len(header))
        frame = frame.join(bad.lazy().select("_row"), on="_row", how="anti")
    return frame


def scan_csv_rows(
    path: Path, header: list[str], categorical: Sequence[str] = ()
) -> tuple[pl.LazyFrame, Future[pl.DataFrame] | None]:
    """:func:`scan_csv_text` leaving the rows with a wrong number of fields to the caller.

    For a file with no double quote in its first :data:`_QUOTE_PROBE` bytes, the frame keeps
    every row and the second value is the row-length check still running
    (:func:`ragged_rows_after_probe`; its ``_row``: the rows to drop once the frame is
    collected, which costs nothing when there are none, as usual); otherwise the frame is
    :func:`scan_csv_text`'s and there is nothing to drop (None).
    """
    source = readable(path)
    if has_byte(source, b'"', _QUOTE_PROBE):
        return scan_csv_text(path, header, categorical), None
    check = _checks().submit(ragged_rows_after_probe, source, len(header))
    RAGGED[str(path)] = (check, len(header))
    return _scan_text(source, header, truncate=True, categorical=categorical), check


def _scan_text(source: Path, header: list[str], *, truncate: bool, categorical: Sequence[str] = ()) -> pl.LazyFrame:
    """``source`` as text columns named by ``header``, with a 1-based Int64 ``_row``.

    The columns in ``categorical`` are Categorical (each its own mapping), built by the reader.
    """
    options = {
        "infer_schema": False, "row_index_name": "_row", "row_index_offset": 1,
        "empty_string_is_null": True, "encoding": "utf8", "truncate_ragged_lines": truncate,
    }
    raw = pl.scan_csv(source, **options).collect_schema().names()[1:]  # type: ignore[arg-type]
    wanted = set(categorical)
    overrides = {r: pl.Categorical(pl.Categories.random()) for r, h in zip(raw, header, strict=True) if h in wanted}
    frame = pl.scan_csv(source, schema_overrides=overrides or None, **options)  # type: ignore[arg-type]
    return frame.rename(dict(zip(raw, header, strict=True))).with_columns(pl.col("_row").cast(pl.Int64))


def parquet_header(path: Path) -> list[str]:
    """Column names of a Parquet file."""
    check_readable(path)
    try:
        return list(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputDataError("cannot read Parquet file (corrupt or not Parquet)", path=path) from exc


def scan_parquet_text(path: Path) -> pl.LazyFrame:
    """All columns as text with a 1-based ``_row``."""
    header = parquet_header(path)
    frame = pl.scan_parquet(path).with_row_index("_row", offset=1)
    return frame.select(pl.col("_row").cast(pl.Int64), *[pl.col(c).cast(pl.String) for c in header])
