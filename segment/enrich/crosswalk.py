"""Moving tract indicators between tract vintages (2010 <-> 2020) through a crosswalk.

Two layouts are read: the Census Bureau tract relationship file (pipe-delimited, with
``GEOID_TRACT_10``, ``GEOID_TRACT_20`` and ``AREALAND_PART``), and a plain table with
``from_tract_geoid``, ``to_tract_geoid`` and ``weight`` (CSV or Parquet). A target tract's
value is the weight-averaged value of the source tracts that overlap it (weights are the
overlapping land area in the Census file), over the sources that have a value; a category
(rurality) takes the value of the largest-weight source. This is areal interpolation: an
approximation that assumes people are spread evenly over land.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segment.errors import ReferenceDataError
from segment.reference.indicators import TRACT_GEOID

FROM, TO, WEIGHT = "from_tract_geoid", "to_tract_geoid", "weight"


def read_crosswalk(path: Path, *, from_vintage: int, to_vintage: int) -> pl.LazyFrame:
    """A crosswalk as ``from_tract_geoid, to_tract_geoid, weight`` (lazy)."""
    if not path.exists():
        raise ReferenceDataError("crosswalk file not found", path=path)
    if path.suffix == ".parquet":
        lf = pl.scan_parquet(path)
    else:
        with path.open(encoding="utf-8-sig") as fh:
            first = fh.readline()
        sep = "|" if first.count("|") > first.count(",") else ","
        lf = pl.scan_csv(path, separator=sep, infer_schema=False)
    names = set(lf.collect_schema().names())
    src, dst = f"GEOID_TRACT_{from_vintage % 100:02d}", f"GEOID_TRACT_{to_vintage % 100:02d}"
    if {src, dst, "AREALAND_PART"} <= names:
        lf = lf.select(
            pl.col(src).cast(pl.String).str.zfill(11).alias(FROM),
            pl.col(dst).cast(pl.String).str.zfill(11).alias(TO),
            pl.col("AREALAND_PART").cast(pl.Float64, strict=False).alias(WEIGHT),
        )
    elif {FROM, TO, WEIGHT} <= names:
        lf = lf.select(
            pl.col(FROM).cast(pl.String).str.zfill(11),
            pl.col(TO).cast(pl.String).str.zfill(11),
            pl.col(WEIGHT).cast(pl.Float64, strict=False),
        )
    else:
        raise ReferenceDataError(
            f"unrecognized crosswalk: expected {src}, {dst} and AREALAND_PART (Census tract "
            f"relationship file) or {FROM}, {TO} and {WEIGHT}",
            path=path,
        )
    return lf.filter(pl.col(WEIGHT) > 0)


def apply_crosswalk(indicators: pl.LazyFrame, crosswalk: pl.LazyFrame) -> pl.LazyFrame:
    """Indicators re-expressed on the crosswalk's target tracts."""
    schema = indicators.collect_schema()
    values = [n for n in schema.names() if n != TRACT_GEOID]
    numeric = [n for n in values if schema[n].is_numeric()]
    other = [n for n in values if n not in numeric]
    joined = crosswalk.join(indicators, left_on=FROM, right_on=TRACT_GEOID, how="inner")
    w = pl.col(WEIGHT)
    aggs: list[pl.Expr] = []
    for n in numeric:
        known = pl.col(n).is_not_null()
        den = w.filter(known).sum()
        avg = (pl.col(n).cast(pl.Float64) * w).filter(known).sum() / den
        value: pl.Expr = pl.when(den > 0).then(avg)
        if schema[n].is_integer():
            value = value.round(0).cast(schema[n])
        aggs.append(value.alias(n))
    for n in other:
        aggs.append(pl.col(n).sort_by(w, descending=True).first().alias(n))
    return (
        joined.group_by(TO)
        .agg(aggs)
        .rename({TO: TRACT_GEOID})
        .select(TRACT_GEOID, *values)
        .sort(TRACT_GEOID)
    )
