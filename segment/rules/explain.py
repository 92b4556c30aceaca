"""Explaining one patient: every rule's status and reason, plus their SDOH columns.

The patient and their events are filtered first (lazily, pushed down into the Parquet
scan), then evaluated through the same plan as ``segment evaluate``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.errors import InputDataError
from segment.rules.evaluate import absent_columns, evaluate_frames, patient_source
from segment.rules.loader import default_rules_dir, load_rules
from segment.schema import (
    DIRECT_IDENTIFIERS,
    GEOCODE_SCHEMA,
    PATIENT_SCHEMA,
    SOURCE_POINT_COLUMNS,
)

#: geocode columns worth showing next to SDOH figures (not the point itself)
_GEO_SHOWN = ("geo_precision", "tract_geoid")


@dataclass(frozen=True)
class Explanation:
    """One patient's results for every rule and their SDOH columns."""

    patient_id: str
    as_of: dt.date
    source: str
    rules: list[dict[str, Any]]
    sdoh: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def sdoh_columns(schema: pl.Schema) -> list[str]:
    """Enrichment columns of a patient frame: everything not a patient or geocode column."""
    skip = set(PATIENT_SCHEMA) | set(SOURCE_POINT_COLUMNS) | set(GEOCODE_SCHEMA) | {"geo_reason"}
    skip |= set(DIRECT_IDENTIFIERS)
    shown = [c for c in _GEO_SHOWN if c in schema]
    return shown + [c for c in schema if c not in skip]


def explain(
    workdir: str | Path,
    patient_id: str,
    rules: str | Path | None = None,
    as_of: dt.date | None = None,
) -> Explanation:
    """Status, reason and evidence of every rule for ``patient_id``, and their SDOH columns."""
    folder = Path(workdir)
    ruleset = load_rules(rules or default_rules_dir())
    day = as_of or dt.date.today()
    patients, source, enriched = patient_source(folder)
    one = patients.filter(pl.col("patient_id") == patient_id).collect()
    if one.height == 0:
        raise InputDataError(f"patient {patient_id!r} not found in {source}", path=folder)
    events = wd.scan(folder, wd.EVENTS, produced_by="ingest").filter(
        pl.col("patient_id") == patient_id
    )
    # explain is for a person looking at one patient: a column the working folder lacks
    # (not enriched yet) makes that rule unknown with a warning instead of stopping
    warnings: list[str] = []
    result = evaluate_frames(one.lazy(), events, ruleset, day, source=source,
                             enriched=True, warnings=warnings, absent=absent_columns(folder)).collect()
    titles = {r.id: (r.title, r.kind.value) for r in ruleset.rules}
    rows = [
        {
            "rule_id": r["rule_id"],
            "title": titles[r["rule_id"]][0],
            "kind": titles[r["rule_id"]][1],
            "status": r["status"],
            "reason": r["reason"],
            "evidence_date": r["evidence_date"],
        }
        for r in result.iter_rows(named=True)
    ]
    sdoh = {c: one[c][0] for c in sdoh_columns(one.schema)} if enriched else {}
    return Explanation(patient_id, day, source, rows, sdoh, warnings)
