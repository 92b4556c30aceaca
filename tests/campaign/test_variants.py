"""Message variants: exactly one per selected patient, priority order, default, PHI lint, bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.campaign import plan_contacts
from segment.campaign.variants import check_variant_columns
from segment.errors import CampaignError, PrivacyError
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

AS_OF = dt.date(2025, 3, 10)
SMS = {"phone_e164": "+16175550101", "phone_type": "mobile", "sms_consent": True}
VARIANTS: list[dict[str, Any]] = [
    {"code": "V-BASE"},
    {"code": "V-ES", "priority": 20, "when": {"column": "language", "op": "eq", "value": "es"}},
    {"code": "V-RIDE", "priority": 10, "when": {"column": "no_vehicle_pct", "op": "ge", "value": 20}},
    {"code": "V-MAIL-KIT", "priority": 30, "when": {"all": [
        {"column": "internet_no_access_pct", "op": "ge", "value": 30}, {"age": {"min": 65}}]}},
]


def _people() -> pl.LazyFrame:
    frame = patients(
        {**SMS, "language": "es"},                                  # P001: Spanish, car -> V-ES
        {**SMS, "language": "es"},                                  # P002: Spanish and no car -> V-RIDE (priority)
        {**SMS, "birth_date": dt.date(1950, 1, 1)},                 # P003: 75, no internet -> V-MAIL-KIT
        {**SMS, "birth_date": dt.date(1990, 1, 1)},                 # P004: 35, no internet -> default
        {**SMS},                                                    # P005: nothing known -> default
        {"sms_consent": False},                                     # P006: not selected -> no variant
    )
    extra = pl.DataFrame({"patient_id": [f"P00{i}" for i in range(1, 7)],
                          "no_vehicle_pct": [5.0, 25.0, 1.0, 1.0, None, 40.0],
                          "internet_no_access_pct": [0.0, 0.0, 35.0, 35.0, None, 50.0]})
    return frame.join(extra.lazy(), on="patient_id")


def test_one_variant_per_selected_patient_in_priority_order(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, variants=VARIANTS)
    plan = plan_contacts(c, _people(), due(6), as_of=AS_OF).collect()
    got = dict(zip(plan["patient_id"], plan["variant"], strict=True))
    assert got == {"P001": "V-ES", "P002": "V-RIDE", "P003": "V-MAIL-KIT", "P004": "V-BASE", "P005": "V-BASE",
                   "P006": None}
    why = dict(zip(plan["patient_id"], plan["variant_reason"], strict=True))
    assert why["P002"].startswith("V-RIDE: no_vehicle_pct is 25")
    assert why["P005"] == "V-BASE: the default (no other variant's condition holds)"
    assert plan.filter(pl.col("channel").is_not_null())["variant"].null_count() == 0


@pytest.mark.parametrize(("variants", "error", "text"), [
    ([{"code": "V-A"}, {"code": "V-A", "when": {"column": "language", "op": "eq", "value": "es"}}],
     CampaignError, "already the code of variants[0]"),
    ([{"code": "V-A", "when": {"column": "language", "op": "eq", "value": "es"}}], CampaignError,
     "exactly one variant must have no `when:`"),
    ([{"code": "V-A"}, {"code": "V-B"}], CampaignError, "found V-A, V-B"),
    ([{"code": "V-HIV-TEST"}], PrivacyError, "clinical word"),
    ([{"code": "V-A"}, {"code": "V-B", "when": {"valueset": "colonoscopy"}}], CampaignError,
     "valid options are: column, age, any, all"),
])
def test_bad_variants_refused_at_load(tmp_path: Path, variants: list[dict[str, Any]], error: type[Exception],
                                      text: str) -> None:
    with pytest.raises(error) as err:
        make_campaign(tmp_path, variants=variants)
    assert text in str(err.value)
    assert "campaign.yaml" in str(err.value)


def test_unknown_variant_column_names_line_and_valid_columns(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, variants=[{"code": "V-BASE"},
                                          {"code": "V-RIDE", "when": {"column": "no_car", "op": "ge", "value": 1}}])
    with pytest.raises(CampaignError) as err:
        check_variant_columns(c, _people().collect_schema(), "enriched.parquet")
    msg = str(err.value)
    assert "variants[1].when" in msg and "`no_car` is not in enriched.parquet" in msg
    assert "valid options are:" in msg and "no_vehicle_pct" in msg
    assert err.value.line is not None and err.value.line > 1


def test_explain_shows_variant_and_why(tmp_path: Path) -> None:
    from segment.campaign.explain import explain_contact

    work = tmp_path / "work"
    work.mkdir()
    _people().collect().write_parquet(work / "enriched.parquet")
    due(6).collect().write_parquet(work / "eligibility.parquet")
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("patient_id,preferred_channel\nP002,email\n", encoding="utf-8")
    c = make_campaign(tmp_path, variants=VARIANTS, preferences=str(prefs), ledger=str(tmp_path / "l.sqlite"))
    got = explain_contact(c, work, "P002", as_of=AS_OF)
    assert got["variant"] == "V-RIDE"
    assert got["variant because"].startswith("V-RIDE: no_vehicle_pct is 25")
    assert got["preferred channel"] == "email"
    assert got["channel"] == "sms"  # no email address: the preferred channel is not usable
    assert got["reached on preferred channel"] == "no"
    assert explain_contact(c, work, "P006", as_of=AS_OF)["variant"] == "- (not selected)"
