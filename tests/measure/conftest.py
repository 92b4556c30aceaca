"""A campaign with a holdout, exported for real, and a later extract with known completions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.campaign.ledger import ContactLedger
from segment.export import export_campaign
from tests.campaign.frames import patients
from tests.campaign.test_holdout import _people, _workdir
from tests.export.helpers import export_campaign_file

AS_OF = dt.date(2025, 3, 10)  # the send: 10:00 New York = 14:00 UTC on 2025-03-10
NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
LATER = dt.date(2025, 7, 1)
CODE = "SPRING-OUTREACH-2025"


@dataclass
class Measured:
    campaign: Path
    work: Path
    ledger: ContactLedger
    contact: list[str]
    holdout: list[str]


def day(n: int) -> dt.date:
    return AS_OF + dt.timedelta(days=n)


def later_extract(folder: Path, rows: list[dict[str, Any]], done: dict[str, dt.date]) -> Path:
    """enriched + eligibility of a later extract: ``done`` patients are not_due with that evidence date."""
    folder.mkdir(parents=True, exist_ok=True)
    pts = patients(*rows).collect()
    pts.write_parquet(folder / "enriched.parquet")
    ids = pts["patient_id"].to_list()
    pl.DataFrame({
        "patient_id": ids, "rule_id": "crc", "rule_version": "1",
        "status": ["not_due" if i in done else "due" for i in ids],
        "reason": "r", "evidence_date": [done.get(i) for i in ids],
    }, schema_overrides={"evidence_date": pl.Date}).write_parquet(folder / "eligibility.parquet")
    return folder


def exported(tmp_path: Path, n: int = 400, **campaign: Any) -> Measured:
    work = _workdir(tmp_path / "work", _people(n))
    settings = {"holdout": {"percent": 20, "seed": "s1", "stratify": ["race"]},
                "costs": {"sms": 0.01, "email": 0.002}, **campaign}
    path = export_campaign_file(tmp_path / "c", **settings)
    export_campaign(path, work, tmp_path / "out", as_of=AS_OF, run_id="run1", now=NOW)
    led = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    arms = led.arms(CODE)
    return Measured(path, work, led, arms.filter(pl.col("arm") == "contact")["patient_id"].to_list(),
                    arms.filter(pl.col("arm") == "holdout")["patient_id"].to_list())


@pytest.fixture
def measured(tmp_path: Path) -> Measured:
    return exported(tmp_path)
