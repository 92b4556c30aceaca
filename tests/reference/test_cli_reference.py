"""`segment reference list --hp2030` and `--columns` (the enrichment data dictionary)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from segment.cli import cli


def test_list_hp2030_shows_objectives_and_mapped_indicators() -> None:
    result = CliRunner().invoke(cli, ["reference", "list", "--hp2030"])
    assert result.exit_code == 0, result.stderr
    assert "SDOH-01" in result.stdout and "econ_poverty_pct" in result.stdout
    assert "hp2030_sdoh_01_gap" in result.stdout
    assert "approximations" in result.stdout


def test_list_columns_includes_what_enrichment_adds(demo_world: Path) -> None:
    result = CliRunner().invoke(cli, ["reference", "list", "--columns", "--reference",
                                      str(demo_world / "reference")])
    assert result.exit_code == 0, result.stderr
    for column in ("econ_poverty_pct", "need_index", "need_index_quintile", "sdoh_source",
                   "hp2030_sdoh_01_gap", "svi_overall_rank"):
        assert column in result.stdout, column
