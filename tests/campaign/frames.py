"""Tiny inline frames for campaign and export tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from segment.schema import PATIENT_SCHEMA

DEFAULTS: dict[str, Any] = {
    "source_ids": [],
    "first_name": "Ana",
    "last_name": "Silva",
    "birth_date": dt.date(1965, 6, 1),
    "sex": "F",
    "race_source": None,
    "ethnicity_source": None,
    "address_line1": "1 Main St",
    "address_line2": None,
    "city": "Boston",
    "state": "MA",
    "zip5": "02118",
    "email": None,
    "phone_e164": None,
    "phone_type": None,
    "language": "en",
    "race": None,
    "ethnicity": None,
    "email_consent": None,
    "sms_consent": None,
    "do_not_contact": False,
    "deceased_date": None,
    "preferred_channel": None,
}

EXTRA_SCHEMA: dict[str, Any] = {
    "lat": pl.Float64, "lon": pl.Float64, "county_fips": pl.String, "need_index_quintile": pl.Int8,
}


def patients(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Patients with every PATIENT_SCHEMA column, plus lat/lon/county/need quintile."""
    full = []
    for i, row in enumerate(rows):
        base = {**DEFAULTS, "patient_id": f"P{i + 1:03d}", "lat": 42.34, "lon": -71.07,
                "county_fips": "25025", "need_index_quintile": 3}
        base.update(row)
        full.append(base)
    schema = {**PATIENT_SCHEMA, **EXTRA_SCHEMA}
    return pl.DataFrame(
        {k: [r[k] for r in full] for k in schema}, schema=schema
    ).lazy()


def eligibility(rows: list[tuple[str, str, str]], version: str = "1") -> pl.LazyFrame:
    """(patient_id, rule_id, status) rows."""
    return pl.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "rule_id": [r[1] for r in rows],
            "rule_version": [version] * len(rows),
            "status": [r[2] for r in rows],
            "reason": ["reason text"] * len(rows),
            "evidence_date": [None] * len(rows),
        },
        schema={"patient_id": pl.String, "rule_id": pl.String, "rule_version": pl.String,
                "status": pl.String, "reason": pl.String, "evidence_date": pl.Date},
    ).lazy()


def due(n: int, rule: str = "crc") -> pl.LazyFrame:
    """Patients P001..Pn all due for ``rule``."""
    return eligibility([(f"P{i + 1:03d}", rule, "due") for i in range(n)])
