"""The steps of one ingest: read every source, normalize, reject, merge, write, report.

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

import datetime as dt
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir
from segment.errors import InputDataError
from segment.ingest.dedupe import survivorship
from segment.ingest.detect import InputSpec, read_sources
from segment.ingest.eventbatches import (
    EventsPlan,
    estimated_rows,
    plan_events,
    write_events_batched,
)
from segment.ingest.events import (
    ByRecord,
    EventsWritten,
    PreparedEvents,
    prepare_by_record,
    prepare_events,
    write_events,
)
from segment.ingest.identity import IdentityOptions, resolve
from segment.ingest.mergebatches import merge_fits, merge_spilled, spill_records
from segment.ingest.patientbatches import normalized_records
from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult, empty_rejects
from segment.ingest.readers.files import ragged_found
from segment.ingest.results import (
    FileCounts,
    IngestResult,
    add_reader_rows,
    orphan_failure,
    patient_counts,
    provided_columns,
    report,
)
from segment.ingest.timing import step
from segment.log import get_logger
from segment.memory import Spill, memory_budget_bytes
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA, SOURCE_POINT_COLUMNS

log = get_logger("ingest")


@dataclass(frozen=True)
class IngestSettings:
    """The settings of one ingest besides its inputs and working folder."""

    as_of: dt.date
    max_orphan_fraction: float
    allow_orphan_events: bool
    identity: IdentityOptions
    #: the memory budget in bytes (None: :func:`segment.memory.memory_budget_bytes`)
    memory_budget: int | None = None


@dataclass(frozen=True)
class MergedPatients:
    """The patient side of an ingest once merged (the patients themselves travel apart)."""

    #: (``_order``, ``_pid``: a source's own id) -> ``_p``, the row in patients.parquet
    #: (null: a rejected patient record); None when there are no events. When the events were
    #: looked up by record (:class:`~segment.ingest.events.ByRecord`): each kept record's ``_p``
    event_ids: pl.DataFrame | pl.Series | None
    rejects: pl.DataFrame
    file_counts: list[FileCounts]
    records: int
    identity: dict[str, Any]
    #: the temporary file the merge by range wrote patients.parquet's rows to (None: in memory)
    written: Path | None = None


@dataclass
class PatientRows:
    """patients.parquet's rows: in memory, or already in a temporary file (the merge by range)."""

    ids: pl.Series
    frame: pl.DataFrame | None = None
    written: Path | None = None

    def write(self, path: Path) -> pl.Series:
        """Put the rows at ``path``; returns the patient ids, in file order."""
        if self.written is not None:
            os.replace(self.written, path)
        else:
            assert self.frame is not None
            self.frame.write_parquet(path)
        return self.ids


@dataclass(frozen=True)
class EventsOutcome:
    """The events side of an ingest: what was written, and each events file's counts."""

    written: EventsWritten | None
    file_counts: list[FileCounts]

    @property
    def orphans(self) -> int:
        """Event rows whose patient id matches no patient record of their source."""
        return sum(f.orphans for f in self.file_counts)

    @property
    def rows(self) -> int:
        """Event rows read."""
        return sum(f.rows_read for f in self.file_counts)


class _EventsAhead:
    """The events read and looked up on a second thread while the patients are merged.

    Started once the patient records are normalized, not before: the normalization uses
    both cores on its own, and the events then fill the second core during the phone and
    email look-ups, the identity step and the merge. When the records are normalized whole,
    the events are joined to their records there too (:func:`~segment.ingest.events.prepare_by_record`),
    and after the merge each row takes its patient by position (1M people, deterministic:
    ingest 30.7 -> 27.2 s).
    """

    def __init__(self, parts: list[RawPart], order: dict[str, int], as_of: dt.date,
                 pool: ThreadPoolExecutor | None) -> None:
        self.parts, self.order, self.as_of, self.pool = parts, order, as_of, pool
        self.future: Future[PreparedEvents | ByRecord] | None = None
        self.with_records = False

    @property
    def by_record(self) -> bool:
        """Whether the events are being looked up by record (the merge then gives each record's row)."""
        return self.future is not None and self.with_records

    def start(self, records: pl.DataFrame | None = None) -> None:
        """Start (once): with the normalized ``records`` (whole) or without them (in chunks)."""
        if not self.parts or self.pool is None or self.future is not None:
            return
        self.with_records = records is not None
        if records is None:
            self.future = self.pool.submit(prepare_events, self.parts, self.order, self.as_of)
        else:
            self.future = self.pool.submit(prepare_by_record, self.parts, self.order, self.as_of,
                                           record_map(records))


def record_map(records: pl.DataFrame) -> pl.DataFrame:
    """(``_order``, ``_pid``) -> ``_p``, the row of the kept record among the kept ones (null: the
    id of a rejected record only), from the normalized records (:class:`NormalizedRecords`' order)."""
    lazy = records.lazy()
    kept = (
        lazy.filter(pl.col("_row_problem").is_null()).select("_order", pl.col("patient_id").alias("_pid"))
        .with_row_index("_p").unique(["_order", "_pid"], keep="first").select("_order", "_pid", "_p")
    )
    rejected = (
        lazy.filter(pl.col("_row_problem").is_not_null() & pl.col("patient_id").is_not_null())
        .select("_order", pl.col("patient_id").alias("_pid")).unique()
        .join(kept, on=["_order", "_pid"], how="anti")
        .with_columns(pl.lit(None, dtype=pl.get_index_type()).alias("_p"))
    )
    return pl.concat([kept, rejected]).collect()


def ingest_specs(
    specs: list[InputSpec], out: Path, settings: IngestSettings, started: float, pool: ThreadPoolExecutor | None,
) -> IngestResult:
    """Ingest ``specs`` into the working folder ``out`` (see :func:`segment.ingest.ingest`)."""
    read = read_sources(specs, as_of=settings.as_of)
    order: dict[str, int] = {}
    for part in read.parts:
        order.setdefault(part.source, len(order))
    patient_parts = [p for p in read.parts if p.kind == "patients"]
    event_parts = [p for p in read.parts if p.kind == "events"]
    if not patient_parts:
        raise _no_patients(read, specs)
    log.info("reading", files=len(read.parts), sources=len(order))
    log.debug("step: inputs opened", seconds=round(time.perf_counter() - started, 2))
    # the budget once for every step (events and patients in chunks, the identity's DuckDB)
    budget = settings.memory_budget if settings.memory_budget is not None else memory_budget_bytes()
    settings = replace(settings, memory_budget=budget)
    # events that would not fit the memory budget go through in chunks, after the patients
    plan = plan_events(event_parts, budget) if event_parts else None
    if plan is not None:
        log.info("events in chunks for the memory budget", estimated_rows=plan.estimated_rows,
                 chunk_rows=plan.chunk_rows, budget_mib=budget // 2**20)
    ahead = _EventsAhead(event_parts, order, settings.as_of, pool if plan is None else None)
    workdir.ensure_private_dir(out)
    rows, merged = _merge_patients(patient_parts, order, bool(event_parts), settings, out, ahead)
    try:
        # patients.parquet replaces the old one only once the events are written too
        with workdir.atomic_path(out / workdir.PATIENTS) as patients_tmp:
            patient_ids = rows.write(patients_tmp)
            del rows
            events = _write_events(event_parts, order, settings.as_of, patient_ids, merged, out,
                                   ahead.future or plan)
            del ahead  # the future must not keep the rows alive
    finally:
        if merged.written is not None:
            merged.written.unlink(missing_ok=True)
    return _finish(read, merged, events, len(patient_ids), out, settings)


def _no_patients(read: ReadResult, specs: list[InputSpec]) -> InputDataError:
    """The error for inputs without a patients file (with the commonest reader reject, if any)."""
    read = with_ragged_rejects(read)
    why = ""
    if read.rejects:
        found = pl.concat([r.cast(REJECT_SCHEMA) for r in read.rejects])  # type: ignore[arg-type]
        reason, n = found.group_by("reason").len().sort("len", descending=True).row(0)
        why = f" ({found.height:,} rows rejected while reading, {n:,} of them: {reason})"
    return InputDataError("no patients file among the inputs; events need their patients" + why,
                          path=specs[0].path)


def _merge_patients(
    parts: list[RawPart], order: dict[str, int], has_events: bool, settings: IngestSettings, out: Path,
    events: _EventsAhead,
) -> tuple[PatientRows, MergedPatients]:
    """Normalize, reject, resolve identities and merge: (patients.parquet's rows, the rest).

    ``events`` are started once the records are normalized.

    Records whose merge would not fit the memory budget are spilled chunk by chunk and
    merged one range of patient ids at a time (:mod:`segment.ingest.mergebatches`).
    """
    assert settings.memory_budget is not None  # resolved by ingest_specs
    records = sum(estimated_rows(p) for p in parts)
    spill = None if merge_fits(records, settings.memory_budget) else spill_records(out)
    try:
        normalized = normalized_records(parts, order, settings.as_of, settings.memory_budget, spill,
                                        estimated=records, on_normalized=events.start)
        kept, rejects, rejected_ids = normalized.kept, normalized.rejects, normalized.rejected_ids
        n_records = spill.rows if spill is not None else kept.height
        log.info("patient records normalized", rows=normalized.rows, kept=n_records)
        file_counts = patient_counts(normalized.per_file, rejects, parts)
        del normalized
        events.start()
        if spill is not None:
            return _merge_spilled(spill, has_events, rejects, rejected_ids, file_counts, settings, out)
    finally:
        if spill is not None:
            spill.remove()
    with step("identities resolved", show=True):
        linked = resolve(kept, settings.identity, out, memory_budget=settings.memory_budget)
    with step("patients merged", show=True):
        patients, record_clusters = survivorship(kept, linked.clusters, linked.keep_ids)
    log.info("patients merged", records=kept.height, patients=patients.height)
    out_patients = _patient_rows(patients)
    del patients
    if events.by_record:
        # each kept record's row in patients.parquet, in record order
        rows_of = out_patients.select("_cluster").with_row_index("_p")
        event_ids: pl.DataFrame | pl.Series | None = record_clusters.to_frame("_cluster").join(
            rows_of, on="_cluster", how="left", maintain_order="left")["_p"]
    else:
        event_ids = _event_ids(kept, record_clusters, out_patients["_cluster"], rejected_ids) if has_events else None
    rows = PatientRows(out_patients["patient_id"], out_patients.drop("_cluster"))
    return rows, MergedPatients(event_ids, rejects, file_counts, kept.height, linked.counts)


def _patient_rows(patients: pl.DataFrame) -> pl.DataFrame:
    """Merged patients as patients.parquet's rows (its columns and types, sorted by id), with ``_cluster``."""
    return patients.select(
        *[pl.col(c).cast(t) for c, t in PATIENT_SCHEMA.items()],
        *[pl.col(c).cast(t) for c, t in SOURCE_POINT_COLUMNS.items()], "_cluster",
    ).sort("patient_id")


def _merge_spilled(
    spill: Spill, has_events: bool, rejects: pl.DataFrame, rejected_ids: pl.DataFrame,
    file_counts: list[FileCounts], settings: IngestSettings, out: Path,
) -> tuple[PatientRows, MergedPatients]:
    """:func:`_merge_patients` for records spilled to disk: merged by range of patient ids."""
    assert settings.memory_budget is not None
    with step("identities resolved", show=True):
        # the deterministic keys are read by the merge; Splink reads the linkage frame's columns,
        # chunk by chunk (segment.ingest.identity.store)
        linked = resolve(spill, settings.identity, out, memory_budget=settings.memory_budget)
    with step("patients merged by range", show=True):
        done = merge_spilled(spill, linked.clusters, linked.keep_ids, settings.memory_budget, _patient_rows)
    log.info("patients merged", records=done.record_keys.height, patients=done.patient_ids.len(),
             ranges=done.ranges)
    keys = done.record_keys
    event_ids = _event_ids(keys, keys["_cluster"], done.patient_clusters, rejected_ids) if has_events else None
    rows = PatientRows(done.patient_ids, written=done.path)
    return rows, MergedPatients(event_ids, rejects, file_counts, keys.height, linked.counts, done.path)


def _event_ids(
    kept: pl.DataFrame, record_clusters: pl.Series, patient_clusters: pl.Series, rejected_ids: pl.DataFrame
) -> pl.DataFrame:
    """(source, the source's own id) -> row of the patient in patients.parquet (null: rejected).

    ``record_clusters``: each kept record's cluster label; ``patient_clusters``: the label of
    each row of patients.parquet.
    """
    rows = patient_clusters.to_frame("_cluster").with_row_index("_p")
    event_ids = (
        kept.select("_order", pl.col("patient_id").alias("_pid"), record_clusters.alias("_cluster"))
        .unique(["_order", "_pid"])
        .join(rows, on="_cluster")
        .select("_order", "_pid", "_p")
    )
    return pl.concat([
        event_ids,
        rejected_ids.join(event_ids, on=["_order", "_pid"], how="anti")
        .with_columns(pl.lit(None, dtype=event_ids.schema["_p"]).alias("_p")),
    ])


def _write_events(
    parts: list[RawPart], order: dict[str, int], as_of: dt.date, patient_ids: pl.Series, merged: MergedPatients,
    out: Path, ahead: Future[PreparedEvents | ByRecord] | EventsPlan | None,
) -> EventsOutcome:
    """Write events.parquet (an empty one when no input has events) and count each events file.

    ``ahead``: the events prepared on another thread, or the plan for chunks (bounded memory).
    """
    events_path = out / workdir.EVENTS
    if not parts or merged.event_ids is None:
        workdir.write_parquet(pl.DataFrame(schema=EVENT_SCHEMA), events_path)
        return EventsOutcome(None, [])
    with step("events written", show=True), workdir.atomic_path(events_path) as tmp:
        if isinstance(ahead, EventsPlan):
            assert isinstance(merged.event_ids, pl.DataFrame)
            written = write_events_batched(parts, order, as_of, patient_ids, merged.event_ids, tmp, ahead)
        else:
            prepared = ahead.result() if ahead is not None else prepare_events(parts, order, as_of)
            written = write_events(prepared, patient_ids, merged.event_ids, tmp)
            del prepared
    counts = {row["_file"]: row for row in written.counts.iter_rows(named=True)}
    file_counts = []
    for p in {p.file: p for p in reversed(parts)}.values():  # each file once, first part's source
        row = counts.get(p.file)
        if row is None:  # a file with no data rows
            file_counts.append(FileCounts(p.file, p.source, "events", 0, 0, 0, 0))
            continue
        file_counts.append(FileCounts(p.file, p.source, "events", row["rows_read"],
                                      row["rows_read"] - row["rows_rejected"], row["rows_rejected"],
                                      row["field_problems"], orphans=row["orphans"],
                                      orphans_elsewhere=row["orphans_elsewhere"]))
    return EventsOutcome(written, file_counts)


def _finish(
    read: ReadResult, merged: MergedPatients, events: EventsOutcome, n_patients: int, out: Path,
    settings: IngestSettings,
) -> IngestResult:
    """Write rejects.csv and ingest-report.json; fail (removing the data files) on too many orphans."""
    read = with_ragged_rejects(read)  # the row-length checks ran beside the rest
    reader_rejects = pl.concat([r.cast(REJECT_SCHEMA) for r in read.rejects]) if read.rejects else empty_rejects()  # type: ignore[arg-type]
    file_counts = add_reader_rows([*merged.file_counts, *events.file_counts], reader_rejects, read.skipped,
                                  read.parts)
    written = events.written
    event_rejects = written.rejects if written is not None else empty_rejects()
    rejects = pl.concat([reader_rejects, merged.rejects, event_rejects.cast(REJECT_SCHEMA)]).sort(  # type: ignore[arg-type]
        ["file", "row"], maintain_order=True
    )
    workdir.write_csv(rejects, out / workdir.REJECTS)
    problems = dict(sorted(rejects.group_by("reason").len().iter_rows(), key=lambda kv: (-kv[1], kv[0])))
    result = IngestResult(
        workdir=out, files=file_counts, patient_records=merged.records, patients=n_patients,
        events_kept=written.kept if written is not None else 0,
        events_written=written.written if written is not None else 0,
        events_rejected=int(written.counts["rows_rejected"].sum() or 0) if written is not None else 0,
        reject_lines=rejects.height, problems=problems, columns=provided_columns(read.parts),
        orphan_events=events.orphans, event_rows=events.rows,
    )
    ceiling = settings.max_orphan_fraction
    failure = orphan_failure(result, ceiling) if not settings.allow_orphan_events else None
    workdir.write_json(out / workdir.INGEST_REPORT,
                       {**report(result, rejects, read.skipped, failure, ceiling), "identity": merged.identity})
    if failure is not None:
        # nothing downstream may read a folder whose events lost their patients
        for name in (workdir.PATIENTS, workdir.EVENTS):
            (out / name).unlink(missing_ok=True)
        raise InputDataError(failure)
    log.info("ingest written", patients=result.patients, events=result.events_written, rejects=rejects.height,
             orphan_events=result.orphan_events)
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
