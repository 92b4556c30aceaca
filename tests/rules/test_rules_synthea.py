"""Golden test: colorectal screening on the Synthea Massachusetts sample, checked by hand.

A small test-local adapter turns the Synthea CSVs into the canonical frames (the real
Synthea reader belongs to ingest): timestamps keep their date; procedures, encounters
and conditions are SNOMED, immunizations CVX, observations LOINC.

Hand check, as of 2024-01-01 (ages from patients.csv BIRTHDATE; events grepped from
procedures.csv / observations.csv for codes 73761001 colonoscopy, 104435004 and LOINC
57905-2 FOBT/FIT; no colorectal cancer, colectomy or hospice codes in this sample):

  319af005  1949-11-26  M  age 74  no screening               -> due
  9e886a7a  1955-06-22  F  age 68  no screening               -> due
  3a2fa41c  1963-06-14  F  age 60  colonoscopy 2023-06-14     -> not_due
  bdf24b75  1965-10-24  F  age 58  no screening               -> due
  bd9aaf62  1967-09-21  M  age 56  no screening               -> due
  1cd7cc0a  1968-09-25  M  age 55  colonoscopy + FIT 2023-09-27 -> not_due
  5f8d3e13  1971-05-16  M  age 52  no screening               -> due
  261ad2a4  1973-10-28  M  died 1976-07-25                    -> excluded
  c2d1b552  1973-10-28  M  died 2004-03-21                    -> excluded
  280ee8b5  1973-10-28  M  age 50  colonoscopy 2023-10-29     -> not_due
  38ddd8f0  1977-07-16  M  age 46  no screening               -> due
  d9c46e2f  1977-10-25  F  age 46  no screening               -> due
  the other 15 were born 1981-02-24 or later (age <= 42)      -> not_in_population
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from segment.rules import default_rules_dir, evaluate_frames, load_rules
from segment.rules.model import RuleSet
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA

from .helpers import D

TABLES = {
    "procedures.csv": ("procedure", "START", "SNOMED"),
    "encounters.csv": ("encounter", "START", "SNOMED"),
    "conditions.csv": ("condition", "START", "SNOMED"),
    "immunizations.csv": ("immunization", "DATE", "CVX"),
    "observations.csv": ("observation", "DATE", "LOINC"),
}


def synthea_frames(folder: Path) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    raw = pl.read_csv(folder / "patients.csv", infer_schema=False)
    pats = raw.select(
        pl.col("Id").alias("patient_id"),
        pl.col("BIRTHDATE").str.to_date().alias("birth_date"),
        pl.col("GENDER").alias("sex"),
        pl.col("DEATHDATE").str.to_date().alias("deceased_date"),
    )
    pats = pats.with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in PATIENT_SCHEMA.items() if c not in pats.columns]
    ).select(list(PATIENT_SCHEMA))
    parts = []
    for name, (kind, date_col, system) in TABLES.items():
        if not (folder / name).exists():
            continue
        t = pl.read_csv(folder / name, infer_schema=False)
        parts.append(t.select(
            pl.col("PATIENT").alias("patient_id"),
            pl.lit(kind).alias("event_type"),
            pl.lit(system).alias("code_system"),
            pl.col("CODE").alias("code"),
            pl.col(date_col).str.slice(0, 10).str.to_date().alias("event_date"),
            pl.lit(None, pl.Float64).alias("value"),
            pl.lit(None, pl.String).alias("unit"),
        ))
    evs = pl.concat(parts).with_columns(
        [pl.lit(None, t).alias(c) for c, t in EVENT_SCHEMA.items() if c not in parts[0].columns]
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    return pats.lazy(), evs.lazy()


@pytest.mark.reference
def test_colorectal_screening_on_the_synthea_ma_sample(reference_data: Path) -> None:
    pats, evs = synthea_frames(reference_data / "synthea" / "ma")
    shipped = load_rules(default_rules_dir())
    rule = shipped.get("colorectal-cancer-screening")
    ruleset = RuleSet((rule,), shipped.valuesets, {})
    out = evaluate_frames(pats, evs, ruleset, D(2024, 1, 1)).collect()
    by_status = {
        s: sorted(pid[:8] for pid in out.filter(pl.col("status") == s)["patient_id"])
        for s in ["due", "not_due", "excluded", "not_in_population", "unknown"]
    }
    assert by_status["due"] == sorted(
        ["319af005", "9e886a7a", "bdf24b75", "bd9aaf62", "5f8d3e13", "38ddd8f0", "d9c46e2f"]
    )
    assert by_status["not_due"] == sorted(["3a2fa41c", "1cd7cc0a", "280ee8b5"])
    assert by_status["excluded"] == sorted(["261ad2a4", "c2d1b552"])
    assert len(by_status["not_in_population"]) == 15
    assert by_status["unknown"] == []
    reasons = dict(zip((p[:8] for p in out["patient_id"]), out["reason"], strict=True))
    assert reasons["1cd7cc0a"] == "colonoscopy on 2023-09-27 is within 10 years"
    assert reasons["261ad2a4"] == "died on 1976-07-25"


@pytest.mark.reference
def test_every_shipped_rule_runs_on_the_synthea_ne_sample(reference_data: Path) -> None:
    """The larger New England sample: every screening rule gives due and not_due somewhere."""
    pats, evs = synthea_frames(reference_data / "synthea" / "ne")
    shipped = load_rules(default_rules_dir())
    screening = tuple(r for r in shipped.rules if r.kind.value == "screening")
    out = evaluate_frames(pats, evs, RuleSet(screening, shipped.valuesets, {}), D(2024, 1, 1)).collect()
    counts = out.group_by("rule_id", "status").len()
    assert out.height == pats.collect().height * len(screening)
    for rule_id in ["colorectal-cancer-screening", "flu-vaccine", "annual-wellness-visit"]:
        statuses = set(counts.filter(pl.col("rule_id") == rule_id)["status"])
        assert {"due", "not_due"} <= statuses, rule_id
