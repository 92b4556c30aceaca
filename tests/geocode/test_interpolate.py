from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import polars as pl
import pytest
from shapely.geometry import LineString

from geocode.tinyworld import addrfeat_frame
from segment.geocode.interpolate import interpolate, place_points, prepare_ranges
from segment.reference.tiger import read_address_ranges

M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(42.32))
M_PER_DEG_LAT = 110_540.0


@pytest.fixture(scope="module")
def index(tiny_world):  # type: ignore[no-untyped-def]
    return prepare_ranges(read_address_ranges(tiny_world.addrfeat))


def run(index, rows: list[tuple[int | None, str, str]]) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    q = pl.DataFrame({
        "qid": list(range(len(rows))),
        "house_number": [r[0] for r in rows],
        "street_key": [r[1] for r in rows],
        "zip5": [r[2] for r in rows],
    }, schema={"qid": pl.UInt32, "house_number": pl.Int64, "street_key": pl.String,
               "zip5": pl.String})
    return interpolate(q, index).to_dicts()


def test_odd_number_left_side_hand_checked(index) -> None:  # type: ignore[no-untyped-def]
    # Main St TLID 1001 runs east from -71.09 to -71.05; left (north) side 1..99 odd.
    (r,) = run(index, [(51, "MAIN ST", "02119")])
    assert r["geo_precision"] == "range_interpolated" and r["tlid"] == 1001 and r["side"] == "L"
    frac = (51 - 1) / (99 - 1)
    assert r["lon"] == pytest.approx(-71.09 + frac * 0.04, abs=1e-9)
    assert (r["lat"] - 42.32) * M_PER_DEG_LAT == pytest.approx(10.0, abs=0.1)  # 10 m north
    assert r["geo_score"] == 1.0 and r["geo_reason"] is None


def test_even_number_right_side_and_second_segment(index) -> None:  # type: ignore[no-untyped-def]
    (r,) = run(index, [(150, "MAIN ST", "02119")])
    assert r["tlid"] == 1002 and r["side"] == "R"
    assert r["lon"] == pytest.approx(-71.05 + (150 - 100) / 98 * 0.04, abs=1e-9)
    assert (r["lat"] - 42.32) * M_PER_DEG_LAT == pytest.approx(-10.0, abs=0.1)  # 10 m south


def test_backwards_range_measured_from_from_end(index) -> None:  # type: ignore[no-untyped-def]
    # Oak Rd TLID 3001 runs east -71.08 -> -71.02; right side 98 -> 2 (backwards)
    (r,) = run(index, [(20, "OAK RD", "02120")])
    assert r["side"] == "R"
    assert r["lon"] == pytest.approx(-71.08 + (20 - 98) / (2 - 98) * 0.06, abs=1e-9)
    (r,) = run(index, [(99, "OAK RD", "02120")])
    assert r["lon"] == pytest.approx(-71.08, abs=1e-9)  # 99 is the FROM end of the left side


def test_offset_puts_point_on_its_side_of_a_boundary_street(index) -> None:  # type: ignore[no-untyped-def]
    # Elm Ave runs north along lon -71.05: odd numbers west (left), even east (right)
    odd, even = run(index, [(11, "ELM AVE", "02119"), (12, "ELM AVE", "02119")])
    assert odd["lon"] < -71.05 < even["lon"]
    assert (-71.05 - odd["lon"]) * M_PER_DEG_LON == pytest.approx(10.0, abs=0.1)


def test_fuzzy_name_directional_and_fallbacks(index) -> None:  # type: ignore[no-untyped-def]
    rows = run(index, [
        (150, "MIAN ST", "02119"),    # typo: fuzzy
        (5, "S PINE ST", "02120"),    # directional must not be confused with N PINE ST
        (500, "MAIN ST", "02119"),    # out of every range: street level
        (None, "ELM AVE", "02119"),   # no number
        (5, "NOWHERE LN", "02119"),   # no such street
        (5, "MAIN ST", "99999"),      # ZIP without ranges
        (5, "MAIN ST", None),
        (51, "MAIN ST", "02118"),     # wrong ZIP: same street in the 021xx ZIPs
    ])
    fuzzy, pine, far, nonum, nostreet, nozip, null_zip, near = rows
    assert fuzzy["geo_precision"] == "range_interpolated" and fuzzy["tlid"] == 1002
    assert 0.8 < fuzzy["geo_score"] < 1.0
    assert pine["tlid"] == 4002
    assert far["geo_precision"] == "street_centroid" and far["tlid"] == 1002
    assert far["geo_reason"] == "house_number_not_in_range" and far["geo_score"] == 0.5
    assert nonum["geo_precision"] == "street_centroid" and nonum["geo_reason"] == "no_house_number"
    assert nostreet["geo_precision"] == "unmatched" and nostreet["geo_reason"] == "no_street_match"
    assert nozip["geo_reason"] == "zip_not_in_pack"
    assert null_zip["geo_reason"] == "no_zip"
    assert near["geo_precision"] == "range_interpolated" and near["tlid"] == 1001
    assert near["geo_score"] < 1.0


def test_deterministic_tie_break_lowest_tlid() -> None:
    line = LineString([(-71.0, 42.0), (-71.0, 42.01)])
    frame = addrfeat_frame().iloc[:0]
    dup = gpd.GeoDataFrame({
        "tlid": [7, 5], "fullname": ["Main St", "Main St"], "lfromhn": ["1", "1"],
        "ltohn": ["99", "99"], "rfromhn": [None, None], "rtohn": [None, None],
        "zipl": ["02119", "02119"], "zipr": [None, None], "parityl": ["O", "O"],
        "parityr": [None, None]}, geometry=[line, line], crs="EPSG:4269")
    assert frame.empty
    idx = prepare_ranges(dup)
    for _ in range(2):
        (r,) = run(idx, [(11, "MAIN ST", "02119")])
        assert r["tlid"] == 5


def test_place_points_vectorized_left_right() -> None:
    lines = np.array([LineString([(0, 0), (0, 0.01)])] * 2, dtype=object)
    lon, lat = place_points(lines, np.array([0.5, 0.5]), np.array([10.0, -10.0]))
    assert lon[0] < 0 < lon[1]
    assert lat == pytest.approx([0.005, 0.005])
