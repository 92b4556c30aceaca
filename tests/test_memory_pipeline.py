"""The whole pipeline under a tiny memory budget gives the same results as the unbatched run.

A few thousand demo patients are run once with the default budget (every stage in one
batch) and once with a budget that forces several batches in geocode, enrich, evaluate,
the audit's contact plan and the export's (issue #18 item 4). Every output is compared:
the Parquet files row for row, the audit JSON and HTML, the vendor files byte for byte,
the manifests and the ledger but their timestamps.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import segment.memory
from segment.demo import write_demo_campaigns
from segment.pipeline import RunResult, run_campaign
from segment.synth.extract import DEFAULT_REF_DATE

#: 3.6 MB: about 1,500 patients a batch for the contact plan, 600 for evaluate (see each stage's bytes per patient)
TINY_BUDGET = 3_600_000
PATIENTS = 3000
#: the stages batched here (ingest has its own batches: segment.ingest)
MINE = ("geocode", "enrich", "evaluate", "audit", "export")
#: the export's clock: before the as-of date's send time, so SMS times do not follow the real clock
CLOCK = dt.datetime.combine(DEFAULT_REF_DATE, dt.time(6, 0), tzinfo=dt.UTC)
PARQUETS = ("patients.parquet", "events.parquet", "geocoded.parquet", "enriched.parquet", "eligibility.parquet")
#: the spring campaign with a holdout: its arms are drawn over all batches' candidates at once
HOLDOUT = """\
holdout:
  percent: 10
  seed: memory-test
  stratify: [age_band, sex]
  baseline_rate: 0.2
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segment.synth import write_demo_world

    root = tmp_path_factory.mktemp("memory-world")
    write_demo_world(root, PATIENTS, seed=5)
    return root


def _campaigns(root: Path) -> list[Path]:
    spring, fall = write_demo_campaigns(root, DEFAULT_REF_DATE)
    held = spring.with_name("spring-holdout.yaml")
    text = spring.read_text().replace("code: SPRING-OUTREACH", "code: SPRING-HOLDOUT").replace(
        "destination: ../exports/spring", "destination: ../exports/spring-holdout")
    held.write_text(text + HOLDOUT)
    return [spring, fall, held]


def _run_all(root: Path, world: Path, monkeypatch: pytest.MonkeyPatch) -> list[RunResult]:
    """Every campaign, in a fresh root (same paths each time: same run ids)."""
    for name in ("work", "exports", "campaigns", "ledger.sqlite", "world"):
        target = root / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
    root.mkdir(exist_ok=True)
    (root / "world").symlink_to(world)
    import segment.export.core as export_core

    prepare = export_core.prepare_job
    monkeypatch.setattr("segment.export.run.prepare_job",
                        lambda *a, **k: prepare(*a, **{**k, "now": CLOCK}))
    return [run_campaign(path) for path in _campaigns(root)]


def _snapshot(root: Path, runs: list[RunResult]) -> dict[str, Any]:
    """Every output of the runs, read back (timestamps left out), to compare two runs."""
    work = root / "work"
    out: dict[str, Any] = {name: pl.read_parquet(work / name) for name in PARQUETS}
    for result in runs:
        folder = work / "runs" / result.run_id
        out[f"audit.json {result.run_id}"] = json.loads((folder / "audit.json").read_text())
        out[f"audit.html {result.run_id}"] = (folder / "audit.html").read_text()
    for path in sorted((root / "exports").rglob("*")):
        if path.is_file():
            key = str(path.relative_to(root))
            out[key] = _manifest(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()
    for name in ("evaluate-report.json", "enrich-report.json", "geocode-report.json"):
        out[name] = json.loads((work / name).read_text())
    with sqlite3.connect(root / "ledger.sqlite") as db:
        out["ledger contacts"] = db.execute(
            "SELECT campaign_code, patient_id, channel, run_id FROM contacts ORDER BY 1, 2, 3").fetchall()
    return out


def _manifest(doc: dict[str, Any]) -> dict[str, Any]:
    """A manifest without timestamps, and without the SHA-256 of the Parquet inputs: a file written
    in batches holds the same rows (compared above) in other bytes (row groups, writer)."""
    files = doc.get("inputs", {}).get("files", {})
    inputs = {k: ("(parquet)" if k.endswith(".parquet") else v) for k, v in files.items()}
    return {**_without_times({k: v for k, v in doc.items() if k != "inputs"}), "inputs": inputs}


_TIME_KEYS = {"created_at", "created_utc", "generated_at", "written_at", "started_at", "finished_at"}


def _without_times(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_times(v) for k, v in doc.items() if k not in _TIME_KEYS and not k.endswith("_at_utc")}
    if isinstance(doc, list):
        return [_without_times(v) for v in doc]
    return doc


def _batches(result: RunResult) -> dict[str, int]:
    return {s.name: int(s.counts.get("batches", 1)) for s in result.stages}


def test_tiny_budget_gives_the_unbatched_results(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    whole = _run_all(root, world, monkeypatch)
    assert all(r.outcome == "ok" for r in whole)
    assert {k: v for k, v in _batches(whole[0]).items() if k in MINE} == dict.fromkeys(MINE, 1)
    expected = _snapshot(root, whole)

    monkeypatch.setattr(segment.memory, "memory_budget_bytes", lambda value=None: TINY_BUDGET)
    batched = _run_all(root, world, monkeypatch)
    assert [r.run_id for r in batched] == [r.run_id for r in whole]
    first = _batches(batched[0])
    assert all(first[k] > 1 for k in MINE), first
    # the audit and the export of the other campaigns planned their contacts in batches too
    assert all(_batches(r)["audit"] > 1 and _batches(r)["export"] > 1 for r in batched[1:])
    got = _snapshot(root, batched)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if isinstance(value, pl.DataFrame):
            assert_frame_equal(got[key], value), key
        else:
            assert got[key] == value, key
    # the holdout campaign drew arms and sent files
    held = [k for k in expected if k.startswith("exports/spring-holdout/") and k.endswith(".csv")]
    assert held


def _cli(args: list[str], env: dict[str, str]) -> Any:
    import os
    import subprocess
    import sys

    segment = Path(sys.executable).with_name("segment")  # the installed command, as a user runs it
    return subprocess.run([str(segment), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_a_bad_budget_is_one_line_even_when_every_stage_is_reused(tmp_path: Path) -> None:
    # the setting is checked before any stage, not only by a stage that happens to run
    from segment.synth import write_demo_world

    write_demo_world(tmp_path / "world", 150, seed=3)
    spring, _fall = write_demo_campaigns(tmp_path, DEFAULT_REF_DATE)
    assert run_campaign(spring).outcome == "ok"
    again = _cli(["run", str(spring)], {})  # nothing to do: every stage reused, nothing re-delivered
    assert again.returncode == 0 and "already delivered" in again.stderr, again.stderr
    for bad in ("lots", "0", "-1", "8GB"):
        proc = _cli(["run", str(spring)], {"SEGMENT_MEMORY_GB": bad})
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [f"Error: SEGMENT_MEMORY_GB: {bad!r} is not a memory budget; "
                          "valid: a positive number of GiB (e.g. 8 or 0.5)"], proc.stderr
        assert "Traceback" not in proc.stderr and "reusing" not in proc.stderr, proc.stderr
    work = tmp_path / "work"
    proc = _cli(["evaluate", str(work), "--as-of", DEFAULT_REF_DATE.isoformat()], {"SEGMENT_MEMORY_GB": "nan"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Error: SEGMENT_MEMORY_GB: 'nan' is not a memory budget" in proc.stderr
