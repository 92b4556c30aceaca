"""The geocode stage: :func:`geocode` (the entry point) and :class:`GeocodeStage`.

``segment geocode`` and ``segment run`` both go through :class:`GeocodeStage`; with
``--engine spark`` they run its Spark twin (:class:`segment.spark.stages.SparkGeocodeStage`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from segment import progress
from segment.config import Settings
from segment.errors import GeocodeError
from segment.geocode.assemble import PER_ADDRESS, final, place
from segment.geocode.cache import (
    CACHE_SCHEMA,
    address_rows,
    cached_addresses,
    load_cache,
    save_cache,
)
from segment.geocode.census_batch import CensusOptions
from segment.geocode.keys import (
    ADDRESS_COLUMNS,
    ROW_HASH,
    address_keys,
    context_id,
    distinct_raw,
    with_source_flag,
)
from segment.geocode.providers import DEFAULT_PROVIDERS, ProviderContext, parse_providers
from segment.geocode.result import GeocodeResult
from segment.log import get_logger
from segment.memory import Batch, ParquetAppender, patient_batches, table_rows
from segment.stage import Stage, StageContext
from segment.workdir import GEOCODE_REPORT, GEOCODED, PATIENTS, atomic_path, scan, write_json

log = get_logger("geocode")


def _patients(workdir: Path) -> tuple[pl.LazyFrame, pl.Schema]:
    patients = scan(workdir, PATIENTS, produced_by="ingest")
    schema = patients.collect_schema()
    missing = [c for c in ADDRESS_COLUMNS if c not in schema]
    if missing:
        raise GeocodeError(f"{PATIENTS} lacks column(s) {', '.join(missing)}", path=workdir)
    return patients, schema


def geocode(
    workdir: str | Path,
    *,
    providers: Sequence[str] | None = None,
    settings: Settings | None = None,
    census: CensusOptions | None = None,
    use_cache: bool = True,
) -> GeocodeResult:
    """Geocode ``WORKDIR/patients.parquet`` into ``WORKDIR/geocoded.parquet`` (see :mod:`segment.geocode`).

    ``providers`` is the order to try (default :data:`DEFAULT_PROVIDERS`); giving it
    explicitly makes a provider whose pack table is missing an error instead of a skip.
    """
    from segment.reference.pack import open_pack

    workdir = Path(workdir)
    settings = settings or Settings.from_env()
    order = parse_providers(providers) if providers is not None else DEFAULT_PROVIDERS
    patients, schema = _patients(workdir)
    pack = open_pack(settings.reference_dir)
    lf = with_source_flag(patients, schema, order)
    raw = distinct_raw(lf)
    cache = load_cache(workdir) if use_cache else pl.DataFrame(schema=CACHE_SCHEMA)
    context = context_id(order, pack.pack_id, census)
    # whole results of raw addresses geocoded before in this context: nothing to redo
    known = cached_addresses(raw, cache, context, PER_ADDRESS)
    keys = address_keys(raw.join(known.select("raw_hash"), on="raw_hash", how="anti"))
    log.info("addresses to geocode", distinct=raw.height, cached=known.height, new=keys.height)
    progress.step("geocode", f"{raw.height:,} distinct addresses ({known.height:,} from the cache)")
    placed = place(lf, keys, order, ProviderContext(pack, settings, census), cache=cache,
                   explicit=providers is not None)
    located, fresh = placed.located, placed.addresses
    new_rows = [*located.new_cache, *([address_rows(fresh, context, PER_ADDRESS)] if fresh.height else [])]
    if use_cache and new_rows:
        save_cache(workdir, cache, pl.concat(new_rows, how="diagonal_relaxed"))
    addresses = pl.concat([known.select(*ADDRESS_COLUMNS, ROW_HASH, *PER_ADDRESS),
                           fresh.select(*ADDRESS_COLUMNS, ROW_HASH, *PER_ADDRESS)], how="vertical_relaxed")
    progress.step("geocode", "writing geocoded.parquet")
    output = workdir / GEOCODED
    batches = patient_batches(table_rows(workdir / PATIENTS), GEOCODE_BYTES_PER_PATIENT)
    if len(batches) == 1:
        # one evaluation of the joins, then the file and the counts from it (the streaming sink of
        # an order-keeping join was 2-3x slower at 1M, and counting from the plan joined twice)
        frame = final(lf, addresses, placed.geo, list(schema)).collect()
        with atomic_path(output) as tmp:  # zstd level 1: the same size, less time
            frame.drop("_provider").write_parquet(tmp, compression="zstd", compression_level=1)
        counts = frame.group_by(*_COUNTED).len()
        del frame
    else:
        counts = _write_batches(lf, addresses, placed.geo, list(schema), output, batches)
    result = GeocodeResult.of(
        output, counts, addresses=raw.height, providers=order, geocoded_new=located.new_counts,
        from_cache={"addresses": known.height, **located.cache_counts}, pack=pack)
    write_json(workdir / GEOCODE_REPORT, result.to_dict())
    log.info("geocoded", patients=result.patients, new=sum(located.new_counts.values()),
             cached=sum(result.from_cache.values()), batches=len(batches))
    return replace(result, batches=len(batches))


#: the working set per patient of the final join (every patient column and the results);
#: the distinct addresses, the cache and the polygons are held once, whatever the batches
GEOCODE_BYTES_PER_PATIENT = 1500
#: the columns the report counts patients by
_COUNTED = ("geo_precision", "geo_reason", "_provider")


def _write_batches(lf: pl.LazyFrame, addresses: pl.DataFrame, geo: pl.DataFrame, columns: list[str],
                   output: Path, batches: list[Batch]) -> pl.DataFrame:
    """Every patient's result, batch by batch of patients, appended to one file; the counts summed."""
    counts: list[pl.DataFrame] = []
    with ParquetAppender(output, compression="zstd", level=1) as out:
        for batch in batches:
            progress.step("geocode", f"batch {batch.index + 1} of {batch.count}")
            part = final(batch.patients(lf), addresses, geo, columns).collect()
            counts.append(part.group_by(*_COUNTED).len())
            out.append(part.drop("_provider"))
            del part
        out.close()
    return pl.concat(counts).group_by(*_COUNTED).agg(pl.col("len").sum())


@dataclass(frozen=True)
class GeocodeStage(Stage[GeocodeResult]):
    """Addresses to points, tracts, block groups and counties (``geocoded.parquet``).

    ``providers`` None means :data:`DEFAULT_PROVIDERS` (a missing pack table is skipped).
    """

    providers: tuple[str, ...] | None = None
    census: CensusOptions | None = None
    use_cache: bool = True
    name: ClassVar[str] = "geocode"

    def inputs(self, ctx: StageContext) -> Sequence[Path]:
        """The patients and the reference pack's manifest."""
        return [ctx.path(PATIENTS), ctx.settings.reference_dir / "manifest.json"]

    def outputs(self, ctx: StageContext) -> Sequence[Path]:
        """``geocoded.parquet`` and ``geocode-report.json``."""
        return [ctx.path(GEOCODED), ctx.path(GEOCODE_REPORT)]

    def params(self, ctx: StageContext) -> Mapping[str, Any]:
        """Options other than the defaults (none in ``segment run``, so its key is unchanged)."""
        census = self.census if self.census is not None and self.census != CensusOptions() else None
        given = {"providers": self.providers, "census": census}
        return {k: v for k, v in given.items() if v is not None}

    def run(self, ctx: StageContext) -> GeocodeResult:
        """Geocode the working folder with Polars (on Spark: :class:`segment.spark.stages.SparkGeocodeStage`)."""
        providers = list(self.providers) if self.providers is not None else None
        return geocode(ctx.workdir, providers=providers, settings=ctx.settings, census=self.census,
                       use_cache=self.use_cache)
