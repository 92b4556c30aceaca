"""Recipient time zones and the earliest allowed SMS send time (quiet hours).

The TCPA and state laws count quiet hours in the called party's location, so every
place the person may be is a candidate zone: the geocoded point (``timezonefinder``,
offline, over distinct points rounded to 0.01 degree, about 1 km), the address state's
predominant zone, the ZIP code's zone (its three-digit prefix), and the phone's area
code (``phonenumbers.timezone``, over distinct numbers; only when the area code maps to
exactly one zone). ``timezone`` is the first known of these in that order (a mobile
number travels with its owner; an address does not), or the campaign's planning zone
when none is known. The send time must fall inside the window in *every* candidate
zone (a Hawaii resident with a Boston mobile is texted at 8 a.m. Hawaii time, not at
4 a.m.); when no instant satisfies them all, the window of ``timezone`` alone is used.
Send times are computed once per distinct (zones, state) combination with ``zoneinfo``,
so they are right across daylight-saving changes, and joined back.
"""

from __future__ import annotations

import atexit
import datetime as dt
import re
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import polars as pl
from phonenumbers import timezone as pn_timezone

from segment.campaign.model import QuietHours, Schedule
from segment.errors import CampaignError

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

#: three-digit ZIP prefixes -> state (USPS; military and unassigned prefixes left out)
_ZIP3_RANGES: tuple[tuple[int, int, str], ...] = (
    (5, 5, "NY"), (6, 7, "PR"), (8, 8, "VI"), (9, 9, "PR"), (10, 27, "MA"), (28, 29, "RI"),
    (30, 38, "NH"), (39, 49, "ME"), (50, 54, "VT"), (55, 55, "MA"), (56, 59, "VT"),
    (60, 69, "CT"), (70, 89, "NJ"), (100, 149, "NY"), (150, 196, "PA"), (197, 199, "DE"),
    (200, 200, "DC"), (201, 201, "VA"), (202, 205, "DC"), (206, 219, "MD"), (220, 246, "VA"),
    (247, 268, "WV"), (270, 289, "NC"), (290, 299, "SC"), (300, 319, "GA"), (320, 339, "FL"),
    (341, 349, "FL"), (350, 369, "AL"), (370, 385, "TN"), (386, 397, "MS"), (398, 399, "GA"),
    (400, 427, "KY"), (430, 459, "OH"), (460, 479, "IN"), (480, 499, "MI"), (500, 528, "IA"),
    (530, 549, "WI"), (550, 567, "MN"), (569, 569, "DC"), (570, 577, "SD"), (580, 588, "ND"),
    (590, 599, "MT"), (600, 629, "IL"), (630, 658, "MO"), (660, 679, "KS"), (680, 693, "NE"),
    (700, 714, "LA"), (716, 729, "AR"), (730, 749, "OK"), (750, 799, "TX"), (800, 816, "CO"),
    (820, 831, "WY"), (832, 838, "ID"), (840, 847, "UT"), (850, 865, "AZ"), (870, 884, "NM"),
    (885, 885, "TX"), (889, 898, "NV"), (900, 961, "CA"), (967, 968, "HI"), (969, 969, "GU"),
    (970, 979, "OR"), (980, 994, "WA"), (995, 999, "AK"),
)

#: prefixes whose zone is not their state's predominant one
_ZIP3_ZONES: dict[int, str] = {
    **dict.fromkeys((324, 325), "America/Chicago"),                  # Florida panhandle
    **dict.fromkeys((420, 421, 422, 423, 424), "America/Chicago"),   # western Kentucky
    **dict.fromkeys((373, 374, 376, 377, 378, 379), "America/New_York"),  # eastern Tennessee
    **dict.fromkeys((463, 464, 476, 477), "America/Chicago"),         # Gary, Evansville
    **dict.fromkeys((798, 799, 885), "America/Denver"),              # El Paso
    **dict.fromkeys((835, 838), "America/Los_Angeles"),              # northern Idaho
    577: "America/Denver",                                            # western South Dakota
    693: "America/Denver",                                            # western Nebraska
    979: "America/Boise",                                             # eastern Oregon
}


def zip3_zones() -> pl.DataFrame:
    """``_zip3`` (three digits) -> ``_tz_zip`` for every assigned prefix."""
    rows = [
        (f"{n:03d}", _ZIP3_ZONES.get(n, STATE_ZONES[state]))
        for lo, hi, state in _ZIP3_RANGES
        for n in range(lo, hi + 1)
    ]
    return pl.DataFrame(rows, schema={"_zip3": pl.String, "_tz_zip": pl.String}, orient="row")


#: candidate zones in the order that picks ``timezone``, with the source each is named by
_ORDER = (("_tz_point", "point"), ("_tz_state", "state"), ("_tz_zip", "zip"), ("_tz_phone", "area_code"))

#: the columns a send time depends on (join keys between a plan and :func:`send_times`)
SEND_KEYS = ("timezone", "state", "timezone_candidates")
#: optional personal texting hours (``'HH:MM:SS'`` text, from a preferences file) that narrow the window
PERSONAL_KEYS = ("text_after", "text_before")

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


#: a North American (NANP) number in E.164: country code 1 and ten national digits
_NANP_E164 = re.compile(r"^\+1(\d{10})$")


def _zone_for_phone(number: str) -> str | None:
    nanp = _NANP_E164.match(number)
    if nanp is not None:
        # what `parse` returns for it, without parsing (about 40% of the look-up's time)
        parsed = phonenumbers.PhoneNumber(country_code=1, national_number=int(nanp.group(1)))
    else:
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return None
    return zone_of_number(parsed)


def zone_of_number(parsed: phonenumbers.PhoneNumber) -> str | None:
    """The one time zone of a parsed number, or None (unknown, or several)."""
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


def earliest_send_all(
    planned_utc: dt.datetime, zones: list[str], start: dt.time, end: dt.time
) -> dt.datetime | None:
    """The earliest instant at/after ``planned_utc`` inside ``start``-``end`` in every zone.

    None when the windows never overlap (zones more than a window's length apart).
    The answer is ``planned_utc`` or some zone's window start, so only those are tried.
    """
    if start >= end:  # an empty window: refuse to guess
        raise ValueError("empty quiet-hours window")
    tzs = [ZoneInfo(z) for z in dict.fromkeys(zones)]

    def inside(instant: dt.datetime) -> bool:
        return all(start <= instant.astimezone(tz).time() < end for tz in tzs)

    if inside(planned_utc):
        return planned_utc
    starts = sorted(
        at for tz in tzs for days in range(3)
        if (at := dt.datetime.combine(
            planned_utc.astimezone(tz).date() + dt.timedelta(days=days), start, tzinfo=tz
        ).astimezone(dt.UTC)) > planned_utc
    )
    return next((at for at in starts if inside(at)), None)


def send_times(
    zones_states: pl.DataFrame, quiet: QuietHours, planned_utc: dt.datetime
) -> pl.DataFrame:
    """Distinct :data:`SEND_KEYS` -> ``send_after_utc``.

    The window is the campaign's, narrowed by the address state's; it must hold in every
    zone of ``timezone_candidates`` (comma-separated; absent: ``timezone`` alone), else
    in ``timezone`` alone.
    """
    keys = [k for k in (*SEND_KEYS, *PERSONAL_KEYS) if k in zones_states.columns]
    combos = zones_states.select(keys).unique().drop_nulls("timezone")
    rows = []
    for row in combos.iter_rows(named=True):  # distinct combinations: a few dozen at most
        zone, state = row["timezone"], row.get("state")
        start, end = window_for(quiet, state)
        if row.get("text_after"):
            start = max(start, dt.time.fromisoformat(row["text_after"]))
        if row.get("text_before"):
            end = min(end, dt.time.fromisoformat(row["text_before"]))
        if start >= end and (row.get("text_after") or row.get("text_before")):
            start, end = window_for(quiet, state)  # only when a state window leaves no personal time
        if start >= end:  # only from a campaign built in code: the loader refuses it
            raise CampaignError(
                f"key `quiet_hours.states.{state}`: the window leaves no time inside the campaign's "
                f"window {quiet.start:%H:%M}-{quiet.end:%H:%M}",
                key=f"quiet_hours.states.{state}",
            )
        candidates = (row.get("timezone_candidates") or zone).split(",")
        at = earliest_send_all(planned_utc, [zone, *candidates], start, end)
        rows.append((*row.values(), at or earliest_send(planned_utc, zone, start, end)))
    schema: dict[str, pl.DataType | type[pl.DataType]] = dict.fromkeys(keys, pl.String)
    schema["send_after_utc"] = pl.Datetime("us", "UTC")
    return pl.DataFrame(rows, schema=schema, orient="row")


def add_timezones(
    frame: pl.LazyFrame, needs: pl.Expr, fallback_zone: str
) -> pl.LazyFrame:
    """Add ``timezone``, ``timezone_source`` and ``timezone_candidates`` where ``needs`` is true.

    The frame needs ``phone_e164`` and ``state``; ``lat``/``lon`` and ``zip5`` are used
    when present. ``timezone_candidates`` lists every known zone, comma-separated, in
    the order point, state, ZIP, area code (the campaign's zone when none is known).
    Zones are looked up for the rows that need them only (SMS and phone rows are a small
    part of a plan) and joined back by row position; other rows get nulls.
    """
    schema = frame.collect_schema()
    indexed = frame.with_row_index("_tz_row")
    wanted = [c for c in ("phone_e164", "state", "lat", "lon", "zip5") if c in schema]
    subset = indexed.filter(needs.fill_null(False)).select("_tz_row", *wanted).collect()
    zones = _zones(subset, schema, fallback_zone)
    return indexed.join(zones.lazy(), on="_tz_row", how="left", maintain_order="left").drop("_tz_row")


def _zones(rows: pl.DataFrame, schema: pl.Schema, fallback_zone: str) -> pl.DataFrame:
    """``_tz_row`` plus the three zone columns for rows that need a zone (see :func:`add_timezones`)."""
    base = rows.lazy()
    if "lat" in schema and "lon" in schema:
        base = base.with_columns(
            pl.col("lat").cast(pl.Float64).round(_ROUND).alias("_lat2"),
            pl.col("lon").cast(pl.Float64).round(_ROUND).alias("_lon2"),
        )
        pts = point_zones(base.select("_lat2", "_lon2").collect())
        base = base.join(pts.lazy(), on=["_lat2", "_lon2"], how="left", nulls_equal=False)
    else:
        base = base.with_columns(pl.lit(None, pl.String).alias("_tz_point"))
    base = base.join(phone_zones(rows.select("phone_e164")).lazy(), on="phone_e164", how="left")
    states = pl.DataFrame(
        {"state": list(STATE_ZONES), "_tz_state": list(STATE_ZONES.values())}
    ).lazy()
    base = base.join(states, on="state", how="left")
    if "zip5" in schema:
        zip3 = pl.col("zip5").cast(pl.String).str.extract(r"^(\d{3})\d{2}(?:-?\d{4})?$", 1)
        base = base.with_columns(zip3.alias("_zip3")).join(zip3_zones().lazy(), on="_zip3", how="left")
    else:
        base = base.with_columns(pl.lit(None, pl.String).alias("_tz_zip"))
    zone: Any = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    source: Any = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for column, name in _ORDER:
        zone = zone.when(pl.col(column).is_not_null()).then(pl.col(column))
        source = source.when(pl.col(column).is_not_null()).then(pl.lit(name))
    known = pl.concat_list([pl.col(c) for c, _ in _ORDER]).list.drop_nulls().list.unique(maintain_order=True)
    candidates = pl.when(known.list.len() == 0).then(pl.lit(fallback_zone)).otherwise(known.list.join(","))
    return base.select(
        "_tz_row",
        zone.otherwise(pl.lit(fallback_zone)).alias("timezone"),
        source.otherwise(pl.lit("campaign")).alias("timezone_source"),
        candidates.alias("timezone_candidates"),
    ).collect()
