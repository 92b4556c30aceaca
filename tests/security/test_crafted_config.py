"""Crafted configuration: Python object tags are refused in every YAML the product reads."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from segment.cli import cli

EVIL = "!!python/object/apply:os.system ['touch {marker}']"


def test_rule_file_with_object_tag_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    rules = tmp_path / "rules"
    (rules / "valuesets").mkdir(parents=True)
    (rules / "evil.yaml").write_text(f"id: evil\nversion: 1\ntitle: {EVIL.format(marker=marker)}\n")
    result = CliRunner().invoke(cli, ["rules", "check", str(rules)])
    assert result.exit_code == 1
    assert "object tags are refused" in result.output
    assert not marker.exists()


def test_campaign_file_with_object_tag_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    campaign = tmp_path / "c.yaml"
    campaign.write_text(f"version: 1\ncode: {EVIL.format(marker=marker)}\n")
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "work"), str(campaign),
                                      "--to", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "object tags are refused" in result.stderr
    assert not marker.exists()


def test_mapping_file_with_object_tag_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    mapping = tmp_path / "m.yaml"
    mapping.write_text(f"version: 1\npatients: {EVIL.format(marker=marker)}\n")
    src = tmp_path / "ehr-patients.csv"
    src.write_text("patient_id,birth_date\nP1,1970-01-01\n")
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "w"), str(src), "--mapping", str(mapping)])
    assert result.exit_code == 1
    assert "object tags are refused" in result.stderr
    assert not marker.exists()
