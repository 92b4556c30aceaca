"""A small working folder (enriched + eligibility) with hostile cell values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.campaign.frames import due, patients

AS_OF = dt.date(2025, 3, 10)
#: the clock of exports dated AS_OF: before the 10:00 (New York) send, inside every vendor's window
NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)


def write_workdir(folder: Path, n_extra: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        # P001: SMS + email, ordinary
        {"first_name": "Ana", "last_name": "Silva", "phone_e164": "+16175550101", "phone_type": "mobile",
         "sms_consent": True, "email": "ana@example.org", "email_consent": True},
        # P002: formula-injection attempts in names, email only
        {"first_name": "=HYPERLINK(\"http://x\")", "last_name": "+SUM(A1)", "email": "bo@example.org",
         "email_consent": True, "address_line1": "@risk 2 Elm St"},
        # P003: SMS, multibyte name longer than 255 bytes, embedded newline, LA point
        {"first_name": "Zoë" * 100, "last_name": "O'Neil\nSmith", "phone_e164": "+13105550102",
         "sms_consent": True, "lat": 34.05, "lon": -118.24, "state": "CA", "city": "Los Angeles",
         "zip5": "90012", "language": "es"},
        # P004: no consent anywhere -> mail / phone lists only
        {"first_name": "-Dee", "last_name": "Park", "phone_e164": "+16175550104", "email": "dee@example.org"},
        # P005: tab-led name, email
        {"first_name": "\tEve", "last_name": "Stone", "email": "eve@example.org", "email_consent": True},
    ]
    for i in range(n_extra):
        rows.append({"first_name": f"Name{i}", "last_name": "Extra", "email": f"x{i}@example.org",
                     "email_consent": True, "phone_e164": f"+1617555{2000 + i:04d}", "sms_consent": True})
    pts = patients(*rows).collect()
    pts.write_parquet(folder / "enriched.parquet")
    due(len(rows)).collect().write_parquet(folder / "eligibility.parquet")
    return folder


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return write_workdir(tmp_path / "work")
