"""Quiet hours follow the called party: point, then address state or ZIP, then area code.

The fault: with geocoding failed, the phone's area code was taken before the address
state, so a Hawaii resident with a Boston mobile was texted at 4 a.m. Hawaii time. Now
every known zone is a candidate and the send time must be allowed in all of them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.campaign import plan_contacts
from segment.campaign.model import QuietHours, Window
from segment.campaign.quiet_hours import add_timezones, earliest_send_all, send_times
from segment.errors import CampaignError
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

UTC = dt.UTC
AS_OF = dt.date(2025, 3, 10)  # EDT (UTC-4); Hawaii is UTC-10 all year
BOSTON_MOBILE = "+16175550123"
SMS = {"sms_consent": True, "phone_e164": BOSTON_MOBILE, "lat": None, "lon": None}


def _plan(tmp_path: Path, *rows: dict[str, Any], **campaign: Any) -> dict[str, tuple[Any, ...]]:
    campaign.setdefault("schedule", {"send_at": "10:00", "timezone": "America/New_York"})
    c = make_campaign(tmp_path, channels=["sms"], vendors={"sms": {"profile": "twilio"}}, **campaign)
    out = plan_contacts(c, patients(*rows), due(len(rows)), None, AS_OF).collect()
    return {
        r["patient_id"]: (r["timezone"], r["timezone_source"], r["send_after_utc"])
        for r in out.iter_rows(named=True)
    }


def test_hawaii_resident_with_boston_mobile_is_not_texted_at_4am(tmp_path: Path) -> None:
    got = _plan(tmp_path, {**SMS, "state": "HI", "zip5": "96813"})
    # 10:00 New York is 04:00 in Honolulu: wait for 08:00 HST (18:00 UTC, 14:00 in Boston)
    assert got["P001"] == ("Pacific/Honolulu", "state", dt.datetime(2025, 3, 10, 18, tzinfo=UTC))


def test_order_point_then_state_then_zip_then_area_code(tmp_path: Path) -> None:
    got = _plan(
        tmp_path,
        {**SMS, "lat": 21.31, "lon": -157.86, "state": "MA", "zip5": "02118"},   # Honolulu point
        {**SMS, "state": "HI", "zip5": "02118"},                                   # state before ZIP
        {**SMS, "state": None, "zip5": "96813"},                                   # ZIP before area code
        {**SMS, "state": None, "zip5": None},                                      # area code last
        {**SMS, "phone_e164": "+447700900123", "state": None, "zip5": None},       # nothing known
    )
    hawaii_8am = dt.datetime(2025, 3, 10, 18, tzinfo=UTC)
    assert got["P001"] == ("Pacific/Honolulu", "point", hawaii_8am)
    assert got["P002"] == ("Pacific/Honolulu", "state", hawaii_8am)
    assert got["P003"] == ("Pacific/Honolulu", "zip", hawaii_8am)
    assert got["P004"] == ("America/New_York", "area_code", dt.datetime(2025, 3, 10, 14, tzinfo=UTC))
    assert got["P005"] == ("America/New_York", "campaign", dt.datetime(2025, 3, 10, 14, tzinfo=UTC))


def test_disagreeing_candidates_take_the_window_allowed_in_all(tmp_path: Path) -> None:
    # a New Yorker with a Los Angeles mobile, at 20:30 New York: 17:30 in LA, allowed in both
    # with a 08:00-21:00 window; but a campaign ending at 18:00 must wait until the next day
    # at 08:00 in LA (11:00 in NY), the first instant inside both windows
    row = {**SMS, "phone_e164": "+13105550123", "state": "NY", "zip5": "10001"}
    c = make_campaign(tmp_path, channels=["sms"], vendors={"sms": {"profile": "twilio"}},
                      quiet_hours={"start": "08:00", "end": "18:00"},
                      schedule={"send_at": "17:30", "timezone": "America/New_York"})
    out = plan_contacts(c, patients(row), due(1), None, AS_OF).collect().row(0, named=True)
    assert (out["timezone"], out["timezone_source"]) == ("America/New_York", "state")
    # 17:30 EDT = 14:30 PDT: allowed in both
    assert out["send_after_utc"] == dt.datetime(2025, 3, 10, 21, 30, tzinfo=UTC)
    late = make_campaign(tmp_path, "late.yaml", channels=["sms"], vendors={"sms": {"profile": "twilio"}},
                         quiet_hours={"start": "08:00", "end": "18:00"},
                         schedule={"send_at": "07:00", "timezone": "America/New_York"})
    out = plan_contacts(late, patients(row), due(1), None, AS_OF).collect().row(0, named=True)
    # 07:00 EDT: not yet 08:00 in NY (12:00 UTC) nor in LA (15:00 UTC): the later one
    assert out["send_after_utc"] == dt.datetime(2025, 3, 10, 15, tzinfo=UTC)


def test_state_window_narrows_every_candidate_zone(tmp_path: Path) -> None:
    # Florida resident (09:00-20:00 by the campaign's FL window) with a Chicago mobile
    got = _plan(
        tmp_path, {**SMS, "phone_e164": "+13125550123", "state": "FL", "zip5": "33101"},
        quiet_hours={"start": "08:00", "end": "21:00", "states": {"FL": {"start": "09:00", "end": "20:00"}}},
        schedule={"send_at": "08:30", "timezone": "America/New_York"},
    )
    # 08:30 EDT is 07:30 CDT: wait for 09:00 CDT (14:00 UTC), which is 10:00 in Miami
    assert got["P001"] == ("America/New_York", "state", dt.datetime(2025, 3, 10, 14, tzinfo=UTC))


def test_windows_that_never_overlap_fall_back_to_the_first_zone() -> None:
    planned = dt.datetime(2025, 3, 10, 14, tzinfo=UTC)
    # 09:00-12:00 in Honolulu is 05:00-08:00 the next day in Guam: no common instant
    assert earliest_send_all(planned, ["Pacific/Honolulu", "Pacific/Guam"], dt.time(9), dt.time(12)) is None
    # one zone alone is the plain earliest send
    assert earliest_send_all(planned, ["Pacific/Honolulu"], dt.time(9), dt.time(12)) == dt.datetime(
        2025, 3, 10, 19, tzinfo=UTC)


def test_send_time_across_spring_forward_for_two_zones() -> None:
    # 22:00 EST on 8 March; next morning New York is on EDT, Phoenix stays on MST
    planned = dt.datetime(2025, 3, 9, 3, 0, tzinfo=UTC)
    got = earliest_send_all(planned, ["America/New_York", "America/Phoenix"], dt.time(8), dt.time(21))
    assert got == dt.datetime(2025, 3, 9, 15, tzinfo=UTC)  # 08:00 MST = 11:00 EDT


def test_candidates_column_lists_every_known_zone() -> None:
    frame = pl.DataFrame({
        "phone_e164": [BOSTON_MOBILE, BOSTON_MOBILE, None],
        "state": ["HI", "TX", None],
        "zip5": ["96813", "79901", None],   # El Paso is on Mountain time, unlike most of Texas
        "needs": [True, True, False],
    })
    out = add_timezones(frame.lazy(), pl.col("needs"), "America/New_York").collect()
    assert out.get_column("timezone_candidates").to_list() == [
        "Pacific/Honolulu,America/New_York",
        "America/Chicago,America/Denver,America/New_York",
        None,
    ]


def test_a_window_built_in_code_that_leaves_no_time_is_a_campaign_error() -> None:
    quiet = QuietHours(states={"FL": Window(start=dt.time(21, 30), end=dt.time(23))})
    pairs = pl.DataFrame({"timezone": ["America/New_York"], "state": ["FL"],
                          "timezone_candidates": ["America/New_York"]})
    with pytest.raises(CampaignError, match=r"quiet_hours\.states\.FL.*08:00-21:00"):
        send_times(pairs, quiet, dt.datetime(2025, 3, 10, 14, tzinfo=UTC))


def test_phone_zone_fast_path_answers_as_parsing_does() -> None:
    """North American numbers skip `phonenumbers.parse`; the zone must be the parsed one's."""
    import random

    import phonenumbers

    from segment.campaign.quiet_hours import _zone_for_phone, zone_of_number

    def parsed_zone(number: str) -> str | None:
        try:
            return zone_of_number(phonenumbers.parse(number, None))
        except phonenumbers.NumberParseException:
            return None

    rng = random.Random(7)
    numbers = ["+1" + str(rng.randrange(10**10)).zfill(10) for _ in range(3000)]
    numbers += ["+12125550100", "+13055550100", "+18085550100", "+19075550100", "+14165550100",
                "+18765550100", "+16175550100", "+1617555010", "+442079460000", "+33142685300", "+1"]
    zones = [_zone_for_phone(n) for n in numbers]
    assert zones == [parsed_zone(n) for n in numbers]
    assert len({z for z in zones if z}) >= 4  # several zones: New York, Chicago, Honolulu, Anchorage...
