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

from segment.spark.enrich import enrich_spark
from segment.spark.evaluate import SparkEvaluateResult, evaluate_dataframes, evaluate_spark
from segment.spark.geocode import geocode_spark
from segment.spark.session import SparkSettings, default_buckets, spark_session

__all__ = [
    "SparkEvaluateResult",
    "SparkSettings",
    "default_buckets",
    "enrich_spark",
    "evaluate_dataframes",
    "evaluate_spark",
    "geocode_spark",
    "spark_session",
]
