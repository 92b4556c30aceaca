"""plan_contacts: audience, consent, do-not-contact, deceased, suppression, channel choice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from segment.campaign import plan_contacts
from segment.errors import CampaignError
from tests.campaign.frames import due, eligibility, patients
from tests.campaign.helpers import make_campaign

AS_OF = dt.date(2025, 3, 10)
MOBILE = "+16175550123"


def plan(c, pts, elig, **kw) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    return plan_contacts(c, pts, elig, kw.pop("ledger", None), AS_OF, **kw).collect()


def status_of(frame: pl.DataFrame) -> dict[str, tuple[str, str | None]]:
    return {r["patient_id"]: (r["contact_status"], r["channel"]) for r in frame.iter_rows(named=True)}


def test_consent_edge_cases(tmp_path: Path) -> None:
    c = make_campaign(tmp_path)
    pts = patients(
        {"phone_e164": MOBILE, "phone_type": "mobile", "sms_consent": True},          # P001 sms
        {"phone_e164": MOBILE, "phone_type": "unknown", "sms_consent": True},         # P002 sms (unknown type ok)
        {"phone_e164": MOBILE, "phone_type": "landline", "sms_consent": True},        # P003 landline: no sms
        {"phone_e164": MOBILE, "phone_type": "mobile", "sms_consent": None,           # P004 unknown consent
         "email": "a@example.org", "email_consent": True},                             #      -> email
        {"phone_e164": "6175550123", "phone_type": "mobile", "sms_consent": True},    # P005 not E.164
        {"email": "not-an-email", "email_consent": True},                             # P006 bad address
        {"email": "B@Example.ORG", "email_consent": False},                           # P007 refused consent
        {"phone_e164": MOBILE, "sms_consent": True},                                  # P008 null type = unknown
        {"email": "c@example.org", "email_consent": None},                            # P009 unknown consent
    )
    out = status_of(plan(c, pts, due(9)))
    assert out == {
        "P001": ("selected", "sms"),
        "P002": ("selected", "sms"),
        "P003": ("no_consent_or_contact", None),
        "P004": ("selected", "email"),
        "P005": ("no_consent_or_contact", None),
        "P006": ("no_consent_or_contact", None),
        "P007": ("no_consent_or_contact", None),
        "P008": ("selected", "sms"),
        "P009": ("no_consent_or_contact", None),
    }


def test_mobile_only_policy(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, consent={"sms_phone_types": ["mobile"]})
    pts = patients(
        {"phone_e164": MOBILE, "phone_type": "mobile", "sms_consent": True},
        {"phone_e164": MOBILE, "phone_type": "unknown", "sms_consent": True},
    )
    assert status_of(plan(c, pts, due(2)))["P002"] == ("no_consent_or_contact", None)


def test_dnc_and_deceased_always_removed(tmp_path: Path) -> None:
    c = make_campaign(tmp_path)
    pts = patients(
        {"phone_e164": MOBILE, "sms_consent": True, "do_not_contact": True},
        {"phone_e164": MOBILE, "sms_consent": True, "deceased_date": dt.date(2024, 1, 1)},
        {"phone_e164": MOBILE, "sms_consent": True, "do_not_contact": None},
    )
    out = plan(c, pts, due(3))
    assert status_of(out) == {
        "P001": ("do_not_contact", None), "P002": ("deceased", None), "P003": ("selected", "sms"),
    }
    # reachability is reported before the removal (the audit uses it)
    assert out.get_column("reachable_sms").to_list() == [True, True, True]


def test_audience_all_any_and_filters(tmp_path: Path) -> None:
    c = make_campaign(
        tmp_path,
        channels=["mail"], vendors={"mail": {"profile": "mail"}},
        audience={"all": {"crc": "due"}, "any": {"need": "due", "rural": ["due", "unknown"]},
                  "filters": {"age": {"min": 50, "max": 75}, "language": ["en", "es"],
                              "columns": {"need_index_quintile": [4, 5]}}},
    )
    pts = patients(
        {"need_index_quintile": 5},                               # P001 in
        {"need_index_quintile": 5},                               # P002 crc not due
        {"need_index_quintile": 5},                               # P003 neither any rule
        {"need_index_quintile": 2},                               # P004 filtered by quintile
        {"need_index_quintile": 4, "birth_date": dt.date(1980, 1, 1)},  # P005 too young (45)
        {"need_index_quintile": 4, "language": "fr"},             # P006 language
        {"need_index_quintile": 4, "birth_date": dt.date(1950, 3, 11)},  # P007 74 (75 tomorrow)
        {"need_index_quintile": 4, "birth_date": None},          # P008 unknown age
    )
    elig = eligibility([
        ("P001", "crc", "due"), ("P001", "need", "due"),
        ("P002", "crc", "not_due"), ("P002", "need", "due"),
        ("P003", "crc", "due"), ("P003", "need", "not_due"), ("P003", "rural", "not_due"),
        ("P004", "crc", "due"), ("P004", "rural", "unknown"),
        ("P005", "crc", "due"), ("P005", "need", "due"),
        ("P006", "crc", "due"), ("P006", "need", "due"),
        ("P007", "crc", "due"), ("P007", "rural", "unknown"),
        ("P008", "crc", "due"), ("P008", "need", "due"),
    ])
    out = plan(c, pts, elig)
    assert out.filter("in_audience").get_column("patient_id").to_list() == ["P001", "P007"]
    assert out.height == 8  # one row per patient


def test_filter_on_absent_column_is_clear(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, audience={"all": {"crc": "due"}, "filters": {"columns": {"svi_overall_rank": [1]}}})
    with pytest.raises(CampaignError, match="svi_overall_rank"):
        plan(c, patients({}), due(1))


def test_unknown_rule_is_clear(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, audience={"all": {"flu": "due"}})
    with pytest.raises(CampaignError, match=r"not in eligibility\.parquet: flu"):
        plan(c, patients({}), due(1))


def test_suppression_files_normalized(tmp_path: Path) -> None:
    (tmp_path / "emails.txt").write_text("# unsubscribes\n  Jo@Example.ORG \n\n")
    (tmp_path / "phones.csv").write_text("Phone Number,reason\n(617) 555-0199,complaint\n")
    (tmp_path / "ids.csv").write_text("patient_id\nP004\n")
    (tmp_path / "replies.csv").write_text(
        "From,Body\n+16175550111, stop \n+16175550112,STOP PLEASE\n+16175550113,Stop All\n"
        "+16175550114,thanks\n+16175550115,unsubscribe\n"
    )
    c = make_campaign(tmp_path, suppression=[
        {"path": "emails.txt", "kind": "email"},
        {"path": "phones.csv", "kind": "phone"},
        {"path": "ids.csv", "kind": "patient_id"},
        {"path": "replies.csv", "kind": "opt_out"},
    ])
    pts = patients(
        {"email": "jo@example.org", "email_consent": True},                          # P001 suppressed
        {"phone_e164": "+16175550199", "sms_consent": True,
         "email": "k@example.org", "email_consent": True},                           # P002 sms supp -> email
        {"phone_e164": "+16175550199", "sms_consent": True},                         # P003 suppressed
        {"phone_e164": MOBILE, "sms_consent": True},                                 # P004 id suppressed
        {"phone_e164": "+16175550111", "sms_consent": True},                         # P005 STOP
        {"phone_e164": "+16175550112", "sms_consent": True},                         # P006 not an opt-out
        {"phone_e164": "+16175550113", "sms_consent": True},                         # P007 STOP ALL
        {"phone_e164": "+16175550114", "sms_consent": True},                         # P008 thanks
        {"phone_e164": "+16175550115", "sms_consent": True},                         # P009 unsubscribe
    )
    assert status_of(plan(c, pts, due(9))) == {
        "P001": ("suppressed", None),
        "P002": ("selected", "email"),
        "P003": ("suppressed", None),
        "P004": ("suppressed", None),
        "P005": ("suppressed", None),
        "P006": ("selected", "sms"),
        "P007": ("suppressed", None),
        "P008": ("selected", "sms"),
        "P009": ("suppressed", None),
    }


def test_sms_opt_out_does_not_block_staff_calls(tmp_path: Path) -> None:
    (tmp_path / "replies.csv").write_text("From,Body\n+16175550111,STOP\n")
    c = make_campaign(
        tmp_path, channels=["sms", "phone"],
        vendors={"sms": {"profile": "twilio"}, "phone": {"profile": "phone"}},
        suppression=[{"path": "replies.csv", "kind": "opt_out"}],
    )
    out = status_of(plan(c, patients({"phone_e164": "+16175550111", "sms_consent": True}), due(1)))
    assert out == {"P001": ("selected", "phone")}


def test_status_like_columns_are_enums_of_their_vocabularies(tmp_path: Path) -> None:
    from segment.campaign.journey import JourneyState
    from segment.campaign.model import Arm, Channel, ContactStatus

    c = make_campaign(tmp_path)
    out = plan(c, patients({"phone_e164": MOBILE, "phone_type": "mobile", "sms_consent": True}, {}), due(2))
    for column, vocabulary in (("channel", Channel), ("contact_status", ContactStatus), ("arm", Arm),
                               ("journey_state", JourneyState)):
        dtype = out.schema[column]
        assert isinstance(dtype, pl.Enum), column
        # every value of the vocabulary, sorted so that sorting by the column sorts its text
        assert dtype.categories.to_list() == sorted(v.value for v in vocabulary), column
    assert status_of(out) == {"P001": ("selected", "sms"), "P002": ("no_consent_or_contact", None)}
    assert out.sort("contact_status").get_column("contact_status").to_list() == [
        "no_consent_or_contact", "selected"]
