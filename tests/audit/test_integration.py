"""The audit over the real campaign engine: load_campaign + plan_contacts, no stand-ins."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.audit import audit_campaign
from segment.errors import StageInputError

from .conftest import CAMPAIGN_YAML
from .helpers import ENRICHED_DEFAULTS

PATIENT: dict[str, Any] = {
    **{k: v for k, v in ENRICHED_DEFAULTS.items() if k != "county_fips"},
    "address_line1": "1 Main St",
    "city": "Boston",
    "state": "MA",
    "zip5": "02110",
    "phone_e164": "+16175550100",
    "phone_type": "mobile",
    "sms_consent": True,
    "email": "someone@example.org",
    "email_consent": False,
    "do_not_contact": False,
    "deceased_date": None,
    "_status": "due",
}

COHORTS: tuple[tuple[int, dict[str, Any]], ...] = (
    (45, {"race": "White"}),
    (15, {"race": "White", "_status": "not_due"}),
    (11, {"race": "White", "deceased_date": dt.date(2024, 1, 1)}),
    (20, {"race": "Black"}),
    (20, {"race": "Black", "sms_consent": None, "email_consent": None}),
    (12, {"race": None, "sms_consent": False, "email_consent": True}),
)


def _workdir(tmp_path: Path) -> tuple[Path, Path]:
    rows: list[dict[str, Any]] = []
    for n, overrides in COHORTS:
        rows.extend({**PATIENT, **overrides} for _ in range(n))
    frame = pl.DataFrame(rows).with_columns(
        pl.format("P{}", pl.int_range(pl.len())).alias("patient_id"),
        pl.col("need_index_quintile").cast(pl.Int8),
        pl.col("deceased_date").cast(pl.Date),
    )
    work = tmp_path / "work"
    work.mkdir()
    frame.drop("_status").write_parquet(work / "enriched.parquet")
    frame.select(
        "patient_id",
        pl.lit("crc-screening").alias("rule_id"),
        pl.lit(1).alias("rule_version"),
        pl.col("_status").alias("status"),
        pl.lit("test").alias("reason"),
        pl.lit(None, pl.Date).alias("evidence_date"),
    ).write_parquet(work / "eligibility.parquet")
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN_YAML, encoding="utf-8")
    return campaign, work


def test_audit_with_the_real_contact_plan(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    result = audit_campaign(campaign, work, ledger=tmp_path / "no-ledger.sqlite")
    assert not (tmp_path / "no-ledger.sqlite").exists()  # the audit never creates a ledger
    assert result.html_path == work / "audit.html" and result.json_path == work / "audit.json"
    doc = json.loads(result.json_path.read_text())
    assert doc == result.document
    race = {g["group"]: g for g in next(d for d in doc["dimensions"] if d["name"] == "race")["groups"]}
    # deceased patients are not eligible; not-due patients are not in the audience
    assert race["White"]["funnel"] == {
        "eligible": 45, "geocoded_precise": 45, "enriched": 45, "contactable": 45, "selected": 45,
    }
    assert race["White"]["geocoding"]["patients"] == 71
    assert race["Black"]["funnel"] == {
        "eligible": 40, "geocoded_precise": 40, "enriched": 40, "contactable": 20, "selected": 20,
    }
    assert race["Black"]["selection"]["ratio"] == pytest.approx(0.5)
    assert race["Black"]["selection"]["flag"] == "below"
    assert race["Black"]["selection"]["flag_clear"] is True
    assert race["Black"]["reach"] == {
        "eligible": 40, "no_digital": 20, "mail_fallback": 20, "phone_fallback": 20,
        "any_fallback": 20, "no_channel": 0, "no_digital_rate": 0.5,
    }
    assert race["(missing)"]["funnel"]["selected"] == 12
    assert doc["overall"]["funnel"]["eligible"] == 97
    assert result.is_flagged and [f["group"] for f in result.flags] == ["Black"]


def test_missing_stage_output_is_a_clear_error(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    (work / "eligibility.parquet").unlink()
    with pytest.raises(StageInputError, match="run `segment evaluate` first"):
        audit_campaign(campaign, work)


def test_campaign_audit_key_sets_groups_and_reference(demo: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from segment.cli import cli

    text = demo["spring"].read_text() + "audit:\n  groups: [county_fips]\n  reference_groups: {sex: M}\n"
    demo["spring"].write_text(text)
    assert CliRunner().invoke(cli, ["run", str(demo["spring"]), "--dry-run"]).exit_code == 0
    result = audit_campaign(demo["spring"], demo["work"], demo["root"] / "a.html")
    dims = {d["name"]: d for d in result.document["dimensions"]}
    assert "county_fips" in dims
    assert dims["sex"]["reference_group"] == "M" and dims["sex"]["reference_chosen"] == "named"
