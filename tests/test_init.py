"""`segment init DIR`: a starter project that checks, tests and rehearses as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.starter import STARTER_RULE
from segment.synth import write_demo_world
from segment.synth.extract import DEFAULT_REF_DATE


def _init(folder: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'campaign.yaml'}" in result.stdout


def test_init_writes_a_project_that_passes_rules_check_and_test(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    _init(project)
    names = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    assert {"README.md", "campaign.yaml", "mapping.yaml", "extract", "rules",
            f"rules/{STARTER_RULE}.yaml", "rules/valuesets/colonoscopy.yaml"} <= set(names)
    assert (project / "campaign.yaml").stat().st_mode & 0o777 == 0o600
    assert (project / "extract").stat().st_mode & 0o777 == 0o700
    assert "# " in (project / "campaign.yaml").read_text()  # commented
    runner = CliRunner()
    check = runner.invoke(cli, ["rules", "check", str(project / "rules")])
    assert check.exit_code == 0, check.output
    assert re.search(r"^\s+rules\s+1$", check.stdout, re.MULTILINE), check.stdout
    test = runner.invoke(cli, ["rules", "test", str(project / "rules")])
    assert test.exit_code == 0, test.output
    listed = runner.invoke(cli, ["rules", "list", str(project / "rules")])
    assert STARTER_RULE in listed.stdout


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    _init(project)
    (project / "campaign.yaml").write_text("mine\n", encoding="utf-8")
    again = CliRunner().invoke(cli, ["init", str(project)])
    assert again.exit_code == 1
    assert again.stderr.count("\n") == 1 and again.stderr.startswith("Error: ")
    assert "does not overwrite" in again.stderr and "campaign.yaml" in again.stderr
    assert (project / "campaign.yaml").read_text() == "mine\n"
    # one conflicting file in an otherwise empty folder: nothing at all is written
    other = tmp_path / "other"
    other.mkdir()
    (other / "mapping.yaml").write_text("mine\n", encoding="utf-8")
    refused = CliRunner().invoke(cli, ["init", str(other)])
    assert refused.exit_code == 1
    assert sorted(p.name for p in other.iterdir()) == ["mapping.yaml"]
    # an existing empty folder is fine; a file is not a folder
    empty = tmp_path / "empty"
    empty.mkdir()
    _init(empty)
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    assert CliRunner().invoke(cli, ["init", str(afile)]).exit_code == 1


def test_init_project_rehearses_end_to_end_with_its_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extract dropped into extract/, then `segment run campaign.yaml --dry-run` (audit included)."""
    world = write_demo_world(tmp_path / "world", 300, seed=2, sources=1)
    project = tmp_path / "proj"
    _init(project)
    shutil.copy(tmp_path / "world" / "extract" / "ehr-patients.csv", project / "extract" / "patients.csv")
    shutil.copy(tmp_path / "world" / "extract" / "ehr-events.csv", project / "extract" / "events.csv")
    monkeypatch.setenv("SEGMENT_REFERENCE", str(tmp_path / "world" / "reference"))
    assert world is not None
    result = CliRunner().invoke(cli, ["run", str(project / "campaign.yaml"), "--dry-run",
                                      "--as-of", DEFAULT_REF_DATE.isoformat()])
    assert result.exit_code == 0, result.output
    assert "outcome" in result.stdout and "audit report" in result.stdout
    assert (project / "work" / "eligibility.parquet").exists()
    assert not (project / "outbox").exists() or not any((project / "outbox").iterdir())
