from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment import workdir as wd
from segment.cli import cli
from segment.errors import LockError
from segment.retention import parse_duration, purge
from segment.runstate import RunLock, StageCache, append_run_record, stage_key


def test_second_lock_is_refused_while_first_is_held(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from segment.runstate import RunLock; "
            f"l=RunLock({str(tmp_path)!r}, 'run-A').acquire(); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockError, match=r"another segment run holds the lock: run run-A \(pid \d+"):
            RunLock(tmp_path, "run-B").acquire()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock file is stale and is taken over
    lock = RunLock(tmp_path, "run-C").acquire()
    assert lock.took_over_stale
    lock.release()
    assert not (tmp_path / ".segment.lock").exists()


def test_lock_file_is_owner_only(tmp_path: Path) -> None:
    with RunLock(tmp_path / "w", "r1") as lock:
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == 0o700


def test_stage_cache_detects_input_and_output_changes(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"x")
    key = stage_key("ingest", [src], {"format": "canonical"})
    cache = StageCache(tmp_path)
    assert not cache.is_fresh("ingest", key, [out])
    cache.record("ingest", key, [out])
    assert StageCache(tmp_path).is_fresh("ingest", key, [out])
    # a changed parameter or input changes the key
    assert stage_key("ingest", [src], {"format": "fhir"}) != key
    src.write_text("a\n2\n")
    assert stage_key("ingest", [src], {"format": "canonical"}) != key
    # an output changed behind our back is not fresh
    time.sleep(0.01)
    out.write_bytes(b"xy")
    assert not StageCache(tmp_path).is_fresh("ingest", key, [out])


def test_run_log_appends_owner_only(tmp_path: Path) -> None:
    append_run_record(tmp_path, {"run_id": "a", "outcome": "ok"})
    path = append_run_record(tmp_path, {"run_id": "b", "outcome": "failed"})
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["run_id"] for x in lines] == ["a", "b"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_parse_duration() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    with pytest.raises(Exception, match="found '30 days'"):
        parse_duration("30 days")


def test_purge_removes_only_own_old_files(tmp_path: Path) -> None:
    # written by segment (so recorded), except the notes
    for name, data in (("patients.parquet", b"p"), ("rejects.csv", b"r"), ("eligibility.parquet", b"new")):
        with wd.atomic_open(tmp_path / name, "wb") as fh:
            fh.write(data)
    (tmp_path / "my-notes.txt").write_text("keep me")
    old = time.time() - 40 * 86400
    for name in ("patients.parquet", "rejects.csv", "my-notes.txt"):
        os.utime(tmp_path / name, (old, old))
    result = purge(tmp_path, parse_duration("30d"))
    assert sorted(result.removed) == ["patients.parquet", "rejects.csv"]
    assert (tmp_path / "my-notes.txt").exists() and (tmp_path / "eligibility.parquet").exists()
    assert result.kept == 1


def test_purge_cli(tmp_path: Path) -> None:
    with wd.atomic_open(tmp_path / "events.parquet", "wb") as fh:
        fh.write(b"e")
    old = time.time() - 3 * 86400
    os.utime(tmp_path / "events.parquet", (old, old))
    result = CliRunner().invoke(cli, ["purge", str(tmp_path), "--older-than", "2d", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would remove events.parquet" in result.stdout
    assert (tmp_path / "events.parquet").exists()
    result = CliRunner().invoke(cli, ["purge", str(tmp_path), "--older-than", "2x"])
    assert result.exit_code == 1
    assert "found '2x'" in result.stderr


def test_a_single_stage_command_removes_a_dead_writers_temp_files(tmp_path: Path) -> None:
    """`execute` (every single-stage command) removes what a killed process left, as `segment
    run` does, but only files naming a process that is gone: it holds no run lock."""

    from segment.stage import Stage, StageContext, execute

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    work = tmp_path / "work"
    work.mkdir()
    left = work / f".eligibility.parquet.{dead}.abcdefgh.tmp"
    mine = work / f".eligibility.parquet.{os.getpid()}.abcdefgh.tmp"
    unowned = work / ".eligibility.parquet.abcdefgh.tmp"  # an older version's name: no process id
    for path in (left, mine, unowned):
        path.write_text("partial")
    old = time.time() - 3 * 86400
    os.utime(unowned, (old, old))

    class Probe(Stage[list[str]]):
        name = "probe"

        def run(self, ctx: StageContext) -> list[str]:
            return sorted(p.name for p in ctx.workdir.iterdir())

    seen = execute(Probe(), StageContext(work))
    assert left.name not in seen  # gone before the stage ran
    assert mine.name in seen and unowned.name in seen  # alive, or not provably dead


def test_a_single_stage_command_refuses_a_bad_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a stage that never reads the budget (the spark engine) refuses a bad one, before it runs."""
    from segment.errors import ConfigError
    from segment.stage import Stage, StageContext, execute

    ran: list[bool] = []

    class Probe(Stage[None]):
        name = "probe"

        def run(self, ctx: StageContext) -> None:
            ran.append(True)

    monkeypatch.setenv("SEGMENT_MEMORY_GB", "8GB")
    with pytest.raises(ConfigError, match="SEGMENT_MEMORY_GB: '8GB' is not a memory budget"):
        execute(Probe(), StageContext(tmp_path))
    assert ran == []
    monkeypatch.setenv("SEGMENT_MEMORY_GB", "8")
    execute(Probe(), StageContext(tmp_path))
    assert ran == [True]
