"""`segment geocode --engine spark`: the single-machine geocoder, one partition at a time.

Patients are hash-partitioned on their four raw address columns, so every patient with a
given address lands in the same partition; each partition then runs the same Polars and
Shapely steps as :func:`segment.geocode.geocode` (address parsing, TIGER range
interpolation, ZIP centroids, point-in-polygon with one STRtree per batch) against the
reference pack. A result depends only on the address and the pack, so both engines give
the same rows. The pack is read in place under a ``local`` master and shipped to every
executor (``SparkContext.addFile``) on a cluster. The Census batch provider is not
offered here (it sends addresses from one machine), nor is the address cache (a file of
the working folder): every distinct address is geocoded on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment import progress
from segment import workdir as wd
from segment.config import Settings
from segment.errors import GeocodeError
from segment.geocode.assemble import final, place
from segment.geocode.keys import (
    ADDRESS_COLUMNS,
    address_keys,
    distinct_raw,
    with_source_flag,
)
from segment.geocode.locate import is_usable
from segment.geocode.providers import (
    DEFAULT_PROVIDERS,
    SOURCE,
    ProviderContext,
    get_provider,
    parse_providers,
)
from segment.geocode.result import GeocodeResult
from segment.log import get_logger
from segment.schema import GEO_PRECISION, GEOCODE_SCHEMA
from segment.spark.io import (
    arrow_batches,
    executor_path,
    partition_frame,
    persisted,
    read_table,
    require_columns,
    ships_files,
    spark_type,
    write_output,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger("spark")

#: providers the spark engine runs (no Census: it sends addresses from one machine)
SPARK_PROVIDERS = ("source", "offline", "zip")


def geocode_frame(patients: pl.DataFrame, pack: Any, order: Sequence[str], settings: Settings) -> pl.DataFrame:
    """Geocode a frame of patients as :func:`segment.geocode.geocode` does, without its cache.

    The output has every input column, ``GEOCODE_SCHEMA``, ``geo_reason`` and ``_provider``.
    """
    schema = patients.schema
    lf = with_source_flag(patients.lazy(), schema, order)
    placed = place(lf, address_keys(distinct_raw(lf)), order, ProviderContext(pack, settings))
    return final(lf, placed.addresses, placed.geo, list(schema)).collect()


class PartitionGeocoder:
    """``mapInArrow`` entry: one partition of patients in, geocoded out (picklable)."""

    def __init__(self, pack_dir: str, shipped: bool, order: Sequence[str], schema: StructType) -> None:
        self.pack_dir = pack_dir
        self.shipped = shipped
        self.order = tuple(order)
        self.schema = schema

    def pack(self) -> Any:
        """The reference pack: shipped with the job on a cluster, else read in place."""
        from segment.reference.pack import open_pack

        return open_pack(executor_path(self.pack_dir, self.shipped))

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """All batches of the partition are geocoded together (addresses once each)."""
        frame = partition_frame(batches)
        if frame is None:
            return
        pack = self.pack()
        out = geocode_frame(frame, pack, self.order, Settings.from_env(reference_dir=pack.path))
        yield from arrow_batches(out, self.schema)


def output_schema(schema: StructType) -> StructType:
    """The input schema plus the columns geocoding adds (``GEOCODE_SCHEMA``, reason, provider)."""
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    fields = list(schema.fields)
    names = {f.name for f in fields}
    added = {**GEOCODE_SCHEMA, "geo_reason": pl.String, "_provider": pl.String}
    for name, dtype in added.items():
        if name not in names:
            fields.append(StructField(name, _parse_datatype_string(spark_type(dtype) or "string"), True))
    return StructType(fields)


def _check_providers(order: Sequence[str], pack: Any, explicit: bool) -> tuple[str, ...]:
    if "census" in order:
        raise GeocodeError("provider 'census' is not available with --engine spark (it sends addresses "
                           f"from one machine); valid options are: {', '.join(SPARK_PROVIDERS)}")
    ctx = ProviderContext(pack, Settings.from_env(reference_dir=pack.path))
    kept = [name for name in order if name == SOURCE or is_usable(get_provider(name), ctx, explicit)]
    return tuple(kept)


def geocode_dataframe(spark: SparkSession, patients: DataFrame, pack_dir: Path, *,
                      providers: Sequence[str] | None = None, buckets: int) -> DataFrame:
    """Geocoded patients (every column, ``GEOCODE_SCHEMA``, ``geo_reason``, ``_provider``)."""
    from pyspark.sql import functions as F

    from segment.reference.pack import open_pack

    explicit = providers is not None
    order = parse_providers(providers) if providers is not None else DEFAULT_PROVIDERS
    pack = open_pack(pack_dir)
    order = _check_providers(order, pack, explicit)
    shipped = ships_files(spark)
    if shipped:
        spark.sparkContext.addFile(str(pack.path), recursive=True)
    partitioned = patients.repartition(buckets, *[F.col(c) for c in ADDRESS_COLUMNS])
    schema = output_schema(patients.schema)
    geocoder = PartitionGeocoder(str(pack.path), shipped, order, schema)
    log.info("spark geocoding planned", buckets=buckets, providers=",".join(order), shipped=shipped)
    return partitioned.mapInArrow(geocoder, schema)


def geocode_spark(
    workdir: str | Path,
    *,
    spark: SparkSession,
    buckets: int,
    providers: Sequence[str] | None = None,
    settings: Settings | None = None,
    patients: str | None = None,
    out: str | None = None,
) -> GeocodeResult:
    """Like :func:`segment.geocode.geocode` on Spark: ``geocoded.parquet`` and ``geocode-report.json``."""
    from pyspark.sql import functions as F

    from segment.reference.pack import open_pack

    folder = Path(workdir)
    settings = settings or Settings.from_env()
    source = patients or str(wd.require(folder, wd.PATIENTS, produced_by="ingest"))
    df = read_table(spark, source)
    require_columns(df, ["patient_id", *ADDRESS_COLUMNS], source)
    pack = open_pack(settings.reference_dir)
    result = geocode_dataframe(spark, df, pack.path, providers=providers, buckets=buckets)
    progress.step("geocode", f"on spark, {buckets} partitions by address")
    with persisted(result) as frame:
        counts = frame.groupBy("geo_precision", "geo_reason", "_provider").count().collect()
        addresses = frame.filter(F.col("_provider").isNull() | (F.col("_provider") != "source")).select(
            *ADDRESS_COLUMNS).distinct().count()
        written = write_output(frame.drop("_provider"), out or folder, wd.GEOCODED,
                               dtypes={"geo_precision": GEO_PRECISION})
    table = pl.DataFrame([(r["geo_precision"], r["geo_reason"], r["_provider"], r["count"]) for r in counts],
                         schema={"geo_precision": pl.String, "geo_reason": pl.String,
                                 "_provider": pl.String, "len": pl.Int64}, orient="row")
    order = parse_providers(providers) if providers is not None else DEFAULT_PROVIDERS
    geocoded = GeocodeResult.of(Path(written), table, addresses=addresses, providers=order,
                                geocoded_new={"addresses": addresses}, from_cache={}, pack=pack)
    wd.write_json(folder / wd.GEOCODE_REPORT, {
        **geocoded.to_dict(),
        "engine": {"name": "spark", "buckets": buckets, "master": spark.sparkContext.master,
                   "output": written, "cache": "not used by the spark engine"},
    })
    log.info("geocoded", patients=geocoded.patients, addresses=addresses, engine="spark")
    return geocoded
