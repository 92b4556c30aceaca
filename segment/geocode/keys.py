"""Address keys: the distinct raw addresses, their normalized keys and hashes, source points.

Work is done once per distinct raw address (its four columns as the extract gives them,
hashed for the cache) and, for the providers, once per distinct *normalized* address
(house number, Publication 28 street, city, state, ZIP), numbered by ``qid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from segment.addresses import parse as addr
from segment.geocode.census_batch import CensusOptions
from segment.geocode.providers import SOURCE
from segment.runstate import content_hash
from segment.schema import SOURCE_POINT_COLUMNS

#: the raw address columns of a patient
ADDRESS_COLUMNS = ("address_line1", "city", "state", "zip5")
#: Polars' own 64-bit hash of the four raw address columns: a fast join key within one
#: process (never stored: it is stable only within one Polars version)
ROW_HASH = "_addr_row_hash"


def row_hash() -> pl.Expr:
    """The :data:`ROW_HASH` of each row's raw address (nulls hash alike)."""
    return pl.struct(list(ADDRESS_COLUMNS)).hash().alias(ROW_HASH)


def raw_key() -> pl.Expr:
    """The four raw address columns as one unambiguous text (length-prefixed; null apart)."""
    parts = []
    for c in ADDRESS_COLUMNS:
        value = pl.col(c).cast(pl.String)
        parts.append(pl.when(value.is_null()).then(pl.lit("-")).otherwise(
            pl.concat_str([value.str.len_bytes().cast(pl.String), pl.lit(":"), value])))
    return pl.concat_str(parts, separator="|").alias("raw_key")


def is_valid_source(schema: pl.Schema) -> pl.Expr:
    """True where the extract's own coordinates can be used (on the globe, not 0,0)."""
    if not set(SOURCE_POINT_COLUMNS) <= set(schema):
        return pl.lit(False)
    lat, lon = pl.col("source_lat"), pl.col("source_lon")
    return (lat.is_between(-90, 90) & lon.is_between(-180, 180)
            & ~((lat == 0) & (lon == 0))).fill_null(False)


def with_source_flag(patients: pl.LazyFrame, schema: pl.Schema, order: Sequence[str]) -> pl.LazyFrame:
    """Patients with the source-point columns (null when absent) and ``_src``: use them."""
    missing = [pl.lit(None, dtype).alias(col) for col, dtype in SOURCE_POINT_COLUMNS.items()
               if col not in schema]
    lf = patients.with_columns(missing) if missing else patients
    return lf.with_columns((is_valid_source(schema) & (SOURCE in order)).alias("_src"))


def distinct_raw(lf: pl.LazyFrame) -> pl.DataFrame:
    """One row per distinct raw address of patients without usable source coordinates."""
    raw = lf.filter(~pl.col("_src")).select(ADDRESS_COLUMNS).unique().collect()
    return raw.with_columns(addr.sha256_hex(raw.select(raw_key()).to_series()).alias("raw_hash"),
                            row_hash())


def address_keys(raw: pl.DataFrame) -> pl.DataFrame:
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


def context_id(order: Sequence[str], pack_id: str, census: CensusOptions | None) -> str:
    """What a raw address's final result depends on besides the address itself."""
    from segment import __version__

    parts: dict[str, Any] = {"version": __version__, "pack": pack_id,
                             "providers": [p for p in order if p != SOURCE]}
    if "census" in order:
        opts = census or CensusOptions()
        parts["census"] = [opts.benchmark, opts.vintage]
    return content_hash(parts)[:16]
