"""Tiny inline frames and rule folders for the rules tests."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import polars as pl

from segment.rules.evaluate import evaluate_frames
from segment.rules.model import RuleSet
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA

D = dt.date


def patients(*rows: dict[str, Any], extra: dict[str, Any] | None = None) -> pl.DataFrame:
    """Patients with the canonical schema; unspecified columns are null."""
    schema = {**PATIENT_SCHEMA, **(extra or {})}
    full = [{k: r.get(k) for k in schema} for r in rows]
    return pl.DataFrame(full, schema=schema, orient="row")


def events(*rows: tuple[str, str, str, str, dt.date]) -> pl.DataFrame:
    """Events from (patient_id, event_type, code_system, code, event_date) tuples."""
    return pl.DataFrame(
        [(*r, *[None] * (len(EVENT_SCHEMA) - len(r))) for r in rows], schema=EVENT_SCHEMA, orient="row"
    )


def run(
    ruleset: RuleSet, pats: pl.DataFrame, evs: pl.DataFrame, as_of: dt.date, *, enriched: bool = True
) -> pl.DataFrame:
    """Evaluate and return patient_id, rule_id, status, reason, evidence_date sorted."""
    out = evaluate_frames(pats.lazy(), evs.lazy(), ruleset, as_of, enriched=enriched).collect()
    return out.select("patient_id", "rule_id", "status", "reason", "evidence_date").sort(
        "rule_id", "patient_id"
    )


def write_folder(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: dedented text}`` under ``root``; return ``root``."""
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


COLONOSCOPY_VS = """
name: colonoscopy
title: colonoscopy
codes:
  CPT: ["45378"]
  SNOMED: ["73761001"]
"""
FIT_VS = """
name: fit
title: FIT
codes:
  CPT: ["82274"]
"""

MINI_RULE = """
id: mini
version: 3
title: Mini colorectal
source: test 2026
kind: screening
population:
  age: {min: 45, max: 75}
due:
  label: screening
  unless:
    - valueset: colonoscopy
      within: 10 years
    - valueset: fit
      within: 1 year
examples:
  - name: due
    as_of: 2026-01-01
    patient: {birth_date: 1970-01-01, sex: F}
    expect: due
"""


def mini_folder(root: Path, rule: str = MINI_RULE, **extra: str) -> Path:
    """A rules folder with the mini rule and two value sets (plus ``extra`` files)."""
    files = {
        "mini.yaml": rule,
        "valuesets/colonoscopy.yaml": COLONOSCOPY_VS,
        "valuesets/fit.yaml": FIT_VS,
    }
    files.update({k.replace("__", "/").replace("_yaml", ".yaml").replace("_csv", ".csv"): v
                  for k, v in extra.items()})
    return write_folder(root, files)
