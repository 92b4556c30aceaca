"""Each cross-field check of a campaign file: the problem it reports, its key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment.campaign import load_campaign
from segment.campaign.problems import CampaignProblems
from segment.errors import PrivacyError, SegmentError
from tests.campaign.test_loader import BASE, write

SMS_FIELDS = "    fields: [first_name]\n"

# (name, campaign text, expected key, expected line, words of the message)
CASES = [
    ("channel twice", BASE.replace("[sms, email]", "[sms, email, sms]"), "channels", 6, "listed twice"),
    ("vendor without channel", BASE.replace("[sms, email]", "[sms]"), "vendors.email", 11,
     "found 'email'; valid options are: sms"),
    ("profile name", BASE + "profiles:\n  MyList:\n    base: braze\n", "profiles.MyList", 15,
     "neutral lower-case name"),
    ("unknown vendor option", BASE.replace(SMS_FIELDS, SMS_FIELDS + "    options: {foo: x}\n"),
     "vendors.sms.options.foo", 11, "valid options are: subscription_group_id"),
    ("missing vendor option", BASE.replace("profile: twilio", "profile: braze"), "vendors.sms.options", 8,
     "needs `subscription_group_id`"),
    ("generic without columns or fields", BASE.replace("profile: twilio", "profile: generic").replace(
        "fields: [first_name]\n", "fields: []\n"), "vendors.sms.fields", 8, "declares no columns"),
    ("generic without the contact column", BASE.replace("profile: twilio", "profile: generic"), "vendors.sms", 8,
     "would write no phone_e164 column"),
    ("unknown BAA vendor", BASE + "baa:\n  - {vendor: acme, signed: true}\n", "baa[0].vendor", 14,
     "found 'acme'"),
    ("state code", BASE + "quiet_hours:\n  states:\n    fl: {start: '09:00', end: '20:00'}\n",
     "quiet_hours.states.fl", 16, "USPS two-letter state code"),
    ("cap channel", BASE + "frequency_caps:\n  - {per_days: 7, max: 1, channels: [mail]}\n",
     "frequency_caps[0].channels", 15, "found 'mail'; valid options are: sms, email"),
    ("preferences file", BASE + "preferences: prefs.csv\n", "preferences", 14, "file not found: prefs.csv"),
    ("journey channel twice", BASE + "journey:\n  steps:\n    - {day: 0, channels: [sms, sms]}\n",
     "journey.steps[0].channels", 16, "a channel is listed twice"),
    ("clinical file name", BASE + 'file_name: "{code}_flu_{run_id}"\n', "file_name", 14, "clinical word `flu`"),
]


def _problems(err: SegmentError) -> list[SegmentError]:
    return list(err.problems) if isinstance(err, CampaignProblems) else [err]


@pytest.mark.parametrize(("text", "key", "line", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_check_locates_its_problem(tmp_path: Path, text: str, key: str, line: int, words: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(SegmentError) as err:
        load_campaign(p)
    found = [(x.key, x.line) for x in _problems(err.value) if words in x.message]
    assert found == [(key, line)], [x.one_line() for x in _problems(err.value)]
    assert all(x.path == p for x in _problems(err.value))


def test_a_generic_profile_misses_each_required_group(tmp_path: Path) -> None:
    with pytest.raises(CampaignProblems) as err:
        load_campaign(write(tmp_path, BASE.replace("profile: twilio", "profile: generic")))
    missing = [x.message.split("would write no ")[1].split(" column")[0] for x in err.value.problems]
    assert missing == ["contact_id", "phone_e164"]


def test_a_privacy_problem_in_a_file_name_is_a_privacy_error(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError):
        load_campaign(write(tmp_path, BASE + 'file_name: "{code}_flu_{run_id}"\n'))
