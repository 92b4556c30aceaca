"""From the providers' answers to every patient's row: best answer, polygons, final join.

Per normalized address the most precise answer wins (ties: the earlier provider), with a
reason when nothing precise was found (:func:`choose`); the distinct points get their
tract, block group and county by point-in-polygon (:func:`geographies`); each raw address
gets its result (:func:`per_address`) and every patient its address's, or its own source
point's (:func:`final`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from segment import progress
from segment.addresses import parse as addr
from segment.geocode.keys import ADDRESS_COLUMNS, ROW_HASH, row_hash
from segment.geocode.locate import Located, locate_all
from segment.geocode.providers import RANK, RESULT_SCHEMA, SOURCE, ProviderContext
from segment.log import get_logger
from segment.schema import GEOCODE_SCHEMA, GeoPrecision

#: precisions whose point gets a tract and block group
TRACT_PRECISIONS = (
    GeoPrecision.SOURCE_POINT.value,
    GeoPrecision.ADDRESS_POINT.value,
    GeoPrecision.RANGE_INTERPOLATED.value,
    GeoPrecision.STREET_CENTROID.value,
)
#: what is kept per raw address (and cached as its address row)
PER_ADDRESS = ("lat", "lon", "geo_precision", "geo_score", "tract_geoid", "block_group_geoid",
               "county_fips", "geo_reason", "_provider")
_ANSWERS = {**RESULT_SCHEMA, "provider": pl.String, "pos": pl.Int32}
log = get_logger("geocode")


@dataclass(frozen=True)
class Placed:
    """The addresses still to do, placed: the providers' answers, the polygons, the results."""

    located: Located
    #: tract, block group and county of each distinct point
    geo: pl.DataFrame
    #: one row per raw address: ``ADDRESS_COLUMNS``, ``ROW_HASH``, ``raw_hash``, ``PER_ADDRESS``
    addresses: pl.DataFrame


def place(lf: pl.LazyFrame, keys: pl.DataFrame, order: Sequence[str], ctx: ProviderContext, *,
          cache: pl.DataFrame | None = None, explicit: bool = False) -> Placed:
    """Run the providers over ``keys``, choose each address's best answer, place the points.

    ``lf`` (patients with ``_src``) gives the source points, which get polygons too.
    """
    located = locate_all(keys, order, ctx, cache=cache, explicit=explicit)
    best = choose(keys, located.results)
    points = points_to_place(lf, best)
    progress.step("geocode", f"{points.height:,} points to tracts and block groups")
    geo = geographies(points, ctx.pack)
    log.info("assigned tracts", points=points.height, outside=geo["tract_geoid"].null_count())
    return Placed(located, geo, per_address(keys, best, geo))


def _answers(results: list[pl.DataFrame]) -> pl.DataFrame:
    if not results:
        return pl.DataFrame(schema=_ANSWERS)
    return pl.concat([r.cast({c: t for c, t in _ANSWERS.items() if c in r.columns}) for r in results],
                     how="diagonal_relaxed")


def choose(keys: pl.DataFrame, results: list[pl.DataFrame]) -> pl.DataFrame:
    """Per key: the most precise result (ties: earlier provider) and why nothing better."""
    k = keys.unique("qid", keep="first").select(
        "qid",
        pl.when(~pl.col("addr_kind").is_in([addr.STREET, addr.NO_HOUSE_NUMBER]))
        .then(pl.col("addr_kind")).alias("kind_reason"),
        pl.when(pl.col("zip5c").is_null()).then(pl.lit("no_zip")).alias("zip_reason"),
    )
    res = _answers(results).with_columns(
        pl.col("geo_precision").replace_strict(RANK, return_dtype=pl.Int32).alias("_rank"))
    best = res.sort("qid", "_rank", "pos").unique("qid", keep="first", maintain_order=True)
    failure = res.filter(pl.col("geo_reason").is_not_null() & (pl.col("_rank") >= RANK[
        "street_centroid"])).sort("qid", "pos").unique("qid", keep="first").select(
        "qid", pl.col("geo_reason").alias("fail_reason"))
    out = k.join(best, on="qid", how="left").join(failure, on="qid", how="left")
    precise = pl.col("geo_precision").is_in([GeoPrecision.RANGE_INTERPOLATED.value,
                                             GeoPrecision.STREET_CENTROID.value,
                                             GeoPrecision.ADDRESS_POINT.value])
    return out.select(
        "qid",
        pl.col("lat"), pl.col("lon"),
        pl.col("geo_precision").fill_null(GeoPrecision.UNMATCHED.value),
        pl.col("geo_score").fill_null(0.0),
        pl.when(precise).then(pl.col("geo_reason"))
        .otherwise(pl.coalesce("kind_reason", "fail_reason", "zip_reason", pl.lit("no_match")))
        .alias("geo_reason"),
        pl.col("county_fips").alias("zip_county"),
        pl.col("provider").alias("_provider"),
    )


def points_to_place(lf: pl.LazyFrame, best: pl.DataFrame) -> pl.DataFrame:
    """Distinct points that get a tract: usable source points and precise enough answers."""
    src_points = lf.filter(pl.col("_src")).select(
        pl.col("source_lat").alias("lat"), pl.col("source_lon").alias("lon")).unique().collect()
    return pl.concat([src_points, best.filter(pl.col("geo_precision").is_in(TRACT_PRECISIONS))
                      .select("lat", "lon")]).unique()


def geographies(points: pl.DataFrame, pack: Any) -> pl.DataFrame:
    """Tract, block group and county of each point (no polygon read when there is no point)."""
    from segment.geocode.pip import assign_geographies
    from segment.reference.pack import BLOCK_GROUPS, TRACTS

    if points.height == 0:
        return points.with_columns(pl.lit(None, pl.String).alias("tract_geoid"),
                                   pl.lit(None, pl.String).alias("block_group_geoid"),
                                   pl.lit(None, pl.String).alias("county_fips"))
    tracts = pack.read_geo(TRACTS, columns=["tract_geoid", "geometry"])
    bgs = pack.read_geo(BLOCK_GROUPS, columns=["block_group_geoid", "geometry"]) if pack.has(
        BLOCK_GROUPS) else None
    return assign_geographies(points, tracts, bgs)


def per_address(keys: pl.DataFrame, best: pl.DataFrame, geo: pl.DataFrame) -> pl.DataFrame:
    """Each raw address with its result (:data:`PER_ADDRESS`) and ``raw_hash``."""
    return keys.select(*ADDRESS_COLUMNS, "qid", "raw_hash", ROW_HASH).join(
        best, on="qid", how="left").join(geo, on=["lat", "lon"], how="left").with_columns(
        pl.when(pl.col("geo_precision") == GeoPrecision.ZIP_CENTROID.value)
        .then(pl.col("zip_county")).otherwise(pl.col("county_fips")).alias("county_fips"))


def final(lf: pl.LazyFrame, addresses: pl.DataFrame, geo: pl.DataFrame, columns: list[str]) -> pl.LazyFrame:
    """Every patient with its result: source points first, else its address's result."""
    src_geo = geo.rename({c: f"_s_{c}" for c in geo.columns})
    joined = _with_address_results(lf, addresses).join(
        src_geo.lazy(), left_on=["source_lat", "source_lon"], right_on=["_s_lat", "_s_lon"],
        how="left", maintain_order="left")
    src = pl.col("_src")
    geo_cols = []
    for c in ("lat", "lon", "tract_geoid", "block_group_geoid", "county_fips"):
        s_val = pl.col(f"source_{c}") if c in ("lat", "lon") else pl.col(f"_s_{c}")
        geo_cols.append(pl.when(src).then(s_val).otherwise(pl.col(f"_a_{c}")).alias(c))
    precision = pl.when(src).then(pl.lit(GeoPrecision.SOURCE_POINT.value)).otherwise(
        pl.col("_a_geo_precision").fill_null(GeoPrecision.UNMATCHED.value))
    out = joined.with_columns(
        *geo_cols,
        precision.alias("geo_precision"),
        pl.when(src).then(1.0).otherwise(pl.col("_a_geo_score").fill_null(0.0)).alias("geo_score"),
        pl.when(src).then(pl.lit(None, pl.String)).otherwise(pl.col("_a_geo_reason"))
        .alias("geo_reason"),
        pl.when(src).then(pl.lit(SOURCE)).otherwise(pl.col("_a__provider")).alias("_provider"),
    ).with_columns(
        pl.when(pl.col("geo_precision").is_in(TRACT_PRECISIONS) & pl.col("tract_geoid").is_null())
        .then(pl.lit("outside_pack_tracts")).otherwise(pl.col("geo_reason")).alias("geo_reason"),
    )
    return out.select(*columns, *[pl.col(c).cast(t) for c, t in GEOCODE_SCHEMA.items()
                                  if c not in columns],
                      pl.col("geo_reason").cast(pl.String), "_provider")


def _with_address_results(lf: pl.LazyFrame, addresses: pl.DataFrame) -> pl.LazyFrame:
    """Patients (order kept) with their raw address's result, each column prefixed ``_a_``.

    The join is on :data:`ROW_HASH` when no two of the addresses share one (then no patient
    address can match another's: every patient address is one of them), which is about
    twice as fast as on the four text columns; on a collision, on the columns.
    """
    pa = addresses.rename({c: f"_a_{c}" for c in PER_ADDRESS})
    if ROW_HASH in addresses.columns and addresses[ROW_HASH].n_unique() == addresses.height:
        return lf.with_columns(row_hash()).join(
            pa.select(ROW_HASH, *[f"_a_{c}" for c in PER_ADDRESS]).lazy(), on=ROW_HASH, how="left",
            maintain_order="left").drop(ROW_HASH)
    return lf.join(pa.select(*ADDRESS_COLUMNS, *[f"_a_{c}" for c in PER_ADDRESS]).lazy(),
                   on=list(ADDRESS_COLUMNS), how="left", nulls_equal=True, maintain_order="left")


def count(counts: pl.DataFrame, column: str, order: list[str] | None = None) -> dict[str, int]:
    """Patients per value of ``column`` of a ``len`` table (``order``: these keys, zeros kept)."""
    agg = counts.group_by(column).agg(pl.col("len").sum())
    found = {str(r[column]): int(r["len"]) for r in agg.iter_rows(named=True)
             if r[column] is not None}
    if order:
        return {k: found.get(k, 0) for k in order}
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
