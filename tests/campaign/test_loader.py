"""Campaign files: validated before any data is touched, errors located by file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from segment.campaign import Channel, load_campaign
from segment.errors import CampaignError, PrivacyError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "campaigns"

BASE = """\
version: 1
code: SPRING-OUTREACH-2025
audience:
  all:
    colorectal-cancer-screening: due
channels: [sms, email]
vendors:
  sms:
    profile: twilio
    fields: [first_name]
  email:
    profile: mailchimp
    fields: [first_name, last_name]
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_examples_load() -> None:
    spring = load_campaign(EXAMPLES / "spring-outreach.yaml")
    assert spring.channels == [Channel.SMS, Channel.EMAIL]
    assert spring.suppression[0].path.is_absolute()
    assert spring.fields[Channel.SMS] == ["first_name", "language"]
    fall = load_campaign(EXAMPLES / "fall-outreach.yaml")
    assert fall.channels == [Channel.EMAIL, Channel.MAIL]
    assert fall.path == (EXAMPLES / "fall-outreach.yaml").resolve()


def test_minimal_defaults(tmp_path: Path) -> None:
    c = load_campaign(write(tmp_path, BASE))
    assert c.quiet_hours.start.hour == 8 and c.quiet_hours.end.hour == 21
    assert [str(t) for t in c.consent.sms_phone_types] == ["mobile", "unknown"]
    assert c.frequency_caps == []


def test_unknown_key_is_located(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "colour: blue\n")
    with pytest.raises(CampaignError) as err:
        load_campaign(p)
    assert err.value.line == 14
    assert "unknown key `colour`" in str(err.value)
    assert str(p) in str(err.value)


def test_bad_channel_lists_valid_options(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("channels: [sms, email]", "channels: [sms, fax]"))
    with pytest.raises(CampaignError) as err:
        load_campaign(p)
    assert err.value.line == 6
    assert "'fax'" in str(err.value) and "sms" in str(err.value) and "email" in str(err.value)


def test_bad_rule_status(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace(": due", ": overdue"))
    with pytest.raises(CampaignError) as err:
        load_campaign(p)
    assert err.value.line == 5
    assert "'overdue'" in str(err.value) and "not_due" in str(err.value)


@pytest.mark.parametrize(
    "code,word",
    [("MAMMOGRAM-2025", "mammogram"), ("FLU2025", "flu"), ("q1-colonoscopyreminder", "colonoscopy"),
     ("HIV-TEST", "hiv"), ("pregnancy_care", "pregnancy")],
)
def test_clinical_code_refused(tmp_path: Path, code: str, word: str) -> None:
    p = write(tmp_path, BASE.replace("SPRING-OUTREACH-2025", code))
    with pytest.raises(PrivacyError) as err:
        load_campaign(p)
    assert err.value.line == 2 and f"`{word}`" in str(err.value)


def test_campaign_adds_clinical_words(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("SPRING-OUTREACH-2025", "GLUCO-25") + "clinical_words: [gluco]\n")
    with pytest.raises(PrivacyError, match="gluco"):
        load_campaign(p)


def test_neutral_code_with_near_words_accepted(tmp_path: Path) -> None:
    # `fluent` is not `flu`; `fitness` is not `fit`
    c = load_campaign(write(tmp_path, BASE.replace("SPRING-OUTREACH-2025", "FLUENT-FITNESS")))
    assert c.code == "FLUENT-FITNESS"


def test_clinical_field_refused_without_justification(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("fields: [first_name, last_name]",
                                     "fields: [first_name, need_index_quintile]"))
    with pytest.raises(PrivacyError) as err:
        load_campaign(p)
    assert err.value.line == 13 and "need_index_quintile" in str(err.value)
    assert "allow_phi" in str(err.value)


def test_allow_phi_with_justification(tmp_path: Path) -> None:
    text = BASE.replace("fields: [first_name, last_name]", "fields: [first_name, birth_date]") + (
        "allow_phi:\n  birth_date: Vendor matches existing CRM profiles on date of birth under the BAA\n"
    )
    c = load_campaign(write(tmp_path, text))
    assert "birth_date" in c.allow_phi


def test_allow_phi_needs_real_justification(tmp_path: Path) -> None:
    text = BASE.replace("fields: [first_name, last_name]", "fields: [birth_date]") + (
        "allow_phi:\n  birth_date: needed\n"
    )
    with pytest.raises(CampaignError, match="justification") as err:
        load_campaign(write(tmp_path, text))
    assert err.value.line == 15


def test_allow_phi_unused_refused(tmp_path: Path) -> None:
    text = BASE + "allow_phi:\n  race: Required by the vendor for reporting purposes only\n"
    with pytest.raises(CampaignError, match="no vendor receives"):
        load_campaign(write(tmp_path, text))


def test_literal_sftp_password_refused(tmp_path: Path) -> None:
    text = BASE + "destination: sftp://mkt@files.example.com/in\nsftp:\n  password: hunter2\n"
    with pytest.raises(CampaignError) as err:
        load_campaign(write(tmp_path, text))
    msg = str(err.value)
    assert "SEGMENT_SFTP_PASSWORD" in msg and "hunter2" not in msg and err.value.line == 16


def test_password_in_url_refused(tmp_path: Path) -> None:
    text = BASE + "destination: sftp://mkt:hunter2@files.example.com/in\n"
    with pytest.raises(CampaignError) as err:
        load_campaign(write(tmp_path, text))
    assert "hunter2" not in str(err.value) and err.value.line == 14


def test_channel_without_vendor(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("channels: [sms, email]", "channels: [sms, email, mail]"))
    with pytest.raises(CampaignError, match="channel `mail` has no vendor"):
        load_campaign(p)


def test_profile_must_support_channel(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("profile: twilio", "profile: mail"))
    with pytest.raises(CampaignError, match="does not support channel `sms`") as err:
        load_campaign(p)
    assert err.value.line == 9


def test_unknown_profile_lists_options(tmp_path: Path) -> None:
    p = write(tmp_path, BASE.replace("profile: twilio", "profile: twillio"))
    with pytest.raises(CampaignError, match=r"'twillio'.*braze.*twilio"):
        load_campaign(p)


@pytest.mark.parametrize(
    "pattern", ["../{code}_{run_id}", "/etc/{run_id}", "{code}/{run_id}", ".{run_id}", "{code}_{date}",
                "{code}_{secret}_{run_id}"],
)
def test_file_name_pattern_cannot_escape(tmp_path: Path, pattern: str) -> None:
    p = write(tmp_path, BASE + f'file_name: "{pattern}"\n')
    with pytest.raises(CampaignError, match="file_name"):
        load_campaign(p)


def test_missing_suppression_file(tmp_path: Path) -> None:
    text = BASE + "suppression:\n  - {path: nope.csv, kind: email}\n"
    with pytest.raises(CampaignError, match=r"nope\.csv") as err:
        load_campaign(write(tmp_path, text))
    assert err.value.line == 15


def test_relative_paths_resolve_against_campaign_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "stop.txt").write_text("x@example.org\n")
    text = BASE + "suppression:\n  - {path: stop.txt, kind: email}\nledger: ledger.sqlite\ndestination: out\n"
    c = load_campaign(write(tmp_path / "sub", text))
    assert c.suppression[0].path == (tmp_path / "sub" / "stop.txt").resolve()
    assert c.ledger == (tmp_path / "sub" / "ledger.sqlite").resolve()
    assert c.destination == str((tmp_path / "sub" / "out").resolve())


def test_object_tag_refused(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "description: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(CampaignError, match="object tags are refused"):
        load_campaign(p)


def test_quiet_window_order(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + 'quiet_hours: {start: "21:00", end: "08:00"}\n')
    with pytest.raises(CampaignError, match="quiet_hours"):
        load_campaign(p)


def test_bad_timezone(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "schedule: {timezone: Mars/Olympus}\n")
    with pytest.raises(CampaignError, match="Mars/Olympus"):
        load_campaign(p)


def test_landline_sms_refused(tmp_path: Path) -> None:
    p = write(tmp_path, BASE + "consent: {sms_phone_types: [mobile, landline]}\n")
    with pytest.raises(CampaignError, match="'landline'"):
        load_campaign(p)
