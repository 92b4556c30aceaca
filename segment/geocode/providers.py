"""Geocode providers: a protocol and a registry, in the order :data:`PROVIDERS` lists them.

An address provider is an object with a ``name`` that places the distinct normalized
addresses still to do (:meth:`Provider.locate`), one result row per placed address
(:data:`RESULT_SCHEMA`). Adding one means writing such an object and registering it with
:func:`register`. ``source`` (coordinates the extract already carries) is not an address
provider: it answers patients, not addresses, and is applied per patient by the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import polars as pl

from segment.addresses import parse as addr
from segment.config import Settings
from segment.errors import GeocodeError
from segment.geocode.census_batch import CensusOptions, census_geocode
from segment.geocode.zip import zip_centroids
from segment.schema import GeoPrecision

#: coordinates from the extract (applied per patient, before any address provider)
SOURCE = "source"
#: how precise each precision is: a lower rank is better
RANK = {p.value: i for i, p in enumerate(GeoPrecision)}
#: one provider's answer per address: the query id and the placement
RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "qid": pl.UInt32, "lat": pl.Float64, "lon": pl.Float64, "geo_precision": pl.String,
    "geo_score": pl.Float64, "geo_reason": pl.String, "county_fips": pl.String,
}
_STREETS = [addr.STREET, addr.NO_HOUSE_NUMBER]


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use: the reference pack, the settings, the Census options."""

    pack: Any
    settings: Settings
    census: CensusOptions | None = None


class Provider(Protocol):
    """A geocoder of distinct normalized addresses."""

    @property
    def name(self) -> str:
        """The name users give (``--provider``), in the cache and the report."""
        ...

    @property
    def best(self) -> GeoPrecision:
        """The best precision it can give: addresses already placed as well are not sent to it."""
        ...

    @property
    def table(self) -> str | None:
        """The reference pack table it needs (None: none)."""
        ...

    def source_id(self, ctx: ProviderContext) -> str:
        """What its answers depend on besides the address (the cache keeps answers per id)."""
        ...

    def candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        """The address keys (one row per ``qid``) it can try at all."""
        ...

    def locate(self, todo: pl.DataFrame, ctx: ProviderContext) -> pl.DataFrame:
        """Place ``todo`` (never empty): :data:`RESULT_SCHEMA` rows, at most one per ``qid``."""
        ...


_REGISTRY: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    """Add a provider to the registry (its name must be new)."""
    if provider.name in _REGISTRY or provider.name == SOURCE:
        raise ValueError(f"geocode provider {provider.name!r} is registered already")
    _REGISTRY[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider:
    """The registered address provider called ``name``."""
    return _REGISTRY[name]


def provider_names() -> tuple[str, ...]:
    """Every provider name, ``source`` first, then the address providers as registered."""
    return (SOURCE, *_REGISTRY)


def empty_result() -> pl.DataFrame:
    """A provider answer with no rows."""
    return pl.DataFrame(schema=RESULT_SCHEMA)


class _FromPack:
    """A provider answering from a reference pack table: its answers depend on the pack."""

    def source_id(self, ctx: ProviderContext) -> str:
        """The pack id."""
        return str(ctx.pack.pack_id)


@dataclass(frozen=True)
class OfflineRanges(_FromPack):
    """TIGER address-range interpolation against the pack's ``address_ranges`` table."""

    name: str = "offline"
    best: GeoPrecision = GeoPrecision.RANGE_INTERPOLATED
    #: the prepared range index of the last pack used (preparing it costs seconds)
    _index: ClassVar[dict[str, Any]] = {}

    @property
    def table(self) -> str | None:
        """The pack's address ranges."""
        from segment.reference.pack import ADDRESS_RANGES

        return ADDRESS_RANGES

    def candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Street addresses, with or without a house number."""
        return keys.filter(pl.col("addr_kind").is_in(_STREETS))

    def locate(self, todo: pl.DataFrame, ctx: ProviderContext) -> pl.DataFrame:
        """Interpolate along the matching range (street centroid without a number)."""
        from segment.geocode.interpolate import interpolate, prepare_ranges
        from segment.reference.pack import ADDRESS_RANGES

        index = self._index.get(ctx.pack.pack_id)
        if index is None:
            index = prepare_ranges(ctx.pack.read_geo(ADDRESS_RANGES))
            self._index.clear()
            self._index[ctx.pack.pack_id] = index
        found = interpolate(todo.select("qid", "house_number", "street_key", zip5="zip5c"), index)
        return found.with_columns(pl.lit(None, pl.String).alias("county_fips")).select(list(RESULT_SCHEMA))


@dataclass(frozen=True)
class CensusBatch:
    """The Census Bureau batch geocoder: online, so used only when named."""

    name: str = "census"
    best: GeoPrecision = GeoPrecision.RANGE_INTERPOLATED

    @property
    def table(self) -> str | None:
        """None: it needs no pack table."""
        return None

    def source_id(self, ctx: ProviderContext) -> str:
        """The benchmark and vintage asked for."""
        opts = ctx.census or CensusOptions()
        return f"census:{opts.benchmark}:{opts.vintage}"

    def candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Street addresses with a house number."""
        return keys.filter(pl.col("addr_kind") == addr.STREET)

    def locate(self, todo: pl.DataFrame, ctx: ProviderContext) -> pl.DataFrame:
        """Send the addresses in batches; a tie or no match keeps no point."""
        rows = todo.select(
            pl.col("qid").cast(pl.String).alias("id"),
            pl.concat_str([pl.col("house_number_text"), pl.col("street_key")], separator=" ",
                          ignore_nulls=True).alias("street"),
            pl.col("city"), pl.col("state"), pl.col("zip5c").alias("zip"))
        answer = census_geocode(rows, ctx.settings, ctx.census)
        matched = pl.col("match") == "Match"
        return answer.select(
            pl.col("id").cast(pl.UInt32).alias("qid"), "lat", "lon",
            pl.when(matched & pl.col("lat").is_not_null())
            .then(pl.lit(GeoPrecision.RANGE_INTERPOLATED.value))
            .otherwise(pl.lit(GeoPrecision.UNMATCHED.value)).alias("geo_precision"),
            pl.when(~matched).then(0.0)
            .when(pl.col("match_type") == "Exact").then(1.0).otherwise(0.8).alias("geo_score"),
            pl.when(pl.col("match") == "Tie").then(pl.lit("census_tie"))
            .when(~matched).then(pl.lit("census_no_match"))
            .otherwise(pl.lit(None, pl.String)).alias("geo_reason"),
            pl.lit(None, pl.String).alias("county_fips"),
        )


@dataclass(frozen=True)
class ZipCentroids(_FromPack):
    """The centroid of the address's ZIP: flagged, never given a tract or block group."""

    name: str = "zip"
    best: GeoPrecision = GeoPrecision.ZIP_CENTROID

    @property
    def table(self) -> str | None:
        """The pack's ZIP centroids."""
        from segment.reference.pack import ZIP_CENTROIDS

        return ZIP_CENTROIDS

    def candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Addresses with a valid ZIP, whatever their kind."""
        return keys.filter(pl.col("zip5c").is_not_null())

    def locate(self, todo: pl.DataFrame, ctx: ProviderContext) -> pl.DataFrame:
        """Join the pack's ZIP table."""
        found = zip_centroids(todo.select("qid", zip5="zip5c"), ctx.pack.scan(str(self.table)).collect())
        return found.with_columns(pl.lit(None, pl.String).alias("geo_reason")).select(list(RESULT_SCHEMA))


register(OfflineRanges())
register(CensusBatch())
register(ZipCentroids())

#: every provider name, in the order of the registry
PROVIDERS = provider_names()
#: the default never sends an address off the machine
DEFAULT_PROVIDERS = (SOURCE, "offline", "zip")


def parse_providers(values: Iterable[str]) -> tuple[str, ...]:
    """Providers from repeated options and/or comma lists, in order, without repeats."""
    valid = provider_names()
    order: list[str] = []
    for value in values:
        for name in (v.strip().lower() for v in value.split(",")):
            if not name:
                continue
            if name not in valid:
                raise GeocodeError(f"unknown provider {name!r}; valid options are: {', '.join(valid)}")
            if name not in order:
                order.append(name)
    if not order:
        raise GeocodeError(f"no provider given; valid options are: {', '.join(valid)}")
    return tuple(order)
