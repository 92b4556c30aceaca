"""The command line contract: help on every command, the error handler, exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from segment.cli import cli


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):  # the root group is lazy: ask it, not .commands
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            found.extend(_walk(sub, (*path, name)))
    return found


ALL_COMMANDS = _walk(cli)


@pytest.mark.parametrize("path,command", ALL_COMMANDS, ids=[" ".join(p) or "segment" for p, _ in ALL_COMMANDS])
def test_every_command_has_help_ending_with_an_example(path: tuple[str, ...], command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    help_text = command.help or ""
    assert "Example:" in help_text, f"{' '.join(path)} help has no example"
    last = [line for line in help_text.strip().splitlines() if line.strip()][-1].strip()
    assert last.startswith("segment"), f"{' '.join(path)} help does not end with an example"
    if path:
        assert command.get_short_help_str().strip(), "missing one-line summary"


def test_root_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.list_commands(click.Context(cli)):
        assert name in result.output


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2


def test_installed_console_script_runs() -> None:
    exe = shutil.which("segment") or str(Path(sys.executable).parent / "segment")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: segment" in proc.stdout


def _group_raising(exc: Exception) -> click.Group:
    from segment.cli import SegmentGroup
    from segment.cli.options import command

    root = SegmentGroup(name="segment")

    @command("boom", example="segment boom")
    def boom() -> None:
        """Fail on purpose."""
        raise exc

    root.add_command(boom)
    return root


def test_expected_error_is_one_line_exit_1() -> None:
    from segment.errors import InputDataError

    group = _group_raising(InputDataError("missing required column `patient_id`", path="a.csv"))
    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 1
    assert result.stderr == "Error: a.csv: missing required column `patient_id`\n"
    assert "Traceback" not in result.output


def test_verbose_shows_traceback() -> None:
    from segment.errors import InputDataError

    group = _group_raising(InputDataError("bad", path="a.csv"))
    result = CliRunner().invoke(group, ["boom", "--verbose"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: a.csv: bad\n")
    assert "Traceback" in result.stderr


def test_unexpected_error_hides_details_without_verbose() -> None:
    group = _group_raising(ValueError("Jane Doe 1980-01-01"))
    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 1
    assert "Jane" not in result.stderr
    assert "unexpected internal error (ValueError)" in result.stderr


def test_json_log_format_error() -> None:
    import json

    from segment.errors import InputDataError

    group = _group_raising(InputDataError("bad", path="a.csv"))
    result = CliRunner().invoke(group, ["boom", "--log-format", "json"])
    assert result.exit_code == 1
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "error" and record["message"] == "a.csv: bad"


def test_root_help_summaries_are_whole_sentences() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert len(commands) == len(cli.list_commands(click.Context(cli)))
    for line in commands:
        assert not line.rstrip().endswith("..."), line
