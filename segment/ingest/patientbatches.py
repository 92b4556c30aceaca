"""Patient records normalized whole, or in chunks when they would not fit the memory budget.

Normalizing is row by row (each normalizer runs once per distinct raw value, but answers
every row from its own value alone; date layouts come from each part, not from the rows
read), so records can be normalized a chunk at a time with the same result. Of each chunk
only what the merge needs is kept: the merge columns of the records that are kept, their
rejects, per-file counts and the ids of rejected records. The wide frame of normalized,
raw and problem columns (about 1.8 KiB a record at its peak) never exists for more than
one chunk.

The rejects come out in another order (chunk by chunk), but every row's rejects come from
one chunk, in the same column order, and ingest sorts all rejects by file and row (a stable
sort) before writing them: ``rejects.csv`` is the same file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import polars as pl

from segment.ingest.dedupe import MERGE_INPUT
from segment.ingest.eventbatches import estimated_rows
from segment.ingest.frames import checked_batches, collect_all, drop_ragged
from segment.ingest.identity.features import IDENTIFIER_COLUMNS
from segment.ingest.mapping import PATIENT_INPUT_COLUMNS
from segment.ingest.patients import (
    contact_lookups,
    normalize_patients,
    patient_rejects,
    stack_parts,
)
from segment.ingest.readers import RawPart
from segment.ingest.timing import step
from segment.memory import Spill, chunk_rows

#: a patient record's share of the normalization's peak (measured: 7.4 GiB for 4.05M records)
PATIENT_ROW_BYTES = 2000
#: a record's share of one chunk's peak when reading in chunks (the streaming read holds the
#: next chunk too; measured at 10M people: 8.2 GiB in chunks of 2.53M records)
CHUNK_ROW_BYTES = 3000
#: the share of the budget one chunk may take (the merge columns of every record stay too)
SHARE = 0.4
#: no chunk is smaller than this (a tiny budget still makes progress)
MIN_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class NormalizedRecords:
    """What the merge reads of the normalized patient records."""

    #: the kept records' merge columns (``MERGE_INPUT``, identifiers, ``_k_id``), in input order
    kept: pl.DataFrame
    rejects: pl.DataFrame
    #: ``_file``, ``read``, ``rejected``: records read and rejected per file
    per_file: pl.DataFrame
    #: ``_order``, ``_pid``: ids of rejected records (their events are "patient rejected")
    rejected_ids: pl.DataFrame
    rows: int
    chunks: int = 1
    #: the kept records spilled chunk by chunk (``kept`` is then empty): the merge reads them back
    spilled: Spill | None = None

    @classmethod
    def of(cls, records: pl.DataFrame) -> NormalizedRecords:
        """The merge's part of one frame of normalized records (all, or a chunk)."""
        # lazily: the filter copies only the columns the merge reads, not the whole wide frame
        lazy = records.lazy()
        kept = lazy.filter(pl.col("_row_problem").is_null()).select(
            *MERGE_INPUT, *IDENTIFIER_COLUMNS,
            (pl.col("_source") + pl.lit(":") + pl.col("patient_id")).alias("_k_id"),
        )
        per_file = lazy.group_by("_file", maintain_order=True).agg(
            pl.len().alias("read"), pl.col("_row_problem").is_not_null().sum().alias("rejected")
        )
        rejected = lazy.filter(
            pl.col("_row_problem").is_not_null() & pl.col("patient_id").is_not_null()
        ).select("_order", pl.col("patient_id").alias("_pid")).unique(maintain_order=True)
        kept_df, per_file_df, rejected_df = pl.collect_all([kept, per_file, rejected])
        return cls(kept_df, patient_rejects(records), per_file_df, rejected_df, records.height)

    @classmethod
    def concat(cls, pieces: list[NormalizedRecords]) -> NormalizedRecords:
        """The chunks' parts put together, in input order."""
        per_file = pl.concat([p.per_file for p in pieces]).group_by("_file", maintain_order=True).agg(
            pl.col("read").sum(), pl.col("rejected").sum())
        return cls(
            pl.concat([p.kept for p in pieces]), pl.concat([p.rejects for p in pieces]), per_file,
            pl.concat([p.rejected_ids for p in pieces]).unique(maintain_order=True),
            sum(p.rows for p in pieces), len(pieces),
        )


def patient_chunk_rows(records: int, budget: int) -> int | None:
    """Records per chunk for about ``records`` records, or None when they all fit ``budget`` bytes at once."""
    if chunk_rows(records, PATIENT_ROW_BYTES, budget, share=SHARE, minimum=MIN_CHUNK_ROWS) is None:
        return None
    return max(int(budget * SHARE / CHUNK_ROW_BYTES), MIN_CHUNK_ROWS)


def normalized_records(
    parts: list[RawPart], order: dict[str, int], as_of: dt.date, budget: int,
    spill: Spill | None = None, *, estimated: int | None = None, on_normalized: Callable[[pl.DataFrame], None] = lambda records: None,
) -> NormalizedRecords:
    """Normalize every patient record, phones and emails included, whole or in chunks.

    ``spill``: the kept records of each chunk go there instead of staying in memory (the
    records are then always read in chunks). ``estimated``: the parts' records as
    :func:`~segment.ingest.eventbatches.estimated_rows` counts them, when the caller has it.
    ``on_normalized``: called with the normalized records (all of them, before the phone and
    email look-ups) when they are normalized whole, not in chunks.
    """
    if estimated is None:
        estimated = sum(estimated_rows(p) for p in parts)
    rows = patient_chunk_rows(estimated, budget)
    if rows is None and spill is not None:
        rows = max(estimated, MIN_CHUNK_ROWS)
    if rows is None:
        with step("patients normalized", show=True):
            raw = drop_ragged(collect_all([stack_parts(parts, PATIENT_INPUT_COLUMNS, order)], parts)[0], parts)
            records = normalize_patients(raw.lazy(), parts, as_of).collect()
            del raw
        on_normalized(records)
        with step("phones and emails looked up", show=True):
            records = contact_lookups(records)
        return NormalizedRecords.of(records)
    with step("patients normalized in chunks", show=True) as counts:
        pieces = [_kept_apart(NormalizedRecords.of(contact_lookups(
            normalize_patients(chunk.lazy(), parts, as_of).collect())), spill)
            for chunk in _chunks(parts, order, rows)]
        counts.update(chunks=len(pieces), chunk_rows=rows, spilled=spill is not None)
    if not pieces:  # every row was ragged: the whole path gives the empty frames with their columns
        pieces = [_kept_apart(NormalizedRecords.of(contact_lookups(normalize_patients(
            _empty(parts, order).lazy(), parts, as_of).collect())), spill)]
    return replace(NormalizedRecords.concat(pieces), spilled=spill)


def _kept_apart(piece: NormalizedRecords, spill: Spill | None) -> NormalizedRecords:
    """``piece`` with its kept records moved to ``spill`` (when given)."""
    if spill is None:
        return piece
    spill.add(piece.kept)
    return replace(piece, kept=piece.kept.clear())


def _chunks(parts: list[RawPart], order: dict[str, int], rows: int) -> Iterator[pl.DataFrame]:
    """The stacked raw records in chunks of about ``rows``, in order, ragged rows dropped."""
    yield from checked_batches(stack_parts(parts, PATIENT_INPUT_COLUMNS, order), parts, rows)


def _empty(parts: list[RawPart], order: dict[str, int]) -> pl.DataFrame:
    return stack_parts(parts, PATIENT_INPUT_COLUMNS, order).clear().collect()
