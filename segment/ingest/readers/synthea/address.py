"""Splitting the 2017 Synthea ADDRESS, which holds the whole address in one string.

Synthea exports of 2017 have no CITY, STATE or ZIP column: ADDRESS reads
``786 Ena Rest Apt. 656 Ashland MA 01721 US`` (street, unit, city, 2-letter state, ZIP,
country). Each DISTINCT string is split in three steps, the first that succeeds wins:

1. ``shape``: Synthea writes the street as ``NUMBER NAME SUFFIX [Apt.|Suite|Unit N]``
   (one name word and a street suffix, java-faker's), so the street is those words, the
   city what lies between them and the state. Checked against the 3.x exports, where
   the same addresses come in separate columns: every ``ADDRESS CITY ST ZIP US`` string
   rebuilt from them splits back exactly.
2. ``usaddress``: any other string goes to the ``usaddress`` CRF parser (as
   :mod:`segment.addresses.parse` uses it), once per distinct string: the street is the
   tokens before the place name, the city the place name, state and ZIP its tags.
3. otherwise the split failed: the whole string is kept as ``address_line1``, city,
   state and ZIP stay empty, and the reader records a field-level problem
   (:data:`UNSPLIT_REASON`) so the row is counted, not silently degraded.
"""

from __future__ import annotations

import re

import polars as pl
import usaddress

from segment.addresses.pub28 import DIRECTIONALS, STREET_TYPES

UNSPLIT_REASON = "whole address not split into street, city, state and ZIP (kept as the street line)"

#: street suffixes of Synthea's (java-faker) street names that USPS Publication 28 lacks
_FAKER_SUFFIXES = (
    "APPROACH", "BAY", "BYWAY", "ESPLANADE", "FRONTAGE ROAD", "GATE", "HIGHLANDS", "PARADE",
    "PATHWAY", "PROMENADE", "QUAY", "VALE", "WYND",
)
_SUFFIXES = sorted({*STREET_TYPES, *_FAKER_SUFFIXES}, key=len, reverse=True)
#: a unit: the designator is a word of its own ("Ste 4", "Ste. 4", "#4"), so a city such as
#: "Stea" is not read as "Ste A"
_UNIT = r"(?:(?:APT|STE)\.\s*|(?:APT|APARTMENT|SUITE|STE|UNIT)\s+|#\s*)[A-Z0-9-]+"
_TAIL = r"\s+(?P<state>[A-Z]{2})\s+(?P<zip>\d{5})(?:-?\d{4})?(?:\s+(?:US|USA))?$"
#: NUMBER NAME SUFFIX [UNIT] CITY ST ZIP [US] (a directional NAME is refused after the match)
SHAPE = (
    r"(?i)^(?P<street>\d+[A-Z]?\s+(?P<name>\S+)\s+(?:"
    + "|".join(re.escape(s) for s in _SUFFIXES) + r")(?:\s+" + _UNIT + r")?)"
    r"\s+(?P<city>[A-Z].*?)" + _TAIL
)

SPLIT_DTYPE = pl.Struct({
    "street": pl.String, "city": pl.String, "state": pl.String, "zip": pl.String,
})
_STREET_TAGS = {
    "AddressNumber", "AddressNumberPrefix", "AddressNumberSuffix", "StreetNamePreDirectional",
    "StreetNamePreModifier", "StreetNamePreType", "StreetName", "StreetNamePostType",
    "StreetNamePostDirectional", "StreetNamePostModifier", "OccupancyType", "OccupancyIdentifier",
    "SubaddressType", "SubaddressIdentifier", "BuildingName", "LandmarkName", "USPSBoxType",
    "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID",
}


def _usaddress_one(text: str | None) -> dict[str, str | None]:
    empty: dict[str, str | None] = {"street": None, "city": None, "state": None, "zip": None}
    if not text:
        return empty
    try:
        tokens = usaddress.parse(text)
    except (usaddress.RepeatedLabelError, ValueError, IndexError):
        return empty
    street: list[str] = []
    city: list[str] = []
    state: list[str] = []
    zip5: list[str] = []
    for token, label in tokens:
        if label in _STREET_TAGS and not city:
            street.append(token)
        elif label == "PlaceName":
            city.append(token)
        elif label == "StateName":
            state.append(token)
        elif label == "ZipCode":
            zip5.append(token)
    if not (street and city and state):
        return empty
    return {
        "street": " ".join(street).strip(" ,"),
        "city": " ".join(city).strip(" ,"),
        "state": " ".join(state).strip(" ,"),
        "zip": " ".join(zip5).strip(" ,") or None,
    }


def _usaddress_batch(texts: pl.Series) -> pl.Series:
    """usaddress over a Series of DISTINCT strings (the CRF parser has no vectorized form)."""
    return pl.Series([_usaddress_one(v) for v in texts.to_list()], dtype=SPLIT_DTYPE)


def split_whole_addresses(addresses: pl.LazyFrame, column: str = "ADDRESS") -> pl.DataFrame:
    """``column`` (distinct whole-address strings) -> ``street, city, state, zip, method``.

    ``method`` is ``shape``, ``usaddress``, or null where the split failed (then street is
    the whole string and city, state and zip are null).
    """
    distinct = addresses.select(pl.col(column)).unique().drop_nulls().with_columns(
        pl.col(column).str.strip_chars().str.replace_all(r"\s+", " ").alias("_text")
    )
    shaped = distinct.with_columns(pl.col("_text").str.extract_groups(SHAPE).alias("_m")).unnest("_m")
    fits = pl.col("street").is_not_null() & ~pl.col("name").str.to_uppercase().is_in(list(DIRECTIONALS))
    fast = shaped.filter(fits).select(
        column, "street", "city", "state", "zip", pl.lit("shape").alias("method")
    )
    slow = shaped.filter(~fits).select(
        column, "_text",
        pl.col("_text").map_batches(_usaddress_batch, return_dtype=SPLIT_DTYPE).alias("_u"),
    ).unnest("_u").select(
        column,
        pl.coalesce("street", "_text").alias("street"),
        "city", "state", "zip",
        pl.when(pl.col("city").is_not_null()).then(pl.lit("usaddress")).alias("method"),
    )
    return pl.concat([fast, slow], how="vertical").collect()
