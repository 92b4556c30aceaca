"""Running the providers in order over the distinct normalized addresses, with the cache.

Each provider gets only the addresses it can try and that no earlier provider placed as
well as it could (:func:`todo_for`); its answers already in the cache for the same source
id are reused, the rest are sent to it (:func:`locate_all`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from segment import progress
from segment.errors import ReferenceDataError
from segment.geocode.providers import (
    RANK,
    RESULT_SCHEMA,
    SOURCE,
    Provider,
    ProviderContext,
    empty_result,
    get_provider,
)
from segment.log import get_logger

log = get_logger("geocode")


@dataclass
class Located:
    """The providers' answers, with where they came from."""

    #: answers (``RESULT_SCHEMA`` plus ``provider`` and its position ``pos``), cached ones too
    results: list[pl.DataFrame] = field(default_factory=list)
    #: new provider rows for the cache
    new_cache: list[pl.DataFrame] = field(default_factory=list)
    #: addresses sent to each provider
    new_counts: dict[str, int] = field(default_factory=dict)
    #: answers each provider gave from the cache
    cache_counts: dict[str, int] = field(default_factory=dict)


def todo_for(provider: Provider, keys: pl.DataFrame, results: list[pl.DataFrame]) -> pl.DataFrame:
    """Distinct keys ``provider`` should try: those it can, and none it cannot improve."""
    k = keys.unique("qid", keep="first").sort("qid")
    if results:
        ranks = pl.concat(results, how="diagonal_relaxed").select(
            "qid", pl.col("geo_precision").replace_strict(RANK, return_dtype=pl.Int32).alias("r")
        ).group_by("qid").agg(pl.col("r").min())
        k = k.join(ranks, on="qid", how="left").filter(
            pl.col("r").is_null() | (pl.col("r") > RANK[provider.best.value])).drop("r")
    return provider.candidates(k)


def is_usable(provider: Provider, ctx: ProviderContext, explicit: bool) -> bool:
    """Whether the pack has what ``provider`` needs (missing: an error if it was asked for)."""
    if provider.table is None or ctx.pack.has(provider.table):
        return True
    if explicit:
        raise ReferenceDataError(
            f"provider {provider.name!r} needs {provider.table}, which pack {ctx.pack.name!r} lacks",
            path=ctx.pack.path)
    log.warning(f"pack has no table for provider {provider.name!r}; skipped")
    return False


def _tagged(frame: pl.DataFrame, name: str, pos: int) -> pl.DataFrame:
    return frame.with_columns(pl.lit(name).alias("provider"), pl.lit(pos, pl.Int32).alias("pos"))


def locate_all(keys: pl.DataFrame, order: Sequence[str], ctx: ProviderContext, *,
               cache: pl.DataFrame | None = None, explicit: bool = False) -> Located:
    """Run the address providers of ``order`` in turn (``cache``: earlier answers to reuse)."""
    out = Located()
    for pos, name in enumerate(order):
        if name == SOURCE:
            continue
        provider = get_provider(name)
        progress.step("geocode", f"provider {name}")
        if not is_usable(provider, ctx, explicit):
            continue
        todo = todo_for(provider, keys, out.results)
        source_id = provider.source_id(ctx)
        hit = pl.DataFrame(schema={"qid": pl.UInt32})
        if cache is not None:
            hit = cache.filter((pl.col("provider") == name) & (pl.col("source_id") == source_id)
                               ).join(todo.select("qid", "addr_hash"), on="addr_hash", how="inner")
            out.cache_counts[name] = hit.height
            out.results.append(_tagged(hit.select(list(RESULT_SCHEMA)), name, pos))
        fresh = todo.join(hit.select("qid"), on="qid", how="anti")
        found = provider.locate(fresh, ctx) if fresh.height else empty_result()
        out.new_counts[name] = fresh.height
        out.results.append(_tagged(found, name, pos))
        if found.height:
            out.new_cache.append(found.join(todo.select("qid", "addr_hash"), on="qid").with_columns(
                pl.lit(name).alias("provider"), pl.lit(source_id).alias("source_id")))
    return out
