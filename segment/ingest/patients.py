"""Patient records: stacked from every source, normalized once per distinct value, rejected.

Each normalizer of :mod:`segment.ingest.normalize` runs on the distinct raw values of its
column(s) only (:func:`segment.ingest.frames.distinct_columns`); a problem that blanks one
field is a ``<column>__problem`` text column, a problem that makes the record unusable
(no patient id, no valid birth date) is the ``_row_problem`` struct
(:mod:`segment.ingest.problems`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import polars as pl

from segment.ingest import normalize as nz
from segment.ingest.emails import email_lookup
from segment.ingest.frames import (
    Outputs,
    date_builder,
    date_keys,
    distinct_columns,
    distinct_table,
    part_dates,
    with_all_columns,
)
from segment.ingest.packing import category_texts
from segment.ingest.phones import SOURCE_PHONE_TYPES, phone_lookup
from segment.ingest.problems import problem, problem_column, problem_reason, reject_columns
from segment.ingest.race import normalize_ethnicity, normalize_race
from segment.ingest.readers import REJECT_SCHEMA, RawPart
from segment.schema import PhoneType

PATIENT_CHECKED = (
    "first_name", "last_name", "sex", "state", "zip5", "language", "preferred_channel", "race", "ethnicity",
    "email_consent",
    "sms_consent", "do_not_contact", "deceased_date", "source_lat", "source_lon", "updated_at",
)


def stack_parts(parts: list[RawPart], columns: Sequence[str], order: dict[str, int]) -> pl.LazyFrame:
    """Parts stacked with their file, source and order; ``_record``: the reader's record id,
    else the raw patient id."""
    frames = [
        with_all_columns(p.frame, [*columns, "_record"]).with_columns(
            pl.coalesce(pl.col("_record"), pl.col("patient_id")).alias("_record"),
            pl.lit(p.file).alias("_file"), pl.lit(p.source).alias("_source"),
            pl.lit(order[p.source], dtype=pl.Int32).alias("_order"),
            pl.lit(i, dtype=pl.Int32).alias("_part"),
        )
        for i, p in enumerate(parts)
    ]
    return pl.concat(frames, how="vertical")


#: the timestamp layout of nearly every ``updated_at``: parsed per row, the rest per distinct text
_STAMP_SHAPE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
_STAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
)


def _updated_at(parts: list[RawPart], as_of: dt.date) -> nz.Normalized:
    """``updated_at``: ISO or US timestamps (a zone suffix ignored), or a date alone."""
    s = nz.blank_to_null(pl.col("updated_at")).str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "")
    stamp = pl.coalesce(
        *[s.str.strptime(pl.Datetime("us"), f, strict=False) for f in _STAMP_FORMATS],
        part_dates("updated_at", parts, as_of).value.cast(pl.Datetime("us")),
    )
    return nz.Normalized(stamp, pl.when(s.is_not_null() & stamp.is_null()).then(
        pl.lit("unrecognized timestamp")).otherwise(None))


def _with_updated_at(
    frame: pl.LazyFrame, source: pl.LazyFrame, parts: list[RawPart], as_of: dt.date
) -> pl.LazyFrame:
    """Add ``_v_updated_at``/``_p_updated_at``: :func:`_updated_at` without its cost per row.

    A text of exactly the shape ``YYYY-MM-DDTHH:MM:SS`` is what :func:`_updated_at` reads
    with its first format unchanged (nothing to trim, no zone suffix), so that format alone
    decides it per row when it parses; every other text goes through :func:`_updated_at`
    once per distinct text (taken from ``source``, the in-memory raw records).
    """
    raw = pl.col("updated_at")
    fast = pl.when(raw.str.contains(_STAMP_SHAPE)).then(
        raw.str.strptime(pl.Datetime("us"), _STAMP_FORMATS[0], strict=False)
    )
    full = _updated_at(parts, as_of)
    keys = date_keys("updated_at", parts)
    # the fast column once (collected), then the rest per distinct text
    quick = source.select(*keys, fast.alias("_upd_fast")).collect()
    slow = pl.col("_upd_fast").is_null() & raw.is_not_null()
    if not quick.select(slow.any()).item():  # every stamp read per row: nothing to look up
        column = quick.lazy().select(pl.col("_upd_fast").alias("_v_updated_at"),
                                     pl.lit(None, dtype=pl.String).alias("_p_updated_at"))
        return pl.concat([frame, column], how="horizontal", strict=True)
    table = distinct_table(quick.lazy().filter(slow), keys, {"_upd_slow": full.value, "_p_updated_at": full.problem})
    column = (
        quick.lazy()
        .join(table, on=keys, how="left", nulls_equal=True, maintain_order="left")
        .select(pl.coalesce("_upd_fast", "_upd_slow").alias("_v_updated_at"), "_p_updated_at")
    )
    return pl.concat([frame, column], how="horizontal", strict=True)




def _checked_normalizers() -> dict[str, tuple[list[str], nz.Normalized]]:
    """Column -> (the raw columns it reads, its normalizer): each run per distinct raw key."""
    return {
        "first_name": (["first_name"], nz.normalize_name(pl.col("first_name"))),
        "last_name": (["last_name"], nz.normalize_name(pl.col("last_name"))),
        "sex": (["sex"], nz.normalize_sex(pl.col("sex"))),
        "state": (["state"], nz.normalize_state(pl.col("state"))),
        "language": (["language"], nz.normalize_language(pl.col("language"))),
        "preferred_channel": (["preferred_channel"], nz.normalize_channel(pl.col("preferred_channel"))),
        "email_consent": (["email_consent"], nz.normalize_consent(pl.col("email_consent"))),
        "sms_consent": (["sms_consent"], nz.normalize_consent(pl.col("sms_consent"))),
        "do_not_contact": (["do_not_contact"], nz.normalize_do_not_contact(pl.col("do_not_contact"))),
        "race": (["race"], normalize_race(pl.col("race"))),
        # old Synthea wrote `hispanic` as a race: the race column helps decide the ethnicity
        "ethnicity": (["ethnicity", "race"], normalize_ethnicity(pl.col("ethnicity"), pl.col("race"))),
    }


#: columns normalized as plain text, once per distinct value
_DISTINCT_TEXT = ("city",)
#: columns normalized per row (numbers: nothing to gain from distinct values)
_PER_ROW = ("source_lat", "source_lon")


def _lookups(
    checked: dict[str, tuple[list[str], nz.Normalized]], parts: list[RawPart], as_of: dt.date
) -> list[tuple[Sequence[str], Outputs]]:
    """The per-distinct-value lookups of :func:`normalize_patients`: ``_v_<col>``/``_p_<col>``."""
    birth = nz.check_birth_date(nz.Normalized(pl.col("_parsed"), pl.col("_parsed_problem")), as_of=as_of)
    birth_problem = (
        pl.when(pl.col("birth_date").is_null() | (nz.blank_to_null(pl.col("birth_date")).is_null()))
        .then(problem("birth_date", "missing birth date"))
        .when(birth.problem.is_not_null()).then(problem("birth_date", birth.problem))
        .otherwise(None)
    )
    phone_type = nz.blank_to_null(pl.col("phone_type")).str.to_lowercase().replace_strict(
        SOURCE_PHONE_TYPES, default=None, return_dtype=pl.String
    )
    # ZIP rules depend on the state: the normalized state of the same row
    zip5 = nz.normalize_zip(pl.col("zip5"), nz.normalize_state(pl.col("state")).value)
    return [
        (date_keys("birth_date", parts), [
            date_builder("birth_date", parts, as_of, "_parsed", "_parsed_problem"),
            {"_birth": birth.value, "_birth_problem": birth_problem},
        ]),
        (date_keys("deceased_date", parts),
         [date_builder("deceased_date", parts, as_of, "_v_deceased_date", "_p_deceased_date")]),
        *[(keys, {f"_v_{c}": n.value, f"_p_{c}": n.problem}) for c, (keys, n) in checked.items()],
        *[([c], {f"_v_{c}": nz.normalize_text(pl.col(c)).value}) for c in _DISTINCT_TEXT],
        *[([c], {f"_v_{c}_source": nz.normalize_text(pl.col(c)).value}) for c in ("race", "ethnicity")],
        (["phone_type"], {"_phone_type_src": phone_type}),
        (["zip5", "state"], {"_v_zip5": zip5.value, "_p_zip5": zip5.problem}),
    ]


def normalize_patients(raw: pl.LazyFrame, parts: list[RawPart], as_of: dt.date) -> pl.LazyFrame:
    """Normalized patient records with ``<col>__problem`` and ``_row_problem`` columns.

    Normalizers run once per distinct raw value (:func:`distinct_columns`), so ``raw`` should be
    an in-memory frame (``df.lazy()``).
    """
    checked = _checked_normalizers()
    frame = raw.with_columns(
        *[pl.col(c).alias(f"{c}__raw") for c in PATIENT_CHECKED if c != "zip5"],
        pl.col("zip5").alias("zip5__raw"),
        pl.col("birth_date").alias("birth_date__raw"),
        pl.col("phone_e164").alias("phone__raw"),
        pl.col("email").alias("email__raw"),
    )
    frame = pl.concat([frame, distinct_columns(raw.collect(), _lookups(checked, parts, as_of)).lazy()],
                      how="horizontal", strict=True)
    frame = _with_updated_at(frame, raw, parts, as_of)
    return _named(frame, [*checked, "deceased_date", "updated_at"])


def _named(frame: pl.LazyFrame, checked: list[str]) -> pl.LazyFrame:
    """The lookups' ``_v_``/``_p_`` columns under their canonical and ``__problem`` names."""
    pid = nz.blank_to_null(pl.col("patient_id"))
    per_row = {c: nz.normalize_float(pl.col(c)) for c in _PER_ROW}
    return frame.with_columns(
        pl.when(pid.is_null()).then(problem("patient_id", "missing patient id"))
        .otherwise(pl.col("_birth_problem")).alias("_row_problem"),
        pid.alias("patient_id"),
        pl.col("_birth").alias("birth_date"),
        *[pl.col(f"_v_{c}").alias(c) for c in checked],
        *[pl.col(f"_p_{c}").alias(f"{c}__problem") for c in checked],
        *[n.value.alias(c) for c, n in per_row.items()],
        *[n.problem.alias(f"{c}__problem") for c, n in per_row.items()],
        *[pl.col(f"_v_{c}").alias(c) for c in _DISTINCT_TEXT],
        *[pl.col(f"_v_{c}_source").alias(f"{c}_source") for c in ("race", "ethnicity")],
        *[nz.normalize_text(pl.col(c)).value.alias(c) for c in ("address_line1", "address_line2")],
        # shared identifiers for identity resolution only (never in patients.parquet)
        nz.ssn_last4(pl.col("ssn_last4")).alias("ssn_last4"),
        nz.blank_to_null(pl.col("enterprise_id")).alias("enterprise_id"),
        pl.col("_v_zip5").alias("zip5"),
        pl.col("_p_zip5").alias("zip5__problem"),
    ).drop(
        "_birth", "_birth_problem", *[f"_v_{c}" for c in (*checked, *_DISTINCT_TEXT, "zip5", "race_source",
                                                           "ethnicity_source")],
        *[f"_p_{c}" for c in (*checked, "zip5")],
    ).rename(
        {"updated_at": "_updated", "updated_at__problem": "_updated__problem", "updated_at__raw": "_updated__raw"}
    )


def contact_lookups(records: pl.DataFrame) -> pl.DataFrame:
    """Phones and emails through their libraries, once per distinct raw text."""
    phones = _by_category(records["phone__raw"], phone_lookup)
    emails = _by_category(records["email__raw"], email_lookup)
    # the results are placed beside the wide frame, row for row
    found = pl.concat([records.select("_phone_type_src"), phones, emails], how="horizontal", strict=True).select(
        "phone_e164", "email",
        pl.when(pl.col("phone_e164").is_null()).then(None)
        .otherwise(pl.coalesce(pl.col("_phone_type_src"), pl.col("phone_kind"), pl.lit(PhoneType.UNKNOWN.value)))
        .alias("phone_type"),
        pl.col("phone_problem").alias("phone_e164__problem"),
        pl.col("email_problem").alias("email__problem"),
    )
    return records.drop("phone_e164", "email", "phone_type").hstack(found)


def _by_category(raw: pl.Series, library: Callable[[pl.LazyFrame, str], pl.LazyFrame]) -> pl.DataFrame:
    """``library`` (:func:`phone_lookup`, :func:`email_lookup`) for every row of ``raw``, run once
    per distinct text, trimmed: the texts become Categorical ids, and each row takes its id's
    answer by position (no join of the long column on text). A blank or null text has a null answer."""
    dtype = pl.Categorical(pl.Categories.random())
    ids = raw.cast(pl.String).cast(dtype)
    texts = category_texts(dtype).to_frame("_text").with_columns(
        nz.blank_to_null(pl.col("_text")).alias("_raw")
    )
    table = library(texts.lazy().select("_raw").drop_nulls(), "_raw").collect()
    answers = texts.join(table, on="_raw", how="left", maintain_order="left").drop("_text", "_raw")
    return answers.select(pl.all().gather(ids.to_physical()))


def patient_rejects(records: pl.DataFrame) -> pl.DataFrame:
    """Rejects of the normalized records: one row per unusable record, one per blanked field."""
    row_column = problem_column("_row_problem")
    lazy = records.lazy()  # each filter reads only the columns its reject rows need
    row_rejects = lazy.filter(pl.col("_row_problem").is_not_null()).select(*reject_columns(
        row_column,
        pl.when(row_column == "patient_id").then(pl.col("patient_id")).otherwise(pl.col("birth_date__raw")),
        problem_reason("_row_problem"), "row",
    ))
    kept = lazy.filter(pl.col("_row_problem").is_null())
    field_cols = {c: f"{c}__raw" for c in PATIENT_CHECKED if c != "updated_at"}
    field_cols |= {"phone_e164": "phone__raw", "email": "email__raw", "updated_at": "_updated__raw"}
    frames = []
    for col, raw in field_cols.items():
        prob = "_updated__problem" if col == "updated_at" else f"{col}__problem"
        frames.append(kept.filter(pl.col(prob).is_not_null()).select(
            *reject_columns(col, pl.col(raw).cast(pl.String), pl.col(prob), "field")
        ))
    return pl.concat([row_rejects, *frames], how="vertical").cast(REJECT_SCHEMA).collect()  # type: ignore[arg-type]
