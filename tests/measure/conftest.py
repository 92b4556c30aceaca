"""A campaign with a holdout, exported for real, and a later extract with known screening events.

The campaign's rule ``crc`` is a real rule file (due unless a FIT within a year, or a
colonoscopy within ten years); ``segment measure`` evaluates it on the later extract's
patients and events itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.campaign.ledger import ContactLedger
from segment.export import export_campaign
from segment.schema import EVENT_SCHEMA
from tests.campaign.frames import patients
from tests.campaign.test_holdout import _people, _workdir
from tests.export.helpers import export_campaign_file
from tests.rules.helpers import COLONOSCOPY_VS, FIT_VS, write_folder

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


CRC_RULE = """
id: crc
version: 1
title: Test colorectal screening
source: test fixture
kind: screening
due:
  label: colorectal screening
  unless:
    - valueset: colonoscopy
      within: 10 years
    - valueset: fit
      within: 1 year
examples:
  - name: no test on record
    as_of: 2025-06-01
    patient: {sex: F}
    expect: due
  - name: FIT this year
    as_of: 2025-06-01
    patient: {sex: F}
    events:
      - {type: observation, system: CPT, code: "82274", date: 2025-03-01}
    expect: not_due
"""
FIT = ("observation", "CPT", "82274")
COLONOSCOPY = ("procedure", "CPT", "45378")


def rules_folder(folder: Path) -> Path:
    return write_folder(folder, {"crc.yaml": CRC_RULE, "valuesets/fit.yaml": FIT_VS,
                                 "valuesets/colonoscopy.yaml": COLONOSCOPY_VS})


def events_frame(rows: list[tuple[str, dt.date]] | list[tuple[str, dt.date, tuple[str, str, str]]]) -> pl.DataFrame:
    """Canonical events from (patient_id, date) FIT results or (patient_id, date, (type, system, code))."""
    full = [(r[0], *(r[2] if len(r) > 2 else FIT), r[1]) for r in rows]  # type: ignore[misc]
    return pl.DataFrame([(*r, *[None] * (len(EVENT_SCHEMA) - len(r))) for r in full], schema=EVENT_SCHEMA,
                        orient="row")


def later_extract(folder: Path, rows: list[dict[str, Any]], done: dict[str, dt.date],
                  more: list[tuple[str, dt.date]] | None = None) -> Path:
    """patients (enriched.parquet) and events of a later extract: a FIT on each ``done`` date, and ``more``."""
    folder.mkdir(parents=True, exist_ok=True)
    patients(*rows).collect().write_parquet(folder / "enriched.parquet")
    events_frame([*done.items(), *(more or [])]).write_parquet(folder / "events.parquet")
    return folder


def exported(tmp_path: Path, n: int = 400, **campaign: Any) -> Measured:
    work = _workdir(tmp_path / "work", _people(n))
    rules_folder(tmp_path / "c" / "rules")
    settings = {"holdout": {"percent": 20, "seed": "s1", "stratify": ["race"]},
                "costs": {"sms": 0.01, "email": 0.002}, "rules": "rules", **campaign}
    path = export_campaign_file(tmp_path / "c", **settings)
    export_campaign(path, work, tmp_path / "out", as_of=AS_OF, run_id="run1", now=NOW)
    led = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    arms = led.arms(CODE)
    return Measured(path, work, led, arms.filter(pl.col("arm") == "contact")["patient_id"].to_list(),
                    arms.filter(pl.col("arm") == "holdout")["patient_id"].to_list())


@pytest.fixture
def measured(tmp_path: Path) -> Measured:
    return exported(tmp_path)
