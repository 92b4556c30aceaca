"""Times in a campaign file are times: unquoted ``10:00`` (YAML's base-60 number 600) is refused.

The faults: ``send_at: 10:00`` became 00:10; unquoted quiet hours (``9:00``, ``20:00``)
became 00:09/00:20 with a UTC offset and crashed the planner comparing them; a state
window outside the campaign's window crashed with "empty quiet-hours window".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment.campaign import load_campaign
from segment.cli import cli
from segment.errors import CampaignError

BASE = """version: 1
code: SPRING-OUTREACH-2025
audience: {all: {crc: due}}
channels: [sms]
vendors: {sms: {profile: twilio}}
"""


def _load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    return load_campaign(path)


def test_unquoted_send_at_is_refused_with_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as info:
        _load(tmp_path, "schedule:\n  send_at: 10:00\n")
    err = info.value
    assert (err.path, err.line, err.key) == (tmp_path / "c.yaml", 7, "schedule.send_at")
    assert err.message == (
        "key `schedule.send_at`: found 10:00; YAML reads an unquoted 10:00 as the number 600 "
        "(base 60): quote it, '10:00'; valid options are: a time in quotes, 'HH:MM' from "
        "'00:00' to '23:59'"
    )


@pytest.mark.parametrize("extra, key", [
    ("quiet_hours: {start: 8:00, end: '21:00'}\n", "quiet_hours.start"),
    ("quiet_hours:\n  states:\n    FL: {start: '09:00', end: 20:00}\n", "quiet_hours.states.FL.end"),
    ("schedule: {send_at: 10}\n", "schedule.send_at"),
    ("schedule: {send_at: '25:00'}\n", "schedule.send_at"),
    ("schedule: {send_at: '10:00Z'}\n", "schedule.send_at"),
    ("schedule: {send_at: 10:30.5}\n", "schedule.send_at"),
])
def test_times_that_are_not_wall_clock_times_are_refused(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(CampaignError) as info:
        _load(tmp_path, extra)
    assert info.value.key == key
    assert "valid options are: a time in quotes, 'HH:MM'" in info.value.message


def test_quoted_and_leading_zero_times_are_read(tmp_path: Path) -> None:
    c = _load(tmp_path, "schedule: {send_at: '9:30'}\nquiet_hours: {start: 08:00, end: '20:45'}\n")
    assert c.schedule.send_at == dt.time(9, 30)  # type: ignore[attr-defined]
    assert (c.quiet_hours.start, c.quiet_hours.end) == (dt.time(8), dt.time(20, 45))  # type: ignore[attr-defined]
    assert c.schedule.send_at.tzinfo is None  # type: ignore[attr-defined]


def test_state_window_outside_the_campaign_window_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as info:
        _load(tmp_path, "quiet_hours:\n  states:\n    FL: {start: '21:30', end: '23:00'}\n")
    err = info.value
    assert (err.line, err.key) == (8, "quiet_hours.states.FL")
    assert "leaves no time inside the campaign's window 08:00-21:00" in err.message


def test_unquoted_quiet_hours_no_longer_crash_export(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "quiet_hours: {start: 8:00, end: 21:00, states: {FL: {start: 9:00, end: 20:00}}}\n")
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "work"), str(path),
                                      "--to", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}:6: key `quiet_hours.start`: found 8:00; ")
    assert "unexpected internal error" not in result.stderr


@pytest.mark.parametrize("value, expected", [
    ("2025-02-30", "YAML error: 2025-02-30 is not a valid date (day is out of range for month)"),
    ("'2025-13-01'", "key `as_of`: found '2025-13-01'"),
])
def test_bad_as_of_is_a_located_error(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + f"as_of: {value}\n")
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "work"), str(path),
                                      "--to", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}:6: {expected}")
    assert "unexpected internal error" not in result.stderr
