"""Reruns of `segment run`: which changes invalidate the audit, and an unchanged rerun reuses all.

Unit tests of the audit's key (each input it depends on changes it; nothing else does),
then real runs of the demo campaign: an unchanged rerun reuses every stage, the audit
and the export (nothing delivered again); a changed ledger or --force audits again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from segment.audit import AuditStage
from segment.config import Settings
from segment.pipeline import run_campaign
from segment.stage import StageContext


def _audit_key(work: Path, run_id: str, ledger: Path) -> str:
    """The audit stage's content key in a run with this id and ledger (a campaign without `ledger:`)."""
    campaign = SimpleNamespace(ledger=None)
    return AuditStage(campaign).key(  # type: ignore[arg-type]
        StageContext(work, settings=Settings(ledger_path=ledger), run_id=run_id))


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    pl.DataFrame({"patient_id": ["a", "b"], "race": ["White", "Black"]}).write_parquet(
        work / "enriched.parquet")
    pl.DataFrame({"patient_id": ["a", "b"], "rule_id": ["r", "r"], "status": ["due", "due"]}
                 ).write_parquet(work / "eligibility.parquet")
    ledger = tmp_path / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        conn.execute("CREATE TABLE contacts (patient_id TEXT, run_id TEXT)")
    return work, ledger


def test_audit_key_is_stable_when_nothing_changes(tmp_path: Path) -> None:
    work, ledger = _folder(tmp_path)
    assert _audit_key(work, "run1", ledger) == _audit_key(work, "run1", ledger)
    # files rewritten with the same bytes (a reused upstream stage): same key
    data = (work / "eligibility.parquet").read_bytes()
    (work / "eligibility.parquet").write_bytes(data)
    key = _audit_key(work, "run1", ledger)
    assert _audit_key(work, "run1", ledger) == key


@pytest.mark.parametrize("change", ["eligibility", "enriched", "ledger", "run_id", "ledger_path",
                                    "no_ledger"])
def test_each_audit_input_invalidates_it(tmp_path: Path, change: str) -> None:
    work, ledger = _folder(tmp_path)
    before = _audit_key(work, "run1", ledger)
    run_id = "run1"
    if change == "eligibility":
        pl.DataFrame({"patient_id": ["a", "b"], "rule_id": ["r", "r"],
                      "status": ["due", "not_due"]}).write_parquet(work / "eligibility.parquet")
    elif change == "enriched":
        pl.DataFrame({"patient_id": ["a", "b"], "race": ["White", "Asian"]}).write_parquet(
            work / "enriched.parquet")
    elif change == "ledger":  # another campaign's contact: caps may differ
        with sqlite3.connect(ledger) as conn:
            conn.execute("INSERT INTO contacts VALUES ('a', 'other-run')")
    elif change == "run_id":  # campaign file, suppression, sources, rules, pack, as-of date
        run_id = "run2"
    elif change == "ledger_path":
        moved = tmp_path / "elsewhere.sqlite"
        shutil.copy(ledger, moved)
        ledger = moved
    elif change == "no_ledger":
        ledger.unlink()
    assert _audit_key(work, run_id, ledger) != before


def test_audit_key_ignores_files_the_audit_does_not_read(tmp_path: Path) -> None:
    work, ledger = _folder(tmp_path)
    before = _audit_key(work, "run1", ledger)
    (work / "rejects.csv").write_text("row,column,value,reason\n")
    pl.DataFrame({"x": [1]}).write_parquet(work / "geocoded.parquet")
    assert _audit_key(work, "run1", ledger) == before


def _statuses(result: object) -> dict[str, str]:
    return {s.name: s.status for s in result.stages}  # type: ignore[attr-defined]


def test_unchanged_rerun_reuses_every_stage_audit_and_export(demo: dict[str, Path]) -> None:
    first = run_campaign(demo["spring"])
    assert _statuses(first)["audit"] == "ran" and _statuses(first)["export"] == "ran"
    html = first.audit_html
    assert html is not None
    stamp = html.stat().st_mtime_ns
    ledger = hashlib.sha256(demo["ledger"].read_bytes()).hexdigest()
    second = run_campaign(demo["spring"])
    assert _statuses(second) == {"ingest": "reused", "geocode": "reused", "enrich": "reused",
                                 "evaluate": "reused", "audit": "reused", "export": "reused"}
    assert second.audit_flags == first.audit_flags
    assert second.export["already delivered"] == "yes: nothing sent again"
    assert hashlib.sha256(demo["ledger"].read_bytes()).hexdigest() == ledger  # no contact added
    assert html.stat().st_mtime_ns == stamp  # not rewritten

    # a damaged audit is written again (outputs are checked by content, not by name)
    html.write_text(html.read_text().replace("<h1>", "<h1>x", 1))
    third = run_campaign(demo["spring"])
    assert _statuses(third)["audit"] == "ran"
    assert _statuses(run_campaign(demo["spring"]))["audit"] == "reused"


def test_changed_ledger_or_force_audits_again(demo: dict[str, Path]) -> None:
    run_campaign(demo["spring"])
    # another campaign's delivery lands in the shared ledger: caps can change the audit
    with sqlite3.connect(demo["ledger"]) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        conn.execute("CREATE TABLE IF NOT EXISTS test_marker (x INTEGER)")
        conn.execute("INSERT INTO test_marker VALUES (1)")
    assert tables
    again = run_campaign(demo["spring"])
    assert _statuses(again)["audit"] == "ran"
    assert _statuses(again)["export"] == "reused"  # the delivery itself is still published
    assert _statuses(run_campaign(demo["spring"]))["audit"] == "reused"
    forced = run_campaign(demo["spring"], force=True, dry_run=True)
    assert _statuses(forced)["audit"] == "ran" and _statuses(forced)["ingest"] == "ran"
    log = [json.loads(x) for x in (demo["work"] / "run-log.jsonl").read_text().splitlines()]
    assert [s["status"] for s in log[-1]["stages"] if s["stage"] == "audit"] == ["ran"]


def test_remembered_hashes_skip_untouched_files_only(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from segment import runstate, workdir

    work = tmp_path / "work"
    work.mkdir()
    source = tmp_path / "extract.csv"
    source.write_text("patient_id,name\n1,Ann\n")
    first = runstate.cached_sha256(source)
    runstate.keep_hashes(work)
    monkeypatch.setattr(runstate, "_HASHES", {})
    reads: list[Path] = []
    real = workdir.sha256_file

    def counting(path: str | Path, chunk: int = 4 << 20) -> str:
        reads.append(Path(path))
        return real(path, chunk)

    monkeypatch.setattr(workdir, "sha256_file", counting)
    runstate.recall_hashes(work)
    assert runstate.cached_sha256(source) == first and reads == []  # not read again
    # same size, modification time set back: the change time still tells
    stat = source.stat()
    source.write_text("patient_id,name\n1,Bob\n")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.stat().st_size == stat.st_size
    assert runstate.cached_sha256(source) != first and reads == [source]


def test_rerun_in_a_new_process_does_not_read_the_extracts_again(
        demo: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from segment import runstate, workdir

    run_campaign(demo["spring"])
    assert (demo["work"] / ".file-hashes.json").exists()
    monkeypatch.setattr(runstate, "_HASHES", {})  # as a new process starts
    reads: list[Path] = []
    real = workdir.sha256_file

    def counting(path: str | Path, chunk: int = 4 << 20) -> str:
        reads.append(Path(path).resolve())
        return real(path, chunk)

    monkeypatch.setattr(workdir, "sha256_file", counting)
    second = run_campaign(demo["spring"])
    assert all(s.status == "reused" for s in second.stages)
    world = (demo["root"] / "world").resolve()
    assert [p for p in reads if p.is_relative_to(world)] == []  # sources and pack untouched
    assert any(p.name == "patients.parquet" for p in reads)  # outputs still checked by content
