"""Point-in-polygon: tract, block group and county for each point, vectorized.

One STRtree per batch is built over the POINTS and queried with the polygons, so GEOS
prepares each polygon once and tests only the points inside its bounding box - much
faster than testing each point against unprepared polygons. A point on a shared
boundary belongs to both polygons; the lowest GEOID wins, so results are deterministic.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import polars as pl
import shapely


def assign_polygons(lon: np.ndarray, lat: np.ndarray, polygons: gpd.GeoDataFrame,
                    id_column: str) -> np.ndarray:
    """The ``id_column`` value of the polygon holding each point (None when outside all)."""
    n = len(lon)
    out = np.full(n, None, dtype=object)
    valid = np.isfinite(lon) & np.isfinite(lat)
    if n == 0 or not valid.any() or polygons.empty:
        return out
    idx = np.nonzero(valid)[0]
    points = shapely.points(lon[idx], lat[idx])
    tree = shapely.STRtree(points)
    geoms = polygons.geometry.values
    poly_i, point_i = tree.query(np.asarray(geoms), predicate="intersects")
    if len(point_i) == 0:
        return out
    ids = polygons[id_column].to_numpy(dtype=object)
    hit_ids = ids[poly_i]
    # lowest id first, then keep the first hit per point
    order = np.lexsort((hit_ids.astype(str), point_i))
    point_sorted = point_i[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = point_sorted[1:] != point_sorted[:-1]
    chosen = order[first]
    out[idx[point_i[chosen]]] = hit_ids[chosen]
    return out


def assign_geographies(points: pl.DataFrame, tracts: gpd.GeoDataFrame,
                       block_groups: gpd.GeoDataFrame | None = None) -> pl.DataFrame:
    """Add ``tract_geoid``, ``block_group_geoid`` and ``county_fips`` to a frame of ``lon``/``lat``.

    Points outside every tract get nulls. Without block groups, ``block_group_geoid`` is null.
    """
    lon = points["lon"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    lat = points["lat"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    tract = assign_polygons(lon, lat, tracts, "tract_geoid")
    if block_groups is not None and not block_groups.empty:
        bg = assign_polygons(lon, lat, block_groups, "block_group_geoid")
    else:
        bg = np.full(len(lon), None, dtype=object)
    frame = pl.DataFrame({
        "tract_geoid": pl.Series(tract, dtype=pl.String),
        "block_group_geoid": pl.Series(bg, dtype=pl.String),
    }).with_columns(
        # a block group must lie in the point's tract; if the layers disagree at an edge, drop it
        pl.when(pl.col("block_group_geoid").str.slice(0, 11) == pl.col("tract_geoid"))
        .then(pl.col("block_group_geoid")).otherwise(None).alias("block_group_geoid"),
        pl.col("tract_geoid").str.slice(0, 5).alias("county_fips"),
    )
    return points.drop([c for c in frame.columns if c in points.columns]).hstack(frame)
