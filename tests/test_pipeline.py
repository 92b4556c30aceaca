"""End to end: `segment run` and `segment demo` on the synthetic demo world."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _vendor_files(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _ledger_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return sum(db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables if "contact" in t)


def test_counts_reconcile_from_ingest_to_export(demo: dict[str, Path]) -> None:
    code, out, err = _run("run", str(demo["spring"]))
    assert code == 0, err
    work = demo["work"]
    report = json.loads((work / "ingest-report.json").read_text())
    for entry in report["files"]:
        assert entry["rows_read"] == entry["rows_kept"] + entry["rows_rejected"]
    rejects = pl.read_csv(work / "rejects.csv", infer_schema_length=0)
    assert rejects.filter(pl.col("level") == "row").height == sum(e["rows_rejected"] for e in report["files"])
    patients = pl.read_parquet(work / "patients.parquet").height
    assert patients == report["patients"]["after_deduplication"]
    assert pl.read_parquet(work / "geocoded.parquet").height == patients
    assert pl.read_parquet(work / "enriched.parquet").height == patients
    eligibility = pl.read_parquet(work / "eligibility.parquet")
    n_rules = eligibility["rule_id"].n_unique()
    assert eligibility.height == patients * n_rules
    (manifest_path,) = (demo["exports"] / "spring").glob("manifest-SPRING-OUTREACH-*.json")
    manifest = json.loads(manifest_path.read_text())
    counts = manifest["counts"]
    assert counts["patients"] == patients
    assert counts["sent"] + sum(counts["removed"].values()) == patients
    assert counts["sent"] == sum(counts["per_channel"].values()) > 0
    for entry in manifest["files"]:
        body = (demo["exports"] / "spring" / entry["name"]).read_bytes()
        assert body.count(b"\n") - 1 == entry["rows"]
    assert _ledger_rows(demo["ledger"]) == counts["sent"]
    log = [json.loads(x) for x in (work / "run-log.jsonl").read_text().splitlines()]
    assert log[-1]["outcome"] == "ok" and [s["stage"] for s in log[-1]["stages"]] == [
        "ingest", "geocode", "enrich", "evaluate", "audit", "export"]
    assert "sent" in out and "manifest" in out


def test_second_run_reuses_stages_and_gives_identical_files(demo: dict[str, Path]) -> None:
    assert _run("run", str(demo["spring"]))[0] == 0
    first = _vendor_files(demo["exports"])
    ledger = _ledger_rows(demo["ledger"])
    code, _, err = _run("--log-format", "json", "run", str(demo["spring"]))
    assert code == 0, err
    assert _vendor_files(demo["exports"]) == first
    assert _ledger_rows(demo["ledger"]) == ledger
    record = json.loads((demo["work"] / "run-log.jsonl").read_text().splitlines()[-1])
    assert {s["stage"]: s["status"] for s in record["stages"]}["ingest"] == "reused"
    assert all(json.loads(line)["level"] for line in err.splitlines())


def test_concurrent_run_is_refused(demo: dict[str, Path]) -> None:
    work = demo["work"]
    work.mkdir(mode=0o700)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from segment.runstate import RunLock; "
         f"RunLock({str(work)!r}, 'other-run').acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = _run("run", str(demo["spring"]))
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert err.startswith("Error: ") and "another segment run holds the lock: run other-run" in err
    assert len([line for line in err.splitlines() if line.startswith("Error: ")]) == 1
    assert _vendor_files(demo["exports"]) == {}


def test_failure_in_export_leaves_nothing_behind(demo: dict[str, Path]) -> None:
    demo["exports"].mkdir()
    (demo["exports"] / "spring").write_text("a file where the destination folder should be")
    code, _, err = _run("run", str(demo["spring"]))
    assert code == 1
    assert err.splitlines()[-1].startswith("Error: ") and "Traceback" not in err
    assert "unexpected internal error" not in err
    assert [p.name for p in demo["exports"].iterdir()] == ["spring"]
    assert _ledger_rows(demo["ledger"]) == 0
    record = json.loads((demo["work"] / "run-log.jsonl").read_text().splitlines()[-1])
    assert record["outcome"].startswith("failed")


def test_dry_run_writes_no_vendor_file_and_no_ledger(demo: dict[str, Path]) -> None:
    code, out, err = _run("run", str(demo["fall"]), "--dry-run")
    assert code == 0, err
    assert "dry run" in out and "sent by email" in out
    assert not any(p.suffix == ".csv" for p in demo["exports"].rglob("*")) if demo["exports"].exists() else True
    assert _ledger_rows(demo["ledger"]) == 0


def test_run_without_sources_is_a_clear_error(tmp_path: Path) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "version: 1\ncode: WINTER-NOTE\naudience: {all: {flu-vaccine: due}}\nchannels: [email]\n"
        "vendors: {email: {profile: braze, fields: [first_name]}}\n"
    )
    code, _, err = _run("run", str(campaign))
    assert code == 1
    assert "key `sources` is required" in err


def test_demo_command_small(tmp_path: Path) -> None:
    code, out, err = _run("demo", "--out", str(tmp_path / "d"), "--patients", "300")
    assert code == 0, err
    assert "SPRING-OUTREACH" in out and "FALL-OUTREACH" in out
    assert len(list((tmp_path / "d" / "exports" / "spring").glob("manifest-SPRING-OUTREACH-*.json"))) == 1
    assert len(list((tmp_path / "d" / "exports" / "fall").glob("manifest-FALL-OUTREACH-*.json"))) == 1


def test_forced_reruns_write_identical_bytes(demo: dict[str, Path]) -> None:
    """Enrich and evaluate run again on the same inputs write the same bytes (reuse and
    delivery checks compare content, so a reordered row or a last-bit float would look like new inputs)."""
    assert _run("run", str(demo["spring"]))[0] == 0
    work = demo["work"]
    names = ("enriched.parquet", "eligibility.parquet")
    reference = demo["root"] / "world" / "reference"
    seen = []
    for _ in range(3):
        assert _run("enrich", str(work), "--reference", str(reference))[0] == 0
        assert _run("evaluate", str(work), "--as-of", "2026-01-01")[0] == 0
        seen.append({n: (work / n).read_bytes() for n in names})
    assert seen[0] == seen[1] == seen[2]


def test_the_callers_settings_reach_every_stage(demo: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A campaign without `reference:`/`ledger:` runs on the caller's settings, not the environment's."""
    import yaml

    from segment.config import Settings
    from segment.pipeline import run_campaign

    data = yaml.safe_load(demo["spring"].read_text())
    del data["reference"], data["ledger"]
    campaign = demo["spring"].with_name("no-paths.yaml")
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SEGMENT_LEDGER", str(tmp_path / "env-ledger.sqlite"))
    monkeypatch.setenv("SEGMENT_REFERENCE", str(tmp_path / "no-such-pack"))
    settings = Settings(reference_dir=demo["root"] / "world" / "reference",
                        ledger_path=tmp_path / "caller-ledger.sqlite")
    result = run_campaign(campaign, settings=settings)
    assert result.outcome == "ok" and result.export["sent"] > 0
    assert _ledger_rows(tmp_path / "caller-ledger.sqlite") == result.export["sent"]
    assert not (tmp_path / "env-ledger.sqlite").exists()
    # a rerun reuses everything: the audit's key read the caller's ledger, not the environment's
    again = run_campaign(campaign, settings=settings)
    assert {s.name: s.status for s in again.stages}["audit"] == "reused"


def test_a_run_failing_in_export_keeps_the_audit_in_its_run_log(demo: dict[str, Path]) -> None:
    import yaml

    from segment.pipeline import run_campaign

    blocker = demo["root"] / "blocker"
    blocker.write_text("a file where the destination folder should be")
    data = yaml.safe_load(demo["fall"].read_text())
    data["destination"] = str(blocker / "out")
    demo["fall"].write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(Exception):  # noqa: B017 (whatever export raises, the run log must say what ran)
        run_campaign(demo["fall"])
    record = json.loads((demo["work"] / "run-log.jsonl").read_text().splitlines()[-1])
    audit = next(s for s in record["stages"] if s["stage"] == "audit")
    assert record["outcome"] == "failed in export" and audit["status"] == "ran"
    assert audit["counts"]["flags"] > 0 and record["audit_flags"] == audit["counts"]["flags"]
