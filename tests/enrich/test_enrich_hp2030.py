"""HP2030 gap arithmetic for objectives to decrease and to increase, and the map file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.enrich.hp2030 import (
    column_slug,
    hp2030_exprs,
    hp2030_mapping_rows,
    hp2030_objectives_rows,
    load_mappings,
    load_objectives,
    resolve,
)
from segment.errors import ConfigError


def test_shipped_objectives_and_map_load() -> None:
    objectives = load_objectives()
    assert objectives["SDOH-01"].target == 8.0
    assert objectives["SDOH-01"].direction == "decrease"
    assert objectives["AHS-01"].direction == "increase"
    assert objectives["HC/HIT-05"].source_url.startswith("https://")
    mapped = {m.objective.id for m in load_mappings()}
    assert {"SDOH-01", "AHS-01", "HC/HIT-05"} <= mapped


def test_column_slug() -> None:
    assert column_slug("HC/HIT-05") == "hc_hit_05"
    assert column_slug("SDOH-01") == "sdoh_01"


def test_gap_decrease_objective_poverty() -> None:
    # SDOH-01: reduce poverty, target 8.0 percent; gap = value - target
    resolved = resolve(load_mappings(), {"econ_poverty_pct"})
    frame = pl.DataFrame({"econ_poverty_pct": [12.5, 8.0, 5.0, None]})
    out = frame.select(hp2030_exprs(resolved))
    expected = pl.DataFrame({
        "hp2030_sdoh_01_gap": [4.5, 0.0, -3.0, None],
        "hp2030_sdoh_01_flag": [True, False, False, None],
    })
    assert_frame_equal(out, expected)


def test_gap_increase_objective_insurance_with_complement() -> None:
    # AHS-01: increase the insured share, target 92.4; insured = 100 - uninsured;
    # gap = target - value, so positive = fewer insured than the target
    resolved = resolve(load_mappings(), {"insurance_uninsured_pct"})
    frame = pl.DataFrame({"insurance_uninsured_pct": [10.0, 5.0, 7.6]})
    out = frame.select(hp2030_exprs(resolved))
    assert out["hp2030_ahs_01_gap"].to_list() == pytest.approx([2.4, -2.6, 0.0], abs=1e-9)
    assert out["hp2030_ahs_01_flag"].to_list() == [True, False, False]


def test_preferred_indicator_is_the_first_the_pack_has() -> None:
    mappings = load_mappings()
    only_access = resolve(mappings, {"internet_no_access_pct"})
    both = resolve(mappings, {"internet_no_access_pct", "internet_no_broadband_pct"})
    assert [c for m, c in only_access if m.objective.id == "HC/HIT-05"] == [
        "internet_no_access_pct"]
    assert [c for m, c in both if m.objective.id == "HC/HIT-05"] == ["internet_no_broadband_pct"]


def test_rows_for_reference_list() -> None:
    rows = {r["id"]: r for r in hp2030_objectives_rows()}
    assert rows["SDOH-01"]["indicators"] == "econ_poverty_pct"
    assert rows["SDOH-01"]["columns"] == "hp2030_sdoh_01_gap, hp2030_sdoh_01_flag"
    assert rows["C-04"]["indicators"] == ""
    mapping = {r["objective"]: r for r in hp2030_mapping_rows()}
    assert mapping["AHS-01"]["transform"] == "complement"


def _map(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(body)
    return path


def test_map_unknown_key_is_located(tmp_path: Path) -> None:
    path = _map(tmp_path, "version: 1\nobjectives:\n  - objective: SDOH-01\n"
                "    indicators: [econ_poverty_pct]\n    transform: identity\n"
                "    note: x\n    scale: 2\n")
    with pytest.raises(ConfigError, match=r"map.yaml:7: unknown key `objectives\[0\].scale`"):
        load_mappings(path)


def test_map_unknown_objective_and_indicator(tmp_path: Path) -> None:
    path = _map(tmp_path, "version: 1\nobjectives:\n  - objective: XYZ-99\n"
                "    indicators: [econ_poverty_pct]\n    transform: identity\n    note: x\n")
    with pytest.raises(ConfigError, match=r"map.yaml:3: key `objective`: found 'XYZ-99'"):
        load_mappings(path)
    path = _map(tmp_path, "version: 1\nobjectives:\n  - objective: SDOH-01\n"
                "    indicators: [poverty]\n    transform: identity\n    note: x\n")
    with pytest.raises(ConfigError, match=r"map.yaml:4: key `indicators`: found 'poverty'"):
        load_mappings(path)


def test_map_unit_mismatch_is_refused(tmp_path: Path) -> None:
    path = _map(tmp_path, "version: 1\nobjectives:\n  - objective: SDOH-01\n"
                "    indicators: [econ_per_capita_income]\n    transform: identity\n"
                "    note: x\n")
    with pytest.raises(ConfigError, match="is a percentage"):
        load_mappings(path)


def test_objectives_carry_odphp_latest_data_where_published() -> None:
    objectives = load_objectives()
    poverty = objectives["SDOH-01"]
    assert (poverty.baseline, poverty.baseline_year, poverty.target) == (11.8, "2018", 8.0)
    assert (poverty.latest_value, poverty.latest_year) == (11.5, "2022")
    assert poverty.progress == "Little or no detectable change"
    insured = objectives["AHS-01"]
    assert (insured.baseline, insured.target, insured.latest_value) == (88.0, 92.4, 91.1)
    broadband = objectives["HC/HIT-05"]
    assert (broadband.latest_value, broadband.progress) == (41.5, "Getting worse")
    assert broadband.data_source.startswith("Health Information National Trends Survey")
    assert objectives["SDOH-04"].latest_value is None  # not published on the page: not guessed
    rows = {r["id"]: r for r in hp2030_objectives_rows()}
    assert rows["SDOH-01"]["latest"] == "11.5 (2022)" and rows["SDOH-04"]["latest"] == ""


# Read off each objective's ODPHP page (the row's source_url); see docs/sdoh.md.
_REFRESHED = {
    "SDOH-03": (79.1, "2023", "Improving"),
    "SDOH-05": (6.5, "2020-21", "Improving"),
    "AH-08": (86.6, "2021-22", "Improving"),
    "AH-01": (78.7, "2016-17", "Baseline only"),
    "AHS-04": (7.0, "2021", ""),
    "AHS-06": (5.8, "2023", "Target met or exceeded"),
    "AHS-07": (90.3, "2024", "Little or no detectable change"),
    "AHS-08": (5.3, "2020", "Getting worse"),
    "IID-09": (49.8, "2020-21", "Getting worse"),
    "D-01": (5.5, "2019-21", "Baseline only"),
    "D-02": (41.3, "2017-20", "Little or no detectable change"),
    "D-03": (18.0, "2017-20", "Little or no detectable change"),
    "D-06": (55.1, "2019", "Little or no detectable change"),
    "TU-03": (14.8, "2022", "Improving"),
    "TU-13": (38.4, "2022", "Baseline only"),
    "MHMD-05": (63.7, "2022", "Little or no detectable change"),
}
#: no latest value found on the ODPHP pages: left empty, never guessed
_NOT_FOUND = {"SDOH-04", "SDOH-07", "HC/HIT-07", "C-04", "C-09", "HDS-05", "TU-01", "TU-02",
              "TU-14", "MHMD-08"}


def test_refreshed_objectives_match_the_odphp_pages() -> None:
    objectives = load_objectives()
    assert len(objectives) == 33
    for oid, (value, year, progress) in _REFRESHED.items():
        obj = objectives[oid]
        assert (obj.latest_value, obj.latest_year, obj.progress) == (value, year, progress), oid
        assert "healthypeople/objectives-and-data/browse-objectives/" in obj.source_url, oid
        assert obj.source_url.endswith(oid.lower().replace("/", "")) or "/data" in obj.source_url \
            or "/infographic" in obj.source_url, oid
    for oid in _NOT_FOUND:
        assert objectives[oid].latest_value is None and objectives[oid].latest_year == "", oid
    # every objective is either refreshed, was refreshed before, or listed as not found
    before = {"SDOH-01", "SDOH-02", "AHS-01", "HC/HIT-05", "NWS-01", "C-05", "C-07"}
    assert set(objectives) == set(_REFRESHED) | _NOT_FOUND | before
    # ODPHP revised these baselines and targets; the table follows the pages
    ahs08, mhmd05 = objectives["AHS-08"], objectives["MHMD-05"]
    assert (ahs08.baseline, ahs08.baseline_year, ahs08.target) == (8.5, "2015", 11.5)
    assert (mhmd05.baseline, mhmd05.baseline_year, mhmd05.target) == (60.8, "2021", 65.6)
    # C-09's page gives a status but the value was not in what could be read
    assert objectives["C-09"].progress == "Little or no detectable change"


def test_flag_comparison_says_what_it_compares() -> None:
    from segment.enrich.hp2030 import dictionary_entries

    resolved = resolve(load_mappings(), {"insurance_uninsured_pct"})
    entries = dictionary_entries(resolved, {"insurance_uninsured_pct": {
        "source": "ACS 5-year B27010", "vintage": "ACS 2020-2024 5-year",
        "geography": "census tract (2020 boundaries)"}}, "CAUTION")
    flag = next(e for e in entries if e["name"] == "hp2030_ahs_01_flag")
    assert flag["comparison"] == (
        "compares 100 minus insurance_uninsured_pct (ACS 5-year B27010, ACS 2020-2024 5-year; "
        "one census tract (2020 boundaries)) with the national HP2030 target for AHS-01 of 92.4 "
        "percent of persons <65 (measured on National Health Interview Survey (NHIS), CDC/NCHS; "
        "baseline 88.0 in 2019; latest national value 91.1 in 2023, improving). An "
        "approximation: a tract's estimate is not the survey's measure of the same population")
    assert "Approximation: a tract ACS estimate compared with a national survey target" in (
        flag["meaning"])
