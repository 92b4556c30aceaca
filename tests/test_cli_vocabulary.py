"""One option vocabulary: WORKDIR first, old --out/--from spellings, multi-value options."""

from __future__ import annotations

import json
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.cli._vocabulary import MultiValueOption, SegmentCommand, spread_multi_values
from tests.test_cli import ALL_COMMANDS

STAGES_WITH_WORKDIR = ["ingest", "geocode", "enrich", "evaluate", "explain", "audit", "export", "purge"]


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("extract")
    result = CliRunner().invoke(cli, ["synth", "--patients", "40", "--out", str(folder), "--no-world",
                                      "--sources", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return sorted(folder.glob("*.csv"))


@pytest.mark.parametrize("name", STAGES_WITH_WORKDIR)
def test_every_stage_takes_workdir_first(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    assert arguments and arguments[0].name == "workdir", f"{name}: WORKDIR is not the first argument"
    # and no visible option spells the working folder another way
    options = [o for p in command.params if isinstance(p, click.Option) for o in p.opts]
    assert "--from" not in options and "--out" not in options


#: commands whose --out names a new folder they create (not a working folder)
OUT_MAKES_A_FOLDER = {("demo",), ("synth",), ("reference", "build"), ("reference", "pull")}


@pytest.mark.parametrize("path,command", ALL_COMMANDS, ids=[" ".join(p) or "segment" for p, _ in ALL_COMMANDS])
def test_one_vocabulary_across_every_command(path: tuple[str, ...], command: click.Command) -> None:
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    names = [a.name for a in arguments]
    if "workdir" in names:
        assert names[0] == "workdir", f"{' '.join(path)}: WORKDIR is not the first argument"
    visible = [o for p in command.params if isinstance(p, click.Option) and not p.hidden for o in p.opts]
    assert "--from" not in visible, f"{' '.join(path)}: the working folder is WORKDIR, not --from"
    if "--out" in visible:
        assert path in OUT_MAKES_A_FOLDER, f"{' '.join(path)}: --out is only for commands that make a folder"


def test_no_option_is_required_rules_and_rules_default_to_shipped() -> None:
    for path, command in ALL_COMMANDS:
        for param in command.params:
            if isinstance(param, click.Option) and "--rules" in param.opts:
                assert not param.required, f"{' '.join(path)} requires --rules"


def test_ingest_old_out_spelling_works_with_a_one_line_notice(extract: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    new = runner.invoke(cli, ["ingest", str(tmp_path / "new"), *map(str, extract)])
    assert new.exit_code == 0, new.output
    assert "deprecated" not in new.stderr
    old = runner.invoke(cli, ["ingest", *map(str, extract), "--out", str(tmp_path / "old")], prog_name="segment")
    assert old.exit_code == 0, old.output
    notices = [line for line in old.stderr.splitlines() if "deprecated" in line]
    assert notices == [
        "WARNING: cli: `--out DIR` is deprecated and will be removed in the next release: give the "
        "working folder as the first argument: `segment ingest [OPTIONS] WORKDIR [NAME=]PATH...`"
    ]
    same = pl.read_parquet(tmp_path / "old" / "patients.parquet")
    assert same.equals(pl.read_parquet(tmp_path / "new" / "patients.parquet"))
    # the `--out=DIR` form too
    eq = runner.invoke(cli, ["ingest", f"--out={tmp_path / 'eq'}", *map(str, extract)])
    assert eq.exit_code == 0, eq.output
    assert (tmp_path / "eq" / "patients.parquet").exists()


def test_notice_is_a_json_line_under_log_format_json(extract: list[Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", *map(str, extract), "--out", str(tmp_path / "w"),
                                      "--log-format", "json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.splitlines()]
    notice = [r for r in records if "deprecated" in r["message"]]
    assert len(notice) == 1 and notice[0]["level"] == "warning" and notice[0]["stage"] == "cli"


def test_old_spelling_hidden_from_help_and_given_twice_is_usage_error(extract: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("ingest", "audit", "export"):
        help_text = runner.invoke(cli, [name, "--help"]).output
        assert "--from" not in help_text and "--out" not in help_text, name
    twice = runner.invoke(cli, ["ingest", str(extract[0]), "--out", "a", "--out", "b"])
    assert twice.exit_code == 2 and "given twice" in twice.output
    dangling = runner.invoke(cli, ["ingest", str(extract[0]), "--out"])
    assert dangling.exit_code == 2 and "requires an argument" in dangling.output


def test_audit_old_from_and_out_spellings(tmp_path: Path) -> None:
    # --from becomes WORKDIR, --out (the HTML file) becomes --html: same error as the new form
    campaign = tmp_path / "c.yaml"
    campaign.write_text("version: 1\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    runner = CliRunner()
    new = runner.invoke(cli, ["audit", str(work), str(campaign), "--html", str(tmp_path / "a.html")])
    old = runner.invoke(cli, ["audit", str(campaign), "--from", str(work), "--out", str(tmp_path / "a.html")])
    assert new.exit_code == old.exit_code == 1
    assert new.stderr.splitlines()[-1] == old.stderr.splitlines()[-1]
    assert sum("deprecated" in line for line in old.stderr.splitlines()) == 2
    swapped = runner.invoke(cli, ["audit", str(campaign), str(work)])
    assert swapped.exit_code == 2 and "is a file" in swapped.output


def test_spread_multi_values() -> None:
    flags = {"--indicators", "-i"}
    assert spread_multi_values(["--indicators", "a", "b", "--vintage", "2010", "-i", "c"], flags) == [
        "--indicators", "a", "--indicators", "b", "--vintage", "2010", "-i", "c"]
    assert spread_multi_values(["--indicators=a", "b"], flags) == ["--indicators=a", "b"]
    assert spread_multi_values(["--indicators", "a", "--", "--indicators", "b", "c"], flags) == [
        "--indicators", "a", "--", "--indicators", "b", "c"]
    assert spread_multi_values(["x", "y"], flags) == ["x", "y"]


def test_multi_value_option_takes_several_values_and_repeats() -> None:
    seen: dict[str, object] = {}

    @click.command(cls=SegmentCommand)
    @click.option("--indicators", cls=MultiValueOption)
    @click.option("--name")
    def cmd(indicators: tuple[str, ...], name: str | None) -> None:
        seen.update(indicators=indicators, name=name)

    result = CliRunner().invoke(cmd, ["--indicators", "a.csv", "b.csv", "--name", "n", "--indicators", "c.csv"])
    assert result.exit_code == 0, result.output
    assert seen == {"indicators": ("a.csv", "b.csv", "c.csv"), "name": "n"}


def test_reference_build_takes_a_glob_after_one_flag(tmp_path: Path) -> None:
    files = []
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x\n", encoding="utf-8")
        files.append(str(tmp_path / name))
    missing = str(tmp_path / "nope.csv")
    # the files after --indicators are all taken by it (the third does not exist: Click says so,
    # naming it, instead of "Got unexpected extra arguments")
    result = CliRunner().invoke(cli, ["reference", "build", "--out", str(tmp_path / "p"),
                                      "--tracts", files[0], "--indicators", *files, missing])
    assert result.exit_code == 2
    assert "nope.csv" in result.output and "unexpected extra" not in result.output


def test_rules_commands_default_to_the_shipped_rules() -> None:
    result = CliRunner().invoke(cli, ["rules", "list"])
    assert result.exit_code == 0, result.output
    assert "colorectal-cancer-screening" in result.output
