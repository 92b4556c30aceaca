"""Suppression lists: files of emails, phones or patient ids, and vendor opt-out replies.

A list is read whatever it was saved as: UTF-8 with or without a byte-order mark, UTF-16
or UTF-32 (:func:`segment.ingest.readers.text.decode_text`); a ``.csv``/``.tsv`` with or
without a header row (a first row is a header when it names a known column, or when
none of its cells looks like an entry); any other file one entry per line (``#``
comments and blank lines skipped). Every line is either used or reported unreadable by
its line number and reason (:class:`FileReport`), and a list where nothing could be
read is an error: a list that silently suppresses nobody is the failure this guards.

Values are matched normalized, as ingest normalizes patients:

- emails: ``Name <addr>``, ``mailto:addr?subject=...`` and quotes are reduced to the
  address, which goes through ingest's email check (lower-cased);
- phones: a spreadsheet's ``16175557155.0`` loses its ``.0``; scientific notation is
  read only when it still carries every digit (``1.6175557155E+10``): ``1.61756E+10``
  has lost digits and is reported, never guessed; then ``phonenumbers`` (default region
  US) to E.164, once per distinct value.

An opt-out file is a vendor's reply/feedback export (e.g. Twilio's ``From,Body``): a row
counts when its whole reply, ignoring case and surrounding space, is an opt-out keyword.

Scope: an email list suppresses the email channel; a phone list suppresses SMS and
phone calls; an SMS opt-out reply suppresses SMS only (it revokes text consent, not
care calls), an email unsubscribe suppresses email; a patient id suppresses every
channel.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
import polars as pl

from segment.campaign.model import SuppressionFile, SuppressionKind
from segment.errors import CampaignError, InputDataError
from segment.ingest.emails import email_lookup
from segment.ingest.readers.text import decode_text
from segment.log import get_logger

log = get_logger("export")

OPT_OUT_KEYWORDS = frozenset({
    "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "OPT OUT", "OPT-OUT",
})

_DEFAULT_COLUMNS: dict[SuppressionKind, tuple[str, ...]] = {
    SuppressionKind.EMAIL: ("email", "emailaddress", "email_address", "address"),
    SuppressionKind.PHONE: ("phone", "phone_e164", "phonenumber", "phone_number", "mobile", "from", "to", "number"),
    SuppressionKind.PATIENT_ID: ("patient_id", "patientid", "id", "external_id", "subscriberkey"),
    SuppressionKind.OPT_OUT: ("from", "phone", "phone_number", "phonenumber", "email", "emailaddress", "address"),
}
_REPLY_COLUMNS = ("body", "message", "keyword", "reply", "text", "event")
#: other header words a list may carry (a first row holding one is a header)
_OTHER_HEADER_WORDS = ("value", "values", "mrn", "reason", "date", "datesent", "name", "status")
_TEXT_SUFFIXES = (".csv", ".tsv")

E164 = r"^\+[1-9]\d{1,14}$"

#: unreadable-line reasons (no values: these go into logs and errors)
BLANK = "blank entry"
NOT_EMAIL = "not an email address"
NOT_PHONE = "not a phone number"
LOST_DIGITS = "a number in scientific notation that has lost digits (re-export the column as text)"

_NOUNS = {
    SuppressionKind.EMAIL: "an email address",
    SuppressionKind.PHONE: "a phone number",
    SuppressionKind.PATIENT_ID: "a patient id",
    SuppressionKind.OPT_OUT: "an opt-out address",
}

_SCIENTIFIC = r"^\+?(\d)\.(\d+)[eE]\+?(\d{1,2})$"
_SHOWN_LINES = 10


@dataclass(frozen=True)
class FileReport:
    """What one suppression file gave: entries used, and each line that could not be read."""

    name: str
    kind: str
    encoding: str
    entries: int
    #: reason -> line numbers (1-based, as an editor numbers them)
    unreadable: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: opt-out files: replies read that are not an opt-out keyword
    other_replies: int = 0

    @property
    def unreadable_lines(self) -> tuple[int, ...]:
        """Every unreadable line number, sorted."""
        return tuple(sorted(n for lines in self.unreadable.values() for n in lines))

    def describe_unreadable(self) -> str:
        """``2 lines unreadable: not a phone number (lines 4, 9)`` (line numbers only, no values)."""
        parts = []
        for reason, lines in sorted(self.unreadable.items()):
            shown = ", ".join(str(n) for n in lines[:_SHOWN_LINES])
            more = f" and {len(lines) - _SHOWN_LINES} more" if len(lines) > _SHOWN_LINES else ""
            parts.append(f"{reason} (line{'s' if len(lines) > 1 else ''} {shown}{more})")
        n = len(self.unreadable_lines)
        return f"{n} line{'s' if n != 1 else ''} unreadable: " + "; ".join(parts)


@dataclass(frozen=True)
class Suppression:
    """Normalized suppressed values: one-column frames, plus per-file counts and reports."""

    emails: pl.DataFrame
    sms_phones: pl.DataFrame
    phones: pl.DataFrame
    patient_ids: pl.DataFrame
    #: file name -> entries used (what the manifest reports)
    counts: dict[str, int] = field(default_factory=dict)
    files: tuple[FileReport, ...] = ()

    @classmethod
    def empty(cls) -> Suppression:
        """No suppression at all."""
        e = pl.DataFrame(schema={"value": pl.String})
        return cls(e, e, e, e, {})


def _norm_key(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("-", "_")


# -- reading the file into rows with their line numbers --------------------------------


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    lines: list[int]
    rows: list[list[str]]
    has_header: bool


def _split_lines(text: str) -> list[str]:
    return re.split(r"\r\n|\n|\r", text)


def _delimiter(text: str, suffix: str) -> str:
    if suffix == ".tsv":
        return "\t"
    first = next((ln for ln in _split_lines(text) if ln.strip()), "")
    bare = re.sub(r'"[^"]*"', "", first)
    for sep in (",", "\t", ";"):
        if sep in bare:
            return sep
    return ","


def _looks_like(cell: str, kind: SuppressionKind) -> bool:
    """Whether a cell looks like an entry of ``kind`` (used to tell a header from data)."""
    has_at = "@" in cell
    digits = sum(ch.isdigit() for ch in cell)
    if kind is SuppressionKind.EMAIL:
        return has_at
    if kind is SuppressionKind.PHONE:
        return digits >= 7
    if kind is SuppressionKind.OPT_OUT:
        return has_at or digits >= 7
    return digits > 0


def _is_header(first: list[str], rest: list[list[str]], spec: SuppressionFile) -> bool:
    cells = [c.strip() for c in first]
    if spec.column is not None:
        return spec.column in cells
    known = {_norm_key(c) for c in (*_DEFAULT_COLUMNS[spec.kind], *_REPLY_COLUMNS, *_OTHER_HEADER_WORDS)}
    if any(_norm_key(c) in known for c in cells if c):
        return True
    if any(_looks_like(c, spec.kind) for c in cells):
        return False
    if spec.kind is SuppressionKind.PATIENT_ID:
        # ids carry digits; a first row without any, above rows with them, names the column
        return any(_looks_like(c, spec.kind) for row in rest[:20] for c in row)
    return True


def _read_table(spec: SuppressionFile) -> tuple[_Table, str]:
    path = spec.path
    try:
        text, encoding = decode_text(path)
    except InputDataError as exc:
        raise CampaignError(f"suppression file: {exc.message}", path=path, line=exc.line) from exc
    suffix = path.suffix.lower()
    lines: list[int] = []
    rows: list[list[str]] = []
    if suffix in _TEXT_SUFFIXES:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text, suffix))
        end = 0
        for row in reader:
            start, end = end + 1, reader.line_num
            if any(cell.strip() for cell in row):
                lines.append(start)
                rows.append(row)
    else:
        for n, raw in enumerate(_split_lines(text), start=1):
            value = raw.strip()
            if value and not value.startswith("#"):
                lines.append(n)
                rows.append([value])
    has_header = bool(rows) and _is_header(rows[0], rows[1:], spec)
    width = max((len(r) for r in rows), default=1)
    if has_header:
        columns = []
        for i, name in enumerate([c.strip() for c in rows[0]], start=1):
            columns.append(name if name and name not in columns else f"column_{i}")
        columns += [f"column_{i}" for i in range(len(columns) + 1, width + 1)]
        lines, rows = lines[1:], rows[1:]
    else:
        columns = [f"column_{i}" for i in range(1, width + 1)]
    padded = [[c.strip() for c in r] + [""] * (len(columns) - len(r)) for r in rows]
    return _Table(columns, lines, [r[: len(columns)] for r in padded], has_header), encoding


def _pick(table: _Table, wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          kind: SuppressionKind | None = None, exclude: str | None = None) -> str:
    """The column holding ``what``: the one named by ``column:``, a known header, the only one, or by content."""
    columns = [c for c in table.columns if c != exclude]
    if wanted is not None:
        return _named(table, wanted, columns, path)
    found = _by_header(table, candidates, columns)
    if found is None and len(columns) == 1:
        found = columns[0]
    if found is None and not table.has_header:
        found = _by_content(table, kind, exclude)
    if found is not None:
        return found
    listed = f"columns: {_shown(columns)}" if table.has_header else f"{len(columns)} columns, no header row"
    raise CampaignError(
        f"suppression file: cannot tell which column holds the {what}; set `column:` ({listed})",
        path=path,
    )


def _named(table: _Table, wanted: str, columns: list[str], path: Path) -> str:
    """The column ``column:`` names, or an error saying why the file has none."""
    if wanted in columns:
        return wanted
    if not table.has_header:
        raise CampaignError(
            f"suppression file has no header row, so it has no column `{wanted}`; "
            "add a header line or remove `column:`",
            path=path,
        )
    raise CampaignError(f"suppression file has no column `{wanted}`; columns: {_shown(table.columns)}", path=path)


def _by_header(table: _Table, candidates: tuple[str, ...], columns: list[str]) -> str | None:
    """The first candidate header present (case, space and punctuation aside)."""
    if not table.has_header:
        return None
    keyed = {_norm_key(c): c for c in columns}
    return next((keyed[_norm_key(c)] for c in candidates if _norm_key(c) in keyed), None)


def _by_content(table: _Table, kind: SuppressionKind | None, exclude: str | None) -> str | None:
    """No header: the column whose first 200 cells most look like the entries (for replies, keywords)."""
    best, score = None, 0
    for i, col in enumerate(table.columns):
        if col == exclude:
            continue
        cells = [r[i] for r in table.rows[:200]]
        if kind is None:
            hits = sum(_reply_words(c) in OPT_OUT_KEYWORDS for c in cells)
        else:
            hits = sum(_looks_like(c, kind) for c in cells)
        if hits > score:
            best, score = col, hits
    return best


def _shown(columns: list[str]) -> str:
    """Header names for a message: known column words by name, any other by position.

    A first row taken for a header may be data (a name, an address): it is never quoted.
    """
    known = {_norm_key(c) for cs in _DEFAULT_COLUMNS.values() for c in cs}
    known |= {_norm_key(c) for c in (*_REPLY_COLUMNS, *_OTHER_HEADER_WORDS)}
    return ", ".join(c if _norm_key(c) in known else f"column {i}" for i, c in enumerate(columns, start=1))


def _reply_words(text: str) -> str:
    return " ".join(text.split()).upper()


# -- normalizing values ----------------------------------------------------------------


def normalize_phones(values: pl.Series) -> pl.Series:
    """E.164 for each value (null when not a valid number), parsing each distinct value once."""
    distinct = values.drop_nulls().unique()

    def one(raw: str) -> str | None:
        try:
            num = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(num):
            return None
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)

    lookup = pl.DataFrame({
        "raw": distinct,
        "e164": distinct.map_elements(one, return_dtype=pl.String),
    }, schema={"raw": pl.String, "e164": pl.String})
    return (
        values.rename("raw").to_frame().join(lookup, on="raw", how="left", maintain_order="left")
        .get_column("e164").rename(values.name)
    )


def normalize_emails(expr: pl.Expr) -> pl.Expr:
    """Emails as matched: stripped and lower-cased."""
    return expr.str.strip_chars().str.to_lowercase()


def email_text(expr: pl.Expr) -> pl.Expr:
    """The address in ``Name <addr>``, ``mailto:addr?subject=...`` or quoted forms (null if blank)."""
    e = expr.str.strip_chars()
    angle = e.str.extract(r"<([^<>]*)>\s*$", 1)
    e = pl.when(angle.is_not_null()).then(angle).otherwise(e)
    e = e.str.strip_chars().str.strip_chars("\"'").str.strip_chars()
    e = e.str.replace(r"(?i)^mailto:", "").str.replace(r"\?.*$", "").str.strip_chars()
    return pl.when(e == "").then(pl.lit(None, pl.String)).otherwise(e)


def phone_text(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A phone as a spreadsheet may have left it -> (text to parse, whether digits were lost).

    ``16175557155.0`` -> ``16175557155``; ``1.6175557155E+10`` -> ``16175557155`` (every
    digit is there); ``1.61756E+10`` has lost digits: no text, and the second expression
    is true.
    """
    p = expr.str.strip_chars().str.replace(r"(?i)^tel:", "").str.strip_chars()
    p = p.str.replace(r"^(\+?\d+)\.0+$", "${1}")
    lead = p.str.extract(_SCIENTIFIC, 1)
    frac = p.str.extract(_SCIENTIFIC, 2)
    exp = p.str.extract(_SCIENTIFIC, 3).cast(pl.Int64)
    scientific = lead.is_not_null()
    exact = scientific & (frac.str.len_chars() == exp)
    text = (
        pl.when(exact).then(lead + frac)
        .when(scientific).then(pl.lit(None, pl.String))
        .when(p == "").then(pl.lit(None, pl.String))
        .otherwise(p)
    )
    return text, (scientific & ~exact).fill_null(False)


def _emails(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(normalized email or null, reason or null) per raw cell."""
    frame = pl.DataFrame({"raw": raw}, schema={"raw": pl.String}).with_columns(
        email_text(pl.col("raw")).alias("addr")
    )
    distinct = frame.select("addr").drop_nulls().unique()
    lookup = email_lookup(distinct.lazy(), "addr").collect()
    out = frame.join(lookup, on="addr", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("raw").str.strip_chars().fill_null("") == "").then(pl.lit(BLANK))
        .when(pl.col("email").is_null()).then(pl.lit(NOT_EMAIL))
    )
    out = out.with_columns(reason.alias("reason"))
    return out.get_column("email"), out.get_column("reason")


def _phones(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(E.164 or null, reason or null) per raw cell."""
    text, lost = phone_text(pl.col("raw"))
    frame = pl.DataFrame({"raw": raw}, schema={"raw": pl.String}).with_columns(
        text.alias("text"), lost.alias("lost")
    )
    e164 = normalize_phones(frame.get_column("text")).rename("e164")
    frame = frame.with_columns(e164)
    reason = (
        pl.when(pl.col("raw").str.strip_chars().fill_null("") == "").then(pl.lit(BLANK))
        .when(pl.col("lost")).then(pl.lit(LOST_DIGITS))
        .when(pl.col("e164").is_null()).then(pl.lit(NOT_PHONE))
    )
    frame = frame.with_columns(reason.alias("reason"))
    return frame.get_column("e164"), frame.get_column("reason")


# -- one file --------------------------------------------------------------------------


@dataclass
class _Parsed:
    emails: pl.Series
    phones: pl.Series
    sms_phones: pl.Series
    ids: pl.Series
    report: FileReport


def _reasons(lines: pl.Series, reasons: pl.Series) -> dict[str, tuple[int, ...]]:
    bad = pl.DataFrame({"line": lines, "reason": reasons}).drop_nulls("reason")
    grouped = bad.group_by("reason").agg(pl.col("line").sort()).sort("reason")
    return {r: tuple(ls) for r, ls in grouped.iter_rows()}


def _empty() -> pl.Series:
    return pl.Series("value", [], dtype=pl.String)


def read_suppression_file(spec: SuppressionFile) -> _Parsed:
    """One list: its normalized entries by scope and its :class:`FileReport`."""
    table, encoding = _read_table(spec)
    path, kind = spec.path, spec.kind
    if not table.rows:
        raise CampaignError(
            "suppression file lists no entries (a list that suppresses nobody is refused; "
            "remove it from the campaign if that is intended)",
            path=path,
        )
    frame = pl.DataFrame(
        {"_line": table.lines, **{c: [r[i] for r in table.rows] for i, c in enumerate(table.columns)}},
        schema={"_line": pl.Int64, **dict.fromkeys(table.columns, pl.String)},
    )
    col = _pick(table, spec.column, _DEFAULT_COLUMNS[kind], str(kind), path, kind)
    values = frame.get_column(col)
    lines = frame.get_column("_line")
    emails = phones = sms_phones = ids = _empty()
    other = 0
    if kind is SuppressionKind.OPT_OUT:
        reply = _pick(table, spec.reply_column, _REPLY_COLUMNS, "reply text", path, None, exclude=col)
        words = (
            frame.get_column(reply).str.strip_chars().str.replace_all(r"\s+", " ").str.to_uppercase()
        )
        is_stop = words.is_in(list(OPT_OUT_KEYWORDS)).fill_null(False)
        other = int((~is_stop).sum())
        values, lines = values.filter(is_stop), lines.filter(is_stop)
        is_email = values.str.contains("@").fill_null(False)
        mail, mail_why = _emails(values.filter(is_email))
        tel, tel_why = _phones(values.filter(~is_email))
        emails, sms_phones = mail.drop_nulls(), tel.drop_nulls()
        entries = emails.len() + sms_phones.len()
        unreadable = _reasons(
            pl.concat([lines.filter(is_email), lines.filter(~is_email)]), pl.concat([mail_why, tel_why])
        )
    elif kind is SuppressionKind.EMAIL:
        found, why = _emails(values)
        emails, entries, unreadable = found.drop_nulls(), int(found.is_not_null().sum()), _reasons(lines, why)
    elif kind is SuppressionKind.PHONE:
        found, why = _phones(values)
        phones, entries, unreadable = found.drop_nulls(), int(found.is_not_null().sum()), _reasons(lines, why)
    else:
        blank = values.fill_null("") == ""
        ids = values.filter(~blank)
        entries = ids.len()
        unreadable = _reasons(lines.filter(blank), pl.Series([BLANK] * int(blank.sum()), dtype=pl.String))
    report = FileReport(path.name, str(kind), encoding, int(entries), unreadable, other)
    if entries == 0 and other == 0:
        raise CampaignError(
            f"suppression file: no line could be read as {_NOUNS[kind]}; {report.describe_unreadable()}",
            path=path,
        )
    if unreadable:
        log.warning(f"suppression file {path.name}: {report.describe_unreadable()}",
                    entries=int(entries), unreadable=len(report.unreadable_lines))
    return _Parsed(emails, phones, sms_phones, ids, report)


def load_suppression(files: list[SuppressionFile]) -> Suppression:
    """Read every suppression file into normalized value sets (and a report per file)."""
    parsed = [read_suppression_file(spec) for spec in files]

    def combine(parts: list[pl.Series]) -> pl.DataFrame:
        parts = [p for p in parts if p.len()]
        if not parts:
            return pl.DataFrame(schema={"value": pl.String})
        values = pl.concat([p.cast(pl.String).rename("value") for p in parts])
        return values.drop_nulls().unique().sort().to_frame()

    return Suppression(
        emails=combine([p.emails for p in parsed]),
        sms_phones=combine([p.sms_phones for p in parsed]),
        phones=combine([p.phones for p in parsed]),
        patient_ids=combine([p.ids for p in parsed]),
        counts={p.report.name: p.report.entries for p in parsed},
        files=tuple(p.report for p in parsed),
    )
