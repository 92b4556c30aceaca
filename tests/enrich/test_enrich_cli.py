"""`segment enrich DIR` through Click's CliRunner: output and exact exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from segment.cli import cli
from tests.enrich.conftest import entry, write_pack

TRACTS = pl.DataFrame({
    "tract_geoid": ["25025000100", "25025000200", "25025000300"],
    "econ_poverty_pct": [30.0, 10.0, 5.0],
    "econ_unemployment_pct": [9.0, 4.0, 2.0],
})


def _setup(tmp_path: Path, tract_vintage: int = 2010) -> tuple[Path, Path]:
    pack = write_pack(tmp_path / "pack", TRACTS,
                      [entry("econ_poverty_pct"), entry("econ_unemployment_pct")],
                      tract_vintage=tract_vintage)
    work = tmp_path / "work"
    work.mkdir()
    pl.DataFrame({
        "patient_id": ["p1", "p2"], "geo_precision": ["address_point", "unmatched"],
        "tract_geoid": ["25025000100", None], "county_fips": ["25025", None],
    }).write_parquet(work / "geocoded.parquet")
    return pack, work


def test_enrich_prints_coverage(tmp_path: Path) -> None:
    pack, work = _setup(tmp_path)
    result = CliRunner().invoke(cli, ["enrich", str(work), "--reference", str(pack)])
    assert result.exit_code == 0, result.output
    assert "coverage" in result.stdout
    lines = result.stdout.splitlines()
    poverty = next(line for line in lines if line.startswith("econ_poverty_pct"))
    assert poverty.split() == ["econ_poverty_pct", "1", "50"]
    assert "sdoh_source no_tract_unmatched  1" in result.stdout
    assert (work / "enriched.parquet").exists()
    report = json.loads((work / "enrich-report.json").read_text())
    assert report["sdoh_source"] == {"tract": 1, "no_tract_unmatched": 1}


def test_enrich_json_output(tmp_path: Path) -> None:
    pack, work = _setup(tmp_path)
    result = CliRunner().invoke(
        cli, ["--log-format", "json", "enrich", str(work), "--reference", str(pack)]
    )
    assert result.exit_code == 0
    tables = [json.loads(line) for line in result.stdout.splitlines() if '"table"' in line]
    rows = {r["column"]: r for r in tables[0]["rows"]}
    assert rows["need_index"]["patients"] == 1


def test_enrich_vintage_mismatch_exits_1(tmp_path: Path) -> None:
    pack, work = _setup(tmp_path, tract_vintage=2020)
    result = CliRunner().invoke(cli, ["enrich", str(work), "--reference", str(pack)])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "keyed to 2010 tracts" in result.stderr
    assert not (work / "enriched.parquet").exists()


def test_enrich_without_geocode_exits_1(tmp_path: Path) -> None:
    pack, _ = _setup(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["enrich", str(empty), "--reference", str(pack)])
    assert result.exit_code == 1
    assert "geocoded.parquet not found; run `segment geocode` first" in result.stderr


def test_enrich_usage_error_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["enrich", str(tmp_path / "missing")])
    assert result.exit_code == 2


def test_enrich_help_has_example() -> None:
    result = CliRunner().invoke(cli, ["enrich", "--help"])
    assert result.exit_code == 0
    assert "segment enrich work --reference" in result.output
