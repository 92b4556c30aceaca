"""Contact preferences the analyst maintains: per patient or contact, channel, language, texting hours.

A preferences file is a CSV (or TSV) with a header row. Each row names a patient by one
key column, ``patient_id``, ``email`` or ``phone`` (the first non-blank of them, in that
order), and at least one of:

- ``preferred_channel``: ``sms``, ``email``, ``mail`` or ``phone`` (``Text``, ``E-mail``,
  ``US Mail``, ``Phone call`` are read as ingest reads them);
- ``language``: ISO 639-1 or a name/BCP-47 tag ingest understands (``Spanish``, ``es-MX``);
- ``text_after`` / ``text_before``: ``'HH:MM'`` local times: the person asked not to be
  texted before ``text_after`` or from ``text_before`` on; it only narrows the campaign's
  quiet-hours window, never widens it.

The file wins over the extract (it is what the person told the analyst). When several
rows name the same patient, the last row in the file wins. A row that names no patient
in the working folder, or holds a value that cannot be read, goes to a rejects frame
(``row``, ``column``, ``value``, ``reason``), which the export writes owner-only beside the
other outputs and counts in its manifest. Nothing is looped over in Python: rows are
normalized with ingest's vectorized normalizers and matched with joins.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segment.campaign.suppression import email_text, normalize_emails, normalize_phones, phone_text
from segment.errors import CampaignError
from segment.ingest.normalize import normalize_channel, normalize_language
from segment.ingest.readers.text import decode_text
from segment.log import get_logger

log = get_logger("export")

KEY_COLUMNS = ("patient_id", "email", "phone")
VALUE_COLUMNS = ("preferred_channel", "language", "text_after", "text_before")
PREFERENCE_COLUMNS = (*KEY_COLUMNS, *VALUE_COLUMNS)
#: what :func:`apply_preferences` adds beside ``preferred_channel`` and ``language``
WINDOW_COLUMNS = ("text_after", "text_before")
REJECT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "row": pl.Int64, "column": pl.String, "value": pl.String, "reason": pl.String,
}
RESOLVED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "pref_channel": pl.String, "pref_language": pl.String,
    "text_after": pl.Time, "text_before": pl.Time,
}
UNKNOWN_PATIENT = "unknown patient: no patient in the working folder has this id or contact"
REJECTS_FILE = "preferences-rejects.csv"
_TIME = r"^([01]?\d|2[0-3]):([0-5]\d)$"


@dataclass(frozen=True)
class Preferences:
    """Resolved preferences, one row per patient (:data:`RESOLVED_SCHEMA`), and the rejected rows."""

    frame: pl.DataFrame
    rejects: pl.DataFrame
    rows: int

    @property
    def rejected_rows(self) -> int:
        """Distinct file rows with at least one rejected value (a row may have several)."""
        return int(self.rejects.get_column("row").n_unique()) if self.rejects.height else 0

    @property
    def unknown_patients(self) -> int:
        """Rows naming no patient of the working folder."""
        return int((self.rejects.get_column("reason") == UNKNOWN_PATIENT).sum())

    def counts(self) -> dict[str, int]:
        """Rows read, patients with a preference, rows rejected, unknown patients (no values)."""
        return {"rows": self.rows, "patients": self.frame.height, "rejected_rows": self.rejected_rows,
                "unknown_patients": self.unknown_patients}

    @classmethod
    def empty(cls) -> Preferences:
        """No preferences file."""
        return cls(pl.DataFrame(schema=RESOLVED_SCHEMA), pl.DataFrame(schema=REJECT_SCHEMA), 0)


def read_header(path: Path) -> list[str]:
    """The header of a preferences file, lower-cased; errors name the file and valid columns.

    Cheap (the first line only): the campaign loader calls it before any data is read.
    """
    try:
        text, _encoding = decode_text(path)
    except OSError as exc:
        raise CampaignError(f"cannot read the preferences file ({exc.strerror})", path=path) from exc
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    header = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])]
    valid = ", ".join(PREFERENCE_COLUMNS)
    if not header or not any(header):
        raise CampaignError(f"the preferences file is empty; it needs a header row with columns: {valid}",
                            path=path, line=1)
    for name in header:
        if name not in PREFERENCE_COLUMNS:
            raise CampaignError(
                f"column `{name}` is not a preferences column; valid options are: {valid}",
                path=path, line=1, column=name,
            )
    if len(set(header)) != len(header):
        raise CampaignError("a column is named twice in the header", path=path, line=1)
    if not any(k in header for k in KEY_COLUMNS):
        raise CampaignError(f"no key column: name patients by one of {', '.join(KEY_COLUMNS)}",
                            path=path, line=1)
    if not any(v in header for v in VALUE_COLUMNS):
        raise CampaignError(f"no preference column: add one of {', '.join(VALUE_COLUMNS)}", path=path, line=1)
    return header


def _read_rows(path: Path) -> pl.DataFrame:
    header = read_header(path)
    text, _encoding = decode_text(path)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    frame = pl.read_csv(io.StringIO(text), separator=delimiter, infer_schema=False, has_header=True,
                        new_columns=header, truncate_ragged_lines=False)
    frame = frame.with_row_index("row", offset=2).with_columns(pl.col("row").cast(pl.Int64))
    for name in PREFERENCE_COLUMNS:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    return frame.with_columns(
        [pl.col(c).str.strip_chars().replace("", None) for c in PREFERENCE_COLUMNS]
    )


def _time(column: str) -> pl.Expr:
    text = pl.col(column)
    return pl.when(text.str.contains(_TIME)).then(
        pl.concat_str([text.str.extract(_TIME, 1).str.zfill(2), text.str.extract(_TIME, 2), pl.lit("00")],
                      separator=":").str.to_time("%H:%M:%S")
    )


def load_preferences(path: Path, patients: pl.LazyFrame) -> Preferences:
    """Read ``path`` and resolve each row to patients of ``patients`` (``patient_id``, ``email``, ``phone_e164``)."""
    rows = _read_rows(path)
    schema = patients.collect_schema()
    email_addr = email_text(pl.col("email"))
    phone_raw, _lost = phone_text(pl.col("phone"))
    channel = normalize_channel(pl.col("preferred_channel"))
    language = normalize_language(pl.col("language"))
    parsed = rows.with_columns(
        normalize_emails(email_addr).alias("_email"),
        phone_raw.alias("_phone_raw"),
        channel.value.alias("pref_channel"),
        channel.problem.alias("_p_channel"),
        language.value.alias("pref_language"),
        language.problem.alias("_p_language"),
        _time("text_after").alias("_after"),
        _time("text_before").alias("_before"),
    )
    parsed = parsed.with_columns(normalize_phones(parsed.get_column("_phone_raw")).alias("_phone"))
    bad_time = "not a time: write 'HH:MM' from 00:00 to 23:59"
    problems = [
        ("preferred_channel", pl.col("_p_channel") + pl.lit(": valid options are: sms, email, mail, phone")),
        ("language", pl.col("_p_language") + pl.lit(": use an ISO 639-1 code such as es, or a name")),
        ("text_after", pl.when(pl.col("text_after").is_not_null() & pl.col("_after").is_null()).then(pl.lit(bad_time))),
        ("text_before", pl.when(pl.col("text_before").is_not_null() & pl.col("_before").is_null())
         .then(pl.lit(bad_time))),
        ("text_before", pl.when(pl.col("_after") >= pl.col("_before"))
         .then(pl.lit("text_before must be later than text_after"))),
        ("email", pl.when(pl.col("patient_id").is_null() & pl.col("email").is_not_null() & pl.col("_email").is_null())
         .then(pl.lit("not an email address"))),
        ("phone", pl.when(pl.col("patient_id").is_null() & pl.col("_email").is_null() & pl.col("phone").is_not_null()
                          & pl.col("_phone").is_null()).then(pl.lit("not a phone number"))),
        ("patient_id", pl.when(pl.all_horizontal([pl.col(k).is_null() for k in KEY_COLUMNS]))
         .then(pl.lit(f"no key: fill one of {', '.join(KEY_COLUMNS)}"))),
    ]
    value_of = {"text_before": "text_before", "text_after": "text_after"}
    bad = pl.concat([
        parsed.select("row", pl.lit(col).alias("column"), pl.col(value_of.get(col, col)).alias("value"),
                      reason.alias("reason")).filter(pl.col("reason").is_not_null())
        for col, reason in problems
    ])
    good = parsed.join(bad.select("row").unique(), on="row", how="anti")
    # match: patient id first, else email, else phone (a contact shared by several patients names each)
    people = patients.select(
        pl.col("patient_id").cast(pl.String).alias("_pid"),
        (normalize_emails(pl.col("email")) if "email" in schema else pl.lit(None, pl.String)).alias("_p_email"),
        (pl.col("phone_e164") if "phone_e164" in schema else pl.lit(None, pl.String)).alias("_p_phone"),
    )
    by_id = good.lazy().filter(pl.col("patient_id").is_not_null()).join(
        people.select("_pid"), left_on="patient_id", right_on="_pid", how="inner").with_columns(
        pl.col("patient_id").alias("_pid"))
    by_email = good.lazy().filter(pl.col("patient_id").is_null() & pl.col("_email").is_not_null()).join(
        people.select("_pid", "_p_email").drop_nulls(), left_on="_email", right_on="_p_email", how="inner")
    by_phone = good.lazy().filter(
        pl.col("patient_id").is_null() & pl.col("_email").is_null() & pl.col("_phone").is_not_null()
    ).join(people.select("_pid", "_p_phone").drop_nulls(), left_on="_phone", right_on="_p_phone", how="inner")
    cols = ["row", "_pid", "pref_channel", "pref_language", "_after", "_before"]
    matched = pl.concat([f.select(cols) for f in (by_id, by_email, by_phone)]).collect()
    key_value = pl.coalesce(pl.col("patient_id"), pl.col("email"), pl.col("phone"))
    key_name = (pl.when(pl.col("patient_id").is_not_null()).then(pl.lit("patient_id"))
                .when(pl.col("email").is_not_null()).then(pl.lit("email")).otherwise(pl.lit("phone")))
    unknown = good.join(matched.select("row").unique(), on="row", how="anti").select(
        "row", key_name.alias("column"), key_value.alias("value"), pl.lit(UNKNOWN_PATIENT).alias("reason"))
    rejects = pl.concat([bad, unknown]).cast(REJECT_SCHEMA).sort("row", "column")  # type: ignore[arg-type]
    resolved = (
        matched.sort("row").group_by("_pid", maintain_order=True).last()
        .select(pl.col("_pid").alias("patient_id"), "pref_channel", "pref_language",
                pl.col("_after").alias("text_after"), pl.col("_before").alias("text_before"))
        .cast(RESOLVED_SCHEMA).sort("patient_id")  # type: ignore[arg-type]
    )
    prefs = Preferences(resolved, rejects, rows.height)
    log.info("preferences read", **prefs.counts())
    return prefs


def apply_preferences(patients: pl.LazyFrame, prefs: Preferences | None) -> pl.LazyFrame:
    """``patients`` with the file's channel and language over the extract's, and texting hours.

    Adds ``preferred_channel`` and ``language`` when absent, and ``text_after``/``text_before``
    (null: no personal window). The extract's values stay where the file says nothing.
    """
    schema = patients.collect_schema()
    frame = prefs.frame if prefs is not None else Preferences.empty().frame
    base = patients.with_columns(
        *([] if "preferred_channel" in schema else [pl.lit(None, pl.String).alias("preferred_channel")]),
        *([] if "language" in schema else [pl.lit(None, pl.String).alias("language")]),
    )
    if frame.height == 0:
        return base.with_columns(pl.lit(None, pl.Time).alias(c) for c in WINDOW_COLUMNS)
    drop = [c for c in WINDOW_COLUMNS if c in schema]
    return base.drop(drop).join(
        frame.lazy(), on="patient_id", how="left"
    ).with_columns(
        pl.coalesce(pl.col("pref_channel"), pl.col("preferred_channel")).alias("preferred_channel"),
        pl.coalesce(pl.col("pref_language"), pl.col("language")).alias("language"),
    ).drop("pref_channel", "pref_language")


def write_rejects(prefs: Preferences, workdir: Path) -> Path | None:
    """``WORKDIR/preferences-rejects.csv`` (owner-only: values are contacts) when rows were rejected."""
    from segment import workdir as wd

    target = workdir / REJECTS_FILE
    if prefs.rejects.height == 0:
        target.unlink(missing_ok=True)
        return None
    wd.write_csv(prefs.rejects, target)
    log.warning("preferences rows rejected", rows=prefs.rejected_rows, unknown_patients=prefs.unknown_patients,
                file=REJECTS_FILE)
    return target
