"""The patient merge in bounded memory: records spilled, clustered on their keys, merged by id range.

The in-memory merge (:func:`segment.ingest.dedupe.survivorship`) holds every kept record's
merge columns, their copies sorted by cluster and the merged patients at once: about
:data:`MERGE_ROW_BYTES` per record, 13.6 GiB for the 13.5M records of 10M people. When
that would not fit the memory budget, ingest takes this path instead (the kept records of
each normalized chunk were spilled, :func:`spill_records`):

1. the keys alone (record id, names, birth date, email, phone, source order, row) are read
   back whole and clustered exactly as in memory (:func:`segment.ingest.dedupe.record_labels`);
   probabilistic linkage reads back the columns its linkage frame compares
   (:func:`segment.ingest.identity.features.linkage_input`), chunk by chunk
   (:mod:`segment.ingest.identity.store`);
2. each cluster's surviving ``patient_id`` is decided on those keys (the rule of
   :func:`segment.ingest.dedupe.survivorship`: an id kept from the last ingest first, then the
   first by source order, record id and row), and the patient ids are cut into ranges of
   about equal size that fit the budget;
3. one pass over the spilled chunks sends every record to its cluster's range (an Arrow IPC
   file per chunk and range), so all records of a cluster land in one range;
4. each range is merged by the same code as in memory, sorted by ``patient_id`` and
   appended to the patients file: the ranges follow each other in id order, so the file
   holds the same rows in the same order as the in-memory merge writes.

The spilled files are owner-only temporaries in the working folder, removed whatever happens
(and by the next run if this one is killed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from segment.ingest.dedupe import merge_labelled, record_labels
from segment.ingest.timing import step
from segment.memory import ParquetAppender, Spill, batch_count
from segment.workdir import temp_file

#: working set per kept record of the in-memory merge (records, their sorted copy, the merged
#: patients and their sorted copy; measured: 13.6 GiB and rising for 13.5M records)
MERGE_ROW_BYTES = 1300
#: working set per record of one range's merge (its records and their patients only), and the
#: previous range's patients, still being encoded (on another thread)
RANGE_ROW_BYTES = 1200
#: the share of the budget the merge (or one range) may take
SHARE = 0.5
#: the columns the deterministic clustering, the surviving ids and the events' patients read
KEY_COLUMNS = ("_k_id", "_order", "patient_id", "_row", "first_name", "last_name", "birth_date", "email",
               "phone_e164")


def merge_fits(records: int, budget: int) -> bool:
    """True when ``records`` kept records can be merged in memory within ``budget`` bytes."""
    return batch_count(records, MERGE_ROW_BYTES, budget, share=SHARE) <= 1


def spill_records(folder: Path) -> Spill:
    """Where the kept records' merge columns go, one file per normalized chunk, in order."""
    return Spill(folder, "patients-spill", {"statistics": False})


@dataclass(frozen=True)
class SpilledMerge:
    """The merge of spilled records: the patients file written, and what the events need."""

    #: a temporary file in the working folder holding patients.parquet's rows
    path: Path
    patient_ids: pl.Series
    #: each patient row's cluster label, in file order
    patient_clusters: pl.Series
    #: each kept record's ``_order``, ``patient_id`` (its source's id) and ``_cluster``, in input order
    record_keys: pl.DataFrame
    ranges: int


def merge_spilled(
    spilled: Spill, clusters: pl.DataFrame | None, keep_ids: pl.Series | None, budget: int,
    finish: Callable[[pl.DataFrame], pl.DataFrame],
) -> SpilledMerge:
    """Merge the spilled records one range of patient ids at a time (see the module's description).

    ``clusters`` as for :func:`segment.ingest.dedupe.survivorship` (None: the deterministic
    keys); ``finish`` turns one range's merged patients into patients.parquet's rows (columns,
    types, sorted by ``patient_id``) and keeps ``_cluster``.
    """
    if not spilled.files:
        raise ValueError("merge_spilled needs the spilled records of at least one chunk")
    with step("patient keys clustered") as counts:
        keys = spilled.read(KEY_COLUMNS)
        labels = record_labels(keys, clusters)
        keys = keys.with_columns(labels.alias("_cluster")).select("_k_id", "_order", "patient_id", "_row", "_cluster")
        ranges = max(batch_count(spilled.rows, RANGE_ROW_BYTES, budget, share=SHARE), 1)
        bucket_of = _ranges_of_clusters(keys, keep_ids, ranges)
        counts.update(records=keys.height, ranges=ranges)
    record_keys = keys.select("_order", "patient_id", "_cluster")
    del keys
    out = temp_file(spilled.folder, "patients-merged")
    parts: list[list[Path]] = [[] for _ in range(ranges)]
    try:
        with step("patient records sent to their ranges"):
            schema = _send_to_ranges(spilled, labels.to_numpy(), bucket_of, parts)
        spilled.remove()
        ids, labelled = [], []
        with step("patients merged by range"), ParquetAppender(out, background=True) as appender:
            for files in parts:
                records = pl.concat([pl.read_ipc(f, memory_map=False) for f in files]) if files else \
                    pl.DataFrame(schema=schema)
                for f in files:
                    f.unlink()
                merged = finish(merge_labelled(records, keep_ids))
                del records
                ids.append(merged["patient_id"])
                labelled.append(merged["_cluster"])
                appender.append(merged.drop("_cluster"))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        for path in (f for files in parts for f in files):
            path.unlink(missing_ok=True)
    return SpilledMerge(out, pl.concat(ids), pl.concat(labelled), record_keys, ranges)


def _ranges_of_clusters(keys: pl.DataFrame, keep_ids: pl.Series | None, ranges: int) -> np.ndarray:
    """Cluster label -> its range (an array indexed by label): ranges of surviving patient
    ids of about equal size, in id order.

    The surviving id is decided as :func:`segment.ingest.dedupe.merge_labelled` decides it: a
    record whose id the last ingest gave first, then the smallest source order, record id
    and row.
    """
    kept_before = (pl.col("_k_id").is_in(keep_ids.implode()) if keep_ids is not None and keep_ids.len()
                   else pl.lit(False))
    surviving = (
        keys.select("_cluster", "_k_id", "_order", "_row", (~kept_before).alias("_new"))
        .sort(["_new", "_order", "_k_id", "_row"])
        .unique("_cluster", keep="first")
    )
    ids = surviving["_k_id"]
    order = ids.sort()
    cuts = order.gather([order.len() * i // ranges for i in range(1, ranges)]) if order.len() else order
    which = cuts.search_sorted(ids, side="right").cast(pl.UInt16).to_numpy()
    labels = surviving["_cluster"].to_numpy()
    bucket_of = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.uint16)
    bucket_of[labels] = which
    return bucket_of


def _send_to_ranges(
    spilled: Spill, labels: np.ndarray, bucket_of: np.ndarray, parts: list[list[Path]]
) -> dict[str, pl.DataType]:
    """One pass over the spilled chunks: each chunk's records of each range to a file of that
    range (lz4 Arrow IPC, listed in ``parts[range]`` in chunk order); returns their schema.

    Arrow IPC rather than Parquet: written by Polars on every core and read back with no
    decoding (13.5M records at 10M people).
    """
    schema = {**pl.read_parquet_schema(spilled.files[0]), "_cluster": pl.UInt32()}
    offset = 0
    for file in spilled.files:
        chunk = pl.read_parquet(file)
        cluster = labels[offset:offset + chunk.height]
        offset += chunk.height
        chunk = chunk.with_columns(pl.Series("_cluster", cluster, dtype=pl.UInt32),
                                   pl.Series("_range", bucket_of[cluster], dtype=pl.UInt16))
        for (which,), part in chunk.partition_by("_range", as_dict=True, include_key=False).items():
            path = temp_file(spilled.folder, "patients-range")
            parts[int(which)].append(path)  # listed first: removed whatever happens next
            part.write_ipc(path, compression="lz4")
        del chunk
    return schema
