"""Publishers' own index files: SVI, ADI, Food Access Research Atlas; ACS measures; no silent drops.

Real files (../shared/reference/sdoh2020): the USDA Food Access Research Atlas 2019 for
Massachusetts and CDC/ATSDR SVI 2018 at county level. Fixtures (tests/reference/sdoh_fixtures.py)
stand for SVI_2022_US.csv and the Neighborhood Atlas MA_2020_ADI file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.sdoh_fixtures import (
    FARA,
    SDOH,
    SVI_COUNTY,
    cambridge_bg_ids,
    cambridge_tract_ids,
    write_adi_2020,
    write_svi_2022,
)
from segment.errors import ReferenceDataError
from segment.reference.indicators import acs_to_indicators
from segment.reference.loading import (
    load_indicator_files,
    load_indicator_sources,
    parse_pairs,
    parse_years,
)
from segment.reference.publishers import Level, header_of

pytestmark = pytest.mark.reference


def _row(frame: pl.DataFrame, key: str, value: str) -> dict[str, Any]:
    return frame.filter(pl.col(key) == value).row(0, named=True)


# -- USDA Food Access Research Atlas (real, 2019, Massachusetts) ---------------------------------
def test_food_access_atlas_real_file(reference_data: Path) -> None:
    path = reference_data / SDOH / FARA
    tables = load_indicator_sources([path], years={path.name: 2019})
    frame = tables.frames[Level.TRACT]
    assert frame.height == 1467  # every Massachusetts row; the UTF-8 BOM is not a column name
    barnstable = _row(frame, "tract_geoid", "25001010100")
    assert barnstable["food_urban_tract"] is True
    assert barnstable["food_lila_1_10"] is False
    assert barnstable["food_low_income_tract"] is True
    assert barnstable["food_low_access_1_mile_pct"] == 7.7
    assert barnstable["food_low_access_10_mile_pct"] is None  # NULL is missing, not 0
    assert barnstable["food_households_no_vehicle"] == 211.0
    mashpee = _row(frame, "tract_geoid", "25001010306")  # a LILA tract at 1 and 10 miles
    assert mashpee["food_lila_1_10"] is True and mashpee["food_low_access_1_10"] is True
    assert mashpee["food_atlas_poverty_pct"] == 9.9
    report = tables.files[0].report()
    assert report["reader"] == "USDA Food Access Research Atlas" and report["key"] == ["CensusTract"]
    # not mapped, reported: State, County, Pop2010, OHU2010, counts such as LAPOP05_10
    assert {"State", "County", "Pop2010", "OHU2010", "LAPOP05_10", "lapop1"} <= set(report["ignored"])
    assert set(report["mapped"]) | set(report["ignored"]) | {"CensusTract"} == set(
        header_of(path))
    assert len(header_of(path)) == 33
    entry = next(e for e in tables.entries if e["name"] == "food_lila_1_10")
    assert entry["geography"] == "census tract (2010 boundaries)"
    assert entry["vintage"] == "Food Access Research Atlas 2019"
    assert entry["raw"] == "LILATracts_1And10" and entry["unit"] == "boolean"


# -- CDC/ATSDR SVI -------------------------------------------------------------------------------
def test_svi_2018_county_real_file(reference_data: Path) -> None:
    path = reference_data / SDOH / SVI_COUNTY
    tables = load_indicator_sources([path])
    assert list(tables.frames) == [Level.COUNTY]
    frame = tables.frames[Level.COUNTY]
    assert frame.height == 14 and frame.columns[0] == "county_fips"
    dukes = _row(frame, "county_fips", "25007")
    assert dukes["svi_theme1_rank"] == 0.0769
    assert dukes["svi_pov_pct"] == 8.0 and dukes["svi_per_capita_income"] == 43822.0
    assert dukes["svi_uninsur_pct"] == 5.0
    hampden = _row(frame, "county_fips", "25013")
    assert hampden["svi_theme1_rank"] == 1.0 and hampden["svi_pov_pct"] == 17.1
    entry = next(e for e in tables.entries if e["name"] == "svi_overall_rank")
    assert entry["vintage"] == "SVI 2018 (ACS 2014-2018)"  # EP_PCI exists only up to 2018
    assert entry["geography"] == "county" and entry["level"] == "county"
    assert "among US counties" in entry["meaning"]
    report = tables.files[0].report()
    assert "E_UNINSUR" in report["ignored"] and "F_TOTAL" in report["ignored"]
    assert len(report["mapped"]) + len(report["ignored"]) + 1 == 123


def test_svi_2022_tract_fixture_minus_999_is_missing(reference_data: Path,
                                                      tmp_path: Path) -> None:
    ids = cambridge_tract_ids(reference_data)
    path = write_svi_2022(tmp_path, ids)
    tables = load_indicator_sources([path])
    frame = tables.frames[Level.TRACT]
    assert frame.height == 33
    empty = _row(frame, "tract_geoid", ids[0])
    assert empty["svi_overall_rank"] is None and empty["svi_pov150_pct"] is None
    second = _row(frame, "tract_geoid", ids[1])
    assert second["svi_overall_rank"] == round(0.1 + 0.8 / 33, 4)
    assert second["svi_noint_pct"] == 5.1 and second["svi_hburd_pct"] == 25.0
    entry = next(e for e in tables.entries if e["name"] == "svi_theme3_rank")
    assert "racial and ethnic minority status" in entry["meaning"]
    assert entry["vintage"] == "SVI 2022 (ACS 2018-2022)"
    assert entry["geography"] == "census tract (2020 boundaries)"


def test_svi_edition_must_be_knowable(reference_data: Path, tmp_path: Path) -> None:
    path = write_svi_2022(tmp_path, cambridge_tract_ids(reference_data))
    renamed = path.rename(tmp_path / "svi_tracts.csv")
    with pytest.raises(ReferenceDataError, match="cannot tell the SVI edition"):
        load_indicator_sources([renamed])
    tables = load_indicator_sources([renamed], years={"svi_tracts.csv": 2020})
    assert tables.entries[0]["vintage"] == "SVI 2020 (ACS 2016-2020)"
    with pytest.raises(ReferenceDataError, match="not one CDC/ATSDR published"):
        load_indicator_sources([renamed], years={"svi_tracts.csv": 2021})


# -- Neighborhood Atlas ADI ----------------------------------------------------------------------
def test_adi_suppression_codes_are_reasons_not_numbers(reference_data: Path,
                                                       tmp_path: Path) -> None:
    bgs = cambridge_bg_ids(reference_data)
    path = write_adi_2020(tmp_path, bgs)
    tables = load_indicator_sources([path])
    frame = tables.frames[Level.BLOCK_GROUP]
    assert frame.height == 87 and frame.columns[0] == "block_group_geoid"
    assert frame.schema["adi_national_rank"] == pl.Int16
    for bg, code in zip(bgs[:4], ["GQ", "PH", "GQ-PH", "QDI"], strict=True):
        row = _row(frame, "block_group_geoid", bg)
        assert row["adi_national_rank"] is None and row["adi_state_decile"] is None
        assert row["adi_suppression"] == code
    ranked = _row(frame, "block_group_geoid", bgs[10])
    assert (ranked["adi_national_rank"], ranked["adi_state_decile"]) == (11, 1)
    assert ranked["adi_suppression"] is None
    entry = next(e for e in tables.entries if e["name"] == "adi_national_rank")
    assert entry["geography"] == "census block group (2020 boundaries)"
    assert entry["vintage"] == "ADI 2020 (ACS 2016-2020)"
    assert tables.files[0].report()["ignored"] == ["GISJOIN"]


def test_adi_unknown_code_or_out_of_range_rank_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "RI_2021_ADI_Census_Block_Group_v4_0_1.csv"
    path.write_text('"GISJOIN","FIPS","ADI_NATRANK","ADI_STATERNK"\n'
                    '"G4400010030100",440010301001,"55","6"\n'
                    '"G4400010030100",440010301002,"X9","6"\n', encoding="utf-8")
    with pytest.raises(ReferenceDataError) as err:
        load_indicator_sources([path])
    text = str(err.value)
    assert "ADI_NATRANK" in text and "'X9'" in text and "440010301002" in text
    assert "GQ, GQ-PH, PH, PH-GQ, QDI" in text
    path.write_text('"GISJOIN","FIPS","ADI_NATRANK","ADI_STATERNK"\n'
                    '"G4400010030100",440010301001,"55","11"\n', encoding="utf-8")
    with pytest.raises(ReferenceDataError, match="neither a rank 1-10"):
        load_indicator_sources([path])


def test_adi_block_group_fips_lost_leading_zero(tmp_path: Path) -> None:
    path = tmp_path / "CT_2020_ADI_Census Block Group_v3.2.csv"
    path.write_text("GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK\nG0900010010101,90010101011,12,3\n",
                    encoding="utf-8")
    frame = load_indicator_sources([path]).frames[Level.BLOCK_GROUP]
    assert frame["block_group_geoid"].to_list() == ["090010101011"]


# -- no silent drops -----------------------------------------------------------------------------
def test_themed_file_reports_its_unknown_column(tmp_path: Path) -> None:
    path = tmp_path / "themed.csv"
    path.write_text("tract_geoid,econ_poverty_pct,my_new_measure\n25017352500,12.5,7\n",
                    encoding="utf-8")
    tables = load_indicator_sources([path])
    assert tables.files[0].report()["ignored"] == ["my_new_measure"]
    assert "my_new_measure" not in tables.frames[Level.TRACT].columns
    kept = load_indicator_sources([path], keep={"my_new_measure": "my_measure"})
    frame = kept.frames[Level.TRACT]
    assert frame["my_measure"].to_list() == [7.0]
    report = kept.files[0].report()
    assert report["ignored"] == [] and report["kept"] == {"my_new_measure": "my_measure"}
    entry = next(e for e in kept.entries if e["name"] == "my_measure")
    assert entry["kept"] is True and "my_new_measure" in entry["meaning"]


def test_kept_column_uses_publisher_missing_codes(reference_data: Path) -> None:
    path = reference_data / SDOH / SVI_COUNTY
    tables = load_indicator_sources([path], keep={"E_UNINSUR": "svi_uninsured_count",
                                                  "LOCATION": "svi_location"})
    frame = tables.frames[Level.COUNTY]
    dukes = _row(frame, "county_fips", "25007")
    assert dukes["svi_uninsured_count"] == 860.0
    assert dukes["svi_location"] == "Dukes County, Massachusetts"  # text stays text


def test_keep_errors_name_the_column(reference_data: Path, tmp_path: Path) -> None:
    path = reference_data / SDOH / SVI_COUNTY
    with pytest.raises(ReferenceDataError, match="no indicator file has such a column"):
        load_indicator_sources([path], keep={"E_NOTHING": "x"})
    with pytest.raises(ReferenceDataError, match="already mapped to svi_overall_rank"):
        load_indicator_sources([path], keep={"RPL_THEMES": "x"})
    with pytest.raises(ReferenceDataError, match=r"the file's key \(county_fips\)"):
        load_indicator_sources([path], keep={"FIPS": "fips"})
    with pytest.raises(ReferenceDataError, match="lower case letters"):
        load_indicator_sources([path], keep={"E_UNINSUR": "Bad Name"})
    assert parse_pairs(["E_NOINT=svi_no_internet", "GISJOIN"], what="--keep-columns") == {
        "E_NOINT": "svi_no_internet", "GISJOIN": "gisjoin"}
    assert parse_years(["some/dir/SVI.csv=2022"]) == {"SVI.csv": 2022}
    with pytest.raises(ReferenceDataError, match="expected FILE=YEAR"):
        parse_years(["SVI.csv"])


def test_load_indicator_files_refuses_non_tract_levels(reference_data: Path) -> None:
    with pytest.raises(ReferenceDataError, match=r"not tract-level files: MA_SVI_County\.csv"):
        load_indicator_files([reference_data / SDOH / SVI_COUNTY])


# -- ACS measures --------------------------------------------------------------------------------
def _acs(**values: float) -> pl.DataFrame:
    return pl.DataFrame({"state": ["25"], "county": ["017"], "tract": ["352500"],
                         **{k: [v] for k, v in values.items()}})


def test_rent_burden_denominator_leaves_out_not_computed() -> None:
    # 1,000 renter households; 100 "not computed" (B25070_011); 90+60+50+250 = 450 burdened
    frame, entries = acs_to_indicators(_acs(
        B25070_001E=1000, B25070_007E=90, B25070_008E=60, B25070_009E=50, B25070_010E=250,
        B25070_011E=100), year=2022)
    assert frame["housing_rent_burden_pct"].to_list() == [50.0]  # 450 / 900, not 450 / 1000
    entry = next(e for e in entries if e["name"] == "housing_rent_burden_pct")
    assert entry["numerator"] == "B25070_007E + B25070_008E + B25070_009E + B25070_010E"
    assert entry["denominator"] == "B25070_001E - B25070_011E"
    assert entry["geography"] == "census tract (2020 boundaries)"
    # without the "not computed" count the measure is not computed at all
    frame, _ = acs_to_indicators(_acs(B25070_001E=1000, B25070_007E=90, B25070_008E=60,
                                      B25070_009E=50, B25070_010E=250, B17001_001E=10,
                                      B17001_002E=1), year=2022)
    assert "housing_rent_burden_pct" not in frame.columns


def test_margin_of_error_flags_unreliable_estimates() -> None:
    # poverty 250 / 1000 = 25%; MOE_num 40, MOE_den 0: MOE_p = 40/1000 = 4 points;
    # CV = (4 / 1.645) / 25 = 0.097 -> reliable. Second tract: 20 / 100, MOE 30 -> CV 0.91
    frame, entries = acs_to_indicators(pl.DataFrame({
        "state": ["25", "25"], "county": ["017", "017"], "tract": ["352500", "352600"],
        "B17001_001E": [1000, 100], "B17001_002E": [250, 20],
        "B17001_001M": [-555555555, 12], "B17001_002M": [40, 30],
        "B19013_001E": [61250, 250001], "B19013_001M": [9000, -333333333],
    }), year=2022)
    assert frame["econ_poverty_pct"].to_list() == [25.0, 20.0]
    assert frame["econ_poverty_pct_unreliable"].to_list() == [False, True]
    # median income: CV = 9000 / 1.645 / 61250 = 0.089; an annotated MOE gives no verdict
    assert frame["econ_median_household_income_unreliable"].to_list() == [False, None]
    entry = next(e for e in entries if e["name"] == "econ_poverty_pct")
    assert "1.645" in entry["moe"] and "0.4" in entry["moe"]
    assert "B17001_002M" in entry["variables"]
    assert any(e["name"] == "econ_poverty_pct_unreliable" and e["unit"] == "boolean"
               for e in entries)
    # no MOE columns: no companion column, said so in the entry
    frame, entries = acs_to_indicators(_acs(B17001_001E=1000, B17001_002E=250), year=2019)
    assert "econ_poverty_pct_unreliable" not in frame.columns
    assert entries[0]["moe"] == "no margins of error in the input"
    assert entries[0]["geography"] == "census tract (2010 boundaries)"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=14),
       st.sampled_from(list(Level)))
def test_geoid_column_restores_one_lost_zero_and_nothing_else(digits: str, level: Level) -> None:
    from segment.reference.publishers import geoid_column

    got = pl.DataFrame({"FIPS": [f" {digits} "]}).select(geoid_column("FIPS", level))["FIPS"][0]
    if len(digits) in (level.width - 1, level.width):
        assert got == digits.zfill(level.width) and len(got) == level.width
    else:
        assert got is None


def test_oeps_identifier_columns_are_keys_and_data_columns_are_reported(tmp_path: Path) -> None:
    """G_GEOID, the table's year and an unnamed row index are identifiers; an unmapped measure is listed."""
    from segment.reference.indicators import load_one

    path = tmp_path / "Access03_T.csv"
    path.write_text(",G_GEOID,GEOID,year,minDisHosp,timeDrive,countDrive,newMeasure\n"
                    "0,G25901700100,25901700100,2019,9.37,22.61,5,1.5\n", encoding="utf-8")
    loaded = load_one(path)
    assert loaded.ignored == ["newMeasure"]
