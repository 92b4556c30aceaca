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
from segment.addresses import parse as addr
from segment.config import Settings
from segment.errors import GeocodeError, ReferenceDataError
from segment.geocode import (
    ADDRESS_COLUMNS,
    DEFAULT_PROVIDERS,
    PER_ADDRESS,
    TRACT_PRECISIONS,
    GeocodeResult,
    _address_keys,
    _choose,
    _final,
    _geographies,
    _raw_key,
    _run_provider,
    _todo,
    _valid_source,
    parse_providers,
)
from segment.log import get_logger
from segment.schema import GEOCODE_SCHEMA, SOURCE_POINT_COLUMNS, GeoPrecision
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
    lf = patients.lazy()
    for col, dtype in SOURCE_POINT_COLUMNS.items():
        if col not in schema:
            lf = lf.with_columns(pl.lit(None, dtype).alias(col))
    lf = lf.with_columns((_valid_source(schema) & ("source" in order)).alias("_src"))
    raw = lf.filter(~pl.col("_src")).select(ADDRESS_COLUMNS).unique().collect()
    raw = raw.with_columns(addr.sha256_hex(raw.select(_raw_key()).to_series()).alias("raw_hash"))
    keys = _address_keys(raw)
    results: list[pl.DataFrame] = []
    for pos, provider in enumerate(order):
        if provider == "source":
            continue
        todo, _source_id = _todo(provider, keys, results, pack, None)
        if todo is None:
            continue
        found = _run_provider(provider, todo, pack, settings, None)
        results.append(found.with_columns(pl.lit(provider).alias("provider"), pl.lit(pos, pl.Int32).alias("pos")))
    best = _choose(keys, results)
    src_points = lf.filter(pl.col("_src")).select(
        pl.col("source_lat").alias("lat"), pl.col("source_lon").alias("lon")).unique().collect()
    points = pl.concat([src_points, best.filter(pl.col("geo_precision").is_in(TRACT_PRECISIONS))
                        .select("lat", "lon")]).unique()
    geo = _geographies(points, pack)
    per_address = keys.select(*ADDRESS_COLUMNS, "qid", "raw_hash").join(
        best, on="qid", how="left").join(geo, on=["lat", "lon"], how="left").with_columns(
        pl.when(pl.col("geo_precision") == GeoPrecision.ZIP_CENTROID.value)
        .then(pl.col("zip_county")).otherwise(pl.col("county_fips")).alias("county_fips")
    ).select(*ADDRESS_COLUMNS, *PER_ADDRESS)
    return _final(lf, per_address, geo, list(schema)).collect()


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
    from segment.reference.pack import ADDRESS_RANGES, ZIP_CENTROIDS

    if "census" in order:
        raise GeocodeError("provider 'census' is not available with --engine spark (it sends addresses "
                           f"from one machine); valid options are: {', '.join(SPARK_PROVIDERS)}")
    kept = []
    for provider in order:
        table = {"offline": ADDRESS_RANGES, "zip": ZIP_CENTROIDS}.get(provider)
        if table is not None and not pack.has(table):
            if explicit:
                raise ReferenceDataError(f"provider {provider!r} needs {table}, which pack {pack.name!r} lacks",
                                         path=pack.path)
            log.warning(f"pack has no table for provider {provider!r}; skipped")
            continue
        kept.append(provider)
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
        written = write_output(frame.drop("_provider"), out or folder, wd.GEOCODED)
    table = pl.DataFrame([(r["geo_precision"], r["geo_reason"], r["_provider"], r["count"]) for r in counts],
                         schema={"geo_precision": pl.String, "geo_reason": pl.String,
                                 "_provider": pl.String, "len": pl.Int64}, orient="row")
    from segment.geocode import _count

    order = parse_providers(providers) if providers is not None else DEFAULT_PROVIDERS
    geocoded = GeocodeResult(
        output=Path(written),
        patients=int(table["len"].sum()) if table.height else 0,
        addresses=addresses,
        providers=order,
        by_precision=_count(table, "geo_precision", [p.value for p in GeoPrecision]),
        by_reason=_count(table.filter(pl.col("geo_reason").is_not_null()), "geo_reason"),
        by_provider=_count(table, "_provider"),
        geocoded_new={"addresses": addresses},
        from_cache={},
        pack={"name": pack.name, "id": pack.pack_id, "tract_vintage": pack.tract_vintage,
              "synthetic": pack.manifest.synthetic},
    )
    wd.write_json(folder / wd.GEOCODE_REPORT, {
        **geocoded.to_dict(),
        "engine": {"name": "spark", "buckets": buckets, "master": spark.sparkContext.master,
                   "output": written, "cache": "not used by the spark engine"},
    })
    log.info("geocoded", patients=geocoded.patients, addresses=addresses, engine="spark")
    return geocoded
