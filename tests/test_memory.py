"""The memory budget setting (SEGMENT_MEMORY_GB), batch sizing, batches of patients and their files."""

from __future__ import annotations

import datetime as dt
import mmap
import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.errors import ConfigError
from segment.memory import (
    FLOOR_BYTES,
    GIB,
    Batch,
    OrderedParts,
    ParquetAppender,
    batch_count,
    machine_memory_bytes,
    memory_budget_bytes,
    patient_batches,
    process_peak_bytes,
    release_mapped_pages,
    stage_peak_bytes,
    start_stage_peak,
)


def test_budget_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_MEMORY_GB", "2.5")
    assert memory_budget_bytes() == int(2.5 * GIB)


def test_default_is_half_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_MEMORY_GB", raising=False)
    total = machine_memory_bytes()
    assert total is not None and total > 0
    assert memory_budget_bytes() == max(total // 2, GIB)


def test_tiny_budget_is_floored() -> None:
    assert memory_budget_bytes(0.001) == FLOOR_BYTES


@pytest.mark.parametrize("bad", ["lots", "0", "-1", "nan", "inf"])
def test_bad_budget_names_variable_value_and_valid(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("SEGMENT_MEMORY_GB", bad)
    with pytest.raises(ConfigError) as err:
        memory_budget_bytes()
    message = str(err.value)
    assert "SEGMENT_MEMORY_GB" in message and repr(bad) in message and "positive number" in message


def test_batch_count() -> None:
    assert batch_count(0, 100, GIB) == 1
    assert batch_count(1_000, 100, GIB) == 1
    # 1 GiB budget, half of it for the batch: 512 MiB / 1 KiB per row = 524,288 rows a batch
    assert batch_count(10_000_000, 1024, GIB) == 20
    assert batch_count(524_288, 1024, GIB) == 1
    assert batch_count(524_289, 1024, GIB) == 2


# -- batches of patients -------------------------------------------------------------------


def test_batches_cover_every_row_once_in_order() -> None:
    batches = patient_batches(10, 100, 2 * 100 * 3)  # 3 rows a batch: 4 batches of 3, 3, 2, 2
    assert [(b.offset, b.length) for b in batches] == [(0, 3), (3, 3), (6, 2), (8, 2)]
    assert {b.count for b in batches} == {4} and [b.index for b in batches] == [0, 1, 2, 3]
    assert patient_batches(0, 100, GIB) == [Batch(0, 1, 0, 0)]
    assert patient_batches(10, 100, GIB) == [Batch(0, 1, 0, 10)]


def test_the_budget_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_MEMORY_GB", "1")
    assert len(patient_batches(10_000_000, 1024)) == 20


def _world(ids: list[str | None]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    patients = pl.LazyFrame({"patient_id": ids, "n": range(len(ids))}, schema={"patient_id": pl.String, "n": pl.Int64})
    known = [i for i in ids if i is not None]
    events = pl.LazyFrame({"patient_id": [i for i in known for _ in range(3)] + ["zz-orphan"],
                           "k": range(3 * len(known) + 1)})
    return patients, events


def test_a_patients_events_are_never_split_across_batches() -> None:
    ids = [f"p{i:03d}" for i in range(17)]
    patients, events = _world(ids)
    seen: list[pl.DataFrame] = []
    for batch in patient_batches(len(ids), 100, 2 * 100 * 5):
        mine = batch.patients(patients).collect()
        got = batch.events(events, patients).collect()
        # exactly the events of this batch's patients: all three of each, nobody else's
        assert got.get_column("patient_id").to_list() == [i for i in mine["patient_id"] for _ in range(3)]
        seen.append(got)
    assert pl.concat(seen).height == 3 * len(ids)


def test_unsorted_patients_still_get_all_their_events() -> None:
    ids = ["p05", "p01", "p09", "p03", "p07", "p02"]
    patients, events = _world(ids)
    for batch in patient_batches(len(ids), 100, 2 * 100 * 2):
        mine = batch.patients(patients).collect()
        got = batch.events(events, patients).join(mine.lazy(), on="patient_id", how="semi").collect()
        assert sorted(got["patient_id"].to_list()) == sorted(i for i in mine["patient_id"] for _ in range(3))


def test_a_batch_without_ids_reads_no_events() -> None:
    patients, events = _world([None, None, "p1", "p2"])
    first, second = patient_batches(4, 100, 2 * 100 * 2)
    assert first.events(events, patients).collect().height == 0
    assert second.events(events, patients).collect().height == 6


def test_one_batch_reads_everything_unchanged() -> None:
    patients, events = _world(["b", "a"])
    (only,) = patient_batches(2, 100, GIB)
    assert only.patients(patients) is patients and only.events(events, patients) is events


@pytest.mark.parametrize("background", [False, True])
def test_appender_writes_the_batches_rows_owner_only(tmp_path: Path, background: bool) -> None:
    frame = pl.DataFrame({"patient_id": ["a", "b", "c"], "sex": pl.Series(["F", "M", "F"], dtype=pl.Enum(["F", "M"])),
                          "when": [dt.date(2020, 1, 1), None, dt.date(2021, 2, 3)], "ids": [["x"], [], ["y", "z"]]})
    target = tmp_path / "out.parquet"
    with ParquetAppender(target, background=background) as out:
        out.append(frame.slice(0, 2))
        out.append(frame.slice(2, 1))
        out.close()
    assert_frame_equal(pl.read_parquet(target), frame)
    assert out.rows == 3 and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_appender_without_batches_writes_the_empty_frame(tmp_path: Path) -> None:
    with ParquetAppender(tmp_path / "none.parquet") as out:
        out.close(empty=pl.DataFrame(schema={"patient_id": pl.String}))
    assert pl.read_parquet(tmp_path / "none.parquet").schema == pl.Schema({"patient_id": pl.String})


def test_background_batches_keep_their_order(tmp_path: Path) -> None:
    """Each batch is encoded on the second thread while the next is made: the file holds them in order."""
    target = tmp_path / "out.parquet"
    with ParquetAppender(target, background=True) as out:
        for i in range(20):
            out.append(pl.DataFrame({"a": pl.int_range(i * 1000, (i + 1) * 1000, eager=True)}))
    assert pl.read_parquet(target)["a"].to_list() == list(range(20_000))


def test_a_failed_background_write_is_raised_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "out.parquet").write_text("the earlier file")

    class Failing:
        def __init__(self, real: object) -> None:
            self.real, self.schema = real, real.schema  # type: ignore[attr-defined]

        def write_table(self, table: object) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            self.real.close()  # type: ignore[attr-defined]

    with pytest.raises(OSError, match="No space"), ParquetAppender(tmp_path / "out.parquet", background=True) as out:
        out.append(pl.DataFrame({"a": [1]}))
        out._wait()
        out._writer = Failing(out._writer)
        out.append(pl.DataFrame({"a": [2]}))  # fails on the writer's thread
        out.append(pl.DataFrame({"a": [3]}))  # the failure comes back here
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert (tmp_path / "out.parquet").read_text() == "the earlier file"


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "out.parquet").write_text("the earlier file")
    with pytest.raises(RuntimeError), ParquetAppender(tmp_path / "out.parquet") as out:
        out.append(pl.DataFrame({"a": [1]}))
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert (tmp_path / "out.parquet").read_text() == "the earlier file"


def test_ordered_parts_put_rows_back_part_by_part(tmp_path: Path) -> None:
    # two batches of a plan whose rows are part 0 of every patient, then part 1, then part 2
    batch1 = pl.DataFrame({"id": ["a", "b", "a", "b"], "_part": pl.Series([0, 0, 2, 2], dtype=pl.UInt16)})
    batch2 = pl.DataFrame({"id": ["c", "c", "d"], "_part": pl.Series([0, 1, 2], dtype=pl.UInt16)})
    parts = OrderedParts(tmp_path / "out.parquet", "_part")
    parts.add(batch1)
    parts.add(batch2)
    parts.add(batch2.clear())  # an empty batch
    frame = parts.frame(3)
    assert frame is not None
    frame.sink_parquet(tmp_path / "out.parquet")
    assert parts.frame(1) is not None and parts.frame(1).collect()["id"].to_list() == ["a", "b", "c"]  # type: ignore[union-attr]
    parts.remove()
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out["id"].to_list() == ["a", "b", "c", "c", "a", "b", "d"]
    assert out.columns == ["id"]  # without the part column
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_ordered_parts_keep_a_part_split_in_runs_in_file_order(tmp_path: Path) -> None:
    # a part whose rows come in two runs of one batch keeps them in the batch's order
    batch = pl.DataFrame({"id": ["a", "b", "c", "d"], "_part": pl.Series([1, 0, 1, 0], dtype=pl.UInt16)})
    parts = OrderedParts(tmp_path / "out.parquet", "_part")
    parts.add(batch)
    frame = parts.frame(2)
    assert frame is not None and frame.collect()["id"].to_list() == ["b", "d", "a", "c"]
    parts.remove()
    empty = OrderedParts(tmp_path / "none.parquet", "_part")
    empty.add(batch.clear())
    assert empty.frame(2) is None
    empty.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_stage_peak_is_its_own_and_the_process_peak_is_kept() -> None:
    block = bytearray(64 * 2**20)
    block[:: 4096] = b"\1" * len(block[:: 4096])
    before = process_peak_bytes()
    del block
    if not start_stage_peak():
        pytest.skip("the high-water mark cannot be reset on this platform")
    stage = stage_peak_bytes()
    assert before is not None and stage is not None
    assert stage < before  # the 64 MiB block belongs to the earlier stage
    assert process_peak_bytes() == before


def test_leaving_the_appender_finishes_the_file(tmp_path: Path) -> None:
    with ParquetAppender(tmp_path / "out.parquet") as out:
        out.append(pl.DataFrame({"a": [1, 2]}))
    assert pl.read_parquet(tmp_path / "out.parquet")["a"].to_list() == [1, 2]


def test_a_failed_finish_leaves_nothing(tmp_path: Path) -> None:
    # the last step fails (the disk fills as the footer is written): no temporary file stays behind
    (tmp_path / "out.parquet").write_text("the earlier file")

    class FullDisk:
        def __init__(self, real: object) -> None:
            self.real, self.schema = real, real.schema  # type: ignore[attr-defined]

        def write_table(self, table: object) -> None:
            self.real.write_table(table)  # type: ignore[attr-defined]

        def close(self) -> None:
            self.real.close()  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"), ParquetAppender(tmp_path / "out.parquet") as out:
        out.append(pl.DataFrame({"a": [1]}))
        out._writer = FullDisk(out._writer)
        out.close()
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    assert (tmp_path / "out.parquet").read_text() == "the earlier file"


def test_a_failed_finish_on_leaving_the_block_leaves_nothing(tmp_path: Path) -> None:
    # no batch appended, and the empty frame cannot be written as Parquet
    unwritable = pl.DataFrame({"o": pl.Series([object()], dtype=pl.Object)}).clear()
    with pytest.raises(pl.exceptions.ComputeError), ParquetAppender(tmp_path / "out.parquet") as out:
        out.close(empty=unwritable)
    assert list(tmp_path.iterdir()) == []


def test_the_high_water_mark_is_reset_only_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    # elsewhere /proc/self/clear_refs means nothing (or is an ordinary path): never written
    import sys

    written: list[str] = []
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: written.append(str(self)) or 0)
    for platform in ("darwin", "win32", "freebsd14"):
        monkeypatch.setattr(sys, "platform", platform)
        assert start_stage_peak() is False
    assert written == []


def test_a_read_only_proc_means_no_stage_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(self: Path, *a: object, **k: object) -> int:
        raise OSError(30, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    assert start_stage_peak() is False
    assert process_peak_bytes() is None or process_peak_bytes() > 0  # type: ignore[operator]


def _limit(folder: Path, name: str, value: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(value + "\n")


def test_the_default_budget_follows_a_cgroup_limit_below_the_root(tmp_path: Path) -> None:
    # a batch job (Slurm) or a service limited below the root cgroup: its own limit is the machine
    root, own = tmp_path / "cgroup", tmp_path / "self-cgroup"
    physical = machine_memory_bytes(cgroup_root=root, own_cgroup=own)  # nothing there: the machine
    assert physical is not None and physical > 2 * GIB
    _limit(root, "memory.max", "max")
    _limit(root / "system.slice", "memory.max", "max")
    _limit(root / "system.slice" / "slurmstepd.scope", "memory.max", str(2 * GIB))
    _limit(root / "system.slice" / "slurmstepd.scope" / "job_7", "memory.max", "max")
    own.write_text("0::/system.slice/slurmstepd.scope/job_7\n")
    assert machine_memory_bytes(cgroup_root=root, own_cgroup=own) == 2 * GIB
    # cgroup v1: the memory controller's hierarchy
    v1, own1 = tmp_path / "v1", tmp_path / "self-cgroup-v1"
    _limit(v1 / "memory", "memory.limit_in_bytes", "9223372036854771712")
    _limit(v1 / "memory" / "batch" / "job", "memory.limit_in_bytes", str(GIB))
    own1.write_text("4:memory:/batch/job\n1:cpu,cpuacct:/batch/job\n0::/\n")
    assert machine_memory_bytes(cgroup_root=v1, own_cgroup=own1) == GIB
    # a cgroup namespace shows the process at its root; an unreadable or odd file is no limit
    own.write_text("0::/\n")
    assert machine_memory_bytes(cgroup_root=root, own_cgroup=own) == physical
    own.write_text("garbage\n3:memory\n0::../../etc\n")
    assert machine_memory_bytes(cgroup_root=root, own_cgroup=own) == physical


def test_numeric_patient_ids_with_eligibility_ids_as_text() -> None:
    # a lake table with numeric ids, eligibility written by the Spark engine (patient_id string):
    # the unbatched plan matches them as text, so must every batch (9 < 10 < 100, but "10" < "100" < "9")
    ids = [9, 10, 11, 99, 100, 101, 1000]
    patients = pl.LazyFrame({"patient_id": ids}, schema={"patient_id": pl.Int64})
    events = pl.LazyFrame({"patient_id": [str(i) for i in ids for _ in range(2)] + ["12", None]})
    got = []
    for batch in patient_batches(len(ids), 100, 2 * 100 * 2):
        mine = batch.patients(patients).collect()["patient_id"].cast(pl.String).to_list()
        rows = batch.events(events, patients).collect()["patient_id"].to_list()
        assert sorted(rows) == sorted(i for i in mine for _ in range(2))
        got += rows
    assert sorted(got) == sorted(str(i) for i in ids for _ in range(2))


def test_chunk_rows() -> None:
    from segment.memory import chunk_rows

    # fits: 1,000 rows x 100 B against half of 1 GiB
    assert chunk_rows(1_000, 100, GIB, share=0.5, minimum=10) is None
    # does not fit: as many rows as half the budget holds
    assert chunk_rows(10_000_000, 1024, GIB, share=0.5, minimum=10) == 524_288
    # a tiny budget still gives the minimum
    assert chunk_rows(10_000, 1024, 100_000, share=0.5, minimum=1000) == 1000


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(sys.platform != "linux", reason="madvise on /proc/self/maps regions: Linux only")
def test_released_pages_of_a_mapped_file_leave_the_resident_set_and_read_back(tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    body = bytes(range(256)) * (64 * 1024 * 1024 // 256)  # 64 MiB
    data.write_bytes(body)
    with open(data, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        before = _rss_file_kib()
        assert sum(mm[i + 1] for i in range(0, len(mm), mmap.PAGESIZE)) > 0  # every page touched
        touched = _rss_file_kib()
        assert touched - before > 48 * 1024
        assert release_mapped_pages([data]) >= len(body)
        assert touched - _rss_file_kib() > 48 * 1024
        assert mm[:] == body  # the bytes read back from the file
        assert release_mapped_pages([tmp_path / "other.csv"]) == 0  # only the files named


def test_no_map_list_releases_nothing(tmp_path: Path) -> None:
    assert release_mapped_pages([tmp_path / "x.csv"], maps=tmp_path / "missing") == 0
    assert release_mapped_pages([]) == 0


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_writable_mappings_are_never_released(tmp_path: Path) -> None:
    data = tmp_path / "rw.bin"
    data.write_bytes(b"\0" * (4 * mmap.PAGESIZE))
    with open(data, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
        mm[0:5] = b"hello"
        assert release_mapped_pages([data]) == 0
        assert mm[0:5] == b"hello"


def _allocator_in_new_process(env: dict[str, str]) -> str:
    """The allocator settings Polars hands jemalloc in a new process that imports segment, then
    Polars (Polars puts its own first; later settings win)."""
    code = "import os, segment, polars; print(os.environ.get('_RJEM_MALLOC_CONF'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_segment_sets_the_allocator_before_polars_unless_the_environment_does() -> None:
    """segment's jemalloc settings (pages kept 5 s) come after Polars' own, so they win, when
    nothing else is set; a value in the environment, even empty (Polars' own settings), is
    left alone."""
    from segment import ALLOCATOR_CONF, ALLOCATOR_ENV

    base = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    assert _allocator_in_new_process(base).endswith("," + ALLOCATOR_CONF)
    assert ALLOCATOR_CONF not in _allocator_in_new_process({**base, ALLOCATOR_ENV: ""})
    mine = _allocator_in_new_process({**base, ALLOCATOR_ENV: "dirty_decay_ms:0"})
    assert mine.endswith(",dirty_decay_ms:0") and ALLOCATOR_CONF not in mine
