"""One local SparkSession for the spark tests, and a 20,000-patient world run through Polars.

Every test here is marked ``spark``. Without pyspark or Java they skip with the reason;
with SEGMENT_REQUIRE_SPARK=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().parent == HERE:
            item.add_marker(pytest.mark.spark)


def _unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'segment[spark]')"
    from segment.errors import EngineError
    from segment.spark.session import find_java

    try:
        find_java()
    except EngineError as exc:
        return exc.message
    return None


def require_spark() -> None:
    """Skip (or fail under SEGMENT_REQUIRE_SPARK=1) when Spark cannot run here."""
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("SEGMENT_REQUIRE_SPARK") == "1":
            pytest.fail(f"SEGMENT_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """``local[2]`` with few shuffle partitions: started once for every spark test."""
    require_spark()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from segment.spark.session import SparkSettings, spark_session

    session = spark_session(SparkSettings(master="local[2]", conf={
        "spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
        "spark.driver.memory": "1g"}))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def world20k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20,000-person synthetic extract ingested, geocoded and enriched by the Polars engine."""
    require_spark()
    from segment.config import Settings
    from segment.enrich import enrich_workdir
    from segment.geocode import geocode
    from segment.ingest import ingest
    from segment.synth import write_demo_world
    from segment.synth.extract import DEFAULT_REF_DATE

    root = tmp_path_factory.mktemp("spark-world")
    world = write_demo_world(root / "world", 20_000, seed=5)
    work = root / "work"
    ingest(list(world.extract), work, as_of=DEFAULT_REF_DATE)
    geocode(work, settings=Settings.from_env(reference_dir=world.reference), use_cache=False)
    enrich_workdir(work, world.reference)
    polars = root / "polars"
    polars.mkdir()
    for name in ("geocoded.parquet", "enriched.parquet"):
        shutil.copy(work / name, polars / name)
    return {"work": work, "reference": world.reference, "polars": polars}
