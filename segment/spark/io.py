"""Tables in and out of Spark: URIs, canonical columns, and the working folder's files.

An input is any URI Spark reads: a path or ``file://``, ``s3a://``, ``abfss://``,
``gs://``, ``hdfs://`` URI of Parquet files, ``delta:URI`` for a Delta table, or
``table:NAME`` for a catalog table (Iceberg, Delta or Hive, as the session's catalog is
configured). Outputs go to ``--out``: to a local folder (the working folder by default)
Spark writes into an owner-only staging folder and the driver gathers the parts into the
one ``.parquet`` file the other stages read (0600, atomically); to a remote URI Spark
writes a Parquet dataset named like the file (``eligibility.parquet/``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import polars as pl

from segment import workdir as wd
from segment.errors import InputDataError, StageInputError
from segment.log import get_logger
from segment.schema import CATEGORY_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger("spark")

_STAGING = re.compile(r"^\.spark-staging\.(?P<pid>\d+)\.[0-9a-f]{8}$")


def is_local(uri: str | Path) -> bool:
    """A plain path or a ``file:`` URI (not ``table:`` or ``delta:`` and no remote scheme)."""
    text = str(uri)
    if isinstance(uri, Path) or text.startswith("file:"):
        return True
    scheme = urlsplit(text).scheme
    return not scheme or len(scheme) == 1  # C:\ on Windows


def local_path(uri: str | Path) -> Path:
    """The local path of a plain path or ``file:`` URI."""
    text = str(uri)
    return Path(urlsplit(text).path) if text.startswith("file:") else Path(text)


def spark_uri(uri: str | Path) -> str:
    """An absolute URI Spark resolves the same on every executor."""
    if is_local(uri):
        return local_path(uri).resolve().as_uri()
    return str(uri)


def read_table(spark: SparkSession, uri: str | Path) -> DataFrame:
    """A Parquet path or URI, ``delta:URI`` or ``table:NAME`` as a Spark DataFrame."""
    text = str(uri)
    if text.startswith("table:"):
        return spark.table(text[len("table:"):])
    if text.startswith("delta:"):
        return spark.read.format("delta").load(spark_uri(text[len("delta:"):]))
    if is_local(text) and not local_path(text).exists():
        raise InputDataError(f"{text} does not exist", path=text)
    try:
        return spark.read.parquet(spark_uri(text))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputDataError(f"Spark cannot read {text} as Parquet: {first}", path=text) from exc


def require_columns(df: DataFrame, required: list[str] | Mapping[str, Any], table: str) -> None:
    """A one-line error naming every canonical column ``df`` lacks."""
    present = set(df.columns)
    missing = [c for c in required if c not in present]
    if missing:
        raise StageInputError(
            f"{table} lacks the canonical column(s) {', '.join(missing)}; a lake table needs "
            f"the canonical columns {', '.join(required)} (docs/spark.md)", path=table)


def canonical_types(df: DataFrame, schema: Mapping[str, pl.DataType | type[pl.DataType]]) -> DataFrame:
    """Cast columns of ``df`` named in a Polars schema to its type where Spark's type differs."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    casts = {}
    for name, dtype in schema.items():
        want = spark_type(dtype)
        if name in types and want is not None and types[name] != want:
            casts[name] = F.col(name).cast(want)
    return df.withColumns(casts) if casts else df


def spark_type(dtype: pl.DataType | type[pl.DataType]) -> str | None:
    """The Spark SQL type name of a simple Polars type (None for nested ones)."""
    names = {pl.String: "string", pl.Date: "date", pl.Float64: "double", pl.Boolean: "boolean",
             pl.Int8: "tinyint", pl.Int32: "int", pl.Int64: "bigint", pl.Float32: "float"}
    for pl_type, name in names.items():
        if dtype == pl_type:
            return name
    return None


def staging_dir(folder: Path) -> Path:
    """A fresh owner-only staging folder for Spark's part files (removes ones a killed run left)."""
    wd.ensure_private_dir(folder)
    for old in folder.glob(".spark-staging.*"):
        match = _STAGING.match(old.name)
        if match and int(match.group("pid")) != os.getpid() and not wd.pid_alive(int(match.group("pid"))):
            shutil.rmtree(old, ignore_errors=True)
    path = folder / f".spark-staging.{os.getpid()}.{secrets.token_hex(4)}"
    path.mkdir(mode=wd.DIR_MODE)
    os.chmod(path, wd.DIR_MODE)
    return path


@contextlib.contextmanager
def persisted(df: DataFrame) -> Iterator[DataFrame]:
    """``df`` computed once for the counts and the write (memory, spilling to disk)."""
    from pyspark import StorageLevel

    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield df
    finally:
        df.unpersist()


def write_output(df: DataFrame, out: str | Path, name: str,
                 dtypes: Mapping[str, pl.DataType] | None = None) -> str:
    """Write ``df`` as ``out/name``: one owner-only file locally, a Parquet dataset remotely.

    ``dtypes``: Polars types the local file's columns take that Spark has no type for
    (a ``pl.Enum`` status the stage itself wrote is a string in Spark). The canonical
    patient and geocode columns that are Enums (``phone_type``, ``geo_precision``) get theirs
    back when every value is one of its categories; a lake table's own labels (``cell``,
    another geocoder's precision) are kept as text, with a warning, as before Enums.
    """
    if not is_local(out):
        target = f"{str(out).rstrip('/')}/{name}"
        df.write.mode("overwrite").parquet(target)
        log.info("spark wrote a dataset", name=name)
        return target
    folder = local_path(out)
    staging = staging_dir(folder)
    try:
        parts = staging / "parts"
        df.write.parquet(spark_uri(parts))
        files = sorted(parts.glob("part-*.parquet"))
        frame = (pl.scan_parquet(files) if files
                 else pl.LazyFrame(schema=arrow_to_polars_schema(df)))
        frame = _typed(frame, files, dtypes or {}, name)
        written = wd.write_parquet(frame, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("gathered spark parts", name=name, parts=len(files))
    return str(written)


def _typed(frame: pl.LazyFrame, files: list[Path], dtypes: Mapping[str, pl.DataType],
           name: str) -> pl.LazyFrame:
    """``frame`` with the stage's own ``dtypes`` and the canonical Enums its values allow."""
    present = frame.collect_schema().names()
    casts: dict[str, pl.DataType] = {c: t for c, t in dtypes.items() if c in present}
    check = [c for c in CATEGORY_COLUMNS if c in present and c not in casts]
    if check and files:  # one pass over the parts for every column to check
        values = pl.scan_parquet(files).select(pl.col(c).cast(pl.String).drop_nulls().unique().implode()
                                               for c in check).collect()
    for column in check:
        dtype = CATEGORY_COLUMNS[column]
        unknown = set(values[column][0]) - set(dtype.categories.to_list()) if files else set()
        if unknown:
            log.warning(f"{name}: {column} holds {len(unknown)} value(s) outside its categories; kept as text",
                        values=len(unknown))
        else:
            casts[column] = dtype
    return frame.with_columns(pl.col(c).cast(t) for c, t in casts.items())


def ships_files(spark: SparkSession) -> bool:
    """True when executors may run elsewhere, so the pack is shipped with the job."""
    return not str(spark.sparkContext.master or "local").startswith("local")


def executor_path(path: str, shipped: bool) -> Path:
    """``path`` as an executor sees it: the copy shipped with the job on a cluster, else in place."""
    if shipped:
        from pyspark import SparkFiles

        return Path(SparkFiles.get(Path(path).name))
    return Path(path)


def partition_frame(batches: Iterable[pa.RecordBatch]) -> pl.DataFrame | None:
    """A ``mapInArrow`` partition's batches as one Polars frame (None when it holds no rows)."""
    import pyarrow as pa

    found = list(batches)
    if not any(b.num_rows for b in found):
        return None
    frame = pl.from_arrow(pa.Table.from_batches(found))
    assert isinstance(frame, pl.DataFrame)
    return frame


def arrow_batches(frame: pl.DataFrame, schema: StructType) -> list[pa.RecordBatch]:
    """``frame`` as Arrow batches of the Spark ``schema`` (a ``mapInArrow`` partition's output)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return frame.to_arrow().cast(to_arrow_schema(schema)).to_batches()


def arrow_to_polars_schema(df: DataFrame) -> pl.Schema:
    """The Polars schema of a Spark DataFrame (through Arrow)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    empty = pl.from_arrow(to_arrow_schema(df.schema).empty_table())
    assert isinstance(empty, pl.DataFrame)
    return empty.schema
