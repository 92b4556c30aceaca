"""The geocode cache: results keyed by the SHA-256 of the normalized address, never by name.

``DIR/geocode-cache.parquet`` holds one row per (address hash, provider, pack/service id):
the result columns and nothing that names or identifies a person. A nightly rerun looks
addresses up here and sends only new ones to a provider.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segment.log import get_logger
from segment.workdir import GEOCODE_CACHE, write_parquet

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
}
log = get_logger("geocode")


def load_cache(workdir: Path) -> pl.DataFrame:
    """The cache of a working folder (empty when absent; an unreadable cache is ignored)."""
    path = Path(workdir) / GEOCODE_CACHE
    if not path.exists():
        return pl.DataFrame(schema=CACHE_SCHEMA)
    try:
        frame = pl.read_parquet(path)
        return frame.select([pl.col(c).cast(t) for c, t in CACHE_SCHEMA.items()])
    except Exception as exc:  # a damaged cache costs time, never correctness
        log.warning(f"ignoring unreadable {GEOCODE_CACHE} ({type(exc).__name__})")
        return pl.DataFrame(schema=CACHE_SCHEMA)


def save_cache(workdir: Path, old: pl.DataFrame, new: pl.DataFrame) -> int:
    """Add ``new`` rows to the cache (a newer row replaces an older one); returns the row count."""
    merged = pl.concat([new.select(list(CACHE_SCHEMA)).cast(pl.Schema(CACHE_SCHEMA)), old])
    merged = merged.unique(["addr_hash", "provider", "source_id"], keep="first",
                           maintain_order=True)
    write_parquet(merged, Path(workdir) / GEOCODE_CACHE)
    return merged.height
