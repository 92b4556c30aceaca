"""Recipient time zones and the earliest allowed SMS send time (quiet hours).

Time zone, in order: the geocoded point (``timezonefinder``, offline, over distinct
points rounded to 0.01 degree, about 1 km), the phone's area code
(``phonenumbers.timezone``, over distinct numbers; only when the area code maps to
exactly one zone), the state's predominant zone, and last the campaign's planning
zone. Send times are computed once per distinct (zone, state) pair with ``zoneinfo``,
so they are right across daylight-saving changes, and joined back.
"""

from __future__ import annotations

import atexit
import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo

import phonenumbers
import polars as pl
from phonenumbers import timezone as pn_timezone

from segment.campaign.model import QuietHours, Schedule

#: predominant IANA zone per state (fallback when neither point nor area code tells)
STATE_ZONES: dict[str, str] = {
    "AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix",
    "AR": "America/Chicago", "CA": "America/Los_Angeles", "CO": "America/Denver",
    "CT": "America/New_York", "DE": "America/New_York", "DC": "America/New_York",
    "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
    "ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis",
    "IA": "America/Chicago", "KS": "America/Chicago", "KY": "America/New_York",
    "LA": "America/Chicago", "ME": "America/New_York", "MD": "America/New_York",
    "MA": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
    "MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver",
    "NE": "America/Chicago", "NV": "America/Los_Angeles", "NH": "America/New_York",
    "NJ": "America/New_York", "NM": "America/Denver", "NY": "America/New_York",
    "NC": "America/New_York", "ND": "America/Chicago", "OH": "America/New_York",
    "OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York",
    "RI": "America/New_York", "SC": "America/New_York", "SD": "America/Chicago",
    "TN": "America/Chicago", "TX": "America/Chicago", "UT": "America/Denver",
    "VT": "America/New_York", "VA": "America/New_York", "WA": "America/Los_Angeles",
    "WV": "America/New_York", "WI": "America/Chicago", "WY": "America/Denver",
    "PR": "America/Puerto_Rico", "VI": "America/St_Thomas", "GU": "Pacific/Guam",
}

_ROUND = 2


@cache
def _finder() -> object:
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


# Drop the finder before interpreter teardown: its __del__ needs modules that are gone by then.
atexit.register(_finder.cache_clear)


def _zone_at(point: dict[str, float | None]) -> str | None:
    lat, lon = point.get("lat"), point.get("lon")
    if lat is None or lon is None:
        return None
    zone = _finder().timezone_at(lng=lon, lat=lat)  # type: ignore[attr-defined]
    return zone if isinstance(zone, str) else None


def _zone_for_phone(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    # an area code spanning several zones tells nothing: fall through to the state
    return zones[0] if len(zones) == 1 else None


def point_zones(points: pl.DataFrame) -> pl.DataFrame:
    """``_lat2``, ``_lon2`` (rounded) -> ``_tz_point`` for distinct points."""
    distinct = points.select("_lat2", "_lon2").unique().drop_nulls()
    return distinct.with_columns(
        pl.struct(lat=pl.col("_lat2"), lon=pl.col("_lon2"))
        .map_elements(_zone_at, return_dtype=pl.String)
        .alias("_tz_point")
    )


def phone_zones(phones: pl.DataFrame) -> pl.DataFrame:
    """``phone_e164`` -> ``_tz_phone`` for distinct numbers."""
    distinct = phones.select("phone_e164").unique().drop_nulls()
    return distinct.with_columns(
        pl.col("phone_e164").map_elements(_zone_for_phone, return_dtype=pl.String).alias("_tz_phone")
    )


def planned_send_utc(as_of: dt.date, schedule: Schedule) -> dt.datetime:
    """The campaign's planned send instant: ``send_at`` on ``as_of`` in its zone, in UTC."""
    local = dt.datetime.combine(as_of, schedule.send_at, tzinfo=ZoneInfo(schedule.timezone))
    return local.astimezone(dt.UTC)


def window_for(quiet: QuietHours, state: str | None) -> tuple[dt.time, dt.time]:
    """The allowed local window for a state: the default narrowed by a state window."""
    start, end = quiet.start, quiet.end
    if state is not None and state in quiet.states:
        w = quiet.states[state]
        start, end = max(start, w.start), min(end, w.end)
    return start, end


def earliest_send(planned_utc: dt.datetime, zone: str, start: dt.time, end: dt.time) -> dt.datetime:
    """The earliest instant at/after ``planned_utc`` inside ``start``-``end`` local time in ``zone``."""
    tz = ZoneInfo(zone)
    local = planned_utc.astimezone(tz)
    if start <= local.time() < end:
        return planned_utc
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    if start >= end:  # an empty window: refuse to guess
        raise ValueError("empty quiet-hours window")
    return dt.datetime.combine(day, start, tzinfo=tz).astimezone(dt.UTC)


def send_times(
    zones_states: pl.DataFrame, quiet: QuietHours, planned_utc: dt.datetime
) -> pl.DataFrame:
    """``timezone``, ``state`` (distinct pairs) -> ``send_after_utc``."""
    pairs = zones_states.select("timezone", "state").unique().drop_nulls("timezone")
    rows = []
    for zone, state in pairs.iter_rows():  # distinct (zone, state) pairs: a few dozen at most
        start, end = window_for(quiet, state)
        rows.append((zone, state, earliest_send(planned_utc, zone, start, end)))
    return pl.DataFrame(
        rows,
        schema={"timezone": pl.String, "state": pl.String, "send_after_utc": pl.Datetime("us", "UTC")},
        orient="row",
    )


def add_timezones(
    frame: pl.LazyFrame, needs: pl.Expr, fallback_zone: str
) -> pl.LazyFrame:
    """Add ``timezone`` and ``timezone_source`` for rows where ``needs`` is true.

    The frame needs ``lat``, ``lon`` (may be absent: then point lookup is skipped),
    ``phone_e164`` and ``state``.
    """
    schema = frame.collect_schema()
    has_point = "lat" in schema and "lon" in schema
    base = frame.with_columns(needs.fill_null(False).alias("_needs_tz"))
    if has_point:
        base = base.with_columns(
            pl.col("lat").cast(pl.Float64).round(_ROUND).alias("_lat2"),
            pl.col("lon").cast(pl.Float64).round(_ROUND).alias("_lon2"),
        )
        pts = point_zones(base.filter("_needs_tz").select("_lat2", "_lon2").collect())
        base = base.join(pts.lazy(), on=["_lat2", "_lon2"], how="left", nulls_equal=False)
    else:
        base = base.with_columns(pl.lit(None, pl.String).alias("_tz_point"))
    phones = phone_zones(base.filter("_needs_tz").select("phone_e164").collect())
    base = base.join(phones.lazy(), on="phone_e164", how="left")
    states = pl.DataFrame(
        {"state": list(STATE_ZONES), "_tz_state": list(STATE_ZONES.values())}
    ).lazy()
    base = base.join(states, on="state", how="left")
    zone = (
        pl.when(~pl.col("_needs_tz")).then(pl.lit(None, pl.String))
        .when(pl.col("_tz_point").is_not_null()).then(pl.col("_tz_point"))
        .when(pl.col("_tz_phone").is_not_null()).then(pl.col("_tz_phone"))
        .when(pl.col("_tz_state").is_not_null()).then(pl.col("_tz_state"))
        .otherwise(pl.lit(fallback_zone))
    )
    source = (
        pl.when(~pl.col("_needs_tz")).then(pl.lit(None, pl.String))
        .when(pl.col("_tz_point").is_not_null()).then(pl.lit("point"))
        .when(pl.col("_tz_phone").is_not_null()).then(pl.lit("area_code"))
        .when(pl.col("_tz_state").is_not_null()).then(pl.lit("state"))
        .otherwise(pl.lit("campaign"))
    )
    drop = ["_needs_tz", "_tz_point", "_tz_phone", "_tz_state"]
    if has_point:
        drop += ["_lat2", "_lon2"]
    return base.with_columns(zone.alias("timezone"), source.alias("timezone_source")).drop(drop)
