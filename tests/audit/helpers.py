"""Tiny inline frames for audit tests: cohorts of identical patients."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

AS_OF = dt.date(2025, 6, 1)

ENRICHED_DEFAULTS: dict[str, Any] = {
    "race": "White",
    "ethnicity": "Not Hispanic",
    "sex": "F",
    "birth_date": dt.date(1970, 1, 1),
    "language": "en",
    "need_index_quintile": 3,
    "rurality": "Urban",
    "geo_precision": "address_point",
    "sdoh_source": "tract",
    "county_fips": "25025",
}
CONTACT_DEFAULTS: dict[str, Any] = {
    "in_audience": True,
    "reachable_sms": True,
    "reachable_email": True,
    "reachable_mail": True,
    "reachable_phone": False,
    "contact_status": "selected",
}


def cohorts(*specs: tuple[int, dict[str, Any]]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(enriched, contacts) for cohorts of ``n`` identical patients each."""
    enriched: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    pid = 0
    for n, overrides in specs:
        for _ in range(n):
            pid += 1
            e = {"patient_id": f"P{pid:05d}", **ENRICHED_DEFAULTS}
            c = {"patient_id": f"P{pid:05d}", **CONTACT_DEFAULTS}
            for key, value in overrides.items():
                (c if key in CONTACT_DEFAULTS else e)[key] = value
            enriched.append(e)
            contacts.append(c)
    e_frame = pl.DataFrame(enriched).with_columns(
        pl.col("need_index_quintile").cast(pl.Int8), pl.col("birth_date").cast(pl.Date)
    )
    return e_frame.lazy(), pl.DataFrame(contacts).lazy()
