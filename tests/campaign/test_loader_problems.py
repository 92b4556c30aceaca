"""A campaign file's cross-field checks report every problem, each located, not just the first."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from segment.campaign import load_campaign
from segment.campaign.problems import SHOWN, CampaignPrivacyProblems, CampaignProblems
from segment.cli import cli
from segment.errors import CampaignError, PrivacyError
from tests.campaign.test_loader import BASE, write

#: three independent mistakes: a clinical word in the code (line 2), an unknown SMS profile
#: (line 9) and a suppression file that does not exist (line 15)
THREE = BASE.replace("SPRING-OUTREACH-2025", "FLU-2025").replace("profile: twilio", "profile: twillio") + (
    "suppression:\n  - {path: nope.csv, kind: email}\n"
)


def test_three_mistakes_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(CampaignProblems) as err:
        load_campaign(write(tmp_path, THREE))
    problems = err.value.problems
    assert [p.line for p in problems] == [2, 9, 15]
    assert [p.key for p in problems] == ["code", "vendors.sms.profile", "suppression.path"]
    assert "clinical word `flu`" in problems[0].message
    assert "'twillio'" in problems[1].message and "twilio" in problems[1].message
    assert "nope.csv" in problems[2].message
    # the first is the message, with its location; every one is listed under it
    assert err.value.line == 2 and err.value.key == "code"
    assert "and 2 more problems" in str(err.value)
    assert err.value.context is not None
    listed = err.value.context.splitlines()
    assert len(listed) == 3
    for line, problem in zip(listed, problems, strict=True):
        assert line.strip() == problem.one_line()
        assert line.strip().startswith(f"{tmp_path / 'c.yaml'}:{problem.line}: ")


def test_a_privacy_problem_among_them_keeps_the_privacy_type(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError) as err:
        load_campaign(write(tmp_path, THREE))
    assert isinstance(err.value, CampaignPrivacyProblems) and isinstance(err.value, CampaignError)


def test_problems_without_privacy_are_a_campaign_error_only(tmp_path: Path) -> None:
    text = BASE.replace("profile: twilio", "profile: twillio") + "destination: ftp://host/in\n"
    with pytest.raises(CampaignProblems) as err:
        load_campaign(write(tmp_path, text))
    assert not isinstance(err.value, PrivacyError)
    assert [p.key for p in err.value.problems] == ["vendors.sms.profile", "destination"]
    assert [p.line for p in err.value.problems] == [9, 14]


def test_one_problem_is_raised_as_itself(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError) as err:
        load_campaign(write(tmp_path, BASE.replace("SPRING-OUTREACH-2025", "FLU-2025")))
    assert not isinstance(err.value, CampaignProblems)
    assert err.value.line == 2 and "more problem" not in str(err.value)


def test_a_long_list_ends_with_and_n_more(tmp_path: Path) -> None:
    extra = [f"custom_{i}" for i in range(SHOWN + 5)]
    text = BASE.replace("fields: [first_name, last_name]", f"fields: [{', '.join(extra)}]")
    with pytest.raises(CampaignProblems) as err:
        load_campaign(write(tmp_path, text))
    assert len(err.value.problems) == SHOWN + 5
    assert all("not a contact field" in p.message for p in err.value.problems)
    assert err.value.context is not None
    listed = err.value.context.splitlines()
    assert len(listed) == SHOWN + 1
    assert listed[-1].strip() == "… and 5 more"
    assert f"and {SHOWN + 4} more problems" in str(err.value)


def test_an_unresolved_profile_does_not_make_allow_phi_look_unused(tmp_path: Path) -> None:
    text = BASE.replace("profile: mailchimp", "profile: nosuch").replace(
        "fields: [first_name, last_name]", "fields: [first_name, birth_date]") + (
        "allow_phi:\n  birth_date: Vendor matches existing CRM profiles on date of birth under the BAA\n")
    with pytest.raises(CampaignError) as err:
        load_campaign(write(tmp_path, text))
    assert not isinstance(err.value, CampaignProblems)
    assert err.value.key == "vendors.email.profile"


def test_journey_and_variant_problems_are_collected_too(tmp_path: Path) -> None:
    text = BASE + (
        "variants:\n"
        "  - {code: V-A}\n"
        "  - {code: V-A}\n"
        "journey:\n"
        "  steps:\n"
        "    - {day: 3, channels: [sms]}\n"
        "    - {day: 7, channels: [mail]}\n"
    )
    with pytest.raises(CampaignError) as err:
        load_campaign(write(tmp_path, text))
    problems = err.value.problems if isinstance(err.value, CampaignProblems) else (err.value,)
    keys = [p.key for p in problems]
    assert keys == ["variants[1].code", "variants", "journey.steps[0].day", "journey.steps[1].channels[0]"]


def test_cli_lists_every_problem_under_one_error_line(tmp_path: Path) -> None:
    campaign = write(tmp_path, THREE)
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["--log-format", "plain", "audit", str(tmp_path / "work"), str(campaign)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"Error: {campaign}:2: key `code`") and "and 2 more problems" in lines[0]
    assert [line.split(": ", 1)[0].strip() for line in lines[1:]] == [f"{campaign}:{n}" for n in (2, 9, 15)]
    assert "Traceback" not in result.output


def test_json_logs_carry_every_problem_in_one_error_line(tmp_path: Path) -> None:
    import json

    campaign = write(tmp_path, THREE)
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["--log-format", "json", "audit", str(tmp_path / "work"), str(campaign)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "error"
    message = record["message"].splitlines()
    assert "and 2 more problems" in message[0]
    assert [m.split(": ", 1)[0].strip() for m in message[1:]] == [f"{campaign}:{n}" for n in (2, 9, 15)]
