"""``ingest``: read every source, normalize, reject what is unusable, merge, write.

Nothing is lost: every input row ends in ``patients.parquet``/``events.parquet`` or in
``rejects.csv``, and ``ingest-report.json`` reconciles rows read = rows kept + rows
rejected for each file. Problems with one field blank that field (``level`` = field);
problems that make a row unusable drop it (``level`` = row): a patient with no id or no
valid birth date, an event with no known patient, date, code, or known code system.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir
from segment.errors import InputDataError
from segment.ingest import normalize as nz
from segment.ingest.dedupe import survivorship
from segment.ingest.detect import read_sources
from segment.ingest.emails import email_lookup
from segment.ingest.mapping import EVENT_INPUT_COLUMNS, PATIENT_INPUT_COLUMNS, Mapping, load_mapping
from segment.ingest.phones import SOURCE_PHONE_TYPES, phone_lookup
from segment.ingest.readers import REJECT_SCHEMA, RawPart, empty_rejects
from segment.log import get_logger
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA, SOURCE_POINT_COLUMNS, CodeSystem, EventType

log = get_logger("ingest")


class InputFormat(StrEnum):
    """Extract formats ``segment ingest`` reads."""

    CANONICAL = "canonical"
    SYNTHEA = "synthea"
    FHIR = "fhir"


@dataclass(frozen=True)
class FileCounts:
    """Reconciliation for one input file."""

    file: str
    source: str
    kind: str
    rows_read: int
    rows_kept: int
    rows_rejected: int
    field_problems: int


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` did, for the reporter and for callers."""

    out: Path
    files: list[FileCounts]
    patient_records: int
    patients: int
    events_kept: int
    events_written: int
    events_rejected: int
    reject_lines: int
    problems: dict[str, int] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        """Every file's rows read = rows kept + rows rejected."""
        return all(f.rows_read == f.rows_kept + f.rows_rejected for f in self.files)

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per input file, for a table."""
        return [
            {"file": Path(f.file).name, "source": f.source, "kind": f.kind, "read": f.rows_read,
             "kept": f.rows_kept, "rejected": f.rows_rejected, "field problems": f.field_problems}
            for f in self.files
        ]

    def summary(self) -> dict[str, Any]:
        """Headline counts."""
        return {
            "patient records kept": self.patient_records,
            "patients after de-duplication": self.patients,
            "events written": self.events_written,
            "events rejected": self.events_rejected,
            "rejects.csv lines": self.reject_lines,
            "reconciled": "yes" if self.reconciled else "NO",
            "output": str(self.out),
        }


# -- patients ----------------------------------------------------------------------------
_TEXT = ("address_line1", "address_line2", "city", "race", "ethnicity")
PATIENT_CHECKED = (
    "first_name", "last_name", "sex", "state", "zip5", "language", "email_consent",
    "sms_consent", "do_not_contact", "deceased_date", "source_lat", "source_lon", "updated_at",
)


def _with_all_columns(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    have = set(frame.collect_schema().names())
    return frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in have]
    ).select("_row", *[pl.col(c).cast(pl.String) for c in columns])


def _stack(parts: list[RawPart], columns: Sequence[str], order: dict[str, int]) -> pl.LazyFrame:
    frames = [
        _with_all_columns(p.frame, columns).with_columns(
            pl.lit(p.file).alias("_file"), pl.lit(p.source).alias("_source"),
            pl.lit(order[p.source], dtype=pl.Int32).alias("_order"),
            pl.lit(i, dtype=pl.Int32).alias("_part"),
        )
        for i, p in enumerate(parts)
    ]
    return pl.concat(frames, how="vertical")


def _date_fmt(parts: list[RawPart], column: str) -> dict[int, str]:
    return {i: p.date_formats[column] for i, p in enumerate(parts) if column in p.date_formats}


def _parse_dates(column: str, parts: list[RawPart], today: dt.date) -> nz.Normalized:
    """Dates parsed by the default layouts, or by a mapping's explicit format per part."""
    raw = pl.col(column)
    default = nz.parse_date(raw, today=today)
    fmts = _date_fmt(parts, column)
    if not fmts:
        return default
    value, problem = default.value, default.problem
    for part, fmt in fmts.items():
        explicit = nz.parse_date(raw, today=today, fmt=fmt)
        is_part = pl.col("_part") == part
        value = pl.when(is_part).then(explicit.value).otherwise(value)
        problem = pl.when(is_part).then(explicit.problem).otherwise(problem)
    return nz.Normalized(value, problem)


def _updated_at(parts: list[RawPart], today: dt.date) -> nz.Normalized:
    s = nz.blank_to_null(pl.col("updated_at")).str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "")
    stamp = pl.coalesce(
        s.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False),
        s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
        s.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False),
        s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
        s.str.strptime(pl.Datetime("us"), "%m/%d/%Y %H:%M:%S", strict=False),
        s.str.strptime(pl.Datetime("us"), "%m/%d/%Y %H:%M", strict=False),
        _parse_dates("updated_at", parts, today).value.cast(pl.Datetime("us")),
    )
    return nz.Normalized(stamp, pl.when(s.is_not_null() & stamp.is_null()).then(
        pl.lit("unrecognized timestamp")).otherwise(None))


def normalize_patients(raw: pl.LazyFrame, parts: list[RawPart], today: dt.date) -> pl.LazyFrame:
    """Normalized patient records with ``<col>__problem`` and ``_row_problem`` columns."""
    pid = nz.blank_to_null(pl.col("patient_id"))
    birth = nz.check_birth_date(_parse_dates("birth_date", parts, today), today=today)
    state = nz.normalize_state(pl.col("state"))
    checked: dict[str, nz.Normalized] = {
        "first_name": nz.normalize_name(pl.col("first_name")),
        "last_name": nz.normalize_name(pl.col("last_name")),
        "sex": nz.normalize_sex(pl.col("sex")),
        "state": state,
        "language": nz.normalize_language(pl.col("language")),
        "email_consent": nz.normalize_consent(pl.col("email_consent")),
        "sms_consent": nz.normalize_consent(pl.col("sms_consent")),
        "do_not_contact": nz.normalize_do_not_contact(pl.col("do_not_contact")),
        "deceased_date": _parse_dates("deceased_date", parts, today),
        "source_lat": nz.normalize_float(pl.col("source_lat")),
        "source_lon": nz.normalize_float(pl.col("source_lon")),
        "updated_at": _updated_at(parts, today),
    }
    row_problem = (
        pl.when(pid.is_null()).then(pl.lit("patient_id|missing patient id"))
        .when(pl.col("birth_date").is_null() | (nz.blank_to_null(pl.col("birth_date")).is_null()))
        .then(pl.lit("birth_date|missing birth date"))
        .when(birth.problem.is_not_null()).then(pl.lit("birth_date|") + birth.problem)
        .otherwise(None)
    )
    stage1 = raw.with_columns(
        *[pl.col(c).alias(f"{c}__raw") for c in PATIENT_CHECKED if c != "zip5"],
        pl.col("zip5").alias("zip5__raw"),
        pl.col("birth_date").alias("birth_date__raw"),
        pl.col("phone_e164").alias("phone__raw"),
        pl.col("email").alias("email__raw"),
        row_problem.alias("_row_problem"),
    ).with_columns(
        pid.alias("patient_id"),
        birth.value.alias("birth_date"),
        *[n.value.alias(c) for c, n in checked.items()],
        *[n.problem.alias(f"{c}__problem") for c, n in checked.items()],
        *[nz.normalize_text(pl.col(c)).value.alias(c) for c in _TEXT],
        nz.blank_to_null(pl.col("phone_e164")).alias("_phone_raw"),
        nz.blank_to_null(pl.col("email")).alias("_email_raw"),
        nz.blank_to_null(pl.col("phone_type")).str.to_lowercase().replace_strict(
            SOURCE_PHONE_TYPES, default=None, return_dtype=pl.String).alias("_phone_type_src"),
    )
    z = nz.normalize_zip(pl.col("zip5"), pl.col("state"))
    return stage1.with_columns(z.value.alias("zip5"), z.problem.alias("zip5__problem")).rename(
        {"updated_at": "_updated"}
    ).rename({"updated_at__problem": "_updated__problem", "updated_at__raw": "_updated__raw"})


def _contact_lookups(records: pl.DataFrame) -> pl.DataFrame:
    """Phones and emails through their libraries, once per distinct raw text."""
    lazy = records.lazy()
    phones = phone_lookup(
        lazy.select(pl.col("_phone_raw").alias("phone_raw")).drop_nulls(), "phone_raw"
    )
    emails = email_lookup(lazy.select(pl.col("_email_raw").alias("email_raw")).drop_nulls(), "email_raw")
    phones_df, emails_df = pl.collect_all([phones, emails])
    out = records.drop("phone_e164", "email", "phone_type").join(phones_df, left_on="_phone_raw", right_on="phone_raw", how="left").join(
        emails_df, left_on="_email_raw", right_on="email_raw", how="left"
    )
    return out.with_columns(
        pl.when(pl.col("phone_e164").is_null()).then(None)
        .otherwise(pl.coalesce(pl.col("_phone_type_src"), pl.col("phone_kind"), pl.lit("unknown")))
        .alias("phone_type"),
        pl.col("phone_problem").alias("phone_e164__problem"),
        pl.col("email_problem").alias("email__problem"),
    )


def _patient_rejects(records: pl.DataFrame) -> pl.DataFrame:
    row = records.filter(pl.col("_row_problem").is_not_null())
    column = pl.col("_row_problem").str.split_exact("|", 1)
    row_rejects = row.select(
        pl.col("_file").alias("file"), pl.col("_row").alias("row"),
        column.struct.field("field_0").alias("column"),
        pl.when(column.struct.field("field_0") == "patient_id").then(pl.col("patient_id"))
        .otherwise(pl.col("birth_date__raw")).alias("value"),
        column.struct.field("field_1").alias("reason"),
        pl.lit("row").alias("level"),
    )
    kept = records.filter(pl.col("_row_problem").is_null())
    field_cols = {c: f"{c}__raw" for c in PATIENT_CHECKED if c != "updated_at"}
    field_cols |= {"phone_e164": "phone__raw", "email": "email__raw", "updated_at": "_updated__raw"}
    frames = []
    for col, raw in field_cols.items():
        prob = "_updated__problem" if col == "updated_at" else f"{col}__problem"
        frames.append(
            kept.filter(pl.col(prob).is_not_null()).select(
                pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.lit(col).alias("column"),
                pl.col(raw).cast(pl.String).alias("value"), pl.col(prob).alias("reason"),
                pl.lit("field").alias("level"),
            )
        )
    return pl.concat([row_rejects, *frames], how="vertical").cast(REJECT_SCHEMA)  # type: ignore[arg-type]


# -- events ------------------------------------------------------------------------------
EVENT_TYPES: dict[str, str] = {
    **{e.value: e.value for e in EventType},
    **dict.fromkeys(["dx", "diagnosis", "problem", "conditions"], "condition"),
    **dict.fromkeys(["px", "proc", "procedures", "surgery"], "procedure"),
    **dict.fromkeys(["imm", "vaccine", "vaccination", "immunizations", "shot"], "immunization"),
    **dict.fromkeys(["obs", "lab", "result", "observations", "vital"], "observation"),
    **dict.fromkeys(["enc", "visit", "encounters"], "encounter"),
    **dict.fromkeys(["med", "rx", "medications", "prescription"], "medication"),
}
CODE_SYSTEMS: dict[str, str] = {
    **{c.value: c.value for c in CodeSystem},
    "ICD10": "ICD10CM", "ICD10-CM": "ICD10CM", "ICD-10-CM": "ICD10CM", "ICD-10": "ICD10CM",
    "CPT4": "CPT", "CPT-4": "CPT", "HCPCS2": "HCPCS", "SNOMEDCT": "SNOMED", "SNOMED-CT": "SNOMED",
    "SNOMED CT": "SNOMED", "SCT": "SNOMED", "RXCUI": "RXNORM", "RX-NORM": "RXNORM",
}


def normalize_events(raw: pl.LazyFrame, parts: list[RawPart], id_map: pl.LazyFrame, today: dt.date) -> pl.LazyFrame:
    """Normalized events with the merged ``patient_id`` and a row problem when unusable."""
    pid = nz.blank_to_null(pl.col("patient_id"))
    etype = nz.blank_to_null(pl.col("event_type")).str.to_lowercase()
    system = nz.blank_to_null(pl.col("code_system")).str.to_uppercase()
    code = nz.blank_to_null(pl.col("code"))
    date = _parse_dates("event_date", parts, today)
    value = nz.normalize_float(pl.col("value"))
    etype_v = etype.replace_strict(EVENT_TYPES, default=None, return_dtype=pl.String)
    system_v = system.replace_strict(CODE_SYSTEMS, default=None, return_dtype=pl.String)
    frame = raw.with_columns(
        (pl.col("_source") + pl.lit(":") + pid).alias("_k_id"),
        etype_v.alias("_etype"), system_v.alias("_system"),
        pl.when(system_v.is_in(["ICD10CM", "HCPCS", "CPT"])).then(code.str.to_uppercase()).otherwise(code)
        .alias("_code"),
        date.value.alias("_date"), date.problem.alias("_date_problem"),
        value.value.alias("_value"), value.problem.alias("_value_problem"),
        nz.blank_to_null(pl.col("unit")).alias("_unit"),
    ).join(id_map, on="_k_id", how="left")
    problem = (
        pl.when(pid.is_null()).then(pl.lit("patient_id|missing patient id"))
        .when(pl.col("patient_id_right").is_null()).then(pl.lit("patient_id|unknown patient (no kept patient record with this id)"))
        .when(etype.is_null()).then(pl.lit("event_type|missing event type"))
        .when(pl.col("_etype").is_null()).then(pl.lit("event_type|unknown event type"))
        .when(system.is_null()).then(pl.lit("code_system|missing code system"))
        .when(pl.col("_system").is_null()).then(pl.lit("code_system|unknown code system"))
        .when(pl.col("_code").is_null()).then(pl.lit("code|missing code"))
        .when(nz.blank_to_null(pl.col("event_date")).is_null()).then(pl.lit("event_date|missing event date"))
        .when(pl.col("_date_problem").is_not_null()).then(pl.lit("event_date|") + pl.col("_date_problem"))
        .when(pl.col("_date") > pl.lit(today)).then(pl.lit("event_date|event date in the future"))
        .otherwise(None)
    )
    return frame.with_columns(problem.alias("_row_problem"))


def _event_outputs(events: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    kept = events.filter(pl.col("_row_problem").is_null()).select(
        pl.col("patient_id_right").alias("patient_id"),
        pl.col("_etype").alias("event_type"),
        pl.col("_system").alias("code_system"),
        pl.col("_code").alias("code"),
        pl.col("_date").alias("event_date"),
        pl.col("_value").alias("value"),
        pl.col("_unit").alias("unit"),
    )
    split = pl.col("_row_problem").str.split_exact("|", 1)
    col = split.struct.field("field_0")
    value = (
        pl.when(col == "patient_id").then(pl.col("patient_id"))
        .when(col == "event_type").then(pl.col("event_type"))
        .when(col == "code_system").then(pl.col("code_system"))
        .when(col == "code").then(pl.col("code"))
        .otherwise(pl.col("event_date"))
    )
    rejects = pl.concat([
        events.filter(pl.col("_row_problem").is_not_null()).select(
            pl.col("_file").alias("file"), pl.col("_row").alias("row"), col.alias("column"),
            value.alias("value"), split.struct.field("field_1").alias("reason"), pl.lit("row").alias("level"),
        ),
        events.filter(pl.col("_row_problem").is_null() & pl.col("_value_problem").is_not_null()).select(
            pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.lit("value").alias("column"),
            pl.col("value").alias("value"), pl.col("_value_problem").alias("reason"),
            pl.lit("field").alias("level"),
        ),
    ])
    counts = events.group_by("_file").agg(
        pl.len().alias("rows_read"),
        pl.col("_row_problem").is_not_null().sum().alias("rows_rejected"),
        (pl.col("_row_problem").is_null() & pl.col("_value_problem").is_not_null()).sum().alias("field_problems"),
    )
    return kept, rejects, counts


# -- the stage ---------------------------------------------------------------------------
def ingest(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    input_format: InputFormat | str | None = None,
    mapping: Mapping | str | Path | None = None,
    today: dt.date | None = None,
) -> IngestResult:
    """Load, validate, normalize and de-duplicate extracts into the working folder ``out``.

    ``paths`` are files or folders, one source system each (or several canonical files of
    one system, told apart by their file stems). ``input_format`` is detected when None.
    """
    today = today or dt.date.today()
    fmt = InputFormat(input_format) if input_format else None
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    if not paths:
        raise InputDataError("no input paths given")
    read = read_sources([Path(p) for p in paths], fmt, mapping)
    order: dict[str, int] = {}
    for part in read.parts:
        order.setdefault(part.source, len(order))
    patient_parts = [p for p in read.parts if p.kind == "patients"]
    event_parts = [p for p in read.parts if p.kind == "events"]
    if not patient_parts:
        raise InputDataError("no patients file among the inputs; events need their patients",
                             path=Path(paths[0]))
    log.info("reading", files=len(read.parts), sources=len(order))

    raw_patients = _stack(patient_parts, PATIENT_INPUT_COLUMNS, order)
    records = _collect(normalize_patients(raw_patients, patient_parts, today), patient_parts)
    records = _contact_lookups(records)
    patient_rejects = _patient_rejects(records)
    kept = records.filter(pl.col("_row_problem").is_null()).with_columns(
        (pl.col("_source") + pl.lit(":") + pl.col("patient_id")).alias("_k_id")
    )
    log.info("patient records normalized", rows=records.height, kept=kept.height)
    patients, id_map = survivorship(kept)
    log.info("patients merged", records=kept.height, patients=patients.height)

    file_counts = _patient_counts(records, patient_rejects, patient_parts)

    ev_kept_n = ev_written = ev_rejected = 0
    event_rejects = empty_rejects()
    workdir.ensure_private_dir(out)
    out_dir = Path(out)
    events_path = out_dir / workdir.EVENTS
    if event_parts:
        raw_events = _stack(event_parts, EVENT_INPUT_COLUMNS, order)
        events = normalize_events(raw_events, event_parts, id_map.lazy().rename({"patient_id": "patient_id_right"}), today)
        kept_ev, rej_ev, counts_ev = _event_outputs(events)
        with workdir.atomic_path(events_path) as tmp:
            deduped = kept_ev.unique(maintain_order=False).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
            sink = deduped.sink_parquet(tmp, lazy=True)
            stats = kept_ev.select(pl.len().alias("n"))
            _, event_rejects, counts, kept_stats = _collect_all([sink, rej_ev, counts_ev, stats], event_parts)
            ev_written = pl.scan_parquet(tmp).select(pl.len()).collect().item()
        ev_kept_n = int(kept_stats["n"][0])
        ev_rejected = int(counts["rows_rejected"].sum() or 0)
        sources = {p.file: p.source for p in event_parts}
        for row in counts.iter_rows(named=True):
            file_counts.append(FileCounts(row["_file"], sources[row["_file"]], "events", row["rows_read"],
                                          row["rows_read"] - row["rows_rejected"], row["rows_rejected"],
                                          row["field_problems"]))
        for p in event_parts:  # files with no data rows
            if p.file not in set(counts["_file"]):
                file_counts.append(FileCounts(p.file, p.source, "events", 0, 0, 0, 0))
    else:
        workdir.write_parquet(pl.DataFrame(schema=EVENT_SCHEMA), events_path)

    reader_rejects = pl.concat([r.cast(REJECT_SCHEMA) for r in read.rejects]) if read.rejects else empty_rejects()  # type: ignore[arg-type]
    file_counts = _add_reader_rejects(file_counts, reader_rejects, read.parts)
    rejects = pl.concat([reader_rejects, patient_rejects, event_rejects.cast(REJECT_SCHEMA)]).sort(  # type: ignore[arg-type]
        ["file", "row"], maintain_order=True
    )
    out_patients = patients.select(
        *[pl.col(c).cast(t) for c, t in PATIENT_SCHEMA.items()],
        *[pl.col(c).cast(t) for c, t in SOURCE_POINT_COLUMNS.items()],
    ).sort("patient_id")
    workdir.write_parquet(out_patients, out_dir / workdir.PATIENTS)
    workdir.write_csv(rejects, out_dir / workdir.REJECTS)
    problems = dict(sorted(
        rejects.group_by("reason").len().iter_rows(), key=lambda kv: (-kv[1], kv[0])
    ))
    result = IngestResult(
        out=out_dir, files=file_counts, patient_records=kept.height, patients=out_patients.height,
        events_kept=ev_kept_n, events_written=ev_written, events_rejected=ev_rejected,
        reject_lines=rejects.height, problems=problems,
    )
    workdir.write_json(out_dir / workdir.INGEST_REPORT, _report(result, rejects))
    log.info("ingest written", patients=result.patients, events=ev_written, rejects=rejects.height)
    return result


def _collect(frame: pl.LazyFrame, parts: list[RawPart]) -> pl.DataFrame:
    return _collect_all([frame], parts)[0]


def _collect_all(frames: list[pl.LazyFrame], parts: list[RawPart]) -> list[pl.DataFrame]:
    """Collect, turning a Polars failure while reading into a one-line error naming the files."""
    try:
        return pl.collect_all(frames, engine="streaming")
    except pl.exceptions.ComputeError as exc:
        names = ", ".join(sorted({Path(p.file).name for p in parts}))
        text = str(exc).lower()
        if "utf-8" in text or "utf8" in text:
            raise InputDataError(f"a file is not valid UTF-8 (one of: {names})") from exc
        raise InputDataError(
            f"malformed CSV (a row with more fields than the header, or an unclosed quote) in one of: {names}"
        ) from exc


def _patient_counts(records: pl.DataFrame, rejects: pl.DataFrame, parts: list[RawPart]) -> list[FileCounts]:
    per_file = records.group_by("_file").agg(
        pl.len().alias("read"), pl.col("_row_problem").is_not_null().sum().alias("rejected")
    )
    fields = rejects.filter(pl.col("level") == "field").group_by("file").len()
    read = {r["_file"]: (r["read"], r["rejected"]) for r in per_file.iter_rows(named=True)}
    field_n = dict(fields.iter_rows())
    out = []
    for p in parts:
        n, rej = read.get(p.file, (0, 0))
        out.append(FileCounts(p.file, p.source, "patients", n, n - rej, rej, field_n.get(p.file, 0)))
    return out


def _add_reader_rejects(counts: list[FileCounts], rejects: pl.DataFrame, parts: list[RawPart]) -> list[FileCounts]:
    """Rows a reader rejected before normalization (unreadable NDJSON lines...) count as read."""
    if rejects.is_empty():
        return counts
    extra = dict(rejects.filter(pl.col("level") == "row").group_by("file").len().iter_rows())
    by_file: dict[str, FileCounts] = {}
    out = []
    for c in counts:
        if c.file in extra and c.file not in by_file:
            n = extra[c.file]
            c = FileCounts(c.file, c.source, c.kind, c.rows_read + n, c.rows_kept, c.rows_rejected + n,
                           c.field_problems)
            by_file[c.file] = c
        out.append(c)
    sources = {p.file: p.source for p in parts}
    for file, n in extra.items():
        if file not in by_file:
            out.append(FileCounts(file, sources.get(file, ""), "other", n, 0, n, 0))
    return out


def _report(result: IngestResult, rejects: pl.DataFrame) -> dict[str, Any]:
    by_file_reason: dict[str, dict[str, int]] = {}
    for file, reason, n in rejects.group_by(["file", "reason"]).len().sort(["file", "reason"]).iter_rows():
        by_file_reason.setdefault(file, {})[reason] = n
    return {
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reconciled": result.reconciled,
        "files": [
            {**f.__dict__, "problems_by_reason": by_file_reason.get(f.file, {})} for f in result.files
        ],
        "problems_by_reason": result.problems,
        "patients": {
            "records_kept": result.patient_records,
            "before_deduplication": result.patient_records,
            "after_deduplication": result.patients,
            "records_merged_away": result.patient_records - result.patients,
        },
        "events": {
            "kept": result.events_kept,
            "rejected": result.events_rejected,
            "exact_duplicates_collapsed": result.events_kept - result.events_written,
            "written": result.events_written,
        },
        "rejects_csv_lines": result.reject_lines,
    }
