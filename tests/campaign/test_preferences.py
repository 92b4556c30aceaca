"""Preferences: the file beats the extract, the preferred usable channel comes first, rejects are counted."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from segment.campaign import plan_contacts
from segment.campaign.preferences import UNKNOWN_PATIENT, load_preferences, write_rejects
from segment.errors import CampaignError
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

AS_OF = dt.date(2025, 3, 10)
BOTH = {"phone_e164": "+16175550101", "phone_type": "mobile", "sms_consent": True,
        "email": "a@example.org", "email_consent": True}


def _people() -> pl.LazyFrame:
    return patients(
        {**BOTH},                                                    # P001: no preference -> campaign order (sms)
        {**BOTH, "email": "b@example.org", "preferred_channel": "email"},  # P002: extract says email
        {**BOTH, "email": "c@example.org", "preferred_channel": "email"},  # P003: file says sms, beats extract
        {**BOTH, "email": "d@example.org", "preferred_channel": "mail"},   # P004: mail not a campaign channel
        {**BOTH, "email": "e@example.org", "phone_e164": "+16175550105"},  # P005: named by email in the file
    )


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "prefs.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_precedence_file_then_extract_then_campaign_order(tmp_path: Path) -> None:
    prefs = _write(tmp_path, "patient_id,email,preferred_channel,language\n"
                             "P003,,Text,\n"
                             ",E@Example.org,e-mail,Spanish\n"
                             "P999,,sms,\n"
                             ",nobody@example.org,email,\n")
    c = make_campaign(tmp_path, preferences=str(prefs))
    plan = plan_contacts(c, _people(), due(5), as_of=AS_OF).collect()
    got = dict(zip(plan["patient_id"], plan["channel"], strict=True))
    assert got == {"P001": "sms", "P002": "email", "P003": "sms", "P004": "sms", "P005": "email"}
    on_pref = dict(zip(plan["patient_id"], plan["on_preferred"], strict=True))
    assert on_pref == {"P001": None, "P002": True, "P003": True, "P004": False, "P005": True}
    loaded = load_preferences(prefs, _people())
    assert loaded.counts() == {"rows": 4, "patients": 2, "rejected_rows": 2, "unknown_patients": 2}
    assert loaded.frame.filter(pl.col("patient_id") == "P005")["pref_language"].to_list() == ["es"]
    assert set(loaded.rejects["reason"]) == {UNKNOWN_PATIENT}
    assert loaded.rejects["row"].to_list() == [4, 5]


def test_preferred_channel_falls_through_when_not_usable(tmp_path: Path) -> None:
    c = make_campaign(tmp_path)
    people = patients({**BOTH, "email_consent": None, "preferred_channel": "email"})
    plan = plan_contacts(c, people, due(1), as_of=AS_OF).collect()
    assert plan.row(0, named=True)["channel"] == "sms"
    assert plan.row(0, named=True)["on_preferred"] is False


def test_rejects_file_is_owner_only_and_names_reasons(tmp_path: Path) -> None:
    prefs = _write(tmp_path, "patient_id,preferred_channel,text_after,text_before\n"
                             "P001,pigeon,,\nP002,sms,25:00,\nP003,sms,19:00,09:00\n,sms,,\nP004,sms,,\n")
    loaded = load_preferences(prefs, _people())
    reasons = dict(zip(loaded.rejects["row"], loaded.rejects["reason"], strict=True))
    assert reasons[2].startswith("unknown channel: valid options are: sms, email, mail, phone")
    assert reasons[3].startswith("not a time")
    assert reasons[4] == "text_before must be later than text_after"
    assert reasons[5].startswith("no key")
    assert loaded.frame["patient_id"].to_list() == ["P004"]
    out = write_rejects(loaded, tmp_path)
    assert out is not None and stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_personal_texting_hours_narrow_the_send_time(tmp_path: Path) -> None:
    prefs = _write(tmp_path, "patient_id,text_after\nP001,13:30\n")
    c = make_campaign(tmp_path, preferences=str(prefs))
    plan = plan_contacts(c, patients({**BOTH}, {**BOTH, "email": "b@example.org"}), due(2), as_of=AS_OF).collect()
    times = dict(zip(plan["patient_id"], plan["send_after_utc"], strict=True))
    # 10:00 New York (EDT from 9 March) = 14:00 UTC; P001 asked for no texts before 13:30 local
    assert times["P002"] == dt.datetime(2025, 3, 10, 14, 0, tzinfo=dt.UTC)
    assert times["P001"] == dt.datetime(2025, 3, 10, 17, 30, tzinfo=dt.UTC)


def test_bad_preferences_header_refused_at_load(tmp_path: Path) -> None:
    prefs = _write(tmp_path, "patient_id,favourite_colour\nP001,blue\n")
    with pytest.raises(CampaignError) as err:
        make_campaign(tmp_path, preferences=str(prefs))
    assert "favourite_colour" in err.value.message and "valid options are: patient_id, email" in err.value.message
    with pytest.raises(CampaignError, match="file not found"):
        make_campaign(tmp_path, preferences="missing.csv")


def test_ingest_reads_preferred_channel_words(tmp_path: Path) -> None:
    from segment.ingest import ingest

    src = tmp_path / "ehr-patients.csv"
    src.write_text("patient_id,birth_date,preferred_channel\n1,1960-01-02,Text\n2,1961-01-02,E-mail\n"
                   "3,1962-01-02,US Mail\n4,1963-01-02,Phone call\n5,1964-01-02,pigeon\n6,1965-01-02,\n",
                   encoding="utf-8")
    ingest([src], tmp_path / "work", as_of=AS_OF)
    got = pl.read_parquet(tmp_path / "work" / "patients.parquet").sort("patient_id")["preferred_channel"]
    assert got.to_list() == ["sms", "email", "mail", "phone", None, None]
    rejects = pl.read_csv(tmp_path / "work" / "rejects.csv", infer_schema=False)
    assert rejects.select("column", "value", "reason").rows() == [("preferred_channel", "pigeon", "unknown channel")]
