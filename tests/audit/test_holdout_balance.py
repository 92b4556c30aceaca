"""The audit shows the holdout arms' balance on every group, so a broken draw is visible."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from segment.audit import audit_campaign, audit_document
from segment.audit.balance import smd
from tests.campaign.test_holdout import _people, _workdir
from tests.export.helpers import export_campaign_file

from .helpers import AS_OF, cohorts


def _doc(contacts: pl.LazyFrame, enriched: pl.LazyFrame) -> dict:  # type: ignore[type-arg]
    return audit_document(enriched, contacts, channels=["sms", "email"], as_of=AS_OF,
                          holdout={"baseline_rate": 0.2})


def test_a_broken_draw_is_flagged() -> None:
    enriched, contacts = cohorts((200, {"race": "White"}), (100, {"race": "Black"}))
    # "randomization" that held out Black patients first: 30 of the 30 held out are Black
    arm = pl.when(pl.col("patient_id") > "P00270").then(pl.lit("holdout")).otherwise(pl.lit("contact"))
    doc = _doc(contacts.with_columns(arm.alias("arm")), enriched)
    h = doc["holdout"]
    assert h["arms"] == {"contact": 270, "holdout": 30}
    race = {g["group"]: g for g in next(d for d in h["balance"] if d["name"] == "race")["groups"]}
    assert race["Black"]["contact"] == 70 and race["Black"]["holdout"] == 30
    assert race["Black"]["std_difference"] == pytest.approx(smd(70 / 270, 1.0))
    assert race["Black"]["imbalanced"] and {"dimension": "race", "group": "Black"}.items() <= h["imbalanced"][0].items()
    assert h["plan"]["warning"] and "too small to detect a 3-point difference" in h["plan"]["warning"]


def test_no_holdout_no_section() -> None:
    enriched, contacts = cohorts((50, {"race": "White"}))
    assert audit_document(enriched, contacts, channels=["sms"], as_of=AS_OF)["holdout"] is None


def test_audit_of_a_campaign_with_a_holdout(tmp_path: Path) -> None:
    work = _workdir(tmp_path / "work", _people(2000))
    extra = pl.read_parquet(work / "enriched.parquet").with_columns(
        pl.lit("address_point").alias("geo_precision"), pl.lit("tract").alias("sdoh_source"))
    extra.write_parquet(work / "enriched.parquet")
    path = export_campaign_file(tmp_path / "c", holdout={"percent": 10, "seed": "s", "stratify": ["race"]},
                                as_of="2025-03-10")
    result = audit_campaign(path, work, ledger=tmp_path / "none.sqlite")
    h = result.document["holdout"]
    assert h["arms"] == {"contact": 1800, "holdout": 200}
    race = {g["group"]: g for g in next(d for d in h["balance"] if d["name"] == "race")["groups"]}
    assert all(abs(g["std_difference"]) < 1e-9 for g in race.values())  # stratified: exactly 10% of each
    assert h["imbalanced"] == [] and h["max_abs_std_difference"] < 0.1
    html = result.html_path.read_text()  # type: ignore[union-attr]
    assert "Holdout balance" in html and "too small to detect a 3-point difference" in html
