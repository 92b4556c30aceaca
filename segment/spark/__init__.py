"""The spark engine: the same rules, geocoding and enrichment on Apache Spark (docs/spark.md).

Optional: install with ``pip install 'segment[spark]'`` (pyspark) and a Java 17 or 21
runtime. Nothing here is a second implementation: each bucket or partition of the data
is handed to the single-machine Polars code (rules compiler, geocoder, enrichment), so
both engines give the same rows.

Public API: :class:`SparkSettings` and :func:`spark_session` (settings and the session),
:func:`evaluate_spark`, :func:`geocode_spark`, :func:`enrich_spark` (working-folder
stages), :func:`evaluate_dataframes` (Spark DataFrames in and out).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segment.spark.enrich import enrich_spark
    from segment.spark.evaluate import SparkEvaluateResult, evaluate_dataframes, evaluate_spark
    from segment.spark.geocode import geocode_spark
    from segment.spark.session import SparkSettings, default_buckets, spark_session
    from segment.stage import SparkRun

#: public names and their modules, imported on first use (the session module alone is light)
_EXPORTS = {
    "SparkEvaluateResult": "segment.spark.evaluate",
    "SparkRun": "segment.stage",
    "SparkSettings": "segment.spark.session",
    "default_buckets": "segment.spark.session",
    "enrich_spark": "segment.spark.enrich",
    "evaluate_dataframes": "segment.spark.evaluate",
    "evaluate_spark": "segment.spark.evaluate",
    "geocode_spark": "segment.spark.geocode",
    "spark_session": "segment.spark.session",
}
__all__ = [
    "SparkEvaluateResult",
    "SparkRun",
    "SparkSettings",
    "default_buckets",
    "enrich_spark",
    "evaluate_dataframes",
    "evaluate_spark",
    "geocode_spark",
    "spark_session",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'segment.spark' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
