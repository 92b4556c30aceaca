"""Geocoding: patient addresses to points, Census tracts, block groups and counties.

:func:`geocode` reads ``DIR/patients.parquet`` and writes ``DIR/geocoded.parquet`` (every
patient column plus ``GEOCODE_SCHEMA`` and ``geo_reason``), ``DIR/geocode-report.json``
and the cache ``DIR/geocode-cache.parquet``. Providers run in the order given; each
patient keeps the most precise result (ties: the earlier provider):

- ``source``: coordinates the extract already carries (``source_point``);
- ``offline``: TIGER address-range interpolation from the reference pack;
- ``census``: the Census Bureau batch geocoder - online, so only when asked for;
- ``zip``: the ZIP centroid (``zip_centroid``), flagged, with NO tract or block group.

Work is done once per distinct normalized address, and only for raw addresses the cache
does not already hold whole (see :mod:`segment.geocode.cache`); tract, block group and
county come from a vectorized point-in-polygon against the pack's polygons. ``street_centroid``
points get a tract too (the score says how far to trust it); ``zip_centroid`` points get
only the county, when the ZIP table carries one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment import progress
from segment.addresses import parse as addr
from segment.config import Settings
from segment.errors import GeocodeError, ReferenceDataError
from segment.geocode.cache import ADDRESS_ROW, CACHE_SCHEMA, load_cache, save_cache
from segment.geocode.census_batch import CensusOptions, census_geocode
from segment.geocode.zip import zip_centroids
from segment.log import get_logger
from segment.schema import GEOCODE_SCHEMA, SOURCE_POINT_COLUMNS, GeoPrecision
from segment.workdir import GEOCODE_REPORT, GEOCODED, PATIENTS, scan, write_json, write_parquet

__all__ = [
    "DEFAULT_PROVIDERS",
    "PROVIDERS",
    "CensusOptions",
    "GeocodeResult",
    "geocode",
    "parse_providers",
]

PROVIDERS = ("source", "offline", "census", "zip")
#: the default never sends an address off the machine
DEFAULT_PROVIDERS = ("source", "offline", "zip")
RANK = {p.value: i for i, p in enumerate(GeoPrecision)}
#: precisions whose point gets a tract and block group
TRACT_PRECISIONS = (
    GeoPrecision.SOURCE_POINT.value,
    GeoPrecision.ADDRESS_POINT.value,
    GeoPrecision.RANGE_INTERPOLATED.value,
    GeoPrecision.STREET_CENTROID.value,
)
_BEST_OF = {"offline": RANK["range_interpolated"], "census": RANK["range_interpolated"],
            "zip": RANK["zip_centroid"]}
ADDRESS_COLUMNS = ("address_line1", "city", "state", "zip5")
log = get_logger("geocode")


@dataclass(frozen=True)
class GeocodeResult:
    """What a geocode run did: counts for the report and the CLI table."""

    output: Path
    patients: int
    addresses: int
    providers: tuple[str, ...]
    by_precision: dict[str, int]
    by_reason: dict[str, int]
    by_provider: dict[str, int]
    geocoded_new: dict[str, int]
    from_cache: dict[str, int]
    pack: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``geocode-report.json`` content."""
        return {
            "patients": self.patients,
            "addresses": self.addresses,
            "providers": list(self.providers),
            "by_precision": self.by_precision,
            "by_reason": self.by_reason,
            "by_provider": self.by_provider,
            "geocoded_new": self.geocoded_new,
            "geocoded_new_total": sum(self.geocoded_new.values()),
            "from_cache": self.from_cache,
            "pack": self.pack,
            "tract_policy": "zip_centroid rows carry no tract_geoid or block_group_geoid; "
                            "county_fips only when the ZIP table gives one",
        }


def parse_providers(values: Iterable[str]) -> tuple[str, ...]:
    """Providers from repeated options and/or comma lists, in order, without repeats."""
    order: list[str] = []
    for value in values:
        for name in (v.strip().lower() for v in value.split(",")):
            if not name:
                continue
            if name not in PROVIDERS:
                raise GeocodeError(
                    f"unknown provider {name!r}; valid options are: {', '.join(PROVIDERS)}")
            if name not in order:
                order.append(name)
    if not order:
        raise GeocodeError(f"no provider given; valid options are: {', '.join(PROVIDERS)}")
    return tuple(order)


def _valid_source(schema: pl.Schema) -> pl.Expr:
    if not set(SOURCE_POINT_COLUMNS) <= set(schema):
        return pl.lit(False)
    lat, lon = pl.col("source_lat"), pl.col("source_lon")
    return (lat.is_between(-90, 90) & lon.is_between(-180, 180)
            & ~((lat == 0) & (lon == 0))).fill_null(False)


def geocode(
    workdir: str | Path,
    *,
    providers: Sequence[str] | None = None,
    settings: Settings | None = None,
    census: CensusOptions | None = None,
    use_cache: bool = True,
) -> GeocodeResult:
    """Geocode ``DIR/patients.parquet`` into ``DIR/geocoded.parquet`` (see the module doc).

    ``providers`` is the order to try (default :data:`DEFAULT_PROVIDERS`); giving it
    explicitly makes a provider whose pack table is missing an error instead of a skip.
    """
    workdir = Path(workdir)
    settings = settings or Settings.from_env()
    explicit = providers is not None
    order = parse_providers(providers) if providers is not None else DEFAULT_PROVIDERS
    patients = scan(workdir, PATIENTS, produced_by="ingest")
    schema = patients.collect_schema()
    missing = [c for c in ADDRESS_COLUMNS if c not in schema]
    if missing:
        raise GeocodeError(f"{PATIENTS} lacks column(s) {', '.join(missing)}", path=workdir)
    for col, dtype in SOURCE_POINT_COLUMNS.items():
        if col not in schema:
            patients = patients.with_columns(pl.lit(None, dtype).alias(col))
    from segment.reference.pack import ADDRESS_RANGES, ZIP_CENTROIDS, open_pack

    pack = open_pack(settings.reference_dir)
    use_source = "source" in order
    lf = patients.with_columns((_valid_source(schema) & use_source).alias("_src"))

    # one row per distinct raw address of patients without usable source coordinates
    raw = lf.filter(~pl.col("_src")).select(ADDRESS_COLUMNS).unique().collect()
    raw = raw.with_columns(addr.sha256_hex(raw.select(_raw_key()).to_series()).alias("raw_hash"))
    cache = load_cache(workdir) if use_cache else pl.DataFrame(schema=CACHE_SCHEMA)
    context = _context_id(order, pack.pack_id, census)
    # whole results of raw addresses geocoded before in this context: nothing to redo
    known = raw.join(
        cache.filter((pl.col("provider") == ADDRESS_ROW) & (pl.col("source_id") == context))
        .select(pl.col("addr_hash").alias("raw_hash"),
                *[c for c in PER_ADDRESS if c != "_provider"],
                pl.col("chosen_provider").alias("_provider")),
        on="raw_hash", how="inner")
    keys = _address_keys(raw.join(known.select("raw_hash"), on="raw_hash", how="anti"))
    log.info("addresses to geocode", distinct=raw.height, cached=known.height, new=keys.height)
    progress.step("geocode", f"{raw.height:,} distinct addresses ({known.height:,} from the cache)")

    results: list[pl.DataFrame] = []
    new_cache: list[pl.DataFrame] = []
    new_counts: dict[str, int] = {}
    cache_counts: dict[str, int] = {"addresses": known.height}
    for pos, provider in enumerate(order):
        if provider == "source":
            continue
        progress.step("geocode", f"provider {provider}")
        todo, source_id = _todo(provider, keys, results, pack, census)
        if todo is None:
            if explicit:
                table = ADDRESS_RANGES if provider == "offline" else ZIP_CENTROIDS
                raise ReferenceDataError(
                    f"provider {provider!r} needs {table}, which pack {pack.name!r} lacks",
                    path=pack.path)
            log.warning(f"pack has no table for provider {provider!r}; skipped")
            continue
        hit = cache.filter((pl.col("provider") == provider) & (pl.col("source_id") == source_id)
                           ).join(todo.select("qid", "addr_hash"), on="addr_hash", how="inner")
        fresh = todo.join(hit.select("qid"), on="qid", how="anti")
        found = _run_provider(provider, fresh, pack, settings, census)
        cache_counts[provider] = hit.height
        new_counts[provider] = fresh.height
        cached_rows = hit.select("qid", "lat", "lon", "geo_precision", "geo_score", "geo_reason",
                                 "county_fips")
        for frame in (cached_rows, found):
            results.append(frame.with_columns(pl.lit(provider).alias("provider"),
                                              pl.lit(pos, pl.Int32).alias("pos")))
        if found.height:
            new_cache.append(found.join(todo.select("qid", "addr_hash"), on="qid").with_columns(
                pl.lit(provider).alias("provider"), pl.lit(source_id).alias("source_id")))

    best = _choose(keys, results)
    src_points = lf.filter(pl.col("_src")).select(
        pl.col("source_lat").alias("lat"), pl.col("source_lon").alias("lon")).unique().collect()
    points = pl.concat([src_points, best.filter(pl.col("geo_precision").is_in(TRACT_PRECISIONS))
                        .select("lat", "lon")]).unique()
    progress.step("geocode", f"{points.height:,} points to tracts and block groups")
    geo = _geographies(points, pack)
    log.info("assigned tracts", points=points.height,
             outside=geo.filter(pl.col("tract_geoid").is_null()).height)

    fresh_per_address = keys.select(*ADDRESS_COLUMNS, "qid", "raw_hash").join(
        best, on="qid", how="left").join(geo, on=["lat", "lon"], how="left").with_columns(
        pl.when(pl.col("geo_precision") == GeoPrecision.ZIP_CENTROID.value)
        .then(pl.col("zip_county")).otherwise(pl.col("county_fips")).alias("county_fips"))
    if fresh_per_address.height:
        new_cache.append(fresh_per_address.select(
            pl.col("raw_hash").alias("addr_hash"), pl.lit(ADDRESS_ROW).alias("provider"),
            pl.lit(context).alias("source_id"), *[c for c in PER_ADDRESS if c != "_provider"],
            pl.col("_provider").alias("chosen_provider")))
    if use_cache and new_cache:
        save_cache(workdir, cache, pl.concat(new_cache, how="diagonal_relaxed"))
    per_address = pl.concat([known.select(*ADDRESS_COLUMNS, *PER_ADDRESS),
                             fresh_per_address.select(*ADDRESS_COLUMNS, *PER_ADDRESS)],
                            how="vertical_relaxed")
    progress.step("geocode", "writing geocoded.parquet")
    out = _final(lf, per_address, geo, list(schema))
    # one evaluation of the joins, then the file and the counts from it (the streaming sink of
    # an order-keeping join was 2-3x slower at 1M, and counting from the plan joined twice)
    frame = out.collect()
    output = write_parquet(frame.drop("_provider"), workdir / GEOCODED)
    counts = frame.group_by("geo_precision", "geo_reason", "_provider").len()
    result = GeocodeResult(
        output=output,
        patients=int(counts["len"].sum()),
        addresses=raw.height,
        providers=order,
        by_precision=_count(counts, "geo_precision", [p.value for p in GeoPrecision]),
        by_reason=_count(counts.filter(pl.col("geo_reason").is_not_null()), "geo_reason"),
        by_provider=_count(counts, "_provider"),
        geocoded_new=new_counts,
        from_cache=cache_counts,
        pack={"name": pack.name, "id": pack.pack_id, "tract_vintage": pack.tract_vintage,
              "synthetic": pack.manifest.synthetic},
    )
    write_json(workdir / GEOCODE_REPORT, result.to_dict())
    log.info("geocoded", patients=result.patients, new=sum(new_counts.values()),
             cached=sum(cache_counts.values()))
    return result


#: what is kept per raw address (and cached as its address row)
PER_ADDRESS = ("lat", "lon", "geo_precision", "geo_score", "tract_geoid", "block_group_geoid",
               "county_fips", "geo_reason", "_provider")


def _raw_key() -> pl.Expr:
    """The four raw address columns as one unambiguous text (length-prefixed; null apart)."""
    parts = []
    for c in ADDRESS_COLUMNS:
        value = pl.col(c).cast(pl.String)
        parts.append(pl.when(value.is_null()).then(pl.lit("-")).otherwise(
            pl.concat_str([value.str.len_bytes().cast(pl.String), pl.lit(":"), value])))
    return pl.concat_str(parts, separator="|").alias("raw_key")


def _context_id(order: Sequence[str], pack_id: str, census: CensusOptions | None) -> str:
    """What a raw address's final result depends on besides the address itself."""
    from segment import __version__

    parts: dict[str, Any] = {"version": __version__, "pack": pack_id,
                             "providers": [p for p in order if p != "source"]}
    if "census" in order:
        opts = census or CensusOptions()
        parts["census"] = [opts.benchmark, opts.vintage]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _geographies(points: pl.DataFrame, pack: Any) -> pl.DataFrame:
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


def _address_keys(raw: pl.DataFrame) -> pl.DataFrame:
    """Parse distinct lines, build the normalized address key and its hash; one row per raw address."""
    lines = raw.select(pl.col("address_line1").alias("line")).unique()
    parsed = addr.parse_addresses(lines.lazy()).collect()
    frame = raw.join(parsed, left_on="address_line1", right_on="line", how="left",
                     nulls_equal=True).with_columns(addr.clean_zip(pl.col("zip5")).alias("zip5c"))
    street = pl.when(pl.col("addr_kind").is_in([addr.STREET, addr.NO_HOUSE_NUMBER])).then(
        pl.col("street_key")).otherwise(pl.col("addr_kind").str.to_uppercase())
    frame = frame.with_columns(
        addr.address_key(pl.col("house_number"), street, pl.col("city"), pl.col("state"),
                         pl.col("zip5c")).alias("addr_key"))
    uniq = frame.select("addr_key").unique().sort("addr_key").with_row_index("qid")
    uniq = uniq.with_columns(addr.sha256_hex(uniq["addr_key"]).alias("addr_hash"))
    return frame.join(uniq, on="addr_key", how="left")


def _todo(provider: str, keys: pl.DataFrame, results: list[pl.DataFrame], pack: Any,
          census: CensusOptions | None) -> tuple[pl.DataFrame | None, str]:
    """Distinct keys this provider should try (none it cannot improve), and its source id."""
    from segment.reference.pack import ADDRESS_RANGES, ZIP_CENTROIDS

    k = keys.unique("qid", keep="first").sort("qid")
    if results:
        ranks = pl.concat(results, how="diagonal_relaxed").select(
            "qid", pl.col("geo_precision").replace_strict(RANK, return_dtype=pl.Int32).alias("r")
        ).group_by("qid").agg(pl.col("r").min())
        k = k.join(ranks, on="qid", how="left").filter(
            pl.col("r").is_null() | (pl.col("r") > _BEST_OF[provider])).drop("r")
    if provider == "offline":
        if not pack.has(ADDRESS_RANGES):
            return None, ""
        return k.filter(pl.col("addr_kind").is_in([addr.STREET, addr.NO_HOUSE_NUMBER])), pack.pack_id
    if provider == "zip":
        if not pack.has(ZIP_CENTROIDS):
            return None, ""
        return k.filter(pl.col("zip5c").is_not_null()), pack.pack_id
    opts = census or CensusOptions()
    return k.filter(pl.col("addr_kind") == addr.STREET), f"census:{opts.benchmark}:{opts.vintage}"


_RANGE_CACHE: dict[str, Any] = {}


def _run_provider(provider: str, todo: pl.DataFrame, pack: Any, settings: Settings,
                  census: CensusOptions | None) -> pl.DataFrame:
    cols = ["qid", "lat", "lon", "geo_precision", "geo_score", "geo_reason", "county_fips"]
    if todo.height == 0:
        return pl.DataFrame(schema={"qid": pl.UInt32, "lat": pl.Float64, "lon": pl.Float64,
                                    "geo_precision": pl.String, "geo_score": pl.Float64,
                                    "geo_reason": pl.String, "county_fips": pl.String})
    if provider == "offline":
        from segment.geocode.interpolate import interpolate, prepare_ranges
        from segment.reference.pack import ADDRESS_RANGES

        index = _RANGE_CACHE.get(pack.pack_id)
        if index is None:
            index = prepare_ranges(pack.read_geo(ADDRESS_RANGES))
            _RANGE_CACHE.clear()
            _RANGE_CACHE[pack.pack_id] = index
        found = interpolate(todo.select("qid", "house_number", "street_key", zip5="zip5c"), index)
        return found.with_columns(pl.lit(None, pl.String).alias("county_fips")).select(cols)
    if provider == "zip":
        from segment.reference.pack import ZIP_CENTROIDS

        table = pack.scan(ZIP_CENTROIDS).collect()
        found = zip_centroids(todo.select("qid", zip5="zip5c"), table)
        return found.with_columns(pl.lit(None, pl.String).alias("geo_reason")).select(cols)
    rows = todo.select(
        pl.col("qid").cast(pl.String).alias("id"),
        pl.concat_str([pl.col("house_number_text"), pl.col("street_key")], separator=" ",
                      ignore_nulls=True).alias("street"),
        pl.col("city"), pl.col("state"), pl.col("zip5c").alias("zip"))
    answer = census_geocode(rows, settings, census)
    return answer.select(
        pl.col("id").cast(pl.UInt32).alias("qid"), "lat", "lon",
        pl.when((pl.col("match") == "Match") & pl.col("lat").is_not_null())
        .then(pl.lit(GeoPrecision.RANGE_INTERPOLATED.value))
        .otherwise(pl.lit(GeoPrecision.UNMATCHED.value)).alias("geo_precision"),
        pl.when(pl.col("match") != "Match").then(0.0)
        .when(pl.col("match_type") == "Exact").then(1.0).otherwise(0.8).alias("geo_score"),
        pl.when(pl.col("match") == "Tie").then(pl.lit("census_tie"))
        .when(pl.col("match") != "Match").then(pl.lit("census_no_match"))
        .otherwise(pl.lit(None, pl.String)).alias("geo_reason"),
        pl.lit(None, pl.String).alias("county_fips"),
    )


def _choose(keys: pl.DataFrame, results: list[pl.DataFrame]) -> pl.DataFrame:
    """Per key: the most precise result (ties: earlier provider) and why nothing better."""
    k = keys.unique("qid", keep="first").select(
        "qid",
        pl.when(~pl.col("addr_kind").is_in([addr.STREET, addr.NO_HOUSE_NUMBER]))
        .then(pl.col("addr_kind")).alias("kind_reason"),
        pl.when(pl.col("zip5c").is_null()).then(pl.lit("no_zip")).alias("zip_reason"),
    )
    schema = {"qid": pl.UInt32, "lat": pl.Float64, "lon": pl.Float64, "geo_precision": pl.String,
              "geo_score": pl.Float64, "geo_reason": pl.String, "county_fips": pl.String,
              "provider": pl.String, "pos": pl.Int32}
    res = pl.concat([r.cast({c: t for c, t in schema.items() if c in r.columns}) for r in results],
                    how="diagonal_relaxed") if results else pl.DataFrame(schema=schema)
    res = res.with_columns(
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


def _final(lf: pl.LazyFrame, per_address: pl.DataFrame, geo: pl.DataFrame,
           columns: list[str]) -> pl.LazyFrame:
    """Every patient with its result: source points first, else its address's result."""
    keep = [*ADDRESS_COLUMNS, "lat", "lon", "geo_precision", "geo_score", "tract_geoid",
            "block_group_geoid", "county_fips", "geo_reason", "_provider"]
    pa = per_address.select(keep).rename({c: f"_a_{c}" for c in keep if c not in ADDRESS_COLUMNS})
    src_geo = geo.rename({c: f"_s_{c}" for c in geo.columns})
    joined = lf.join(pa.lazy(), on=list(ADDRESS_COLUMNS), how="left", nulls_equal=True,
                     maintain_order="left").join(
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
        pl.when(src).then(pl.lit("source")).otherwise(pl.col("_a__provider")).alias("_provider"),
    ).with_columns(
        pl.when(pl.col("geo_precision").is_in(TRACT_PRECISIONS) & pl.col("tract_geoid").is_null())
        .then(pl.lit("outside_pack_tracts")).otherwise(pl.col("geo_reason")).alias("geo_reason"),
    )
    return out.select(*columns, *[pl.col(c).cast(t) for c, t in GEOCODE_SCHEMA.items()
                                  if c not in columns],
                      pl.col("geo_reason").cast(pl.String), "_provider")


def _count(counts: pl.DataFrame, column: str, order: list[str] | None = None) -> dict[str, int]:
    agg = counts.group_by(column).agg(pl.col("len").sum())
    found = {str(r[column]): int(r["len"]) for r in agg.iter_rows(named=True)
             if r[column] is not None}
    if order:
        return {k: found.get(k, 0) for k in order}
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))
