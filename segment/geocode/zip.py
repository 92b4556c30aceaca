"""ZIP-centroid fallback: flagged ``zip_centroid``, never presented as a precise point.

A ZIP (ZCTA) centroid can sit in a different tract from most of the ZIP's residents, so
these rows get no tract or block group; ``county_fips`` is kept only when the ZIP table
carries it.
"""

from __future__ import annotations

import polars as pl

from segment.schema import GeoPrecision

#: the score of a ZIP-centroid placement (DeGAUSS scores are comparable only within a precision)
ZIP_SCORE = 0.2


def zip_centroids(queries: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Place ``qid, zip5`` rows at their ZIP centroid; rows whose ZIP is unknown are left out."""
    cols = ["zip5", "lat", "lon", "county_fips"] if "county_fips" in table.columns else [
        "zip5", "lat", "lon"]
    out = queries.select("qid", "zip5").join(table.select(cols), on="zip5", how="inner")
    if "county_fips" not in out.columns:
        out = out.with_columns(pl.lit(None, pl.String).alias("county_fips"))
    return out.select(
        "qid", "lat", "lon",
        pl.lit(GeoPrecision.ZIP_CENTROID.value).alias("geo_precision"),
        pl.lit(ZIP_SCORE).alias("geo_score"),
        "county_fips",
    )
