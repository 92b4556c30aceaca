"""The fast paths of plan_contacts give the plan the slow paths gave.

``timing=False`` (the audit's plan) changes nothing but the time-zone columns; membership
flags (suppression, feedback, caps, audience) match what joins gave, also for unsorted
patients and duplicated suppression entries; time zones are looked up for the rows that
need them only and land on the right rows; the ledger's history is read in bulk.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from segment.campaign import ContactLedger, plan_contacts
from segment.campaign.ledger import HISTORY_SCHEMA
from segment.campaign.quiet_hours import add_timezones
from segment.campaign.suppression import Suppression
from tests.campaign.frames import eligibility, patients
from tests.campaign.helpers import make_campaign

UTC = dt.UTC
AS_OF = dt.date(2025, 3, 10)
TIME_COLUMNS = ("timezone", "timezone_source", "send_after_utc")


def _people(n: int, seed: int = 7) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``n`` patients with a mix of phones, emails, consents, states and points, shuffled."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "phone_e164": rng.choice([None, f"+1617555{i:04d}", f"+1808555{i:04d}", "not a phone"]),
            "phone_type": rng.choice([None, "mobile", "landline", "unknown"]),
            "sms_consent": rng.choice([None, True, False]),
            "email": rng.choice([None, f"P{i}@Example.org ", "bad"]),
            "email_consent": rng.choice([None, True]),
            "state": rng.choice(["MA", "HI", "TX", None]),
            "zip5": rng.choice(["02118", "96813", "79901", None]),
            "lat": rng.choice([42.34, 21.31, None]),
            "lon": rng.choice([-71.07, -157.86, None]),
            "do_not_contact": rng.random() < 0.05,
        })
    pts = patients(*rows).collect().sample(fraction=1.0, shuffle=True, seed=seed)  # not sorted by id
    status = [rng.choice(["due", "not_due"]) for _ in range(n)]
    elig = eligibility([(f"P{i + 1:03d}", "crc", status[i]) for i in range(n)])
    return pts.lazy(), elig


def _ledger(tmp_path: Path, n: int) -> ContactLedger:
    ledger = ContactLedger(tmp_path / "ledger.sqlite")
    earlier = pl.DataFrame({"patient_id": [f"P{i + 1:03d}" for i in range(0, n, 3)], "channel": "sms"})
    ledger.record(earlier, campaign_code="OTHER", run_id="r0", sent_at=dt.datetime(2025, 3, 7, 15, tzinfo=UTC))
    again = pl.DataFrame({"patient_id": [f"P{i + 1:03d}" for i in range(1, n, 5)], "channel": "email"})
    ledger.record(again, campaign_code="SPRING-OUTREACH-2025", run_id="r1",
                  sent_at=dt.datetime(2025, 2, 1, 15, tzinfo=UTC))
    return ledger


def test_untimed_plan_differs_only_in_the_time_columns(tmp_path: Path) -> None:
    pts, elig = _people(300)
    c = make_campaign(tmp_path, frequency_caps=[{"per_days": 7, "max": 1}, {"per_days": 60, "max": 1}])
    ledger = _ledger(tmp_path, 300)
    timed = plan_contacts(c, pts, elig, ledger, AS_OF).collect()
    untimed = plan_contacts(c, pts, elig, ledger, AS_OF, timing=False).collect()
    assert (timed.get_column("channel") == "sms").sum() > 5  # the test has SMS rows to time
    assert timed.get_column("timezone").drop_nulls().len() > 0
    assert_frame_equal(untimed.drop(TIME_COLUMNS), timed.drop(TIME_COLUMNS))
    assert untimed.select(pl.col(TIME_COLUMNS).null_count()).row(0) == (300, 300, 300)
    assert untimed.schema == timed.schema
    assert untimed.get_column("patient_id").is_sorted()
    # caps and earlier sends were seen: some of each
    assert untimed.get_column("frequency_capped").sum() > 0
    assert untimed.get_column("already_sent").sum() > 0


def test_sorted_and_shuffled_patients_give_the_same_plan(tmp_path: Path) -> None:
    pts, elig = _people(200, seed=3)
    c = make_campaign(tmp_path, frequency_caps=[{"per_days": 7, "max": 1}])
    ledger = _ledger(tmp_path, 200)
    shuffled = plan_contacts(c, pts, elig, ledger, AS_OF).collect()
    ordered = plan_contacts(c, pts.sort("patient_id"), elig, ledger, AS_OF).collect()
    assert_frame_equal(shuffled, ordered)


def test_duplicated_suppression_entries_suppress_without_duplicating_patients(tmp_path: Path) -> None:
    pts = patients(
        {"phone_e164": "+16175550123", "sms_consent": True, "phone_type": "mobile"},
        {"email": "b@example.org", "email_consent": True},
        {"phone_e164": "+16175550125", "sms_consent": True, "phone_type": "mobile"},
    )
    twice = pl.DataFrame({"value": ["+16175550123", "+16175550123"]})
    sup = Suppression(emails=pl.DataFrame({"value": ["b@example.org", "b@example.org"]}),
                      sms_phones=twice, phones=pl.DataFrame(schema={"value": pl.String}),
                      patient_ids=pl.DataFrame({"value": ["P003", "P003"]}))
    c = make_campaign(tmp_path)
    plan = plan_contacts(c, pts, eligibility([(f"P00{i}", "crc", "due") for i in (1, 2, 3)]), None, AS_OF,
                         suppression=sup).collect()
    assert plan.height == 3
    assert plan.get_column("contact_status").cast(pl.String).to_list() == ["suppressed"] * 3
    assert plan.get_column("suppressed").to_list() == [True, True, True]


def test_blocked_feedback_suppresses_only_its_channel(tmp_path: Path) -> None:
    both = {"phone_e164": "+16175550123", "sms_consent": True, "phone_type": "mobile",
            "email": "a@example.org", "email_consent": True}
    pts = patients(both, both | {"phone_e164": "+16175550124", "email": "b@example.org"})
    blocked = pl.DataFrame({"patient_id": ["P001"], "channel": ["sms"]})
    c = make_campaign(tmp_path)
    plan = plan_contacts(c, pts, eligibility([("P001", "crc", "due"), ("P002", "crc", "due")]), None, AS_OF,
                         blocked=blocked).collect()
    assert plan.select("patient_id", pl.col("channel").cast(pl.String)).rows() == [("P001", "email"),
                                                                                    ("P002", "sms")]


def test_time_zones_land_on_the_rows_that_need_them_in_order() -> None:
    frame = pl.DataFrame({
        "id": [5, 3, 9, 1],
        "lat": [21.31, None, 42.34, 21.31],
        "lon": [-157.86, None, -71.07, -157.86],
        "phone_e164": ["+16175550123", None, None, "+16175550123"],
        "state": ["HI", "TX", "MA", "HI"],
        "zip5": ["96813", "79901", "02118", "96813"],
        "needs": [True, True, False, None],
    })
    out = add_timezones(frame.lazy(), pl.col("needs"), "America/New_York").collect()
    assert out.get_column("id").to_list() == [5, 3, 9, 1]  # the frame's order is kept
    assert out.select("timezone", "timezone_source").rows() == [
        ("Pacific/Honolulu", "point"), ("America/Chicago", "state"), (None, None), (None, None)]
    assert out.get_column("timezone_candidates").to_list() == [
        "Pacific/Honolulu,America/New_York", "America/Chicago,America/Denver", None, None]
    assert out.columns == [*frame.columns, "timezone", "timezone_source", "timezone_candidates"]


def test_history_read_in_bulk_has_every_row_and_the_schema(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 40)
    hist = ledger.history(dt.datetime(2025, 3, 1, tzinfo=UTC), "SPRING-OUTREACH-2025")
    assert dict(hist.schema) == HISTORY_SCHEMA
    assert hist.height == len(range(0, 40, 3)) + len(range(1, 40, 5))
    assert sorted(hist.get_column("run_id").unique().to_list()) == ["r0", "r1"]
    none = ContactLedger(tmp_path / "empty.sqlite").history(None)
    assert none.height == 0
    assert dict(none.schema) == HISTORY_SCHEMA


def test_audience_is_the_same_whatever_the_order_of_eligibility_rows(tmp_path: Path) -> None:
    n = 240
    rng = random.Random(11)
    pts = patients(*[{"email": f"p{i}@example.org", "email_consent": True} for i in range(n)])
    rows = [(f"P{i + 1:03d}", rule, rng.choice(["due", "not_due", "excluded"]))
            for rule in ("crc", "flu", "bcs") for i in range(n)]
    aligned = eligibility(rows)                                               # one row per patient, in order
    scattered = aligned.collect().sample(fraction=1.0, shuffle=True, seed=1).lazy()
    partial = eligibility([r for r in rows if r[0] != "P007"])               # a patient without rows
    audiences = [
        {"all": {"crc": "due"}},
        {"all": {"crc": "due", "flu": ["due", "not_due"]}},
        {"any": {"flu": "due", "bcs": "due"}},
        {"all": {"crc": ["due", "excluded"]}, "any": {"crc": "not_due", "flu": "due"}},
    ]
    for i, audience in enumerate(audiences):
        c = make_campaign(tmp_path, f"c{i}.yaml", audience=audience, channels=["email"],
                          vendors={"email": {"profile": "mailchimp"}})
        side = plan_contacts(c, pts, aligned, None, AS_OF, timing=False).collect()
        grouped = plan_contacts(c, pts, scattered, None, AS_OF, timing=False).collect()
        assert_frame_equal(side, grouped)
        assert 0 < side.get_column("in_audience").sum() < n
        missing = plan_contacts(c, pts, partial, None, AS_OF, timing=False).collect()
        assert not missing.filter(pl.col("patient_id") == "P007").get_column("in_audience").item()
