"""``ingest``: read every source, normalize, reject what is unusable, merge, write.

Nothing is lost: every input row ends in ``patients.parquet``/``events.parquet``, in
``rejects.csv``, or in a named skip count (a FHIR resource type nothing reads), and
``ingest-report.json`` reconciles rows read = rows kept + rows rejected + rows skipped
for each file. Problems with one field blank that field (``level`` = field);
problems that make a row unusable drop it (``level`` = row): a patient with no id or no
valid birth date, an event with no known patient, date, code, or known code system.

A run whose events mostly point at no patient is almost always a naming mistake (the
events read as another source than their patients), not a property of the data: when
more than ``max_orphan_fraction`` (default 1%) of the event rows have no patient, ingest
writes its rejects and report, removes ``patients.parquet``/``events.parquet`` so no
later stage reads them, and fails, unless ``allow_orphan_events``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment import progress, workdir
from segment.errors import InputDataError
from segment.ingest import normalize as nz
from segment.ingest.dedupe import MERGE_INPUT, survivorship
from segment.ingest.detect import InputSpec, read_sources
from segment.ingest.emails import email_lookup
from segment.ingest.events import PreparedEvents, prepare_events, write_events
from segment.ingest.frames import (
    by_distinct,
    collect_all,
    date_builder,
    date_keys,
    distinct_table,
    part_dates,
    with_all_columns,
)
from segment.ingest.identity import IdentityOptions, resolve
from segment.ingest.identity.features import IDENTIFIER_COLUMNS
from segment.ingest.mapping import EVENT_INPUT_COLUMNS, PATIENT_INPUT_COLUMNS, Mapping, load_mapping
from segment.ingest.phones import SOURCE_PHONE_TYPES, phone_lookup
from segment.ingest.race import normalize_ethnicity, normalize_race
from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult, empty_rejects
from segment.ingest.readers.files import cleanup_temporary, ragged_found
from segment.log import get_logger, peak_rss_gib
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA, SOURCE_POINT_COLUMNS, InputFormat

log = get_logger("ingest")


#: default ceiling on the share of event rows that point at no patient
MAX_ORPHAN_FRACTION = 0.01


@dataclass(frozen=True)
class FileCounts:
    """Reconciliation for one input file: read = kept + rejected + skipped."""

    file: str
    source: str
    kind: str
    rows_read: int
    rows_kept: int
    rows_rejected: int
    field_problems: int
    rows_skipped: int = 0
    orphans: int = 0  # event rows whose patient id matches no patient record of their source
    orphans_elsewhere: int = 0  # ... of which the id is a patient of another source


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
    #: canonical patient and event columns, each with the sources that provided it
    columns: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    orphan_events: int = 0
    event_rows: int = 0

    @property
    def reconciled(self) -> bool:
        """Every file's rows read = rows kept + rows rejected + rows skipped."""
        return all(f.rows_read == f.rows_kept + f.rows_rejected + f.rows_skipped for f in self.files)

    @property
    def absent_columns(self) -> list[str]:
        """Canonical patient columns that no source provided."""
        provided = set(self.columns.get("patients", {}))
        if "phone_e164" in provided:
            provided.add("phone_type")  # the phone library tells mobile from landline
        return [c for c in PATIENT_SCHEMA if c not in provided and c not in ("patient_id", "source_ids")]

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per input file, for a table."""
        return [
            {"file": Path(f.file).name, "source": f.source, "kind": f.kind, "read": f.rows_read,
             "kept": f.rows_kept, "rejected": f.rows_rejected, "skipped": f.rows_skipped,
             "field problems": f.field_problems}
            for f in self.files
        ]

    def summary(self) -> dict[str, Any]:
        """Headline counts."""
        return {
            "patient records kept": self.patient_records,
            "patients after de-duplication": self.patients,
            "events written": self.events_written,
            "events rejected": self.events_rejected,
            "events with no patient": self.orphan_events,
            "rows skipped (named)": sum(f.rows_skipped for f in self.files),
            "rejects.csv lines": self.reject_lines,
            "reconciled": "yes" if self.reconciled else "NO",
            "output": str(self.out),
        }


# -- patients ----------------------------------------------------------------------------
PATIENT_CHECKED = (
    "first_name", "last_name", "sex", "state", "zip5", "language", "preferred_channel", "race", "ethnicity",
    "email_consent",
    "sms_consent", "do_not_contact", "deceased_date", "source_lat", "source_lon", "updated_at",
)


def _stack(parts: list[RawPart], columns: Sequence[str], order: dict[str, int]) -> pl.LazyFrame:
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


def _updated_at(parts: list[RawPart], today: dt.date) -> nz.Normalized:
    """``updated_at``: ISO or US timestamps (a zone suffix ignored), or a date alone."""
    s = nz.blank_to_null(pl.col("updated_at")).str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "")
    stamp = pl.coalesce(
        *[s.str.strptime(pl.Datetime("us"), f, strict=False) for f in _STAMP_FORMATS],
        part_dates("updated_at", parts, today).value.cast(pl.Datetime("us")),
    )
    return nz.Normalized(stamp, pl.when(s.is_not_null() & stamp.is_null()).then(
        pl.lit("unrecognized timestamp")).otherwise(None))


def _with_updated_at(
    frame: pl.LazyFrame, source: pl.LazyFrame, parts: list[RawPart], today: dt.date
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
    full = _updated_at(parts, today)
    keys = date_keys("updated_at", parts)
    # the fast column once (collected), then the rest per distinct text
    quick = source.select(*keys, fast.alias("_upd_fast")).collect()
    table = distinct_table(
        quick.lazy().filter(pl.col("_upd_fast").is_null() & raw.is_not_null()), keys,
        {"_upd_slow": full.value, "_p_updated_at": full.problem},
    )
    column = (
        quick.lazy()
        .join(table, on=keys, how="left", nulls_equal=True, maintain_order="left")
        .select(pl.coalesce("_upd_fast", "_upd_slow").alias("_v_updated_at"), "_p_updated_at")
    )
    return pl.concat([frame, column], how="horizontal", strict=True)


def normalize_patients(raw: pl.LazyFrame, parts: list[RawPart], today: dt.date) -> pl.LazyFrame:
    """Normalized patient records with ``<col>__problem`` and ``_row_problem`` columns.

    Normalizers run once per distinct raw value (:func:`by_distinct`), so ``raw`` should be
    an in-memory frame (``df.lazy()``): it is read once per lookup.
    """
    pid = nz.blank_to_null(pl.col("patient_id"))
    birth = nz.check_birth_date(nz.Normalized(pl.col("_parsed"), pl.col("_parsed_problem")), today=today)
    birth_problem = (
        pl.when(pl.col("birth_date").is_null() | (nz.blank_to_null(pl.col("birth_date")).is_null()))
        .then(pl.lit("birth_date|missing birth date"))
        .when(birth.problem.is_not_null()).then(pl.lit("birth_date|") + birth.problem)
        .otherwise(None)
    )
    distinct: dict[str, tuple[list[str], nz.Normalized]] = {
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
    per_row: dict[str, nz.Normalized] = {
        "source_lat": nz.normalize_float(pl.col("source_lat")),
        "source_lon": nz.normalize_float(pl.col("source_lon")),
    }
    distinct_text = ("city",)
    frame = raw.with_columns(
        *[pl.col(c).alias(f"{c}__raw") for c in PATIENT_CHECKED if c != "zip5"],
        pl.col("zip5").alias("zip5__raw"),
        pl.col("birth_date").alias("birth_date__raw"),
        pl.col("phone_e164").alias("phone__raw"),
        pl.col("email").alias("email__raw"),
    )
    phone_type = nz.blank_to_null(pl.col("phone_type")).str.to_lowercase().replace_strict(
        SOURCE_PHONE_TYPES, default=None, return_dtype=pl.String
    )
    # ZIP rules depend on the state: the normalized state of the same row
    zip5 = nz.normalize_zip(pl.col("zip5"), nz.normalize_state(pl.col("state")).value)
    frame = by_distinct(frame, [
        (date_keys("birth_date", parts), [
            date_builder("birth_date", parts, today, "_parsed", "_parsed_problem"),
            {"_birth": birth.value, "_birth_problem": birth_problem},
        ]),
        (date_keys("deceased_date", parts),
         [date_builder("deceased_date", parts, today, "_v_deceased_date", "_p_deceased_date")]),
        *[(keys, {f"_v_{c}": n.value, f"_p_{c}": n.problem}) for c, (keys, n) in distinct.items()],
        *[([c], {f"_v_{c}": nz.normalize_text(pl.col(c)).value}) for c in distinct_text],
        (["phone_type"], {"_phone_type_src": phone_type}),
        (["zip5", "state"], {"_v_zip5": zip5.value, "_p_zip5": zip5.problem}),
    ], source=raw)
    frame = _with_updated_at(frame, raw, parts, today)
    checked = [*distinct, "deceased_date", "updated_at"]
    return frame.with_columns(
        pl.when(pid.is_null()).then(pl.lit("patient_id|missing patient id")).otherwise(pl.col("_birth_problem"))
        .alias("_row_problem"),
        pid.alias("patient_id"),
        pl.col("_birth").alias("birth_date"),
        *[pl.col(f"_v_{c}").alias(c) for c in checked],
        *[pl.col(f"_p_{c}").alias(f"{c}__problem") for c in checked],
        *[n.value.alias(c) for c, n in per_row.items()],
        *[n.problem.alias(f"{c}__problem") for c, n in per_row.items()],
        *[pl.col(f"_v_{c}").alias(c) for c in distinct_text],
        *[nz.normalize_text(pl.col(f"{c}__raw")).value.alias(f"{c}_source") for c in ("race", "ethnicity")],
        *[nz.normalize_text(pl.col(c)).value.alias(c) for c in ("address_line1", "address_line2")],
        nz.blank_to_null(pl.col("phone_e164")).alias("_phone_raw"),
        # shared identifiers for identity resolution only (never in patients.parquet)
        nz.ssn_last4(pl.col("ssn_last4")).alias("ssn_last4"),
        nz.blank_to_null(pl.col("enterprise_id")).alias("enterprise_id"),
        nz.blank_to_null(pl.col("email")).alias("_email_raw"),
        pl.col("_v_zip5").alias("zip5"),
        pl.col("_p_zip5").alias("zip5__problem"),
    ).drop(
        "_birth", "_birth_problem", *[f"_v_{c}" for c in (*checked, *distinct_text, "zip5")],
        *[f"_p_{c}" for c in (*checked, "zip5")],
    ).rename(
        {"updated_at": "_updated", "updated_at__problem": "_updated__problem", "updated_at__raw": "_updated__raw"}
    )


def _contact_lookups(records: pl.DataFrame) -> pl.DataFrame:
    """Phones and emails through their libraries, once per distinct raw text."""
    lazy = records.lazy()
    phones = phone_lookup(
        lazy.select(pl.col("_phone_raw").alias("phone_raw")).drop_nulls(), "phone_raw"
    )
    emails = email_lookup(lazy.select(pl.col("_email_raw").alias("email_raw")).drop_nulls(), "email_raw")
    phones_df, emails_df = pl.collect_all([phones, emails])
    # only the keys go through the joins; the results are placed beside the wide frame
    found = (
        records.select("_phone_raw", "_email_raw", "_phone_type_src")
        .join(phones_df, left_on="_phone_raw", right_on="phone_raw", how="left", maintain_order="left")
        .join(emails_df, left_on="_email_raw", right_on="email_raw", how="left", maintain_order="left")
        .select(
            "phone_e164", "email",
            pl.when(pl.col("phone_e164").is_null()).then(None)
            .otherwise(pl.coalesce(pl.col("_phone_type_src"), pl.col("phone_kind"), pl.lit("unknown")))
            .alias("phone_type"),
            pl.col("phone_problem").alias("phone_e164__problem"),
            pl.col("email_problem").alias("email__problem"),
        )
    )
    return records.drop("phone_e164", "email", "phone_type").hstack(found)


def _patient_rejects(records: pl.DataFrame) -> pl.DataFrame:
    row = records.filter(pl.col("_row_problem").is_not_null())
    column = pl.col("_row_problem").str.split_exact("|", 1)
    row_rejects = row.select(
        pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
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
                pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
                pl.lit(col).alias("column"),
                pl.col(raw).cast(pl.String).alias("value"), pl.col(prob).alias("reason"),
                pl.lit("field").alias("level"),
            )
        )
    return pl.concat([row_rejects, *frames], how="vertical").cast(REJECT_SCHEMA)  # type: ignore[arg-type]


# -- the stage ---------------------------------------------------------------------------
def ingest(
    paths: Sequence[str | Path | InputSpec],
    out: str | Path,
    *,
    input_format: InputFormat | str | None = None,
    mapping: Mapping | str | Path | None = None,
    today: dt.date | None = None,
    sources: Sequence[str | None] | None = None,
    max_orphan_fraction: float = MAX_ORPHAN_FRACTION,
    allow_orphan_events: bool = False,
    identity: IdentityOptions | None = None,
) -> IngestResult:
    """Load, validate, normalize and de-duplicate extracts into the working folder ``out``.

    ``paths`` are files or folders (or :class:`InputSpec` objects carrying their own source
    name, format and mapping). ``sources`` names the source system of each path, in order
    (None: derived, see :mod:`segment.ingest.detect`); ``input_format`` and ``mapping``
    apply to every path that does not set its own; the format is detected when None.
    Raises :class:`InputDataError` when more than ``max_orphan_fraction`` of the event
    rows point at no patient, unless ``allow_orphan_events``. ``identity`` chooses how
    records are matched (:mod:`segment.ingest.identity`; default ``auto``).
    """
    started = time.perf_counter()
    today = today or dt.date.today()
    identity = (identity or IdentityOptions()).checked()
    fmt = InputFormat(input_format).value if input_format else None
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    if not paths:
        raise InputDataError("no input paths given")
    if sources is not None and len(sources) != len(paths):
        raise InputDataError(f"{len(sources)} source names for {len(paths)} paths: give one per path")
    specs = [
        InputSpec.of(p, source=sources[i] if sources is not None else None, input_format=fmt, mapping=mapping)
        for i, p in enumerate(paths)
    ]
    try:
        # the events are read and looked up on a second thread while the patients are
        # normalized and merged (Polars releases the GIL); leaving the block waits for it
        with ThreadPoolExecutor(1, thread_name_prefix="segment-events") as pool:
            return _ingest(specs, Path(out), today, started, max_orphan_fraction, allow_orphan_events, identity,
                           pool=pool)
    finally:
        cleanup_temporary()  # decompressed copies of .gz inputs


def _ingest(
    specs: list[InputSpec], out: Path, today: dt.date, started: float, max_orphan_fraction: float,
    allow_orphan_events: bool, identity: IdentityOptions | None = None, *, pool: ThreadPoolExecutor | None = None,
) -> IngestResult:
    read = read_sources(specs, today=today)
    order: dict[str, int] = {}
    for part in read.parts:
        order.setdefault(part.source, len(order))
    patient_parts = [p for p in read.parts if p.kind == "patients"]
    event_parts = [p for p in read.parts if p.kind == "events"]
    if not patient_parts:
        read = with_ragged_rejects(read)
        why = ""
        if read.rejects:
            found = pl.concat([r.cast(REJECT_SCHEMA) for r in read.rejects])  # type: ignore[arg-type]
            reason, n = found.group_by("reason").len().sort("len", descending=True).row(0)
            why = f" ({found.height:,} rows rejected while reading, {n:,} of them: {reason})"
        raise InputDataError("no patients file among the inputs; events need their patients" + why,
                             path=specs[0].path)
    log.info("reading", files=len(read.parts), sources=len(order))
    log.debug("step: inputs opened", seconds=round(time.perf_counter() - started, 2))
    events_ahead: Future[PreparedEvents] | None = None
    if event_parts and pool is not None:
        events_ahead = pool.submit(prepare_events, event_parts, order, today)

    with _step("patients normalized"):
        raw_patients = _collect(_stack(patient_parts, PATIENT_INPUT_COLUMNS, order), patient_parts)
        records = normalize_patients(raw_patients.lazy(), patient_parts, today).collect()
        del raw_patients
    with _step("phones and emails looked up"):
        records = _contact_lookups(records)
    patient_rejects = _patient_rejects(records)
    kept = records.filter(pl.col("_row_problem").is_null()).select(
        *MERGE_INPUT, *IDENTIFIER_COLUMNS, (pl.col("_source") + pl.lit(":") + pl.col("patient_id")).alias("_k_id")
    )
    log.info("patient records normalized", rows=records.height, kept=kept.height)
    file_counts = _patient_counts(records, patient_rejects, patient_parts)
    # ids of rejected patient records: their events are "patient rejected", not orphans
    rejected_ids = records.filter(pl.col("_row_problem").is_not_null() & pl.col("patient_id").is_not_null()).select(
        "_order", pl.col("patient_id").alias("_pid")
    ).unique()
    del records  # the wide frame: only the merge columns go on
    with _step("identities resolved"):
        linked = resolve(kept, identity or IdentityOptions(), Path(out))
    with _step("patients merged"):
        patients, id_map = survivorship(kept, linked.clusters, linked.keep_ids)
    log.info("patients merged", records=kept.height, patients=patients.height)
    n_records = kept.height
    out_patients = patients.select(
        *[pl.col(c).cast(t) for c, t in PATIENT_SCHEMA.items()],
        *[pl.col(c).cast(t) for c, t in SOURCE_POINT_COLUMNS.items()],
    ).sort("patient_id")
    del patients

    workdir.ensure_private_dir(out)
    out_dir = Path(out)
    orphans = event_rows = 0
    # patients.parquet replaces the old one only once the events are written too
    with workdir.atomic_path(out_dir / workdir.PATIENTS) as patients_tmp:
        out_patients.write_parquet(patients_tmp)
        n_patients = out_patients.height
        patient_ids = out_patients["patient_id"]
        del out_patients

        ev_kept_n = ev_written = ev_rejected = 0
        event_rejects = empty_rejects()
        events_path = out_dir / workdir.EVENTS
        if event_parts:
            # (source, the source's own id) -> row of the patient in patients.parquet
            event_ids = (
                kept.select("_order", pl.col("patient_id").alias("_pid"), "_k_id").unique(["_order", "_pid"])
                .join(id_map, on="_k_id")
                .join(patient_ids.to_frame().with_row_index("_p"), on="patient_id")
                .select("_order", "_pid", "_p")
            )
            event_ids = pl.concat([
                event_ids,
                rejected_ids.join(event_ids, on=["_order", "_pid"], how="anti")
                .with_columns(pl.lit(None, dtype=event_ids.schema["_p"]).alias("_p")),
            ])
            del kept, id_map
            with _step("events written"), workdir.atomic_path(events_path) as tmp:
                prepared = events_ahead.result() if events_ahead is not None else prepare_events(
                    event_parts, order, today)
                events_ahead = None  # the future must not keep the rows alive
                written = write_events(prepared, patient_ids, event_ids, tmp)
                del prepared
            ev_kept_n, ev_written, event_rejects = written.kept, written.written, written.rejects
            ev_rejected = int(written.counts["rows_rejected"].sum() or 0)
            counts = {row["_file"]: row for row in written.counts.iter_rows(named=True)}
            for p in {p.file: p for p in reversed(event_parts)}.values():  # each file once, first part's source
                row = counts.get(p.file)
                if row is None:  # a file with no data rows
                    file_counts.append(FileCounts(p.file, p.source, "events", 0, 0, 0, 0))
                    continue
                file_counts.append(FileCounts(p.file, p.source, "events", row["rows_read"],
                                              row["rows_read"] - row["rows_rejected"], row["rows_rejected"],
                                              row["field_problems"], orphans=row["orphans"],
                                              orphans_elsewhere=row["orphans_elsewhere"]))
                orphans += row["orphans"]
                event_rows += row["rows_read"]
        else:
            workdir.write_parquet(pl.DataFrame(schema=EVENT_SCHEMA), events_path)

    read = with_ragged_rejects(read)  # the row-length checks ran beside the rest
    reader_rejects = pl.concat([r.cast(REJECT_SCHEMA) for r in read.rejects]) if read.rejects else empty_rejects()  # type: ignore[arg-type]
    file_counts = _add_reader_rows(file_counts, reader_rejects, read.skipped, read.parts)
    rejects = pl.concat([reader_rejects, patient_rejects, event_rejects.cast(REJECT_SCHEMA)]).sort(  # type: ignore[arg-type]
        ["file", "row"], maintain_order=True
    )
    workdir.write_csv(rejects, out_dir / workdir.REJECTS)
    problems = dict(sorted(
        rejects.group_by("reason").len().iter_rows(), key=lambda kv: (-kv[1], kv[0])
    ))
    result = IngestResult(
        out=out_dir, files=file_counts, patient_records=n_records, patients=n_patients,
        events_kept=ev_kept_n, events_written=ev_written, events_rejected=ev_rejected,
        reject_lines=rejects.height, problems=problems, columns=provided_columns(read.parts),
        orphan_events=orphans, event_rows=event_rows,
    )
    failure = _orphan_failure(result, max_orphan_fraction) if not allow_orphan_events else None
    workdir.write_json(out_dir / workdir.INGEST_REPORT,
                      {**_report(result, rejects, read.skipped, failure, max_orphan_fraction),
                       "identity": linked.counts})
    if failure is not None:
        # nothing downstream may read a folder whose events lost their patients
        for name in (workdir.PATIENTS, workdir.EVENTS):
            (out_dir / name).unlink(missing_ok=True)
        raise InputDataError(failure)
    log.info("ingest written", patients=result.patients, events=ev_written, rejects=rejects.height,
             orphan_events=orphans)
    return result


def with_ragged_rejects(read: ReadResult) -> ReadResult:
    """Add the rejects for CSV rows with more or fewer fields than their header (readers left them out)."""
    rejects = list(read.rejects)
    for file, (bad, expected) in sorted(ragged_found().items()):
        log.warning("rows with a wrong number of fields rejected", file=Path(file).name, rows=bad.height)
        rejects.append(bad.select(
            pl.lit(file).alias("file"), pl.col("_row").alias("row"),
            pl.lit(None, dtype=pl.String).alias("record_id"), pl.lit("row").alias("column"),
            (pl.col("_fields").cast(pl.String) + " fields").alias("value"),
            pl.format("row has {} fields, the header has {} (cut off or misaligned)",
                      pl.col("_fields"), pl.lit(expected)).alias("reason"),
            pl.lit("row").alias("level"),
        ).cast(REJECT_SCHEMA))  # type: ignore[arg-type]
    return ReadResult(parts=read.parts, rejects=rejects, skipped=read.skipped)


def provided_columns(parts: Sequence[RawPart]) -> dict[str, dict[str, list[str]]]:
    """Per kind, each canonical column some part provides, with the sources providing it."""
    canonical = {"patients": PATIENT_INPUT_COLUMNS, "events": EVENT_INPUT_COLUMNS}
    found: dict[str, dict[str, set[str]]] = {"patients": {}, "events": {}}
    for p in parts:
        have = p.provided if p.provided is not None else set(p.frame.collect_schema().names())
        for c in canonical[p.kind]:
            if c in have:
                found[p.kind].setdefault(c, set()).add(p.source)
    return {
        kind: {c: sorted(found[kind][c]) for c in canonical[kind] if c in found[kind]}
        for kind in canonical
    }


def _orphan_failure(result: IngestResult, ceiling: float) -> str | None:
    """The error message when too many event rows point at no patient, else None."""
    if not result.event_rows or result.orphan_events <= ceiling * result.event_rows:
        return None
    worst = max((f for f in result.files if f.kind == "events"), key=lambda f: f.orphans)
    share = result.orphan_events / result.event_rows
    elsewhere = sum(f.orphans_elsewhere for f in result.files)
    patient_sources = sorted({f.source for f in result.files if f.kind == "patients"})
    if elsewhere * 2 >= result.orphan_events:
        cause = (
            f"{elsewhere:,} of them are patient ids of another source, so {Path(worst.file).name} was read as "
            f"source `{worst.source}` and its patients as {', '.join(f'`{s}`' for s in patient_sources)}: "
            "give both the same name with --source NAME (or `source:` in a mapping, `name:` in a campaign's sources)"
        )
    else:
        cause = (
            "no patient record has these ids: the patients file of these events is missing from the inputs, "
            "or writes its ids differently (a prefix, leading zeros)"
        )
    return (
        f"{result.orphan_events:,} of {result.event_rows:,} event rows ({share:.1%}) point at no patient, "
        f"{worst.orphans:,} of them in {Path(worst.file).name}; likely cause: {cause}. "
        f"Nothing was written but rejects.csv and ingest-report.json; pass --allow-orphan-events "
        f"to keep going with them rejected (ceiling {ceiling:.1%})"
    )


def _collect(frame: pl.LazyFrame, parts: list[RawPart]) -> pl.DataFrame:
    return collect_all([frame], parts)[0]


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Log a step's wall time and the process's peak memory so far (debug level)."""
    progress.step("ingest", name)
    start = time.perf_counter()
    yield
    peak = peak_rss_gib()
    log.debug(f"step: {name}", seconds=round(time.perf_counter() - start, 2), peak_gib=round(peak, 2))


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


def _add_reader_rows(
    counts: list[FileCounts], rejects: pl.DataFrame, skipped: dict[str, dict[str, int]], parts: list[RawPart]
) -> list[FileCounts]:
    """Rows a reader rejected before normalization (unreadable lines) or skipped by name count as read."""
    extra = dict(rejects.filter(pl.col("level") == "row").group_by("file").len().iter_rows()) if rejects.height else {}
    skips = {file: sum(reasons.values()) for file, reasons in skipped.items()}
    done: set[str] = set()
    out = []
    for c in counts:
        if c.file not in done and (c.file in extra or c.file in skips):
            n, k = extra.get(c.file, 0), skips.get(c.file, 0)
            c = FileCounts(c.file, c.source, c.kind, c.rows_read + n + k, c.rows_kept, c.rows_rejected + n,
                           c.field_problems, c.rows_skipped + k, c.orphans, c.orphans_elsewhere)
            done.add(c.file)
        out.append(c)
    sources = {p.file: p.source for p in parts}
    for file in sorted((set(extra) | set(skips)) - done):
        n, k = extra.get(file, 0), skips.get(file, 0)
        out.append(FileCounts(file, sources.get(file, ""), "other", n + k, 0, n, 0, k))
    return out


def _sum_reasons(skipped: dict[str, dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for reasons in skipped.values():
        for reason, n in reasons.items():
            total[reason] = total.get(reason, 0) + n
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


def _report(
    result: IngestResult, rejects: pl.DataFrame, skipped: dict[str, dict[str, int]], failure: str | None,
    ceiling: float,
) -> dict[str, Any]:
    by_file_reason: dict[str, dict[str, int]] = {}
    for file, reason, n in rejects.group_by(["file", "reason"]).len().sort(["file", "reason"]).iter_rows():
        by_file_reason.setdefault(file, {})[reason] = n
    return {
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "outcome": "failed" if failure else "ok",
        "failure": failure,
        "reconciled": result.reconciled,
        "files": [
            {**f.__dict__, "problems_by_reason": by_file_reason.get(f.file, {}),
             "skipped_by_reason": skipped.get(f.file, {})}
            for f in result.files
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
            "rows_read": result.event_rows,
            "orphans": result.orphan_events,
            "orphan_ceiling": ceiling,
        },
        "skipped_by_reason": _sum_reasons(skipped),
        # which canonical columns the sources provided: a rule over an absent column is unknown
        "columns": {**result.columns, "absent": result.absent_columns},
        "rejects_csv_lines": result.reject_lines,
    }
