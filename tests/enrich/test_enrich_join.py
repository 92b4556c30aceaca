"""Joining a pack's tract indicators to geocoded patients: sources, fallbacks, vintages."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.enrich import data_dictionary, enrich, enrich_workdir
from segment.errors import InputDataError, ReferenceDataError, StageInputError
from segment.reference.indicators import ECOLOGICAL_CAUTION
from segment.schema import NEED_INDEX, NEED_INDEX_QUINTILE, SDOH_SOURCE, SVI_OVERALL
from tests.enrich.conftest import entry, write_pack

TRACTS = pl.DataFrame({
    "tract_geoid": ["25025000100", "25025000200", "25025000300", "25017000100"],
    "econ_poverty_pct": [30.0, 10.0, 5.0, 20.0],
    "econ_unemployment_pct": [9.0, 4.0, 2.0, None],
    SVI_OVERALL: [0.9, 0.4, 0.1, 0.5],
})
COLUMNS = [entry("econ_poverty_pct"), entry("econ_unemployment_pct"),
           entry(SVI_OVERALL, unit="rank 0-1")]


def _geocoded() -> pl.LazyFrame:
    return pl.LazyFrame({
        "patient_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "zip5": ["02118", None, "02119", "02120", "02121", "02139"],
        "geo_precision": ["address_point", "unmatched", "zip_centroid", "range_interpolated",
                          "address_point", "zip_centroid"],
        "tract_geoid": ["25025000100", None, "25025000200", "25025999999", "25017000100",
                        "25017000100"],
        "county_fips": ["25025", None, "25025", "25025", "25017", "25017"],
    })


def test_sources_and_missing_stays_missing(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS)
    frame, report = enrich(_geocoded(), pack)
    out = frame.collect()
    assert out.columns[:5] == ["patient_id", "zip5", "geo_precision", "tract_geoid",
                               "county_fips"]
    expected = pl.DataFrame({
        "patient_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "econ_poverty_pct": [30.0, None, None, None, 20.0, None],
        "hp2030_sdoh_01_gap": [22.0, None, None, None, 12.0, None],
        "hp2030_sdoh_01_flag": [True, None, None, None, True, None],
        SDOH_SOURCE: ["tract", "no_tract_unmatched", "zip_centroid_no_tract",
                      "tract_not_in_pack", "tract", "zip_centroid_no_tract"],
    })
    assert_frame_equal(out.select(expected.columns), expected)
    # the zip-centroid patient's tract is not trusted even though it is in the pack
    assert out.filter(pl.col("patient_id") == "p3")[NEED_INDEX].item() is None
    assert out[NEED_INDEX].null_count() == 4
    assert report.hp2030_columns == ["hp2030_sdoh_01_gap", "hp2030_sdoh_01_flag"]
    assert "AHS-01" in report.hp2030_unmapped
    completed = report.with_counts(out)
    assert completed.sdoh_source == {"tract": 2, "zip_centroid_no_tract": 2,
                                     "no_tract_unmatched": 1, "tract_not_in_pack": 1}
    assert completed.coverage["econ_poverty_pct"] == {"patients": 2, "share": round(2 / 6, 6)}


def test_county_fallback_for_zip_centroid_when_the_pack_has_it(tmp_path: Path) -> None:
    county = pl.DataFrame({"county_fips": ["25017"], "econ_poverty_pct": [11.0]})
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS,
                      extra_tables={"county_indicators.parquet": county})
    out, report = enrich(_geocoded(), pack)
    done = out.collect()
    p6 = done.filter(pl.col("patient_id") == "p6").row(0, named=True)
    assert p6[SDOH_SOURCE] == "county"
    assert p6["econ_poverty_pct"] == 11.0
    assert p6["econ_unemployment_pct"] is None  # not in the county table: stays null
    assert p6[NEED_INDEX] is None  # the need index is tract-only
    # p3's county has no county row: no fallback
    p3 = done.filter(pl.col("patient_id") == "p3").row(0, named=True)
    assert p3[SDOH_SOURCE] == "zip_centroid_no_tract"
    assert report.with_counts(done).fallbacks == {"zcta": 0, "county": 1}


def test_vintage_mismatch_is_refused(tmp_path: Path) -> None:
    cols = [entry(c["name"], c["unit"], vintage=2010) for c in COLUMNS]
    pack = write_pack(tmp_path / "pack", TRACTS, cols, tract_vintage=2020)
    with pytest.raises(ReferenceDataError, match="keyed to 2010 tracts but its tracts"):
        enrich(_geocoded(), pack)


def test_vintage_mismatch_accepted_through_a_crosswalk(tmp_path: Path) -> None:
    cols = [entry(c["name"], c["unit"], vintage=2010) for c in COLUMNS]
    pack = write_pack(tmp_path / "pack", TRACTS, cols, tract_vintage=2020)
    xw = tmp_path / "xw.txt"
    xw.write_text(
        "GEOID_TRACT_20|GEOID_TRACT_10|AREALAND_PART\n"
        "25025000101|25025000100|100\n"
        "25025000101|25025000200|300\n"
        "25025000200|25025000300|50\n"
    )
    geocoded = pl.LazyFrame({
        "patient_id": ["a", "b"], "geo_precision": ["address_point"] * 2,
        "tract_geoid": ["25025000101", "25025000200"], "county_fips": ["25025"] * 2,
    })
    out, report = enrich(geocoded, pack, crosswalk=xw)
    values = out.collect()["econ_poverty_pct"].to_list()
    assert values == pytest.approx([(30 * 100 + 10 * 300) / 400, 5.0])
    assert report.indicator_tract_vintage == 2010 and report.tract_vintage == 2020
    geo = {e["name"]: e["geography"] for e in report.dictionary}["econ_poverty_pct"]
    assert "interpolated from census tract (2010 boundaries)" in geo


def test_geocoded_frame_must_not_already_be_enriched(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS)
    with pytest.raises(InputDataError, match="already has enrichment columns"):
        enrich(_geocoded().with_columns(pl.lit(1.0).alias("econ_poverty_pct")), pack)


def test_pack_without_indicators(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS)
    manifest = json.loads((pack / "manifest.json").read_text())
    del manifest["files"]["indicators.parquet"]
    (pack / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferenceDataError, match=r"has no indicators\.parquet"):
        enrich(_geocoded(), pack)


def test_real_massachusetts_pack(tmp_path: Path, ma_indicators: pl.DataFrame,
                                 oeps_loaded: tuple[pl.DataFrame, list[dict]]) -> None:
    pack = write_pack(tmp_path / "pack", ma_indicators, oeps_loaded[1])
    work = tmp_path / "work"
    work.mkdir()
    pl.DataFrame({
        "patient_id": ["boston", "cape", "water"],
        "geo_precision": ["address_point"] * 3,
        "tract_geoid": ["25025010405", "25001010100", "25001990000"],
        "county_fips": ["25025", "25001", "25001"],
    }).write_parquet(work / "geocoded.parquet")
    report = enrich_workdir(work, pack)
    out = pl.read_parquet(work / "enriched.parquet")
    boston = out.row(0, named=True)
    assert boston["econ_poverty_pct"] == 54.3 and boston[SVI_OVERALL] == 0.81
    assert boston[NEED_INDEX_QUINTILE] == 5  # a high-poverty Boston tract
    assert boston["hp2030_sdoh_01_gap"] == pytest.approx(54.3 - 8.0)
    water = out.row(2, named=True)
    assert water[SDOH_SOURCE] == "tract" and water[NEED_INDEX] is None
    assert water["econ_poverty_pct"] is None and water[SVI_OVERALL] is None
    assert 0.5 < report.need_index.variance_explained < 1.0  # type: ignore[operator]
    saved = json.loads((work / "enrich-report.json").read_text())
    assert saved["patients"] == 3
    assert saved["need_index"]["inputs"][0] == "econ_poverty_pct"
    assert saved["coverage"]["econ_poverty_pct"]["patients"] == 2
    assert set(saved["columns_added"]) == set(out.columns) - {
        "patient_id", "geo_precision", "tract_geoid", "county_fips"}


def test_data_dictionary_covers_every_added_column(tmp_path: Path, ma_indicators: pl.DataFrame,
                                                   oeps_loaded: tuple[pl.DataFrame, list[dict]]
                                                   ) -> None:
    pack = write_pack(tmp_path / "pack", ma_indicators, oeps_loaded[1])
    _, report = enrich(_geocoded(), pack)
    manifest = json.loads((pack / "manifest.json").read_text())
    entries = data_dictionary(manifest)
    assert [e["name"] for e in entries] == [e["name"] for e in report.dictionary]
    assert sorted(e["name"] for e in entries) == sorted(report.columns_added)
    for e in entries:
        assert {"name", "meaning", "source", "vintage", "geography", "unit"} <= set(e)
    by_name = {e["name"]: e for e in entries}
    assert ECOLOGICAL_CAUTION in by_name[NEED_INDEX]["meaning"]
    assert "Approximation" in by_name["hp2030_sdoh_01_gap"]["meaning"]
    assert "positive = worse" in by_name["hp2030_sdoh_01_gap"]["meaning"]


def test_workdir_without_geocoded(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS)
    with pytest.raises(StageInputError, match="run `segment geocode` first"):
        enrich_workdir(tmp_path, pack)


def test_zcta_fallback_comes_before_county(tmp_path: Path) -> None:
    zcta = pl.DataFrame({"zcta5": ["02139"], "econ_poverty_pct": [14.0]})
    county = pl.DataFrame({"county_fips": ["25017", "25025"], "econ_poverty_pct": [11.0, 17.0]})
    pack = write_pack(tmp_path / "pack", TRACTS, COLUMNS, extra_tables={
        "zcta_indicators.parquet": zcta, "county_indicators.parquet": county})
    out, _ = enrich(_geocoded(), pack)
    done = out.collect().select("patient_id", "econ_poverty_pct", SDOH_SOURCE)
    expected = pl.DataFrame({
        "patient_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "econ_poverty_pct": [30.0, None, 17.0, None, 20.0, 14.0],
        SDOH_SOURCE: ["tract", "no_tract_unmatched", "county", "tract_not_in_pack", "tract",
                      "zcta"],
    })
    assert_frame_equal(done, expected)
