"""AuditStage: the stage contract of the audit (key, outputs, reuse) and the settings' ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from segment.audit import AuditStage
from segment.campaign import load_campaign
from segment.campaign.ledger import ContactLedger
from segment.config import Settings
from segment.stage import StageContext, execute

from .test_integration import _workdir

AS_OF = dt.date(2025, 6, 1)
CAPS = "frequency_caps:\n  - {per_days: 30, max: 1}\n"


def _capped_campaign(tmp_path: Path) -> tuple[Path, Path]:
    campaign, work = _workdir(tmp_path)
    campaign.write_text(campaign.read_text() + CAPS, encoding="utf-8")
    return campaign, work


def _ledger(path: Path, ids: list[str]) -> ContactLedger:
    led = ContactLedger(path)
    led.record(pl.DataFrame({"patient_id": ids, "channel": ["sms"] * len(ids)}), campaign_code="AUDIT-TEST-01",
               run_id="earlier", sent_at=dt.datetime(2025, 5, 30, 14, tzinfo=dt.UTC))
    return led


def _white_selected(document: dict) -> int:
    race = next(d for d in document["dimensions"] if d["name"] == "race")
    return next(g for g in race["groups"] if g["group"] == "White")["funnel"]["selected"]


def test_the_settings_ledger_caps_the_audit(tmp_path: Path) -> None:
    """A campaign without `ledger:` reads the caps from the context's settings (not the environment)."""
    campaign_path, work = _capped_campaign(tmp_path)
    _ledger(tmp_path / "settings-ledger.sqlite", [f"P{i}" for i in range(20)])  # twenty White patients
    campaign = load_campaign(campaign_path)
    assert campaign.ledger is None
    stage = AuditStage(campaign)
    capped = execute(stage, StageContext(work, AS_OF, Settings.from_env(ledger_path=tmp_path / "settings-ledger.sqlite")))
    assert _white_selected(capped.document) == 25
    free = execute(stage, StageContext(work, AS_OF, Settings.from_env(ledger_path=tmp_path / "none.sqlite")))
    assert _white_selected(free.document) == 45
    assert not (tmp_path / "none.sqlite").exists()  # the audit never creates a ledger
    assert free.html_path == work / "audit.html" and free.json_path == work / "audit.json"


def test_a_run_writes_under_runs_and_its_key_follows_the_ledger(tmp_path: Path) -> None:
    campaign_path, work = _capped_campaign(tmp_path)
    ledger = tmp_path / "ledger.sqlite"
    ctx = StageContext(work, AS_OF, Settings.from_env(ledger_path=ledger), run_id="0123456789ab")
    stage = AuditStage(load_campaign(campaign_path))
    html, json_path = stage.outputs(ctx)
    assert (html, json_path) == (work / "runs" / "0123456789ab" / "audit.html",
                                 work / "runs" / "0123456789ab" / "audit.json")
    assert stage.inputs(ctx) == [work / "enriched.parquet", work / "eligibility.parquet"]
    assert stage.params(ctx) == {"run_id": "0123456789ab", "ledger": str(ledger.resolve()), "ledger_exists": False}
    no_ledger = stage.key(ctx)
    _ledger(ledger, ["P0"])
    assert ledger in stage.inputs(ctx) and stage.params(ctx)["ledger_exists"] is True
    one_contact = stage.key(ctx)
    _ledger(ledger, ["P1"])
    assert len({no_ledger, one_contact, stage.key(ctx)}) == 3  # the ledger's content is in the key
    assert stage.key(StageContext(work, AS_OF, ctx.settings, run_id="ba9876543210")) != stage.key(ctx)
    assert stage.reused(ctx) is None  # nothing written yet
    report = execute(stage, ctx)
    assert html.exists() and json_path.exists() and report.html_path == html
    assert stage.counts(report) == {"flags": len(report.flags), "batches": 1}
    assert stage.reused(ctx) == {"flags": len(report.flags)}
    json_path.write_text("{not json", encoding="utf-8")
    assert stage.reused(ctx) is None


@pytest.mark.parametrize(("content", "reused"), [
    ('{"flags": [{"group": "Black"}, {"group": "Asian"}]}', {"flags": 2}),
    ('{"flags": []}', {"flags": 0}),
    ("[]", None),  # not an audit document
    ('{"flags": 3}', None),
])
def test_reused_reads_the_flag_count(tmp_path: Path, content: str, reused: dict | None) -> None:
    campaign_path, work = _capped_campaign(tmp_path)
    ctx = StageContext(work, AS_OF, Settings.from_env(ledger_path=tmp_path / "l.sqlite"))
    stage = AuditStage(load_campaign(campaign_path), html=tmp_path / "out" / "a.html")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.json").write_text(content, encoding="utf-8")
    assert stage.reused(ctx) == reused
