"""The linkage frame of one ingest: whole in memory, or in parts on disk when the records are.

Records merged in memory (:func:`segment.ingest.dedupe.survivorship`) give their linkage
frame whole (:func:`~.features.linkage_frame`), which DuckDB reads through Arrow without a
copy. Records spilled to disk (:mod:`segment.ingest.mergebatches`: too many to merge within
the memory budget) give it part by part, so that no step holds every record's linkage
columns at once:

1. each spilled chunk's :func:`~.features.linkage_rows` (every column that depends on its own
   record only) is written to an owner-only Parquet part in the working folder;
2. what depends on every record is worked out over them all: the first row of each record id
   (from the spilled ids alone, before the parts are written; later rows are dropped, as in
   memory) and, over the parts scanned together, the values too many records share to block
   on (:func:`~.features.hot_values`);
3. each part gets its blocking columns (:func:`~.features.with_codes`) and is written again;
   DuckDB reads the parts as one view, within its own memory limit (spilling past it), and
   the clustering afterwards reads back only the columns and records it needs.

The frame is the same either way (the same rows in the same order, the same columns; the
blocking codes are hashes, equal for equal values in any part), so the candidate pairs, the
model and the clusters are too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from segment.ingest.identity.features import (
    hot_values,
    linkage_frame,
    linkage_input,
    linkage_rows,
    record_numbers,
    with_codes,
)
from segment.memory import Spill

if TYPE_CHECKING:
    import duckdb


@dataclass
class LinkageData:
    """The linkage frame: ``frame`` in memory, or ``parts`` (Parquet files, in order) on disk."""

    frame: pl.DataFrame | None = None
    parts: Spill | None = None
    _ids: pl.Series | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        """How many records the frame holds (one per record id)."""
        return self.frame.height if self.frame is not None else self.parts.rows if self.parts is not None else 0

    def lazy(self) -> pl.LazyFrame:
        """The whole frame, lazily (a scan of the parts on disk)."""
        if self.frame is not None:
            return self.frame.lazy()
        assert self.parts is not None
        return pl.scan_parquet(self.parts.files)

    def register(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """Make the frame the table (or view) ``name`` of ``con``."""
        # Splink pairs the records by their number (_record_number): the ids' texts stay out of DuckDB
        if self.frame is not None:
            con.register(name, self.frame.drop("unique_id").to_arrow())  # Arrow buffers: no copy
            return
        assert self.parts is not None
        files = ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in self.parts.files)
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * EXCLUDE (unique_id) FROM read_parquet([{files}])')

    def record_ids(self) -> pl.Series:
        """The record ids (``unique_id``) in sorted order: record number n has item n - 1.
        Read once (scoring names its pairs with them, clustering takes them as its nodes)."""
        if self._ids is None:
            self._ids = self.lazy().select("unique_id").collect(engine="streaming").to_series().sort()
        return self._ids

    def remove(self) -> None:
        """Delete the parts on disk (nothing for a frame in memory) and forget the ids."""
        self._ids = None
        if self.parts is not None:
            self.parts.remove()


def linkage_data(records: pl.DataFrame | Spill, folder: Path) -> LinkageData:
    """The linkage frame of ``records``: in memory for a frame, in parts in ``folder`` (owner-only
    temporary files, removed by :meth:`LinkageData.remove`) for spilled records."""
    if isinstance(records, pl.DataFrame):
        return LinkageData(frame=linkage_frame(records))
    columns = linkage_input(records.columns())
    if not records.files:
        return LinkageData(frame=linkage_frame(_empty(columns)))
    # a record id in two chunks (a duplicated row of a file) keeps its first row, as in memory,
    # before anything is counted (a value's records, for the hot values)
    ids = pl.scan_parquet(records.files).select("_k_id").collect().to_series()
    first = ids.is_first_distinct()
    numbers = record_numbers(ids.filter(first))
    rows = Spill(folder, "identity-rows")
    parts = Spill(folder, "identity-frame")
    try:
        offset = 0
        for path in records.files:
            chunk = pl.read_parquet(path, columns=list(columns))
            rows.add(linkage_rows(chunk.filter(first.slice(offset, chunk.height))))
            offset += chunk.height
        del ids, first
        hot = hot_values(pl.scan_parquet(rows.files))
        for path in rows.files:
            part = pl.read_parquet(path)
            parts.add(with_codes(part, hot).with_columns(numbers.slice(parts.rows, part.height)))
            path.unlink()
    except BaseException:
        parts.remove()
        raise
    finally:
        rows.remove()
    return LinkageData(parts=parts)


def _empty(columns: tuple[str, ...]) -> pl.DataFrame:
    """No records, with the columns the linkage frame reads."""
    types = {"_order": pl.Int32, "birth_date": pl.Date}
    return pl.DataFrame(schema={c: types.get(c, pl.String) for c in columns})
