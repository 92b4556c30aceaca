"""Frequency caps against the SQLite ledger, and quiet-hour send times across zones and DST."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import polars as pl

from segment.campaign import ContactLedger, plan_contacts
from segment.campaign.model import Schedule
from segment.campaign.quiet_hours import earliest_send, planned_send_utc
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

UTC = dt.UTC


def selected(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("contact_status") == "selected").select("patient_id", "channel")


def test_cap_across_two_campaigns_on_consecutive_days(tmp_path: Path) -> None:
    ledger = ContactLedger(tmp_path / "ledger" / "contacts.sqlite")
    caps = [{"per_days": 7, "max": 1}, {"per_days": 30, "max": 4}]
    spring = make_campaign(tmp_path, "a.yaml", frequency_caps=caps)
    fall = make_campaign(
        tmp_path, "b.yaml", code="FALL-OUTREACH-2025", frequency_caps=caps,
        channels=["sms", "email"],
    )
    pts = patients(
        {"phone_e164": "+16175550123", "sms_consent": True,
         "email": "a@example.org", "email_consent": True},
        {"phone_e164": "+16175550124", "sms_consent": True},
        {"email": "c@example.org", "email_consent": True},
    )
    day1 = dt.date(2025, 3, 10)
    first = plan_contacts(spring, pts, due(3), ledger, day1, run_id="run-a").collect()
    sent = selected(first)
    assert sent.rows() == [("P001", "sms"), ("P002", "sms"), ("P003", "email")]
    ledger.record(sent, campaign_code=spring.code, run_id="run-a",
                  sent_at=planned_send_utc(day1, spring.schedule))
    assert stat.S_IMODE(os.stat(ledger.path).st_mode) == 0o600

    # next day, another campaign: SMS is capped for P001/P002; P001 falls back to email
    second = plan_contacts(fall, pts, due(3), ledger, day1 + dt.timedelta(days=1), run_id="run-b").collect()
    got = {r["patient_id"]: (r["contact_status"], r["channel"]) for r in second.iter_rows(named=True)}
    assert got == {
        "P001": ("selected", "email"),
        "P002": ("frequency_capped", None),
        "P003": ("frequency_capped", None),
    }
    # a week later the 7-day window has passed
    later = plan_contacts(fall, pts, due(3), ledger, day1 + dt.timedelta(days=7), run_id="run-c").collect()
    assert later.filter(pl.col("contact_status") == "selected").height == 3
    # rerunning the same run id ignores its own rows (same files again)
    again = plan_contacts(spring, pts, due(3), ledger, day1, run_id="run-a").collect()
    assert selected(again).rows() == sent.rows()


def test_thirty_day_cap_counts_four(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, frequency_caps=[{"per_days": 30, "max": 4}], channels=["sms"],
                      vendors={"sms": {"profile": "twilio"}})
    as_of = dt.date(2025, 3, 31)
    hist = pl.DataFrame({
        "patient_id": ["P001"] * 4 + ["P002"] * 4,
        "campaign_code": ["X"] * 8,
        "channel": ["sms"] * 8,
        "run_id": [f"r{i}" for i in range(8)],
        # P001: four within 30 days; P002: one of the four is 31 days before the send
        "sent_at": [dt.datetime(2025, 3, d, 14, tzinfo=UTC) for d in (2, 9, 16, 23)]
        + [dt.datetime(2025, 2, 28, 14, tzinfo=UTC)] + [dt.datetime(2025, 3, d, 14, tzinfo=UTC) for d in (9, 16, 23)],
    })
    pts = patients({"phone_e164": "+16175550123", "sms_consent": True},
                   {"phone_e164": "+16175550124", "sms_consent": True})
    out = plan_contacts(c, pts, due(2), hist, as_of).collect()
    assert out.get_column("contact_status").to_list() == ["frequency_capped", "selected"]


def test_ledger_record_is_idempotent_per_run(tmp_path: Path) -> None:
    ledger = ContactLedger(tmp_path / "l.sqlite")
    rows = pl.DataFrame({"patient_id": ["P1", "P2"], "channel": ["sms", "email"]})
    at = dt.datetime(2025, 3, 10, 14, tzinfo=UTC)
    assert ledger.record(rows, campaign_code="C", run_id="r1", sent_at=at) == 2
    assert ledger.record(rows, campaign_code="C", run_id="r1", sent_at=at) == 0
    assert ledger.count("C") == 2
    hist = ledger.history(at - dt.timedelta(days=1))
    assert hist.schema["sent_at"] == pl.Datetime("us", "UTC")
    assert hist.get_column("sent_at").to_list() == [at, at]


def test_earliest_send_across_zones() -> None:
    # planned 10:00 New York on 2025-03-10 (EDT, UTC-4) = 14:00 UTC
    planned = planned_send_utc(dt.date(2025, 3, 10), Schedule())
    assert planned == dt.datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
    start, end = dt.time(8), dt.time(21)
    # Los Angeles: 07:00 PDT -> wait until 08:00 PDT = 15:00 UTC
    assert earliest_send(planned, "America/Los_Angeles", start, end) == dt.datetime(2025, 3, 10, 15, tzinfo=UTC)
    # Honolulu (no DST, UTC-10): 04:00 -> 08:00 HST = 18:00 UTC
    assert earliest_send(planned, "Pacific/Honolulu", start, end) == dt.datetime(2025, 3, 10, 18, tzinfo=UTC)
    # Chicago: 09:00 CDT, inside the window
    assert earliest_send(planned, "America/Chicago", start, end) == planned
    # Guam (UTC+10): 00:00 next day -> 08:00 that day = 22:00 UTC on the 10th
    assert earliest_send(planned, "Pacific/Guam", start, end) == dt.datetime(2025, 3, 10, 22, tzinfo=UTC)


def test_earliest_send_across_dst_changes() -> None:
    start, end = dt.time(8), dt.time(21)
    # Planned 22:00 New York the evening before spring-forward (EST, UTC-5):
    # next allowed is 08:00 on 2025-03-09, which is EDT (UTC-4) = 12:00 UTC, not 13:00
    planned = dt.datetime(2025, 3, 9, 3, 0, tzinfo=UTC)  # 22:00 EST on the 8th
    assert earliest_send(planned, "America/New_York", start, end) == dt.datetime(2025, 3, 9, 12, tzinfo=UTC)
    # and the evening before fall-back: 08:00 EST on 2025-11-02 = 13:00 UTC
    planned = dt.datetime(2025, 11, 2, 4, 30, tzinfo=UTC)  # 00:30 EDT on Nov 2
    assert earliest_send(planned, "America/New_York", start, end) == dt.datetime(2025, 11, 2, 13, tzinfo=UTC)
    # Phoenix keeps MST all year: 21:30 MST on Nov 1 -> 08:00 MST = 15:00 UTC
    assert earliest_send(planned, "America/Phoenix", start, end) == dt.datetime(2025, 11, 2, 15, tzinfo=UTC)


def test_plan_rows_carry_zone_and_send_time(tmp_path: Path) -> None:
    c = make_campaign(
        tmp_path, channels=["sms"], vendors={"sms": {"profile": "twilio"}},
        quiet_hours={"start": "08:00", "end": "21:00", "states": {"FL": {"start": "09:00", "end": "20:00"}}},
        schedule={"send_at": "07:30", "timezone": "America/New_York"},
    )
    sms = {"sms_consent": True, "phone_e164": "+16175550123"}
    pts = patients(
        {**sms, "lat": 42.36, "lon": -71.06, "state": "MA"},              # Boston point
        {**sms, "lat": 34.05, "lon": -118.24, "state": "CA"},             # Los Angeles point
        {**sms, "lat": None, "lon": None, "phone_e164": "+13105550123", "state": None,
         "zip5": None},                                                    # LA area code only
        {**sms, "lat": 25.76, "lon": -80.19, "state": "FL"},              # Miami: stricter FL window
        {**sms, "lat": None, "lon": None, "phone_e164": "+447700900123", "state": "AZ"},  # UK mobile, AZ state
    )
    out = plan_contacts(c, pts, due(5), None, dt.date(2025, 3, 10)).collect()
    got = {r["patient_id"]: (r["timezone"], r["timezone_source"], r["send_after_utc"]) for r in out.iter_rows(named=True)}
    assert got["P001"] == ("America/New_York", "point", dt.datetime(2025, 3, 10, 12, tzinfo=UTC))
    assert got["P002"] == ("America/Los_Angeles", "point", dt.datetime(2025, 3, 10, 15, tzinfo=UTC))
    assert got["P003"] == ("America/Los_Angeles", "area_code", dt.datetime(2025, 3, 10, 15, tzinfo=UTC))
    assert got["P004"] == ("America/New_York", "point", dt.datetime(2025, 3, 10, 13, tzinfo=UTC))
    # no point; the UK number maps to several zones, so the state decides
    assert got["P005"] == ("America/Phoenix", "state", dt.datetime(2025, 3, 10, 15, tzinfo=UTC))
