"""The audit's reach section: delivered and failed by group, from vendor feedback in the ledger."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl

from segment.audit import audit_campaign
from segment.campaign.ledger import ContactLedger

from .test_integration import _workdir

SENT = dt.datetime(2025, 6, 1, 14, 0, tzinfo=dt.UTC)


def _feedback(led: ContactLedger, rows: list[tuple[str, str, str]]) -> None:
    """Vendor feedback rows (patient, run, outcome) as ``segment feedback import`` stores them."""
    with sqlite3.connect(led.path) as conn:
        conn.executemany(
            "INSERT INTO feedback (event_key, vendor, patient_id, campaign_code, channel, run_id, outcome, "
            "code, suppress, event_at, imported_at, source_file) VALUES (?, 'twilio', ?, 'AUDIT-TEST-01', "
            "'sms', ?, ?, NULL, 0, '2025-06-02T10:00:00Z', '2025-06-03T10:00:00Z', 'log.csv')",
            [(f"k{i}", pid, run, outcome) for i, (pid, run, outcome) in enumerate(rows)],
        )


def _ledger(tmp_path: Path, ids: list[str], run: str = "r1") -> ContactLedger:
    led = ContactLedger(tmp_path / "ledger.sqlite")
    led.record(pl.DataFrame({"patient_id": ids, "channel": ["sms"] * len(ids)}),
               campaign_code="AUDIT-TEST-01", run_id=run, sent_at=SENT)
    return led


def test_no_feedback_no_delivery_section(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    led = _ledger(tmp_path, [f"P{i}" for i in range(45)])
    assert led.delivery_outcomes("AUDIT-TEST-01") is None
    result = audit_campaign(campaign, work, ledger=led, run_id="r1")
    assert result.document["delivery"] is None
    assert "No vendor delivery feedback for this campaign yet" in result.html_path.read_text()  # type: ignore[union-attr]


def test_delivered_and_failed_by_group(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    # P0-P44 White (selected), P71-P90 Black with SMS (selected); see test_integration.COHORTS
    white = [f"P{i}" for i in range(45)]
    black = [f"P{i}" for i in range(71, 91)]
    led = _ledger(tmp_path, white + black)
    _ledger(tmp_path, white[:1], run="r2")  # a second contact, later reported delivered
    _feedback(
        led,
        [(p, "r1", "delivered") for p in white[:20]]
        + [(p, "r1", "clicked") for p in white[:3]]  # a click is a delivery, counted once
        + [(p, "r1", "failed") for p in white[20:32]]
        + [(white[0], "r1", "failed"), (white[0], "r2", "delivered")]  # delivered on one run: delivered
        + [(p, "r1", "bounced") for p in black],
    )
    result = audit_campaign(campaign, work, ledger=led, run_id="r1")
    delivery = result.document["delivery"]
    assert delivery["overall"] == {
        "sent": 65, "delivered": 20, "failed": 32, "unknown": 13,
        "delivered_rate": 20 / 65, "failed_rate": 32 / 65,
    }
    race = {g["group"]: g for g in next(d for d in delivery["dimensions"] if d["name"] == "race")["groups"]}
    assert race["White"] == {"group": "White", "sent": 45, "delivered": 20, "failed": 12, "unknown": 13,
                             "delivered_rate": 20 / 45, "failed_rate": 12 / 45}
    assert race["Black"] == {"group": "Black", "sent": 20, "delivered": 0, "failed": 20, "unknown": 0,
                             "delivered_rate": 0.0, "failed_rate": 1.0}
    html = result.html_path.read_text()  # type: ignore[union-attr]
    assert "Delivered and failed by group" in html
    assert "vendors reported 20 delivered (30.8%) and 32 failed or bounced (49.2%)" in html


def test_small_delivery_counts_are_suppressed(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    white = [f"P{i}" for i in range(45)]
    led = _ledger(tmp_path, white)
    _feedback(led, [(p, "r1", "delivered") for p in white[:40]] + [(p, "r1", "failed") for p in white[40:]])
    delivery = audit_campaign(campaign, work, ledger=led, run_id="r1").document["delivery"]
    race = {g["group"]: g for g in next(d for d in delivery["dimensions"] if d["name"] == "race")["groups"]}
    # 5 failed is hidden; delivered would give it away (45 - 40), so it is hidden too
    assert race["White"]["failed"] == "<11"
    assert race["White"]["delivered"] == "suppressed"
    assert race["White"]["failed_rate"] is None and race["White"]["delivered_rate"] is None
    assert delivery["overall"]["failed"] == "<11"
