"""The geocode cache: results keyed by the SHA-256 of an address, never by name.

``DIR/geocode-cache.parquet`` holds two kinds of rows, each one per (address hash,
provider, source id), with the result columns and nothing that names or identifies a person:

- provider rows: one provider's answer for a *normalized* address (``provider`` is
  ``offline``, ``zip`` or ``census``; ``source_id`` the pack id or the Census
  benchmark/vintage), so a changed provider order or pack still reuses what each
  provider already answered (the online Census geocoder above all);
- address rows (``provider`` is ``*``): the final result for a *raw* address (its four
  columns as the extract gives them), point, precision, reason, tract, block group and
  county, for one geocoding context (``source_id``: segment's version, the providers in
  order, the pack and the Census options). A nightly rerun looks every distinct raw
  address up here first: only the addresses not found are parsed, sent to providers and
  placed in polygons.

A cache written before address rows existed is read as it is (the new columns empty).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segment.log import get_logger
from segment.workdir import GEOCODE_CACHE, atomic_path

CACHE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "addr_hash": pl.String,
    "provider": pl.String,
    "source_id": pl.String,  # pack id (offline, zip) or service benchmark/vintage (census)
    "lat": pl.Float64,
    "lon": pl.Float64,
    "geo_precision": pl.String,
    "geo_score": pl.Float64,
    "geo_reason": pl.String,
    "county_fips": pl.String,
    # address rows only (null on provider rows)
    "tract_geoid": pl.String,
    "block_group_geoid": pl.String,
    "chosen_provider": pl.String,
}
#: the ``provider`` of address rows: a raw address's final result in one context
ADDRESS_ROW = "*"
#: one cache row per address hash, provider and source id
_KEY = ["addr_hash", "provider", "source_id"]
log = get_logger("geocode")


def load_cache(workdir: Path) -> pl.DataFrame:
    """The cache of a working folder (empty when absent; an unreadable cache is ignored)."""
    path = Path(workdir) / GEOCODE_CACHE
    if not path.exists():
        return pl.DataFrame(schema=CACHE_SCHEMA)
    try:
        frame = pl.read_parquet(path)
        missing = [pl.lit(None, t).alias(c) for c, t in CACHE_SCHEMA.items() if c not in frame.columns]
        if missing:  # a cache from before address rows: provider rows only, kept
            frame = frame.with_columns(missing)
        return frame.select([pl.col(c).cast(t) for c, t in CACHE_SCHEMA.items()])
    except Exception as exc:  # a damaged cache costs time, never correctness
        log.warning(f"ignoring unreadable {GEOCODE_CACHE} ({type(exc).__name__})")
        return pl.DataFrame(schema=CACHE_SCHEMA)


def save_cache(workdir: Path, old: pl.DataFrame, new: pl.DataFrame) -> int:
    """Add ``new`` rows to the cache (a newer row replaces an older one); returns the row count.

    The old rows are kept by an anti-join on the new rows' keys (a small hash table) rather
    than a ``unique`` over the whole cache, and the file is written with zstd level 1 (the
    same size as the default level 3 for hex hashes, half the time): at 1M addresses that
    halves the cost of a nightly rewrite.
    """
    fill = [pl.lit(None, t).alias(c) for c, t in CACHE_SCHEMA.items() if c not in new.columns]
    new = new.with_columns(fill) if fill else new
    new = new.select(list(CACHE_SCHEMA)).cast(pl.Schema(CACHE_SCHEMA)).unique(
        _KEY, keep="first", maintain_order=True)
    merged = pl.concat([new, old.join(new.select(_KEY), on=_KEY, how="anti", maintain_order="left")])
    with atomic_path(Path(workdir) / GEOCODE_CACHE) as tmp:
        merged.write_parquet(tmp, compression="zstd", compression_level=1)
    return merged.height


def cached_addresses(raw: pl.DataFrame, cache: pl.DataFrame, context: str,
                     columns: tuple[str, ...]) -> pl.DataFrame:
    """``raw`` addresses whose whole result the cache holds for ``context`` (with ``columns``).

    ``columns`` are the per-address result columns; ``_provider`` comes from ``chosen_provider``.
    """
    rows = cache.filter((pl.col("provider") == ADDRESS_ROW) & (pl.col("source_id") == context))
    return raw.join(
        rows.select(pl.col("addr_hash").alias("raw_hash"), *[c for c in columns if c != "_provider"],
                    pl.col("chosen_provider").alias("_provider")),
        on="raw_hash", how="inner")


def address_rows(addresses: pl.DataFrame, context: str, columns: tuple[str, ...]) -> pl.DataFrame:
    """The cache's address rows of freshly geocoded raw addresses (the inverse of the above)."""
    return addresses.select(
        pl.col("raw_hash").alias("addr_hash"), pl.lit(ADDRESS_ROW).alias("provider"),
        pl.lit(context).alias("source_id"), *[c for c in columns if c != "_provider"],
        pl.col("_provider").alias("chosen_provider"))
