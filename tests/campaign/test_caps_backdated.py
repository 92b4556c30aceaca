"""Item 5: frequency caps count every recorded contact, including ones dated after the run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from segment.campaign import ContactLedger, plan_contacts
from segment.campaign.quiet_hours import planned_send_utc
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

UTC = dt.UTC


def _history(*days_after: float, planned: dt.datetime) -> pl.DataFrame:
    return pl.DataFrame({
        "patient_id": [f"P{i + 1:03d}" for i in range(len(days_after))],
        "campaign_code": ["OTHER"] * len(days_after),
        "channel": ["sms"] * len(days_after),
        "run_id": [f"r{i}" for i in range(len(days_after))],
        "sent_at": [planned + dt.timedelta(days=d) for d in days_after],
    })


def test_later_contacts_count_against_a_backdated_plan(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, frequency_caps=[{"per_days": 7, "max": 1}], channels=["sms"],
                      vendors={"sms": {"profile": "twilio"}})
    as_of = dt.date(2025, 3, 3)
    planned = planned_send_utc(as_of, c.schedule)
    # P001 was contacted 3 days after this run's date, P002 6.9 days before, P003 7 days after
    hist = _history(3, -6.9, 7, planned=planned)
    pts = patients(*({"phone_e164": f"+1617555012{i}", "sms_consent": True} for i in range(3)))
    out = plan_contacts(c, pts, due(3), hist, as_of).collect()
    assert out.get_column("contact_status").to_list() == ["frequency_capped", "frequency_capped", "selected"]


def test_reservations_of_a_delivery_in_progress_count(tmp_path: Path) -> None:
    from segment.campaign.ledger import Delivery

    ledger = ContactLedger(tmp_path / "l.sqlite")
    at = dt.datetime(2025, 3, 10, 14, tzinfo=UTC)
    with ledger.immediate() as tx:
        tx.begin_delivery(
            Delivery("d1", "OTHER", "r1", "k", "/out", "intent", {}, "now", "now"),
            pl.DataFrame({"patient_id": ["P001"], "channel": ["sms"], "file_name": ["f.csv"]}),
            sent_at=at,
        )
    assert ledger.count() == 0  # not a contact yet...
    hist = ledger.history(at - dt.timedelta(days=7))
    assert hist.select("patient_id", "channel").rows() == [("P001", "sms")]  # ...but caps see it
    assert ledger.latest_contact() == (at, "OTHER", "r1")
    assert ledger.latest_contact(exclude_run_id="r1") is None
