"""A column no source provided is not a value every patient lacks: rules over it are unknown."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from segment.ingest import ingest
from segment.rules.evaluate import absent_columns, evaluate_frames
from segment.rules.loader import default_rules_dir, load_rules
from segment.schema import EVENT_SCHEMA

TODAY = dt.date(2026, 2, 1)


def _ingest(tmp_path: Path, header: str, row: str) -> Path:
    src = tmp_path / "in" / "clinic-patients.csv"
    src.parent.mkdir(parents=True)
    src.write_text(f"{header}\n{row}\n", encoding="utf-8")
    out = tmp_path / "w"
    ingest([src], out, as_of=TODAY)
    return out


def _digital_divide(work: Path) -> dict[str, str]:
    ruleset = load_rules(default_rules_dir(), ["digital-divide"])
    patients = pl.read_parquet(work / "patients.parquet").with_columns(
        pl.lit(8.0).alias("internet_no_access_pct")  # a connected tract: the contact test decides
    )
    result = evaluate_frames(patients.lazy(), pl.LazyFrame(schema=EVENT_SCHEMA), ruleset, TODAY,
                             enriched=True, absent=absent_columns(work)).collect()
    return result.select("status", "reason").row(0, named=True)


def test_extract_without_contact_columns_is_unknown_not_due(tmp_path: Path) -> None:
    work = _ingest(tmp_path, "patient_id,birth_date,sex", "P1,1950-01-01,F")
    report = json.loads((work / "ingest-report.json").read_text())
    assert {"email", "phone_e164", "phone_type"} <= set(report["columns"]["absent"])
    assert report["columns"]["patients"]["birth_date"] == ["clinic"]
    got = _digital_divide(work)
    assert got["status"] == "unknown"
    assert got["reason"] == "extract has no email column"


def test_extract_with_empty_contact_columns_is_due(tmp_path: Path) -> None:
    work = _ingest(tmp_path, "patient_id,birth_date,sex,email,phone_e164", "P1,1950-01-01,F,,")
    assert "email" not in json.loads((work / "ingest-report.json").read_text())["columns"]["absent"]
    got = _digital_divide(work)
    assert got["status"] == "due"
    assert "no email on record" in got["reason"]
