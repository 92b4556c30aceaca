"""Vendor CSV bytes: allow-listed columns, safe cells, byte limits, size-limited parts.

Cell safety, all vectorized:
- formula injection (OWASP): a cell starting with ``=``, ``+``, ``-``, ``@``, tab or
  carriage return gets a leading ``'``, except a valid E.164 phone number;
- NUL and bidirectional-control characters (U+202A-U+202E, U+2066-U+2069: text that
  displays other than it reads) are removed, and the cells cleaned counted; an email
  address starting with ``+``, ``-`` or ``=`` that cannot hold a formula (no brackets,
  quotes, ``|`` or ``!``) is left as it is, since a ``'`` would change the address;
- line breaks inside a cell become one space (vendors such as Braze mis-read mixed line
  endings), so every record is exactly one line;
- a profile's byte limit (e.g. 255) truncates text on a UTF-8 character boundary, or,
  for identifier columns (``overflow: reject``), drops the row and counts it: an email
  address cut short would reach the wrong person.
Rows are sorted by ``patient_id`` so the same inputs give byte-identical files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from segment.campaign.model import Encoding, HeaderStyle, Overflow, PhoneFormat, ProfileColumn
from segment.campaign.profiles import ResolvedProfile
from segment.campaign.suppression import E164
from segment.errors import DeliveryError, PrivacyError
from segment.log import get_logger

FORMULA_START = r"^[=+\-@\t\r]"
#: NUL and the bidirectional embedding, override and isolate controls ("Trojan Source")
INVISIBLE = "[\x00\u202a-\u202e\u2066-\u2069]"
#: an email address that a spreadsheet cannot run as a function, whatever its first character
PLAIN_EMAIL = r"^[A-Za-z0-9._%+=\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+$"
#: a plain signed number (a UTC offset such as -5) is data, not a formula
PLAIN_NUMBER = r"^[+-]?\d{1,15}(?:\.\d{1,15})?$"
_SEARCH_STEPS = 16  # enough for any cell under 64 KiB characters


@dataclass(frozen=True)
class VendorTable:
    """The cells of one vendor file (all strings, null = blank), before serialization."""

    frame: pl.DataFrame
    rejected_too_long: int
    #: the patient id of each written row, in file order
    patient_ids: pl.Series
    #: cells that had NUL or bidirectional-control characters removed
    cleaned_cells: int = 0


def derived_columns(code: str, channel: str, options: dict[str, str]) -> dict[str, pl.Expr]:
    """Fields the export computes (none clinical)."""
    out = {
        "contact_id": pl.col("patient_id").cast(pl.String),
        # letters and digits only, one-to-one with the patient id (SFMC contact keys)
        "contact_key": pl.col("patient_id").cast(pl.String).str.encode("hex"),
        "campaign_code": pl.lit(code),
        "channel": pl.lit(channel),
        "country": pl.lit("US"),
    }
    for key, value in options.items():
        out[f"option:{key}"] = pl.lit(value)
    return out


def truncate_bytes(values: pl.Series, limit: int) -> pl.Series:
    """The longest prefix of each string whose UTF-8 encoding fits ``limit`` bytes.

    A vectorized binary search over the character count (columns, not a Python loop
    over rows), so the cut always falls on a character boundary.
    """
    frame = values.rename("v").to_frame().with_columns(
        pl.lit(0, pl.Int64).alias("lo"),
        pl.min_horizontal(pl.col("v").str.len_chars(), pl.lit(limit)).cast(pl.Int64).alias("hi"),
    )
    for _ in range(_SEARCH_STEPS):
        frame = frame.with_columns(((pl.col("lo") + pl.col("hi") + 1) // 2).alias("mid")).with_columns(
            (pl.col("v").str.slice(0, pl.col("mid")).str.len_bytes() <= limit).alias("fits")
        ).with_columns(
            pl.when(pl.col("fits")).then(pl.col("mid")).otherwise(pl.col("lo")).alias("lo"),
            pl.when(pl.col("fits")).then(pl.col("hi")).otherwise(pl.col("mid") - 1).alias("hi"),
        )
    out = frame.select(
        pl.when(pl.col("v").str.len_bytes() <= limit).then(pl.col("v"))
        .otherwise(pl.col("v").str.slice(0, pl.col("lo")))
    ).to_series()
    return out.rename(values.name)


def neutralize(expr: pl.Expr, *, email: bool = False) -> pl.Expr:
    """Prefix ``'`` to cells a spreadsheet would run as a formula (not E.164 phones).

    With ``email``, a plain address (:data:`PLAIN_EMAIL`) is left as it is too.
    """
    risky = expr.str.contains(FORMULA_START) & ~expr.str.contains(E164) & ~expr.str.contains(PLAIN_NUMBER)
    if email:
        risky = risky & ~expr.str.contains(PLAIN_EMAIL)
    return pl.when(risky.fill_null(False)).then(pl.lit("'") + expr).otherwise(expr)


def extra_header(field: str, style: HeaderStyle) -> str:
    """The header of an extra field: the field name, or ``_TitleCase`` (``first_name`` -> ``_FirstName``)."""
    if style is HeaderStyle.UNDERSCORE_TITLE:
        return "_" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", field) if part)
    return field


def _source(col: ProfileColumn, available: dict[str, pl.Expr], schema: pl.Schema) -> pl.Expr | None:
    if col.value is not None:
        return pl.lit(col.value)
    if col.field in available:
        return available[col.field]
    if col.field in schema:
        return pl.col(col.field)
    return None


def _as_text(expr: pl.Expr, dtype: pl.DataType, col: ProfileColumn, prof: ResolvedProfile) -> pl.Expr:
    if dtype == pl.Date:
        return expr.dt.strftime(col.date_format or prof.date_format)
    if isinstance(dtype, pl.Datetime):
        return expr.dt.strftime(col.date_format or prof.datetime_format)
    if dtype == pl.Boolean:
        return pl.when(expr).then(pl.lit("true")).otherwise(pl.lit("false"))
    return expr.cast(pl.String)


@dataclass(frozen=True)
class _Cell:
    """How one vendor column is computed from a row, and what its byte limit does."""

    header: str
    text: pl.Expr
    #: the cell had NUL or bidirectional-control characters (removed from ``text``)
    has_invisible: pl.Expr
    #: the row is dropped when this is true (an identifier over its byte limit)
    too_long: pl.Expr | None
    #: text over this many bytes is cut on a character boundary
    truncate_to: int | None


def _cell(col: ProfileColumn, src: pl.Expr, rows: pl.DataFrame, prof: ResolvedProfile) -> _Cell:
    dtype = rows.select(src.alias("_x")).schema["_x"] if col.value is None else pl.String()
    text = _as_text(src, dtype, col, prof)
    if col.field == "phone_e164" and prof.phone_format is PhoneFormat.DIGITS:
        text = text.str.strip_prefix("+")
    invisible = text.str.contains(INVISIBLE).fill_null(False)
    text = neutralize(text.str.replace_all(INVISIBLE, ""), email=col.field == "email")
    text = text.str.replace_all(r"[\r\n]+", " ")
    limit = col.max_bytes or prof.max_field_bytes
    reject = (col.overflow or prof.overflow) is Overflow.REJECT
    too_long = (text.str.len_bytes() > limit).fill_null(False) if limit is not None and reject else None
    text = pl.when(text == "").then(pl.lit(None, pl.String)).otherwise(text)
    return _Cell(col.header, text.alias(col.header), invisible, too_long, limit if not reject else None)


def _cells(rows: pl.DataFrame, prof: ResolvedProfile, fields: list[str], code: str,
           options: dict[str, str]) -> list[_Cell]:
    """The profile's required columns, the allowed ``fields`` it has, then the extra fields."""
    available = derived_columns(code, str(prof.channel), options)
    columns: list[ProfileColumn] = [c for c in prof.columns if c.required or c.field in fields]
    covered = {c.field for c in prof.columns}
    columns += [ProfileColumn(header=extra_header(f, prof.extra_header_style), field=f)
                for f in fields if f not in covered]
    cells: list[_Cell] = []
    for col in columns:
        src = _source(col, available, rows.schema)
        if src is None:
            if col.field.startswith("option:"):
                continue  # an optional vendor constant the campaign did not set
            raise PrivacyError(
                f"field `{col.field}` (vendor column `{col.header}`) is not a column of the "
                "patient file",
                column=col.field,
            )
        cell = _cell(col, src, rows, prof)
        if any(c.header == col.header for c in cells):
            raise DeliveryError(f"profile `{prof.name}` writes column `{col.header}` twice")
        cells.append(cell)
    return cells


def vendor_table(
    rows: pl.DataFrame,
    prof: ResolvedProfile,
    fields: list[str],
    *,
    code: str,
    options: dict[str, str],
) -> VendorTable:
    """The allow-listed, formatted, neutralized cells for ``rows`` (one vendor, one channel)."""
    cells = _cells(rows, prof, fields, code, options)
    ordered = rows.sort("patient_id")
    reject_checks = [c.too_long for c in cells if c.too_long is not None]
    rejected = 0
    if reject_checks:
        bad = pl.any_horizontal(reject_checks)
        rejected = int(ordered.select(bad.sum()).item())
        ordered = ordered.filter(~bad)
    invisible = [c.has_invisible for c in cells]
    cleaned = int(ordered.select(pl.sum_horizontal(invisible).sum()).item()) if invisible and ordered.height else 0
    if cleaned:
        get_logger("export").warning(
            f"{prof.name}: NUL or bidirectional-control characters removed from {cleaned} cell(s)",
            cells_cleaned=cleaned,
        )
    table = ordered.select([c.text for c in cells])
    for header, limit in ((c.header, c.truncate_to) for c in cells if c.truncate_to is not None):
        if table.height and (table.get_column(header).str.len_bytes() > limit).any():
            table = table.with_columns(truncate_bytes(table.get_column(header), limit))
    if prof.omit_blank_columns and table.height:
        keep = [c for c in table.columns if table.get_column(c).null_count() < table.height]
        table = table.select(keep)
    return VendorTable(table, rejected, ordered.get_column("patient_id"), cleaned)


def to_csv_bytes(table: pl.DataFrame, prof: ResolvedProfile) -> tuple[bytes, int]:
    """CSV bytes for the table and the length of the header line (including its newline)."""
    style: Any = str(prof.quoting)
    body = table.write_csv(
        separator=prof.delimiter,
        quote_style=style,
        line_terminator=prof.line_terminator,
        null_value="",
        include_header=True,
    ).encode("utf-8")
    header_len = body.index(prof.line_terminator.encode()) + len(prof.line_terminator)
    if prof.encoding is Encoding.UTF8_BOM:
        return b"\xef\xbb\xbf" + body, header_len + 3
    return body, header_len


def split_csv(blob: bytes, header_len: int, max_bytes: int | None, terminator: str) -> list[bytes]:
    """Split CSV bytes into parts of at most ``max_bytes``, each repeating the header.

    Cells never contain line breaks (see :func:`vendor_table`), so records end at each
    terminator.
    """
    if max_bytes is None or len(blob) <= max_bytes:
        return [blob]
    header, body = blob[:header_len], blob[header_len:]
    nl = terminator.encode()[-1]
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == nl) + 1  # record end offsets
    budget = max_bytes - len(header)
    parts: list[bytes] = []
    start = 0
    while start < len(body):
        # the last record end that keeps this part within the budget
        idx = int(np.searchsorted(ends, start + budget, side="right")) - 1
        if idx < 0 or ends[idx] <= start:
            raise DeliveryError(
                f"one record is larger than the file size limit ({max_bytes} bytes) "
                "less the header; raise `max_file_bytes`"
            )
        stop = int(ends[idx])
        parts.append(header + body[start:stop])
        start = stop
    return parts


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def safe_file_name(name: str) -> str:
    """``name`` if it is a plain file name that cannot leave the destination folder."""
    if "\x00" in name or "/" in name or "\\" in name or ".." in name or not _SAFE_NAME.match(name):
        raise DeliveryError(
            "refusing an unsafe vendor file name (path separators, `..`, NUL or leading dot)"
        )
    return name
