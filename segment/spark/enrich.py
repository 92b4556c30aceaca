"""`segment enrich --engine spark`: the single-machine enrichment, one partition at a time.

Enrichment is a left join of each patient to small pack tables (tract indicators with the
need index, ZCTA/county fallbacks, block-group indices), so each partition of the geocoded
patients runs :func:`segment.enrich.enrich` unchanged against the pack - read in place
under a ``local`` master, shipped to every executor on a cluster. The driver plans the
same enrichment over an empty frame first, so a wrong pack or input fails before any
task runs and gives the output schema; the report's counts come from Spark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from segment import progress
from segment import workdir as wd
from segment.enrich import EnrichReport, enrich
from segment.log import get_logger
from segment.schema import SDOH_SOURCE
from segment.spark.io import (
    arrow_batches,
    arrow_to_polars_schema,
    executor_path,
    partition_frame,
    persisted,
    read_table,
    require_columns,
    ships_files,
    write_output,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger("spark")


class PartitionEnricher:
    """``mapInArrow`` entry: a partition of geocoded patients in, enriched out (picklable)."""

    def __init__(self, pack_dir: str, crosswalk: str | None, shipped: bool, schema: StructType) -> None:
        self.pack_dir = pack_dir
        self.crosswalk = crosswalk
        self.shipped = shipped
        self.schema = schema

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The partition's batches enriched together (the pack tables are prepared once)."""
        frame = partition_frame(batches)
        if frame is None:
            return
        crosswalk = None if self.crosswalk is None else executor_path(self.crosswalk, self.shipped)
        out, _report = enrich(frame.lazy(), executor_path(self.pack_dir, self.shipped), crosswalk=crosswalk)
        yield from arrow_batches(out.collect(), self.schema)


def enrich_dataframe(spark: SparkSession, geocoded: DataFrame, reference_dir: Path, *,
                     crosswalk: Path | None = None) -> tuple[DataFrame, EnrichReport]:
    """Enriched patients and the report skeleton (counts empty) for a Spark frame."""
    from pyspark.sql.pandas.types import from_arrow_schema

    empty = pl.DataFrame(schema=arrow_to_polars_schema(geocoded))
    planned, report = enrich(empty.lazy(), reference_dir, crosswalk=crosswalk)  # fails here, not on a worker
    arrow_schema = planned.collect().to_arrow().schema
    schema = from_arrow_schema(_small_types(arrow_schema))
    shipped = ships_files(spark)
    if shipped:
        spark.sparkContext.addFile(str(Path(reference_dir).resolve()), recursive=True)
        if crosswalk is not None:
            spark.sparkContext.addFile(str(Path(crosswalk).resolve()))
    enricher = PartitionEnricher(str(Path(reference_dir).resolve()),
                                 str(Path(crosswalk).resolve()) if crosswalk else None, shipped, schema)
    return geocoded.mapInArrow(enricher, schema), report


def _small_types(schema: pa.Schema) -> pa.Schema:
    """Polars' Arrow types (large strings and lists, string views) as the plain types Spark maps."""
    import pyarrow as pa

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        return t

    return pa.schema([pa.field(f.name, plain(f.type), f.nullable) for f in schema])


def enrich_spark(workdir: Path, reference_dir: Path, *, spark: SparkSession, crosswalk: Path | None = None,
                 patients: str | None = None, out: str | None = None) -> EnrichReport:
    """Like :func:`segment.enrich.enrich_workdir` on Spark: ``enriched.parquet`` and ``enrich-report.json``."""
    from pyspark.sql import functions as F

    folder = Path(workdir)
    source = patients or str(wd.require(folder, wd.GEOCODED, produced_by="geocode"))
    df = read_table(spark, source)
    require_columns(df, ["patient_id", "geo_precision", "tract_geoid"], source)
    result, report = enrich_dataframe(spark, df, reference_dir, crosswalk=crosswalk)
    cols = [c for c in report.columns_added if c != SDOH_SOURCE]
    progress.step("enrich", "on spark")
    with persisted(result) as frame:
        totals = frame.select(F.count(F.lit(1)).alias("_n"), *[F.count(F.col(c)).alias(c) for c in cols]).first()
        sources = frame.groupBy(SDOH_SOURCE).count().collect()
        written = write_output(frame, out or folder, wd.ENRICHED)
    assert totals is not None
    n = int(totals["_n"])
    report = replace(
        report,
        patients=n,
        sdoh_source={str(r[SDOH_SOURCE]): int(r["count"])
                     for r in sorted(sources, key=lambda r: (-int(r["count"]), str(r[SDOH_SOURCE])))},
        coverage={c: {"patients": int(totals[c]), "share": round(totals[c] / n, 6) if n else 0.0} for c in cols},
    )
    wd.write_json(folder / wd.ENRICH_REPORT, {
        **report.to_dict(),
        "engine": {"name": "spark", "master": spark.sparkContext.master, "output": written},
    })
    log.info("enriched", patients=n, engine="spark")
    return report
