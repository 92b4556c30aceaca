"""The memory budget: how much RAM a stage may use, so peak memory does not grow with the extract.

``SEGMENT_MEMORY_GB`` (a positive number of GiB) sets the budget; by default it is half the
machine's physical memory (cgroup limits included where the kernel exposes them), at least
1 GiB. Stages that hold per-patient data split their patients into batches sized from the
budget with :func:`batch_count` and process one batch at a time; results are the same for
any budget (tested with a tiny one).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segment.errors import ConfigError

if TYPE_CHECKING:  # Polars is imported where batches are used, not with the settings
    import polars as pl

ENV = "SEGMENT_MEMORY_GB"
GIB = 1024**3
#: the default budget's share of the machine's memory
DEFAULT_SHARE = 0.5
#: no budget below this is honoured as such: Python, Polars and the reference pack need it
FLOOR_BYTES = 256 * 1024**2


def machine_memory_bytes(*, cgroup_root: Path = Path("/sys/fs/cgroup"),
                         own_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Physical memory, or the lowest cgroup limit over the process when lower; None where
    neither is known.

    The limits are read from the process's own cgroup (``/proc/self/cgroup``: cgroup v2's
    ``memory.max``, v1's ``memory.limit_in_bytes``) and every cgroup above it up to the
    root: a batch job or a service limited below the root (Slurm, ``systemd-run -p
    MemoryMax=``) is sized from its own limit, not from the machine.
    """
    total: int | None = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    for limit in _cgroup_limits(cgroup_root, own_cgroup):
        if limit > 0 and (total is None or limit < total):
            total = limit
    return total


def _cgroup_limits(root: Path, own: Path) -> list[int]:
    """The memory limits (bytes) of the process's cgroups and their ancestors ("max": none)."""
    places = [(root, "/", "memory.max"), (root / "memory", "/", "memory.limit_in_bytes")]
    try:
        lines = own.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "" and path.startswith("/"):  # cgroup v2: 0::/path
            places.append((root, path, "memory.max"))
        elif "memory" in controllers.split(",") and path.startswith("/"):  # v1: N:memory:/path
            places.append((root / "memory", path, "memory.limit_in_bytes"))
    limits: list[int] = []
    for base, path, name in places:
        folder = base / path.strip("/")
        while True:
            try:
                text = (folder / name).read_text().strip()
            except (OSError, UnicodeDecodeError):
                text = ""
            if text.isdigit():
                limits.append(int(text))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return limits


def memory_budget_bytes(value: str | float | None = None) -> int:
    """The budget in bytes: ``value`` (GiB) if given, else ``SEGMENT_MEMORY_GB``, else the default.

    A value that is not a positive number is a :class:`ConfigError` naming the variable,
    the value found and what is valid.
    """
    raw = os.environ.get(ENV, "").strip() if value is None else value
    if raw in ("", None):
        total = machine_memory_bytes()
        return max(int((total or 8 * GIB) * DEFAULT_SHARE), 1 * GIB)
    try:
        gib = float(raw)
    except (TypeError, ValueError):
        gib = math.nan
    if not math.isfinite(gib) or gib <= 0:
        raise ConfigError(
            f"{ENV}: {raw!r} is not a memory budget; valid: a positive number of GiB (e.g. 8 or 0.5)"
        )
    return max(int(gib * GIB), FLOOR_BYTES)


def batch_count(rows: int, bytes_per_row: float, budget_bytes: int, *, share: float = 0.5) -> int:
    """How many batches ``rows`` need so one batch's working set (``bytes_per_row`` each)
    fits in ``share`` of the budget (the rest is left to the process and the output)."""
    if rows <= 0:
        return 1
    per_batch = max(int(budget_bytes * share / max(bytes_per_row, 1.0)), 1)
    return max(math.ceil(rows / per_batch), 1)


def chunk_rows(rows: int, bytes_per_row: float, budget_bytes: int, *, share: float, minimum: int) -> int | None:
    """Rows per chunk when ``rows`` do not fit ``share`` of the budget at once (at least
    ``minimum``: each chunk has fixed costs); None when they fit in one pass."""
    if batch_count(rows, bytes_per_row, budget_bytes, share=share) <= 1:
        return None
    return max(int(budget_bytes * share / max(bytes_per_row, 1.0)), minimum)


# -- batches of patients ---------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """A run of patients: rows ``offset`` to ``offset + length`` of a patient table.

    Patient tables are written sorted by ``patient_id`` (ingest), so a batch is also a range
    of ids: :meth:`events` reads only that range of ``events.parquet``, and Parquet's
    row-group statistics skip the rest. The range is the batch's own smallest and largest
    id, so it is right for an unsorted table too (only slower: ranges then overlap). Where the
    two tables' ids have different types, the batch's ids are matched as text instead.
    """

    index: int
    count: int
    offset: int
    length: int

    def patients(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """This batch's rows of a patient table (the whole table when there is one batch)."""
        return frame if self.count == 1 else frame.slice(self.offset, self.length)

    def id_range(self, frame: pl.LazyFrame, column: str = "patient_id") -> tuple[Any, Any]:
        """The smallest and largest id of this batch's patients (reads that column only)."""
        import polars as pl

        lo, hi = self.patients(frame).select(pl.col(column).min().alias("lo"),
                                             pl.col(column).max().alias("hi")).collect().row(0)
        return lo, hi

    def events(self, events: pl.LazyFrame, patients: pl.LazyFrame, column: str = "patient_id") -> pl.LazyFrame:
        """The events of this batch's patients' id range (all events when there is one batch)."""
        import polars as pl

        if self.count == 1:
            return events
        if events.collect_schema()[column] != patients.collect_schema()[column]:
            # ids of two types (numeric patients, text eligibility from Spark): the plan matches them
            # as text, where a range of one type says nothing of the other's order; the batch's ids
            ids = self.patients(patients).select(pl.col(column).cast(pl.String)).collect().to_series()
            return events.filter(pl.col(column).cast(pl.String).is_in(ids.drop_nulls().unique().implode()))
        lo, hi = self.id_range(patients, column)
        if lo is None:  # no patient (or only null ids): no events
            return events.clear()
        return events.filter(pl.col(column).is_between(pl.lit(lo), pl.lit(hi)))


def table_rows(path: str | Path) -> int:
    """Rows of a Parquet file, from its footer."""
    import polars as pl

    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def patient_batches(rows: int, bytes_per_row: float, budget_bytes: int | None = None) -> list[Batch]:
    """``rows`` patients split into batches that each fit the budget (one batch when all fit).

    ``bytes_per_row``: the stage's measured working set per patient. ``budget_bytes``
    defaults to :func:`memory_budget_bytes` (``SEGMENT_MEMORY_GB``). Batches are as even as
    possible, in row order; none is empty unless ``rows`` is 0 (then one empty batch).
    """
    budget = memory_budget_bytes() if budget_bytes is None else budget_bytes
    count = batch_count(rows, bytes_per_row, budget)
    size, extra = divmod(rows, count)
    batches: list[Batch] = []
    offset = 0
    for i in range(count):
        length = size + (1 if i < extra else 0)
        batches.append(Batch(i, count, offset, length))
        offset += length
    return batches


class ParquetAppender:
    """One Parquet file written batch by batch (``pyarrow.parquet.ParquetWriter``).

    Owner-only and atomic as :func:`segment.workdir.atomic_path`: the file appears at
    ``target`` only when :meth:`close` succeeds; on an error nothing is left. The rows are
    the batches' rows in the order appended, so a file written in batches holds the same
    rows in the same order, with the same types, as one written at once.
    """

    def __init__(self, target: str | Path, *, compression: str = "zstd", level: int | None = None,
                 background: bool = False) -> None:
        from segment.workdir import atomic_path

        self._context = atomic_path(target)
        self._tmp = self._context.__enter__()
        self._compression = compression
        self._level = level
        self._writer: Any = None
        self._done = False
        self.rows = 0
        #: ``background``: each batch is encoded on a second thread (pyarrow's writer uses one
        #: core, the GIL released) while the caller makes the next; one batch in flight at a time
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="segment-parquet") if background else None
        self._pending: Future[None] | None = None

    def append(self, frame: pl.DataFrame) -> None:
        """Add a batch's rows (its schema must be the first batch's)."""
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        self._wait()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression=self._compression,
                                            compression_level=self._level)
        elif not table.schema.equals(self._writer.schema, check_metadata=False):
            table = table.cast(self._writer.schema)
        if self._pool is None:
            self._writer.write_table(table)
        else:
            self._pending = self._pool.submit(self._writer.write_table, table)
        self.rows += frame.height

    def _wait(self) -> None:
        """Wait for the batch in flight (raising its error, if any)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self, empty: pl.DataFrame | None = None) -> None:
        """Finish the file (``empty``: the frame written when no batch was appended); once."""
        import polars as pl

        if self._done:
            return
        try:
            self._wait()
            self._stop()
            if self._writer is None:
                (empty if empty is not None else pl.DataFrame()).write_parquet(self._tmp)
            else:
                self._writer.close()
        except BaseException as exc:  # the file could not be finished (disk full, ...): nothing stays
            self.abort(exc)
            raise
        self._done = True
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        """Remove the temporary file (after an error)."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(BaseException):
            self._wait()
        self._stop()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(BaseException):
            self._context.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> ParquetAppender:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.abort(exc)
        else:
            self.close()


@dataclass
class Spill:
    """Frames kept on disk chunk by chunk: one owner-only temporary Parquet file per chunk in
    ``folder`` (named as :func:`segment.workdir.remove_stale_temp_files` recognizes, so a killed
    run's files go with the next run), read back in the order they were added.

    ``options``: :meth:`polars.DataFrame.write_parquet` options besides lz4 compression.
    """

    folder: Path
    stem: str
    options: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    rows: int = 0

    def add(self, frame: pl.DataFrame) -> None:
        """Spill one chunk (after the chunks before it)."""
        from segment.workdir import temp_file

        name = temp_file(self.folder, self.stem)
        self.files.append(name)
        frame.write_parquet(name, compression="lz4", **self.options)
        self.rows += frame.height

    def columns(self) -> list[str]:
        """The spilled columns (none before the first chunk)."""
        import polars as pl

        return list(pl.read_parquet_schema(self.files[0])) if self.files else []

    def read(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every spilled row (``columns`` of them), in the order added."""
        import polars as pl

        return pl.read_parquet(self.files, columns=list(columns) if columns else None)

    def remove(self) -> None:
        """Delete the spilled files."""
        for path in self.files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.files.clear()


# -- peak memory per stage ------------------------------------------------------------------

_PROCESS_PEAK: list[int] = [0]


def _high_water_bytes() -> int | None:
    """The peak resident memory since the last reset: Linux's VmHWM where the platform gives a
    peak at all (:func:`segment.log.peak_rss_bytes`), else that peak; None where neither exists."""
    from segment.log import peak_rss_bytes

    fallback = peak_rss_bytes()
    if fallback is None:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return fallback


def start_stage_peak() -> bool:
    """Start measuring one stage's peak: fold the peak so far into :func:`process_peak_bytes`
    and reset the kernel's high-water mark (Linux ``/proc/self/clear_refs``). False where
    the mark cannot be reset (then a stage's peak is the process's peak so far)."""
    current = _high_water_bytes()
    if current is not None:
        _PROCESS_PEAK[0] = max(_PROCESS_PEAK[0], current)
    if not sys.platform.startswith("linux"):  # elsewhere the path means nothing (or is an ordinary file)
        return False
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # read-only /proc, a sandbox, a kernel before 4.0
        return False
    return True


def stage_peak_bytes() -> int | None:
    """The peak resident memory since :func:`start_stage_peak` (None where unknown)."""
    return _high_water_bytes()


def process_peak_bytes() -> int | None:
    """The process's peak resident memory so far, across stage resets (None where unknown)."""
    current = _high_water_bytes()
    if current is None:
        return None
    _PROCESS_PEAK[0] = max(_PROCESS_PEAK[0], current)
    return _PROCESS_PEAK[0]


class OrderedParts:
    """Batch results whose rows are ordered by a part number first, put back in that order.

    A plan whose output is part 0 of every patient, then part 1 of every patient, and so on
    (evaluate: one part per rule and branch), run batch by batch, gives each part's rows
    batch by batch. Each run of one part in a batch's rows goes to an owner-only temporary
    Arrow IPC file (lz4) beside ``target``; :meth:`frame` then scans them part by part,
    batch by batch: the rows and order of the unbatched plan, for one streaming Parquet sink.
    (At 10M patients, 90M rows in 5 batches: 8.4 s to keep and about 18 s to write, against
    20.2 and 20.5 s through Parquet row groups read back by a filter.) Temporary files are named as
    :func:`segment.workdir.atomic_path` names them, so a killed run's files are removed by
    the next run.
    """

    def __init__(self, target: str | Path, part_column: str) -> None:
        self._target = Path(target)
        self._column = part_column
        #: (part, file) of each run of equal parts, batch by batch, in row order
        self._runs: list[tuple[int, Path]] = []

    def add(self, frame: pl.DataFrame) -> None:
        """Keep one batch's rows (with the part column) on disk."""
        from segment.workdir import temp_file

        if not frame.height:
            return
        offset = 0
        for part, length in frame.get_column(self._column).rle().struct.unnest().select("value", "len").rows():
            name = temp_file(self._target.parent, self._target.name)
            self._runs.append((int(part), name))
            frame.slice(offset, length).drop(self._column).write_ipc(name, compression="lz4")
            offset += length

    def frame(self, parts: int) -> pl.LazyFrame | None:
        """Parts ``0 .. parts-1``, each batch's rows in batch order, without the part column
        (None: no rows at all)."""
        import polars as pl

        # a stable sort by part: within a part, the runs stay in the order they were added
        runs = sorted((run for run in self._runs if run[0] < parts), key=lambda run: run[0])
        if not runs:
            return None
        return pl.concat([pl.scan_ipc(path) for _, path in runs], how="vertical")

    def remove(self) -> None:
        """Delete the temporary files."""
        for _, path in self._runs:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._runs.clear()


# -- pages of memory-mapped input files ------------------------------------------------------

#: ``madvise`` advice: the pages are not needed now (Linux; a file mapping re-reads them on access)
_MADV_DONTNEED = 4


def release_mapped_pages(paths: Sequence[str | Path], *, maps: Path = Path("/proc/self/maps")) -> int:
    """Drop this process's resident pages of every read-only memory map of ``paths``; returns
    the bytes of mappings released (0 where the OS gives no map list: not Linux).

    Polars reads a local CSV through a memory map of the whole file: every page it has read
    stays in the process's resident set until the scan ends, so streaming a 9 GB events file
    in 1 GB chunks still shows 9 GB resident at the end (page cache, but counted in the
    resident set, its peak and a cgroup's charge). Between chunks the pages already read can be
    dropped: for a read-only file mapping ``MADV_DONTNEED`` only unmaps them from this process,
    and a later read of the same bytes faults them back in from the page cache (or the file).
    Writable mappings are never touched.
    """
    if sys.platform != "linux" or not paths:
        return 0
    wanted = {os.path.realpath(p) for p in paths}
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return 0
    regions = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) < 6 or "w" in fields[1] or fields[5] not in wanted:
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        regions.append((low, high - low))
    if not regions:
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for start, length in regions:
        if libc.madvise(start, length, _MADV_DONTNEED) == 0:
            released += length
    return released
