"""Events in bounded memory: checked chunk by chunk, spilled, then written one patient range at a time.

The in-memory path (:func:`segment.ingest.events.write_events`) holds every event row at
once: about :data:`EVENT_ROW_BYTES` per row, 4 GiB at 20M rows. When the events would
not fit the memory budget (:func:`segment.memory.memory_budget_bytes`,
``SEGMENT_MEMORY_GB``), ingest takes this path instead (:func:`plan_events`):

1. each events part is read in chunks of rows sized from the budget (a part whose rows
   may give several events each, an OMOP or claims table, is one chunk: its counts go by
   input row); each chunk is looked up, checked and counted exactly as the in-memory path
   does it and its rejects kept;
2. a chunk's kept rows are id tuples (patient row ``_p`` in ``patients.parquet``, code,
   unit, value, context, date); the ids of the look-ups are the chunk's own, so each is
   made global (:class:`_Dictionary`: every normalized value numbered once for the run),
   and the tuples, sorted by ``_p``, are spilled to an owner-only temporary Parquet file
   in the working folder (named as :func:`segment.workdir.atomic_path` names its files, so
   a killed run's files are removed by the next run);
3. the patients are cut into ranges of ``_p`` that fit the budget; for each range, the
   spilled tuples of that range (Parquet statistics skip the rest of every file) get the
   ids the in-memory path gives (each value's rank among all values), are de-duplicated
   and sorted as one packed integer (:func:`segment.ingest.events.unique_ids`), get their
   texts back and are appended to events.parquet by one Parquet writer.

The file holds the same rows in the same order, with the same types, as the in-memory
path writes, and rejects, counts and report are the same (a test ingests with a tiny
budget and compares). The patient side stays in memory; readers that build their table
in memory (FHIR, OMOP joins) hold it whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from segment.ingest.events import (
    EventsWritten,
    PatientIndex,
    PreparedEvents,
    event_rejects,
    events_written,
    kept_ids,
    look_up_events,
    looked_up,
    part_files,
    problem_rows,
    raw_events,
    row_counts,
    unique_ids,
    written_events,
)
from segment.ingest.frames import checked_batches, collect_all, drop_ragged
from segment.ingest.readers import REJECT_SCHEMA, RawPart, empty_rejects
from segment.ingest.readers.files import readable
from segment.ingest.timing import step
from segment.memory import ParquetAppender, Spill, batch_count, chunk_rows, table_rows
from segment.schema import EVENT_SCHEMA

#: working set per event row of the in-memory path: the raw row, its look-ups, the checked
#: row and the de-duplication (about 4 GiB at 1M people and 20M event rows, patients included)
EVENT_ROW_BYTES = 200
#: working set per row of one chunk: its raw rows, look-ups and joins, the kept id tuples and
#: their sorted copy (measured at 10M people: 12 GiB resident in 31.6M-row chunks, 2.5 GiB of it
#: held before the chunks: about 330 bytes a row)
CHUNK_ROW_BYTES = 400
#: working set per spilled row of one patient range: its ids, packed, sorted, and the written row
#: (about 110 bytes in Arrow), plus the previous range's written row, still being encoded
RANGE_ROW_BYTES = 270
#: the share of the budget one chunk or range may take (the rest: patients, output, Python)
SHARE = 0.5
#: no chunk smaller than this (each chunk costs a dozen small look-up tables)
MIN_CHUNK_ROWS = 1000
#: rows per row group of a spilled file: a range reads only the row groups it overlaps
_SPILL_ROW_GROUP = 64 * 1024


@dataclass
class _Dictionary:
    """The distinct normalized values of one look-up (codes, units, values, contexts) over all chunks.

    Each chunk numbers its own values (its ids are ranks among the values it holds); this
    gives each value one id for the whole run, in order of first appearance, and at the
    end the rank of every value among all of them: the id the in-memory path gives it.
    """

    id: str
    columns: list[str]
    known: pl.DataFrame | None = None

    def global_ids(self, table: pl.DataFrame) -> pl.Series:
        """A chunk's look-up table -> its ids' global ids (position = the chunk's id)."""
        local = table.filter(pl.col(self.id).is_not_null()).unique(self.id).sort(self.id).select(self.id, *self.columns)
        known = self.known if self.known is not None else local.clear().select(
            *self.columns, pl.lit(0, dtype=pl.UInt32).alias("_g"))
        found = local.join(known, on=self.columns, how="left", nulls_equal=True, maintain_order="left")
        new = found.filter(pl.col("_g").is_null()).select(self.columns)
        self.known = pl.concat([known, new.with_row_index("_g", offset=known.height).select(*self.columns, "_g")])
        return local.join(self.known, on=self.columns, how="left", nulls_equal=True, maintain_order="left")["_g"]

    def ranked(self) -> tuple[pl.DataFrame, pl.Series]:
        """(the table of every value with its in-memory id, global id -> that id)."""
        known = self.known if self.known is not None else pl.DataFrame(
            schema={**dict.fromkeys(self.columns, pl.String), "_g": pl.UInt32})
        table = known.sort(self.columns, nulls_last=True).with_row_index(self.id)
        return table.drop("_g"), table.sort("_g")[self.id]


def _dictionaries() -> dict[str, _Dictionary]:
    """One :class:`_Dictionary` per look-up, keyed by its id column."""
    return {
        "_cid": _Dictionary("_cid", ["_etype", "_system", "_code"]),
        "_uid": _Dictionary("_uid", ["_unit"]),
        "_vid": _Dictionary("_vid", ["_value"]),
        "_xid": _Dictionary("_xid", ["_end", "_vcode", "_eclass", "_disp"]),
    }


@dataclass(frozen=True)
class EventsPlan:
    """How the events go through memory: rows per chunk, and the budget the ranges are cut for."""

    chunk_rows: int
    budget: int
    estimated_rows: int


def plan_events(parts: Sequence[RawPart], budget: int) -> EventsPlan | None:
    """None when the events fit ``budget`` bytes in one pass; else the chunked plan."""
    rows = sum(estimated_rows(p) for p in parts)
    if chunk_rows(rows, EVENT_ROW_BYTES, budget, share=SHARE, minimum=MIN_CHUNK_ROWS) is None:
        return None
    return EventsPlan(max(int(budget * SHARE / CHUNK_ROW_BYTES), MIN_CHUNK_ROWS), budget, rows)


def estimated_rows(part: RawPart) -> int:
    """About how many rows a part has, without reading it all.

    A CSV file: its size over the mean line length of its first MiB; Parquet: its footer;
    anything else (a reader's in-memory frame): counted.
    """
    path = Path(part.file)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return table_rows(path)
    if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")) and path.is_file():
        source = readable(path)
        with open(source, "rb") as fh:
            head = fh.read(1 << 20)
        lines = max(head.count(b"\n"), 1)
        return int(source.stat().st_size / (len(head) / lines)) if head else 0
    return int(part.frame.select(pl.len()).collect().item())


@dataclass
class _Checked:
    """What the chunks gave: counts per part, rejects, kept rows."""

    per_part: list[pl.DataFrame] = field(default_factory=list)
    rejects: list[pl.DataFrame] = field(default_factory=list)
    kept: int = 0
    chunks: int = 0
    dictionaries: dict[str, _Dictionary] = field(default_factory=_dictionaries)


def write_events_batched(
    parts: Sequence[RawPart], order: dict[str, int], as_of: dt.date, patient_ids: pl.Series,
    id_map: pl.DataFrame, path: Path, plan: EventsPlan,
) -> EventsWritten:
    """:func:`segment.ingest.events.write_events` in bounded memory (see the module's description).

    ``path`` is the file to write (a temporary beside events.parquet); the spilled files
    go beside it and are removed whatever happens.
    """
    spill = Spill(path.parent, "events-spill", {"row_group_size": _SPILL_ROW_GROUP, "statistics": True})
    try:
        with step("events checked in chunks") as counts:
            checked = _check_chunks(parts, order, as_of, id_map, spill, plan)
            counts.update(chunks=checked.chunks, kept=checked.kept)
        with step("events written by patient range") as counts:
            written, ranges = _write_ranges(spill, checked, patient_ids, path, plan)
            counts.update(ranges=ranges, unique=written)
    finally:
        spill.remove()
    files = part_files(parts)
    per_part = pl.concat(checked.per_part) if checked.per_part else _no_counts()
    rejects = pl.concat(checked.rejects) if checked.rejects else empty_rejects()
    return events_written(per_part, files, rejects.cast(REJECT_SCHEMA), checked.kept, written)  # type: ignore[arg-type]


def _no_counts() -> pl.DataFrame:
    return pl.DataFrame(schema={"_part": pl.Int32, "rows_read": pl.UInt32, "rows_rejected": pl.UInt32,
                                "orphans": pl.UInt32, "orphans_elsewhere": pl.UInt32, "field_problems": pl.UInt32})


def _chunks(parts: Sequence[RawPart], order: dict[str, int], rows: int) -> Iterator[pl.DataFrame]:
    """Each part's raw rows (:func:`raw_events`) in chunks of about ``rows`` rows, in order."""
    for i, part in enumerate(parts):
        frame = raw_events(parts, order, [i])
        if not part.one_event_per_row:  # one input row, several events: counted by row, so whole
            yield drop_ragged(collect_all([frame], [part])[0], parts, [i])
            continue
        yield from checked_batches(frame, parts, rows, [i])


def _check_chunks(
    parts: Sequence[RawPart], order: dict[str, int], as_of: dt.date, id_map: pl.DataFrame, spill: Spill,
    plan: EventsPlan,
) -> _Checked:
    """Look up, check and count every chunk; spill its kept rows (sorted by patient row ``_p``)."""
    files = part_files(parts)
    checked = _Checked()
    index = PatientIndex.of(id_map)
    for raw in _chunks(parts, order, plan.chunk_rows):
        prepared = look_up_events(raw, parts, as_of)
        del raw
        joined = looked_up(prepared, index)
        checked.per_part.append(row_counts(joined, parts))
        problems = problem_rows(joined)
        ids = kept_ids(joined)
        del joined
        spill.add(_global_ids(ids, prepared, checked.dictionaries).sort("_p"))
        checked.kept += ids.height
        checked.chunks += 1
        del ids
        p = prepared
        checked.rejects.append(
            event_rejects(problems, p.codes, p.dates, p.values, p.contexts, p.dkeys, p.xkeys, files)
        )
    return checked


def _global_ids(ids: pl.DataFrame, prepared: PreparedEvents, dictionaries: dict[str, _Dictionary]) -> pl.DataFrame:
    """A chunk's kept id tuples with each look-up id made global (:class:`_Dictionary`)."""
    tables = {"_cid": prepared.codes, "_uid": prepared.units, "_vid": prepared.values, "_xid": prepared.contexts}
    return ids.with_columns(
        dictionaries[c].global_ids(tables[c]).gather(ids[c]).alias(c) for c in tables
    )


def _write_ranges(
    spill: Spill, checked: _Checked, patient_ids: pl.Series, path: Path, plan: EventsPlan
) -> tuple[int, int]:
    """De-duplicate and sort the spilled rows one ``_p`` range at a time, appending to ``path``.

    Returns (rows written, ranges).
    """
    ranges = max(batch_count(checked.kept, RANGE_ROW_BYTES, plan.budget, share=SHARE), 1)
    n_patients = max(len(patient_ids), 1)
    size = -(-n_patients // ranges)
    ranked = {c: d.ranked() for c, d in checked.dictionaries.items()}
    tables = [ranked[c][0] for c in ("_cid", "_uid", "_vid", "_xid")]
    written = 0
    # each range is encoded on a second thread while the next is read, de-duplicated and
    # given its texts (1M people in 5 ranges: 14.5 -> 8.2 s)
    with ParquetAppender(path, background=True) as appender:
        for low in range(0, n_patients, size) if spill.files else ():
            ids = pl.scan_parquet(spill.files).filter(pl.col("_p").is_between(low, low + size - 1)).collect()
            # each look-up's global id -> its id in the in-memory path (the rank of its value)
            ids = ids.with_columns(ranked[c][1].gather(ids[c]).alias(c) for c in ranked)
            unique = unique_ids(ids)
            del ids
            if unique.height:
                appender.append(written_events(unique, patient_ids, *tables).collect())
                written += unique.height
            del unique
        appender.close(empty=pl.DataFrame(schema=EVENT_SCHEMA))
    return written, ranges
