"""The indicator loader against the real OEPS tract files, and the ACS arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.errors import ReferenceDataError
from segment.reference.indicators import (
    ACS_VARIABLES,
    ECOLOGICAL_CAUTION,
    acs_to_indicators,
)
from segment.reference.loading import load_indicator_files
from segment.schema import NO_INTERNET_PCT, RURALITY, SVI_OVERALL

pytestmark = pytest.mark.reference


def _row(frame: pl.DataFrame, geoid: str) -> dict[str, Any]:
    return frame.filter(pl.col("tract_geoid") == geoid).row(0, named=True)


def test_massachusetts_tracts_join_across_files(ma_indicators: pl.DataFrame) -> None:
    # 1,478 MA 2010 tracts; every id is 11 digits and unique
    assert ma_indicators.height == 1478
    assert ma_indicators["tract_geoid"].str.len_chars().unique().to_list() == [11]
    row = _row(ma_indicators, "25025010405")  # Boston tract: values from the CSVs as stored
    assert row["econ_poverty_pct"] == 54.3
    assert row["econ_unemployment_pct"] == 22.4
    assert row["econ_per_capita_income"] == 9436.0
    assert row[NO_INTERNET_PCT] == 28.43
    assert row["housing_vacant_pct"] == 12.95
    assert row[RURALITY] == "Urban"
    assert row["ruca_primary"] == 1
    assert row[SVI_OVERALL] == 0.81
    assert row["svi_theme1_rank"] == 0.98
    assert row["access_hospital_distance_mi"] == 1.07
    assert row["access_pcp_count"] == 3.0  # Health03_T's 13-char geoid "2525025010405"


def test_na_values_are_null_not_zero(ma_indicators: pl.DataFrame) -> None:
    row = _row(ma_indicators, "25001990000")  # water tract: NA everywhere in SVI/economic
    assert row[SVI_OVERALL] is None
    assert row["econ_poverty_pct"] is None
    assert row[RURALITY] == "Rural"


def test_tract_missing_from_one_file_keeps_nulls(oeps_dir: Path) -> None:
    frame, _ = load_indicator_files(
        [oeps_dir / "EC03_T.csv", oeps_dir / "BE01_T.csv", oeps_dir / "BE02_RUCA_T.csv"]
    )
    # 25007990000 is in EC03_T and BE02_RUCA_T but not in BE01_T
    row = _row(frame, "25007990000")
    assert row["housing_vacant_pct"] is None
    assert row["housing_rental_pct"] is None
    assert row[RURALITY] == "Rural"


def test_leading_zero_geoids_are_restored(oeps_loaded: tuple[pl.DataFrame, list[Any]]) -> None:
    frame, _ = oeps_loaded
    # Connecticut: BE01_T stores 9001010101 (zero lost), EC03_T stores 09001010101
    row = _row(frame, "09001010101")
    assert row["housing_vacant_pct"] == 17.1
    assert row["econ_poverty_pct"] == 9.1
    assert row["access_pcp_count"] == 0.0  # Health03_T geoid 0909001010101
    assert frame.filter(pl.col("tract_geoid").str.len_chars() != 11).height == 0
    assert frame.filter(pl.col("tract_geoid") == "9001010101").height == 0


def test_dictionary_entries_for_every_column(oeps_loaded: tuple[pl.DataFrame, list[Any]]) -> None:
    frame, entries = oeps_loaded
    names = [e["name"] for e in entries]
    assert sorted(names) == sorted(c for c in frame.columns if c != "tract_geoid")
    for e in entries:
        assert set(e) == {"name", "meaning", "source", "vintage", "geography", "unit"}
        assert e["geography"] == "census tract (2010 boundaries)"
        assert ECOLOGICAL_CAUTION in e["meaning"]
    by_name = {e["name"]: e for e in entries}
    assert by_name["econ_poverty_pct"]["vintage"] == "ACS 2014-2018 5-year"
    assert by_name[NO_INTERNET_PCT]["vintage"] == "ACS 2015-2019 5-year"
    assert "Social Vulnerability Index" in by_name[SVI_OVERALL]["source"]


def test_unknown_columns_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mystery.csv"
    path.write_text("GEOID,foo,bar\n25025010405,1,2\n")
    with pytest.raises(ReferenceDataError) as info:
        load_indicator_files([path])
    text = str(info.value)
    assert "mystery.csv" in text and "foo" in text
    assert "EC03_T (GEOID, unempP, povP, pciE)" in text


def test_non_tract_geoids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "county.csv"
    path.write_text("GEOID,unempP,povP,pciE\n25025,5.0,10.0,40000\n")
    with pytest.raises(ReferenceDataError, match=r"1 GEOIDs are not census tract ids \(lengths found: 5\)"):
        load_indicator_files([path])


def test_column_from_two_files_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        p.write_text("GEOID,unempP,povP,pciE\n25025010405,5.0,10.0,40000\n")
    with pytest.raises(ReferenceDataError, match=r"supplied by both a\.csv and b\.csv"):
        load_indicator_files([a, b])


def test_combined_synthetic_file_with_oeps_names(tmp_path: Path) -> None:
    path = tmp_path / "demo.csv"
    path.write_text("GEOID,unempP,povP,pciE,NoIntPct\n9001010101,5.0,NA,40000,3.5\n")
    frame, entries = load_indicator_files([path])
    expected = pl.DataFrame({
        "tract_geoid": ["09001010101"], "econ_unemployment_pct": [5.0],
        "econ_poverty_pct": [None], "econ_per_capita_income": [40000.0], NO_INTERNET_PCT: [3.5],
    }, schema_overrides={"econ_poverty_pct": pl.Float64})
    assert_frame_equal(frame, expected)
    assert len(entries) == 4


def test_acs_percentages_sentinels_and_zero_denominators() -> None:
    raw = pl.DataFrame({
        "state": ["25", "25", "25"], "county": ["025", "025", "025"],
        "tract": ["010405", "010406", "010407"],
        "B17001_002E": [250.0, -666666666.0, 0.0],
        "B17001_001E": [1000.0, 900.0, 0.0],
        "B19013_001E": [52000.0, -666666666.0, 250001.0],
        "B28002_004E": ["800", "450", None],
        "B28002_013E": ["100", "50", None],
        "B28002_001E": ["1000", "500", "0"],
    })
    out, entries = acs_to_indicators(raw, year=2022)
    expected = pl.DataFrame({
        "tract_geoid": ["25025010405", "25025010406", "25025010407"],
        "econ_poverty_pct": [25.0, None, None],
        "econ_median_household_income": [52000.0, None, 250001.0],
        "internet_no_access_pct": [10.0, 10.0, None],
        "internet_no_broadband_pct": [20.0, 10.0, None],
    })
    assert_frame_equal(out, expected)
    assert {e["vintage"] for e in entries} == {"ACS 2018-2022 5-year"}
    assert {e["geography"] for e in entries} == {"census tract (2020 boundaries)"}


def test_acs_variables_cover_every_measure() -> None:
    for var in ("B17001_002E", "B17001_001E", "B19013_001E", "B08201_002E", "B27010_017E",
                "C16002_004E", "B28002_013E", "B25070_010E", "B22010_002E"):
        assert var in ACS_VARIABLES
    assert ACS_VARIABLES["B17001_002E"] == "econ_poverty_pct"


def test_acs_pull_file_is_recognized(tmp_path: Path) -> None:
    path = tmp_path / "acs.csv"
    path.write_text("GEO_ID,B27010_001E,B27010_017E,B27010_033E,B27010_050E,B27010_066E,year\n"
                    "1400000US25025010405,2000,10,40,30,20,2019\n")
    frame, entries = load_indicator_files([path])
    assert frame.row(0) == ("25025010405", 5.0)
    assert entries[0]["geography"] == "census tract (2010 boundaries)"
    assert entries[0]["vintage"] == "ACS 2015-2019 5-year"
