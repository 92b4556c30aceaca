"""The fast candidate search of ``interpolate`` against the plain full ranking it replaced.

The oracle below is the earlier implementation: pair every query with every side of its
matched streets, rank them all with one sort, and place points with GEOS
(``shapely.line_interpolate_point``). The randomized street network has overlapping and
backwards ranges, duplicated TLIDs, parity B and missing, sides without a ZIP, and
multi-vertex lines, so every tie-break and both search paths are exercised.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import polars as pl
import pytest
import shapely
from shapely.geometry import LineString

from segment.geocode.interpolate import (
    OFFSET_M,
    RESULT_SCHEMA,
    RangeIndex,
    interpolate,
    match_streets,
    place_points,
    prepare_ranges,
)

_M_PER_DEG_LAT = 110_540.0
_M_PER_DEG_LON = 111_320.0
NAMES = ["Main St", "N Main St", "Elm Ave", "Oak Rd", "Route 9", "Pine St", "Maple Ave"]


def oracle_place(lines: np.ndarray, fraction: np.ndarray, offset_m: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Earlier ``place_points``: three GEOS interpolations and a chord normal."""
    if len(lines) == 0:
        return np.empty(0), np.empty(0)
    length = shapely.length(lines)
    at = fraction * length
    eps = np.minimum(length * 0.01, 1e-5)
    p = shapely.get_coordinates(shapely.line_interpolate_point(lines, at))
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.clip(at - eps, 0, length)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.clip(at + eps, 0, length)))
    coslat = np.cos(np.radians(p[:, 1]))
    dx = (b[:, 0] - a[:, 0]) * coslat * _M_PER_DEG_LON
    dy = (b[:, 1] - a[:, 1]) * _M_PER_DEG_LAT
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0, norm, 1.0)
    nx, ny = -dy / norm, dx / norm
    return (p[:, 0] + nx * offset_m / (coslat * _M_PER_DEG_LON),
            p[:, 1] + ny * offset_m / _M_PER_DEG_LAT)


def oracle(queries: pl.DataFrame, index: RangeIndex) -> pl.DataFrame:
    """Every candidate side of every query, ranked in one sort (the earlier algorithm)."""
    q = queries.select(pl.col("qid").cast(pl.UInt32), pl.col("house_number").cast(pl.Int64),
                       "street_key", "zip5")
    streets = match_streets(q, index)
    in_zip = q.join(streets, on=["zip5", "street_key"], how="inner").join(
        index.sides, left_on=["zip5", "match_key"], right_on=["zip5", "street_key"], how="inner"
    ).with_columns(pl.lit(True).alias("zip_match"))
    orphans = q.join(in_zip.select("qid").unique(), on="qid", how="anti").filter(
        pl.col("zip5").is_not_null() & pl.col("house_number").is_not_null())
    near = orphans.with_columns(pl.col("zip5").str.slice(0, 3).alias("zip3")).join(
        index.sides.with_columns(pl.col("zip5").str.slice(0, 3).alias("zip3")).drop("zip5"),
        on=["zip3", "street_key"], how="inner",
    ).filter(pl.col("house_number").is_between(pl.col("lo"), pl.col("hi"))).with_columns(
        pl.col("street_key").alias("match_key"), pl.lit(1.0).alias("similarity"),
        pl.lit(False).alias("zip_match")).drop("zip3")
    cand = pl.concat([in_zip, near.select(in_zip.columns)], how="vertical_relaxed")
    hn = pl.col("house_number")
    cand = cand.with_columns(
        (hn.is_not_null() & hn.is_between(pl.col("lo"), pl.col("hi"))).alias("in_range"),
        (pl.col("parity").is_null() | pl.col("parity").is_in(["B", ""])
         | ((pl.col("parity") == "O") & (hn % 2 == 1))
         | ((pl.col("parity") == "E") & (hn % 2 == 0))).fill_null(False).alias("parity_ok"),
        (pl.col("hi") - pl.col("lo")).alias("width"),
        pl.when(hn.is_null()).then(0).otherwise(
            pl.min_horizontal((hn - pl.col("lo")).abs(), (hn - pl.col("hi")).abs())
        ).alias("distance"),
    ).with_columns((pl.col("in_range") & pl.col("parity_ok")).alias("exact"))
    keys = ["qid", "exact", "in_range", "similarity", "zip_match", "distance", "width", "tlid",
            "side", "seg"]
    desc = [False, True, True, True, True, False, False, False, False, False]
    best = cand.sort(keys, descending=desc, maintain_order=True).unique(
        "qid", keep="first", maintain_order=True)
    ranged = best["in_range"].to_numpy()
    frac = np.where(
        ranged & (best["to_hn"] != best["from_hn"]).to_numpy(),
        ((best["house_number"] - best["from_hn"]).cast(pl.Float64)
         / (best["to_hn"] - best["from_hn"]).cast(pl.Float64).replace(0.0, 1.0)).to_numpy(),
        0.5,
    )
    frac = np.clip(np.nan_to_num(frac, nan=0.5), 0.0, 1.0)
    sign = np.where(best["side"].to_numpy() == "L", 1.0, -1.0)
    lon, lat = oracle_place(index.lines[best["seg"].to_numpy()], frac,
                            np.where(ranged, sign * OFFSET_M, 0.0))
    return best.with_columns(pl.Series("lon", lon), pl.Series("lat", lat)).select(
        "qid", "lat", "lon", "tlid", "in_range", "parity_ok", "similarity", "zip_match",
        pl.when(pl.col("in_range")).then(pl.col("side")).alias("side"))


def random_world(seed: int, segments: int = 400) -> gpd.GeoDataFrame:
    """ADDRFEAT-shaped rows with every awkward case the ranking has to order."""
    rng = np.random.default_rng(seed)
    rows, geoms = [], []
    for _ in range(segments):
        lo = int(rng.integers(0, 40)) * 10
        if rng.random() < 0.03:
            lo = 999_999_999_000  # 12-digit TIGER numbers must not overflow the search keys
        width = int(rng.choice([0, 8, 18, 98, 998]))
        lf, lt = lo + 1, lo + 1 + width
        rf, rt = lo + 2, lo + 2 + width
        if rng.random() < 0.3:
            lf, lt = lt, lf  # backwards
        if rng.random() < 0.3:
            rf, rt = rt, rf
        zips = ["02119", "02120", "02121", None]
        zl = zips[int(rng.integers(0, 4))] if rng.random() < 0.95 else None
        zr = zl if rng.random() < 0.8 else zips[int(rng.integers(0, 3))]
        has_r = rng.random() < 0.85
        rows.append({
            "tlid": int(rng.integers(1, segments // 3)),  # duplicated TLIDs
            "fullname": NAMES[int(rng.integers(0, len(NAMES)))],
            "lfromhn": str(lf), "ltohn": str(lt),
            "rfromhn": str(rf) if has_r else None, "rtohn": str(rt) if has_r else None,
            "zipl": zl, "zipr": zr if has_r else None,
            "parityl": ["O", "B", None, "E"][int(rng.integers(0, 4))],
            "parityr": ["E", "B", None, "O"][int(rng.integers(0, 4))] if has_r else None,
        })
        x0, y0 = -71.1 + rng.random() * 0.1, 42.3 + rng.random() * 0.1
        n = int(rng.integers(2, 6))
        pts = [(x0 + k * 0.001 * rng.random(), y0 + k * 0.001 * (rng.random() - 0.3))
               for k in range(n)]
        if rng.random() < 0.1:
            pts.insert(1, pts[0])  # a zero-length first segment
        geoms.append(LineString(pts))
    for extra in range(3):  # exact duplicates: same TLID, side and range
        rows.append(dict(rows[extra]))
        geoms.append(geoms[extra])
    return gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4269")


def random_queries(seed: int, n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 100)
    streets = [s.upper() for s in NAMES] + ["MIAN ST", "ELM AV", "NOWHERE LN", "S MAIN ST"]
    zips = ["02119", "02120", "02121", "02118", "99999", None]
    hn = rng.integers(0, 1500, n).astype(object)
    hn[rng.random(n) < 0.03] = 999_999_999_051
    hn[rng.random(n) < 0.08] = None
    return pl.DataFrame({
        "qid": np.arange(n, dtype=np.uint32),
        "house_number": list(hn),
        "street_key": [streets[i] for i in rng.integers(0, len(streets), n)],
        "zip5": [zips[i] for i in rng.integers(0, len(zips), n)],
    }, schema={"qid": pl.UInt32, "house_number": pl.Int64, "street_key": pl.String,
               "zip5": pl.String})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_interpolate_matches_the_full_ranking(seed: int) -> None:
    index = prepare_ranges(random_world(seed))
    queries = random_queries(seed)
    got = interpolate(queries, index)
    want = oracle(queries, index)
    assert got.schema == pl.Schema(RESULT_SCHEMA)
    assert got["qid"].to_list() == queries["qid"].to_list()
    placed = got.filter(pl.col("lat").is_not_null())
    assert placed.height == want.height > queries.height // 3
    both = placed.join(want, on="qid", suffix="_want")
    assert both.height == want.height
    assert both["tlid"].to_list() == both["tlid_want"].to_list()
    assert both["side"].to_list() == both["side_want"].to_list()
    assert ((both["geo_precision"] == "range_interpolated")
            == both["in_range"]).all()
    assert np.allclose(both["lon"].to_numpy(), both["lon_want"].to_numpy(), rtol=0, atol=1e-9)
    assert np.allclose(both["lat"].to_numpy(), both["lat_want"].to_numpy(), rtol=0, atol=1e-9)
    zip_factor = np.where(both["zip_match"].to_numpy(), 1.0, 0.85)
    sim = both["similarity"].to_numpy()
    score = np.where(both["in_range"].to_numpy(),
                     sim * zip_factor * np.where(both["parity_ok"].to_numpy(), 1.0, 0.8),
                     0.5 * sim * zip_factor)
    assert np.allclose(both["geo_score"].to_numpy(), np.round(score, 3), atol=1e-12)
    kinds = set(got["geo_precision"].to_list())
    assert kinds == {"range_interpolated", "street_centroid", "unmatched"}
    # the same input always gives the same output
    assert interpolate(queries.reverse(), index).equals(got)


def test_place_points_matches_geos_on_multivertex_lines() -> None:
    rng = np.random.default_rng(7)
    lines = np.array([LineString(np.cumsum(rng.random((int(k), 2)) * 0.001, axis=0) + np.array([-71.0, 42.0]))
                      for k in rng.integers(2, 9, 500)], dtype=object)
    frac = rng.random(500)
    frac[:20] = 0.0
    frac[20:40] = 1.0
    offset = rng.choice([-10.0, 0.0, 10.0], 500)
    got = place_points(lines, frac, offset)
    want = oracle_place(lines, frac, offset)
    assert np.allclose(got[0], want[0], rtol=0, atol=1e-9)
    assert np.allclose(got[1], want[1], rtol=0, atol=1e-9)
