from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import pyogrio
import pytest

from segment.geocode.pip import assign_geographies, assign_polygons
from segment.reference.tiger import read_tracts


@pytest.fixture(scope="module")
def ma(reference_data: Path) -> tuple[gpd.GeoDataFrame, pl.DataFrame]:
    path = reference_data / "tiger2010" / "tl_2010_25_tract10.zip"
    tracts, vintage = read_tracts(path)
    assert vintage == 2010
    attrs = pl.from_pandas(pyogrio.read_dataframe(
        path, columns=["GEOID10", "INTPTLAT10", "INTPTLON10"], read_geometry=False))
    return tracts, attrs


def test_internal_points_fall_in_their_own_tract(ma) -> None:  # type: ignore[no-untyped-def]
    tracts, attrs = ma
    assert len(tracts) == 1478
    # a handful of tracts, including Suffolk (Boston) and a Cape Cod tract
    sample = attrs.filter(pl.col("GEOID10").is_in(
        ["25025010300", "25001010100", "25017353101"]) | (pl.arange(0, pl.len()) % 97 == 0))
    pts = sample.select(pl.col("INTPTLAT10").cast(pl.Float64).alias("lat"),
                        pl.col("INTPTLON10").cast(pl.Float64).alias("lon"))
    out = assign_geographies(pts, tracts)
    assert out["tract_geoid"].to_list() == sample["GEOID10"].to_list()
    assert out["county_fips"].to_list() == sample["GEOID10"].str.slice(0, 5).to_list()
    assert out["block_group_geoid"].null_count() == out.height


def test_points_outside_and_missing_get_null(ma) -> None:  # type: ignore[no-untyped-def]
    tracts, _ = ma
    lon = np.array([-100.0, np.nan, -71.0589])
    lat = np.array([40.0, np.nan, 42.3601])  # Kansas, missing, Boston City Hall area
    got = assign_polygons(lon, lat, tracts, "tract_geoid")
    assert got[0] is None and got[1] is None
    assert got[2] is not None and got[2].startswith("25025")
