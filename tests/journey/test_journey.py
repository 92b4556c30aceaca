"""A three-step journey over 30 nightly runs with changing extracts, a real ledger and real vendor files."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from segment.campaign import ContactLedger, load_campaign
from segment.campaign.feedback import import_feedback
from segment.errors import CampaignError
from segment.export import export_campaign
from tests.campaign.frames import eligibility, patients

START = dt.date(2025, 3, 3)
NIGHTS = 30
ALL = {"phone_e164": "+16175550101", "phone_type": "mobile", "sms_consent": True, "email_consent": True,
       "address_line1": "1 Main St", "city": "Boston", "state": "MA", "zip5": "02118"}


def journey_campaign(folder: Path, **over: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1, "code": "SPRING-TOUCH-2025", "audience": {"all": {"crc": "due"}},
        "channels": ["sms", "email", "mail"],
        "vendors": {"sms": {"profile": "twilio", "fields": ["first_name"]},
                    "email": {"profile": "braze", "fields": ["first_name"]},
                    "mail": {"profile": "mail", "fields": []}},
        "ledger": "ledger.sqlite",
        "frequency_caps": [{"per_days": 3, "max": 1}],
        "variants": [{"code": "V-BASE"},
                     {"code": "V-ES", "when": {"column": "language", "op": "eq", "value": "es"}}],
        "journey": {"steps": [{"day": 0, "channels": ["sms"]},
                              {"day": 7, "channels": ["email"], "variants": ["V-BASE"]},
                              {"day": 21, "channels": ["mail"]}]},
    }
    data.update(over)
    path = folder / "journey.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def people(night: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The extract of one night: P001 completes on day 10, P004 joins on day 15."""
    rows = [
        {**ALL, "email": "a@example.org", "language": "es"},
        {**ALL, "email": "b@example.org", "phone_e164": "+16175550102"},
        {**ALL, "email": "c@example.org", "phone_e164": "+16175550103"},
        {**ALL, "email": "d@example.org", "phone_e164": "+16175550104"},
        {**ALL, "email": "e@example.org", "phone_e164": None, "sms_consent": None},  # no SMS: starts by email
    ]
    status = ["not_due" if night >= 10 else "due", "due", "due", "due", "due"]
    frame = patients(*rows)
    elig = [(f"P00{i + 1}", "crc", s) for i, s in enumerate(status)]
    if night < 15:  # P004 is not in the extract before day 15
        frame = frame.filter(pl.col("patient_id") != "P004")
        elig = [e for e in elig if e[0] != "P004"]
    return frame, eligibility(elig)


def run_nights(tmp_path: Path, campaign: Path, nights: int = NIGHTS,
               hook: Any = None) -> list[Any]:
    work, dest = tmp_path / "work", tmp_path / "out"
    work.mkdir(exist_ok=True)
    results = []
    for night in range(nights):
        day = START + dt.timedelta(days=night)
        frame, elig = people(night)
        frame.collect().write_parquet(work / "enriched.parquet")
        elig.collect().write_parquet(work / "eligibility.parquet")
        if hook is not None:
            hook(night, day)
        results.append(export_campaign(campaign, work, dest, as_of=day,
                                       now=dt.datetime.combine(day, dt.time(9, 0), tzinfo=dt.UTC)))
    return results


def contacts(ledger: Path) -> list[tuple[str, str, int, str, str]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(
            "SELECT patient_id, channel, step, variant, substr(sent_at, 1, 10) FROM contacts "
            "WHERE campaign_code = 'SPRING-TOUCH-2025' ORDER BY patient_id, sent_at").fetchall()


def test_thirty_nights(tmp_path: Path) -> None:
    campaign = journey_campaign(tmp_path)
    ledger = ContactLedger(tmp_path / "ledger.sqlite")

    def hook(night: int, day: dt.date) -> None:
        if night == 3:  # P002 replied STOP to the first text
            log = tmp_path / "twilio.csv"
            log.write_text(
                "Sid,From,To,Body,Status,SentDate,ApiVersion,NumSegments,ErrorCode,AccountSid,Direction\n"
                f"SM9,+16175550102,+18005550000,STOP,received,{START}T20:00:00Z,2010-04-01,1,,AC1,inbound\n",
                encoding="utf-8")
            assert import_feedback(log, "twilio", ledger).outcomes == {"opted_out": 1}
        if night == 6:  # another campaign emailed P003 on day 6: the cap (1 in 3 days) delays step 2
            ledger.record(pl.DataFrame({"patient_id": ["P003"], "channel": ["email"]}), campaign_code="OTHER-2025",
                          run_id="other", sent_at=dt.datetime.combine(day, dt.time(15, 0), tzinfo=dt.UTC))

    run_nights(tmp_path, campaign, hook=hook)
    d = {n: (START + dt.timedelta(days=n)).isoformat() for n in range(40)}
    assert contacts(ledger.path) == [
        ("P001", "sms", 1, "V-ES", d[0]),      # Spanish: V-ES on step 1
        ("P001", "email", 2, "V-BASE", d[7]),  # step 2 allows V-BASE only
        ("P002", "sms", 1, "V-BASE", d[0]),    # opted out on day 3: no more steps
        ("P003", "sms", 1, "V-BASE", d[0]),
        # due day 7; the other campaign's email at 15:00 UTC on day 6 caps email until 15:00 on day 9, after the
        # 14:00 UTC send of day 9: sent on day 10
        ("P003", "email", 2, "V-BASE", d[10]),
        ("P003", "mail", 3, "V-BASE", d[21]),
        ("P004", "sms", 1, "V-BASE", d[15]),   # joined on day 15: starts at step 1
        ("P004", "email", 2, "V-BASE", d[22]),
        ("P005", "email", 2, "V-BASE", d[0]),  # no SMS: first step that reaches them, today
        ("P005", "mail", 3, "V-BASE", d[14]),  # day 0 is day 0 - 7, so step 3 falls on day 14
    ]
    with sqlite3.connect(ledger.path) as conn:
        exits = conn.execute("SELECT patient_id, reason, step, substr(exited_at, 1, 10) FROM journey_exits "
                             "ORDER BY patient_id").fetchall()
    assert exits == [("P001", "left_audience", 2, d[10]), ("P002", "opted_out", 1, d[3])]
    # quiet hours on every step: each SMS file's send time is 10:00 New York
    sms = sorted((tmp_path / "out").glob("SPRING-TOUCH-2025_sms_*.csv"))
    assert len(sms) == 2  # night 0 and night 15
    for f in sms:
        frame = pl.read_csv(f, infer_schema=False)
        assert frame["send_after_utc"].str.contains("T14:00:00").all() or frame["send_after_utc"].str.contains(
            "T15:00:00").all()
    emails = pl.concat([pl.read_csv(f, infer_schema=False) for f in (tmp_path / "out").glob("*_email_*.csv")])
    assert set(emails["variant_code"]) == {"V-BASE"}
    assert not any("crc" in c.lower() for c in emails.columns)


def test_status_counts(tmp_path: Path) -> None:
    from segment.campaign.journey_status import journey_status

    campaign = journey_campaign(tmp_path)
    run_nights(tmp_path, campaign, nights=23)
    frame, elig = people(22)
    status = journey_status(load_campaign(campaign), frame, elig, ContactLedger(tmp_path / "ledger.sqlite"),
                            START + dt.timedelta(days=23))
    # no opt-out and no other campaign here: P002 and P003 go through every step; P005 skips step 1 (no SMS)
    assert status.per_step == {1: 4, 2: 5, 3: 3}
    # P002, P003 (mail on day 21) and P005 (mail on day 14) completed; P001 left (screened on day 10);
    # P004 (joined day 15, email on day 22) waits for day 36
    assert status.states == {"completed": 3, "left_audience": 1, "waiting": 1}
    assert status.due_tonight == {}


@pytest.mark.parametrize(("journey", "text"), [
    ({"steps": [{"day": 0, "channels": ["fax"]}]}, "`journey.steps[0].channels[0]`: found 'fax'"),
    ({"steps": [{"day": 0, "channels": ["phone"]}]}, "valid options are: sms, email, mail"),
    ({"steps": [{"day": 2, "channels": ["sms"]}]}, "0 (the first touch)"),
    ({"steps": [{"day": 0, "channels": ["sms"]}, {"day": 0, "channels": ["email"]}]}, "days in increasing order"),
    ({"steps": [{"day": 0, "channels": ["sms"]}, {"day": 2, "channels": ["sms"]}]},
     "frequency_caps[0] allows 1 sms contact(s) in 3 days"),
    ({"steps": [{"day": 0, "channels": ["sms"], "variants": ["V-NOPE"]}]}, "valid options are: V-BASE, V-ES"),
])
def test_bad_journeys_refused_before_data(tmp_path: Path, journey: dict[str, Any], text: str) -> None:
    with pytest.raises(CampaignError) as err:
        load_campaign(journey_campaign(tmp_path, journey=journey))
    assert text in str(err.value)
    assert "journey.yaml:" in str(err.value)
