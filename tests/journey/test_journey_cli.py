"""``segment journey status`` through the CLI: counts, and one-line errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from segment.cli import cli
from tests.journey.test_journey import START, journey_campaign, run_nights


def test_status_command(tmp_path: Path) -> None:
    campaign = journey_campaign(tmp_path)
    run_nights(tmp_path, campaign, nights=8)
    day = (START + dt.timedelta(days=8)).isoformat()
    result = CliRunner().invoke(cli, ["--log-format", "plain", "journey", "status", str(tmp_path / "work"),
                                      str(campaign), "--as-of", day])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    # step 1 went to P001-P003 on day 0; step 2 to P001-P003 on day 7 and to P005 (no SMS) on day 0
    assert ["step", "1", "(day", "0:", "sms)", "3", "0"] in lines
    assert ["step", "2", "(day", "7:", "email)", "4", "0"] in lines
    assert ["waiting", "4"] in lines


def test_status_of_a_campaign_without_journey_is_one_line(tmp_path: Path) -> None:
    campaign = journey_campaign(tmp_path, journey=None)
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["journey", "status", str(tmp_path / "work"), str(campaign)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error:") and len(result.output.strip().splitlines()) == 1
    assert "declares no `journey:`" in result.output
