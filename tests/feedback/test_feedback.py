"""Feedback import for every vendor from exports in their documented layouts; idempotency; caps; unsubscribes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.campaign.feedback import import_feedback
from segment.campaign.ledger import ContactLedger
from segment.cli import cli
from segment.errors import DeliveryError, InputDataError, PrivacyError
from segment.export import export_campaign
from tests.export.conftest import AS_OF, NOW, write_workdir
from tests.export.helpers import export_campaign_file

FIXTURES = Path(__file__).parent / "fixtures"
BRAZE_GROUP = "3f2c0c1e-0000-4000-8000-000000000001"


def _export(tmp_path: Path, work: Path, *, as_of: dt.date = AS_OF, now: dt.datetime = NOW,
            run: str = "run1", **campaign: object) -> tuple[Path, ContactLedger]:
    path = export_campaign_file(tmp_path / "c", **campaign)
    led = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    export_campaign(path, work, tmp_path / f"out-{run}", as_of=as_of, run_id=run, now=now)
    return path, led


def _rows(led: ContactLedger, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(led.path) as conn:
        return conn.execute(sql).fetchall()


def test_twilio_message_log_delivered_failed_stop_and_idempotent(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    _, led = _export(tmp_path, work)
    log = tmp_path / "twilio.csv"
    log.write_text(
        "Sid,From,To,Body,Status,SentDate,ApiVersion,NumSegments,ErrorCode,AccountSid,Direction\n"
        "SM01,+18005550000,+16175550101,Hi,delivered,2025-03-10T14:01:00Z,2010-04-01,1,,AC1,outbound-api\n"
        "SM02,+18005550000,+13105550102,Hi,undelivered,2025-03-10T15:01:00Z,2010-04-01,1,30006,AC1,outbound-api\n"
        "SM03,+16175550101,+18005550000,STOP,received,2025-03-10T16:00:00Z,2010-04-01,1,,AC1,inbound\n"
        "SM04,+18005550000,+19995550000,Hi,delivered,2025-03-10T14:01:00Z,2010-04-01,1,,AC1,outbound-api\n"
        "SM04,+18005550000,+19995550000,Hi,delivered,2025-03-10T14:01:00Z,2010-04-01,1,,AC1,outbound-api\n",
        encoding="utf-8",
    )
    first = import_feedback(log, "twilio", led)
    assert (first.rows, first.recorded, first.duplicates, first.rejected) == (5, 3, 1, 1)
    assert first.outcomes == {"delivered": 1, "failed": 1, "opted_out": 1}
    assert first.suppressed == 2  # the landline (30006) and the STOP
    rejects = pl.read_csv(first.rejects_path)  # type: ignore[arg-type]
    assert rejects.rows() == [(5, "no contact in the ledger for this vendor id (and campaign) sent before the event")]
    again = import_feedback(log, "twilio", led)
    assert (again.recorded, again.already_imported) == (0, 3)
    assert _rows(led, "SELECT COUNT(*) FROM feedback") == [(3,)]
    assert sorted(led.blocked().rows()) == [("P001", "sms"), ("P003", "sms")]
    # a later START undoes the STOP; the landline stays suppressed
    start = tmp_path / "start.csv"
    start.write_text("Sid,From,To,Body,Status,SentDate,ErrorCode,Direction\n"
                     "SM05,+16175550101,+18005550000,START,received,2025-03-11T09:00:00Z,,inbound\n")
    import_feedback(start, "twilio", led)
    assert led.blocked().rows() == [("P003", "sms")]


def test_failed_messages_do_not_count_against_caps(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    caps = [{"per_days": 7, "max": 1}]
    path, led = _export(tmp_path, work, frequency_caps=caps)
    day2 = dt.date(2025, 3, 11)
    plan = export_campaign(path, work, tmp_path / "dry", as_of=day2, dry_run=True, now=NOW)
    # P001's SMS counts: they fall back to email; the other three are capped
    assert (plan.sent, plan.removed["frequency_capped"]) == ({"sms": 0, "email": 1}, 3)
    log = tmp_path / "twilio.csv"
    log.write_text("Sid,To,Status,SentDate,ErrorCode\nSM1,+16175550101,failed,2025-03-10T14:01:00Z,30008\n")
    assert import_feedback(log, "twilio", led).recorded == 1
    plan = export_campaign(path, work, tmp_path / "dry", as_of=day2, dry_run=True, now=NOW)
    # the failed SMS no longer counts (30008 is temporary: not suppressed), so P001 gets SMS again
    assert (plan.sent, plan.removed["frequency_capped"]) == ({"sms": 1, "email": 0}, 3)


def test_braze_currents_bounce_and_unsubscribe(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    vendors = {"sms": {"profile": "braze", "fields": ["first_name"], "options": {"subscription_group_id": BRAZE_GROUP}},
               "email": {"profile": "braze", "fields": ["first_name"]}}
    _, led = _export(tmp_path, work, vendors=vendors)
    f = tmp_path / "braze.csv"
    f.write_text(
        "event_type,id,time,external_user_id,campaign_name,email_address\n"
        "users.messages.email.Delivery,e1,1741618000,P005,SPRING-OUTREACH-2025,eve@example.org\n"
        "users.messages.email.Bounce,e2,1741618001,P002,SPRING-OUTREACH-2025,bo@example.org\n"
        "users.messages.sms.Delivery,e3,1741618002,P001,Spring push,\n"
        "users.messages.email.Click,e4,1741618003,P404,SPRING-OUTREACH-2025,x@example.org\n",
        encoding="utf-8",
    )
    r = import_feedback(f, "braze", led)
    assert r.outcomes == {"bounced": 1, "delivered": 2}
    assert r.rejected == 1
    assert led.blocked().rows() == [("P002", "email")]


def test_mailchimp_unsubscribed_and_cleaned(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    _, led = _export(tmp_path, work)
    unsub = tmp_path / "unsubscribed_members.csv"
    unsub.write_text("Email Address,First Name,MEMBER_RATING,OPTIN_TIME,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,"
                     "UNSUB_REASON\nEVE@example.org,Eve,2,,2025-03-12 08:00:00,Spring,NO_LONGER_INTERESTED\n")
    cleaned = tmp_path / "cleaned_members.csv"
    cleaned.write_text("Email Address,First Name,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE\n"
                       "bo@example.org,Bo,2025-03-11 08:00:00,Spring\n")
    assert import_feedback(unsub, "mailchimp", led).outcomes == {"opted_out": 1}
    assert import_feedback(cleaned, "mailchimp", led).outcomes == {"bounced": 1}
    assert sorted(led.blocked().rows()) == [("P002", "email"), ("P005", "email")]


def test_sfmc_tracking_extract_bounces(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    vendors = {"sms": {"profile": "twilio", "fields": ["first_name"]},
               "email": {"profile": "sfmc", "fields": ["first_name"]}}
    _, led = _export(tmp_path, work, vendors=vendors)
    f = tmp_path / "Bounces.csv"
    key = b"P002".hex()
    f.write_text(
        "ClientID,SendID,SubscriberKey,EmailAddress,SubscriberID,ListID,EventDate,EventType,BounceCategory,"
        "SMTPCode,BounceReason,BatchID,TriggeredSendExternalKey\n"
        f"1,10,{key},bo@example.org,5,6,3/10/2025 10:15:00 AM,HardBounce,Hard bounce,550,no such user,1,\n"
        f"1,10,{b'P005'.hex()},eve@example.org,5,6,3/10/2025 10:16:00 AM,SoftBounce,Soft bounce,452,"
        "mailbox full,1,\n",
        encoding="utf-8",
    )
    r = import_feedback(f, "sfmc", led)
    assert r.outcomes == {"bounced": 1, "failed": 1}
    assert _rows(led, "SELECT patient_id, outcome, code FROM feedback ORDER BY patient_id") == [
        ("P002", "bounced", "550"), ("P005", "failed", "452")]
    assert led.blocked().rows() == [("P002", "email")]


def test_sendgrid_bounces_and_activity(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    vendors = {"sms": {"profile": "twilio", "fields": ["first_name"]},
               "email": {"profile": "sendgrid", "fields": ["first_name"]}}
    _, led = _export(tmp_path, work, vendors=vendors,
                     baa=[{"vendor": "sendgrid", "signed": True, "note": "test fixture"}])
    bounces = tmp_path / "bounces.csv"
    bounces.write_text("email,created,reason,status\nbo@example.org,1741618000,550 5.1.1 unknown,5.1.1\n")
    activity = tmp_path / "activity.csv"
    activity.write_text("email,event,timestamp,sg_message_id\neve@example.org,delivered,1741618000,m1\n"
                        "eve@example.org,click,1741619000,m1\n")
    assert import_feedback(bounces, "sendgrid", led).outcomes == {"bounced": 1}
    assert import_feedback(activity, "sendgrid", led).outcomes == {"clicked": 1, "delivered": 1}


def test_bad_feedback_files(tmp_path: Path) -> None:
    led = ContactLedger(tmp_path / "ledger.sqlite")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("Email Address,UNSUB_TIME\nzo\xeb@example.org,2025-03-12\n".encode("latin-1"))
    with pytest.raises(InputDataError, match="not UTF-8 text"):
        import_feedback(latin, "mailchimp", led)
    odd = tmp_path / "odd.csv"
    odd.write_text("phone,when\n+1,2025\n")
    with pytest.raises(InputDataError, match="match no twilio export layout; valid options are: message log"):
        import_feedback(odd, "twilio", led)


def test_unsubscribe_files_follow_consent_changes(tmp_path: Path) -> None:
    vendors = {"sms": {"profile": "braze", "fields": ["first_name"], "options": {"subscription_group_id": BRAZE_GROUP}},
               "email": {"profile": "braze", "fields": ["first_name"]}}
    work = write_workdir(tmp_path / "work")
    path, _ = _export(tmp_path, work, vendors=vendors)
    # run 2: P001 revokes SMS consent and P005 is marked do-not-contact
    pts = pl.read_parquet(work / "enriched.parquet").with_columns(
        pl.when(pl.col("patient_id") == "P001").then(False).otherwise(pl.col("sms_consent")).alias("sms_consent"),
        (pl.col("patient_id") == "P005").alias("do_not_contact"),
    )
    pts.write_parquet(work / "enriched.parquet")
    day2, now2 = dt.date(2025, 3, 20), dt.datetime(2025, 3, 20, 9, tzinfo=dt.UTC)
    r2 = export_campaign(path, work, tmp_path / "out2", as_of=day2, run_id="run2", now=now2)
    unsub = {f.channel: f for f in r2.files if f.name.endswith("_unsubscribe.csv")}
    sms = (tmp_path / "out2" / unsub["sms"].name).read_text()
    assert sms == f"external_id,subscription_group_id,subscription_state\nP001,{BRAZE_GROUP},unsubscribed\n"
    email = (tmp_path / "out2" / unsub["email"].name).read_text()
    assert email == "external_id,email_subscribe\nP005,unsubscribed\n"
    # run 3: nobody new opted out, so no unsubscribe file is sent again
    day3, now3 = dt.date(2025, 3, 30), dt.datetime(2025, 3, 30, 9, tzinfo=dt.UTC)
    r3 = export_campaign(path, work, tmp_path / "out3", as_of=day3, run_id="run3", now=now3)
    assert not [f for f in r3.files if f.name.endswith("_unsubscribe.csv")]
    assert r3.manifest["unsubscribes"] == {}


def test_mailchimp_refused_for_a_clinical_audience_without_baa(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    path = export_campaign_file(tmp_path / "c", baa=[])
    with pytest.raises(PrivacyError, match="mailchimp does not offer a business associate agreement"):
        export_campaign(path, work, tmp_path / "out", as_of=AS_OF, now=NOW)
    assert not (tmp_path / "out").exists()
    signed_false = export_campaign_file(tmp_path / "d", baa={"vendor": "mailchimp", "signed": False})
    with pytest.raises(PrivacyError, match="signed: false"):
        export_campaign(signed_false, work, tmp_path / "out", as_of=AS_OF, now=NOW)


def test_twilio_window_and_past_as_of(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    path = export_campaign_file(tmp_path / "c")
    # 40 days ahead of the clock: beyond Twilio's 35 days
    with pytest.raises(DeliveryError, match=r"more than 35 days after now .*error 35115"):
        export_campaign(path, work, tmp_path / "o1", as_of=dt.date(2025, 4, 19), now=NOW)
    # a past as-of date sends from now (inside the quiet hours), not in the past
    late = dt.datetime(2025, 6, 2, 16, 30, tzinfo=dt.UTC)
    r = export_campaign(path, work, tmp_path / "o2", as_of=AS_OF, now=late)
    assert r.manifest["schedule"]["sms_sent_from_utc"] == "2025-06-02T16:37:00Z"
    body = (tmp_path / "o2" / next(f.name for f in r.files if f.channel == "sms")).read_text()
    assert "2025-06-02T16:37:00Z" in body and "2025-03-10" not in body
    # --dry-run may plan in the past
    dry = export_campaign(path, work, tmp_path / "o3", as_of=AS_OF, now=late, dry_run=True)
    assert dry.manifest["schedule"]["sms_sent_from_utc"] is None


def test_cli_feedback_import(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    _, led = _export(tmp_path, work)
    log = tmp_path / "t.csv"
    log.write_text("Sid,To,Status,SentDate,ErrorCode\nSM1,+16175550101,delivered,2025-03-10T14:01:00Z,\n")
    res = CliRunner().invoke(cli, ["feedback", "import", str(log), "--vendor", "twilio", "--ledger", str(led.path)])
    assert res.exit_code == 0, res.output
    assert "recorded" in res.output
    bad = CliRunner().invoke(cli, ["feedback", "import", str(log), "--vendor", "nope", "--ledger", str(led.path)])
    assert bad.exit_code == 2
