"""Fixtures for the audit tests: a working folder and campaign file built inline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from .helpers import cohorts

CAMPAIGN_YAML = """\
version: 1
code: AUDIT-TEST-01
audience:
  all:
    crc-screening: due
channels: [sms, email]
vendors:
  sms:
    profile: twilio
    fields: [first_name]
  email:
    profile: mailchimp
    fields: [first_name]
as_of: 2025-06-01
"""

#: White 100 eligible (60 selected, rate 0.6: the largest, so the reference), Black 50
#: (12 selected, 0.24: ratio 0.4, flagged below; 25 of them have no SMS or email, a
#: mailing address, and a ZIP-centroid geocode), Asian 7 (a small group), race missing
#: 30 (rate 0.5), and 30 White people not in the audience.
FLAGGED: tuple[tuple[int, dict[str, Any]], ...] = (
    (60, {"race": "White"}),
    (40, {"race": "White", "contact_status": "suppressed"}),
    (30, {"race": "White", "in_audience": False, "contact_status": "not_in_audience"}),
    (12, {"race": "Black"}),
    (13, {"race": "Black", "contact_status": "frequency_capped"}),
    (25, {"race": "Black", "reachable_sms": False, "reachable_email": False,
          "contact_status": "no_consent_or_contact", "geo_precision": "zip_centroid",
          "sdoh_source": "zip_centroid_no_tract"}),
    (7, {"race": "Asian"}),
    (15, {"race": None}),
    (15, {"race": None, "contact_status": "suppressed"}),
)
#: everybody selected at the same rate: nothing flagged
FAIR: tuple[tuple[int, dict[str, Any]], ...] = (
    (60, {"race": "White"}),
    (40, {"race": "White", "contact_status": "suppressed"}),
    (30, {"race": "Black"}),
    (20, {"race": "Black", "contact_status": "suppressed"}),
)


def write_workdir(folder: Path, specs: Any) -> pl.DataFrame:
    """Write enriched.parquet and eligibility.parquet; return the contact plan."""
    enriched, contacts = cohorts(*specs)
    folder.mkdir(parents=True, exist_ok=True)
    enriched.collect().write_parquet(folder / "enriched.parquet")
    plan = contacts.collect()
    plan.select(
        "patient_id",
        pl.lit("crc-screening").alias("rule_id"),
        pl.lit(1).alias("rule_version"),
        pl.when(pl.col("in_audience")).then(pl.lit("due")).otherwise(pl.lit("not_due"))
        .alias("status"),
        pl.lit("test").alias("reason"),
        pl.lit(None, pl.Date).alias("evidence_date"),
    ).write_parquet(folder / "eligibility.parquet")
    return plan.with_columns(
        pl.when(pl.col("contact_status") == "selected")
        .then(pl.lit("sms"))
        .alias("channel")
    )


@pytest.fixture
def make_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Any], tuple[Path, Path]]:
    """Build (campaign.yaml, workdir) for cohorts.

    The contact plan is the cohorts' own plan: ``plan_contacts`` is replaced by a
    stand-in returning it, so these tests pin the audit's arithmetic independently of
    the campaign engine's consent and suppression rules.
    """

    def build(specs: Any) -> tuple[Path, Path]:
        folder = tmp_path / "work"
        plan = write_workdir(folder, specs)
        campaign = tmp_path / "campaign.yaml"
        campaign.write_text(CAMPAIGN_YAML, encoding="utf-8")

        def fake_plan_contacts(*args: Any, **kwargs: Any) -> pl.LazyFrame:
            return plan.lazy()

        import segment.campaign

        monkeypatch.setattr(segment.campaign, "plan_contacts", fake_plan_contacts, raising=False)
        return campaign, folder

    return build
