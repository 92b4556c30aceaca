"""A 2020 pack for Cambridge, MA from publishers' files: levels, re-keying, vintage errors, enrich.

Real: the 2020 TIGER tracts and block groups of Cambridge and the USDA Food Access Research
Atlas 2019 (2010 tracts). Fixtures (sdoh_fixtures.py): SVI_2022_US.csv, the Neighborhood
Atlas MA_2020_ADI file, the Census tab20_tract20_tract10_natl.txt relationship file (Cambridge
rows, parts measured on the real polygons) and an NHGIS nhgis_tr2010_tr2020.csv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from reference.sdoh_fixtures import (
    CAMBRIDGE,
    FARA,
    SDOH,
    SPLIT_2010,
    SPLIT_2020,
    cambridge_bg_ids,
    cambridge_tract_ids,
    write_adi_2020,
    write_census_crosswalk,
    write_nhgis_crosswalk,
    write_svi_2022,
)
from segment.cli import cli
from segment.enrich import enrich
from segment.errors import ReferenceDataError
from segment.reference import build_pack

pytestmark = pytest.mark.reference

FARA_YEAR = {"Massachusetts Food Access Data - Sheet1.csv": 2019}


@pytest.fixture(scope="module")
def files(reference_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sdoh")
    geo = reference_data / SDOH / CAMBRIDGE
    return {
        "tracts": geo / "DEMOGRAPHICS_Tracts2020.geojson",
        "bgs": geo / "DEMOGRAPHICS_BlockGroups2020.geojson",
        "svi": write_svi_2022(folder, cambridge_tract_ids(reference_data)),
        "adi": write_adi_2020(folder, cambridge_bg_ids(reference_data)),
        "fara": reference_data / SDOH / FARA,
        "census_cw": write_census_crosswalk(folder, reference_data),
        "nhgis_cw": write_nhgis_crosswalk(folder),
    }


@pytest.fixture(scope="module")
def pack(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packs") / "cambridge-2020"
    build_pack(out, tracts=files["tracts"], block_groups=files["bgs"],
               indicators=[files["svi"], files["adi"], files["fara"]], name="cambridge-2020",
               crosswalk=files["census_cw"], indicator_years=FARA_YEAR)
    return out


def _manifest(pack: Path) -> dict[str, Any]:
    return dict(json.loads((pack / "manifest.json").read_text()))


def test_pack_holds_tract_and_block_group_tables(pack: Path) -> None:
    m = _manifest(pack)
    assert m["tract_vintage"] == 2020
    assert m["files"]["indicators.parquet"]["rows"] == 33
    assert m["files"]["block_group_indicators.parquet"]["rows"] == 87
    assert m["files"]["block_group_indicators.parquet"]["geography"] == "block_group"
    bg = pl.read_parquet(pack / "block_group_indicators.parquet")
    assert bg.columns == ["block_group_geoid", "adi_national_rank", "adi_state_decile",
                          "adi_suppression"]
    inputs = {r["file"]: r for r in m["indicator_inputs"]}
    assert inputs["SVI_2022_US.csv"]["reader"] == "CDC/ATSDR SVI 2022"
    assert "E_NOINT" in inputs["SVI_2022_US.csv"]["ignored"]
    assert inputs["MA_2020_ADI_Census Block Group_v3.2.csv"]["level"] == "block_group"
    assert "Pop2010" in inputs["Massachusetts Food Access Data - Sheet1.csv"]["ignored"]


def test_split_tract_is_rekeyed_by_documented_area_weights(pack: Path,
                                                           files: dict[str, Path]) -> None:
    cw = pl.read_csv(files["census_cw"], separator="|", infer_schema=False).select(
        pl.col("GEOID_TRACT_10"), pl.col("GEOID_TRACT_20"),
        pl.col("AREALAND_PART").cast(pl.Float64))
    parts = cw.filter(pl.col("GEOID_TRACT_10") == SPLIT_2010)
    total = parts["AREALAND_PART"].sum()
    ind = pl.read_parquet(pack / "indicators.parquet")
    for target in SPLIT_2020:
        share = parts.filter(pl.col("GEOID_TRACT_20") == target)["AREALAND_PART"][0] / total
        row = ind.filter(pl.col("tract_geoid") == target).row(0, named=True)
        # the 2020 tract lies inside 2010 tract 354600: its rate is that tract's rate
        sources = cw.filter(pl.col("GEOID_TRACT_20") == target)["GEOID_TRACT_10"].to_list()
        assert sources == [SPLIT_2010]
        assert row["food_atlas_poverty_pct"] == pytest.approx(8.1)
        assert row["food_low_access_vehicle"] is True  # a flag: the largest source's value
        # a count is apportioned by the share of 354600's land in the 2020 tract
        assert row["food_households_no_vehicle"] == pytest.approx(588 * share)
        assert 0.3 < share < 0.7
    entries = {e["name"]: e for e in _manifest(pack)["columns"]}
    rekeyed = entries["food_households_no_vehicle"]["rekeyed"]
    assert rekeyed["from"] == 2010 and rekeyed["to"] == 2020
    assert rekeyed["crosswalk"] == "tab20_tract20_tract10_natl.txt"
    assert rekeyed["method"].startswith("area-weighted")
    assert entries["food_households_no_vehicle"]["geography"].startswith(
        "census tract (2020 boundaries), re-keyed from census tract (2010 boundaries)")
    assert "rekeyed" not in entries["svi_overall_rank"]  # already on 2020 tracts
    assert entries["svi_overall_rank"]["geography"] == "census tract (2020 boundaries)"


def test_population_weighted_crosswalk(files: dict[str, Path], tmp_path: Path) -> None:
    build_pack(tmp_path / "p", tracts=files["tracts"], indicators=[files["fara"]], name="p",
               crosswalk=files["nhgis_cw"], indicator_years=FARA_YEAR)
    ind = pl.read_parquet(tmp_path / "p" / "indicators.parquet").sort("tract_geoid")
    assert ind["tract_geoid"].to_list() == list(SPLIT_2020)
    assert ind["food_households_no_vehicle"].to_list() == pytest.approx([588 * 0.58, 588 * 0.42])
    assert ind["food_atlas_poverty_pct"].to_list() == pytest.approx([8.1, 8.1])
    method = next(e for e in _manifest(tmp_path / "p")["columns"]
                  if e["name"] == "food_urban_tract")["rekeyed"]["method"]
    assert method.startswith("population-weighted")


def test_mixing_vintages_without_a_crosswalk_is_an_error(files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError) as err:
        build_pack(tmp_path / "p", tracts=files["tracts"], name="p",
                   indicators=[files["svi"], files["fara"]], indicator_years=FARA_YEAR)
    text = str(err.value)
    assert "mix 2010 and 2020 tract boundaries" in text
    assert "2010: Food Access Research Atlas 2019" in text and "2020: SVI 2022" in text
    with pytest.raises(ReferenceDataError, match="keyed to 2010 tracts but the pack's tracts "
                                                 "are 2020"):
        build_pack(tmp_path / "q", tracts=files["tracts"], name="q", indicators=[files["fara"]])


def test_block_groups_of_another_vintage_are_refused(reference_data: Path,
                                                     files: dict[str, Path],
                                                     tmp_path: Path) -> None:
    old = tmp_path / "MA_2018_ADI_Census Block Group_v3.0.csv"
    old.write_text(files["adi"].read_text())
    with pytest.raises(ReferenceDataError, match="keyed to 2010 block groups but the pack's "
                                                 "tracts are 2020"):
        build_pack(tmp_path / "p", tracts=files["tracts"], name="p", indicators=[old])


def test_cli_build_reports_ignored_and_kept_columns(files: dict[str, Path],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "p"
    res = CliRunner().invoke(cli, [
        "reference", "build", "--out", str(out), "--tracts", str(files["tracts"]),
        "--indicators", str(files["svi"]), str(files["fara"]),
        "--crosswalk", str(files["census_cw"]),
        "--keep-columns", "E_NOINT=svi_no_internet_households", "Pop2010=food_pop_2010",
        "--source-year", f"{files['fara'].name}=2019",
    ])
    assert res.exit_code == 0, res.stderr
    assert "indicator files (every column mapped, kept or ignored)" in res.stdout
    assert "E_NOINT=svi_no_internet_households" in res.stdout
    assert "M_NOINT" in res.stdout  # an ignored column, named
    ind = pl.read_parquet(out / "indicators.parquet")
    assert {"svi_no_internet_households", "food_pop_2010"} <= set(ind.columns)
    inputs = {r["file"]: r for r in _manifest(out)["indicator_inputs"]}
    assert inputs["SVI_2022_US.csv"]["kept"] == {"E_NOINT": "svi_no_internet_households"}
    assert "E_NOINT" not in inputs["SVI_2022_US.csv"]["ignored"]
    bad = CliRunner().invoke(cli, [
        "reference", "build", "--out", str(tmp_path / "q"), "--tracts", str(files["tracts"]),
        "--indicators", str(files["svi"]), "--keep-columns", "NOPE=x"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().endswith("--keep-columns NOPE: no indicator file has such a "
                                       "column (names are case-sensitive)")


def test_enrich_joins_adi_on_block_group(pack: Path, reference_data: Path) -> None:
    bgs = cambridge_bg_ids(reference_data)
    geocoded = pl.LazyFrame({
        "patient_id": ["p1", "p2", "p3", "p4"],
        "tract_geoid": [bgs[0][:11], bgs[10][:11], SPLIT_2020[0], None],
        "block_group_geoid": [bgs[0], bgs[10], None, None],
        "geo_precision": ["address_point", "address_point", "range_interpolated", "unmatched"],
        "county_fips": ["25017", "25017", "25017", None],
    })
    frame, report = enrich(geocoded, pack)
    out = frame.collect()
    assert out["adi_suppression"].to_list() == ["GQ", None, None, None]
    assert out["adi_national_rank"].to_list() == [None, 11, None, None]
    assert out["food_atlas_poverty_pct"][2] == pytest.approx(8.1)
    assert out["sdoh_source"].to_list() == ["tract", "tract", "tract", "no_tract_unmatched"]
    assert "adi_national_rank" in report.indicator_columns
    entries = {e["name"]: e for e in report.dictionary}
    assert entries["adi_national_rank"]["geography"] == "census block group (2020 boundaries)"
    assert entries["svi_overall_rank"]["source"].startswith("CDC/ATSDR Social Vulnerability Index 2022")


def test_installed_command_refuses_an_unknown_adi_code_in_one_line(files: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """The real `segment` executable: a bad ADI value is one line naming file, column, value."""
    import shutil
    import subprocess
    import sys

    bad = tmp_path / "MA_2020_ADI_Census Block Group_v3.2.csv"
    bad.write_text(files["adi"].read_text().replace('"PH","PH"', '"PX","PH"'), encoding="utf-8")
    exe = shutil.which("segment") or str(Path(sys.executable).parent / "segment")
    proc = subprocess.run([exe, "--log-format", "plain", "reference", "build", "--out",
                           str(tmp_path / "p"), "--tracts", str(files["tracts"]),
                           "--block-groups", str(files["bgs"]), "--indicators", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    err = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert str(bad) in err[0] and "ADI_NATRANK" in err[0] and "'PX'" in err[0]
    assert not (tmp_path / "p" / "manifest.json").exists()
