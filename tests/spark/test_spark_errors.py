"""Clear one-line errors: no pyspark, no Java, an unreachable master, a lake table without canonical columns."""

from __future__ import annotations

import datetime as dt
import socket
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.errors import EngineError, StageInputError
from segment.spark.session import (
    SparkSettings,
    check_master,
    find_java,
    parse_conf,
    require_pyspark,
)


def test_no_pyspark_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    with pytest.raises(EngineError, match=r"pip install 'segment\[spark\]'"):
        require_pyspark()
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), "--engine", "spark"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: the spark engine needs pyspark, which is not installed; install the extra: "
        "pip install 'segment[spark]'")


def test_no_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(EngineError, match=r"JAVA_HOME is .* but it has no bin/java"):
        find_java()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="needs a Java 17 or 21 runtime and none was found"):
        find_java()


def test_unreachable_master_fails_within_the_timeout() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EngineError, match=rf"Spark master spark://127.0.0.1:{port} cannot be reached within 2 s"):
        check_master(f"spark://127.0.0.1:{port}", 2.0)
    # every master of a high-availability list is tried, each within the timeout
    start = time.monotonic()
    with pytest.raises(EngineError, match=rf"127.0.0.1:{port} \(.*\); 127.0.0.1:{port} \("):
        check_master(f"spark://127.0.0.1:{port},127.0.0.1:{port}", 0.5)
    assert time.monotonic() - start < 3
    with pytest.raises(EngineError, match="unsupported master URL 'mesos://x'"):
        check_master("mesos://x", 1)
    check_master("local[2]", 1)  # nothing to reach


def test_settings_precedence_environment_campaign_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from segment.campaign.model import SparkBlock

    monkeypatch.setenv("SEGMENT_SPARK_MASTER", "spark://env:7077")
    monkeypatch.setenv("SEGMENT_SPARK_BUCKETS", "8")
    monkeypatch.setenv("SEGMENT_SPARK_CONF", "spark.executor.memory=4g,spark.sql.shuffle.partitions=16")
    env = SparkSettings.from_env()
    assert (env.master, env.buckets) == ("spark://env:7077", 8)
    campaign = type("C", (), {"spark": SparkBlock(buckets=32, conf={"spark.executor.memory": "8g"})})()
    merged = env.resolve(campaign=campaign)
    assert (merged.master, merged.buckets) == ("spark://env:7077", 32)
    assert merged.conf == {"spark.executor.memory": "8g", "spark.sql.shuffle.partitions": "16"}
    assert env.resolve(master="local[2]", buckets=3, campaign=campaign).master == "local[2]"
    with pytest.raises(EngineError, match=r"SEGMENT_SPARK_CONF: expected spark.KEY=VALUE pairs .* found 'memory'"):
        parse_conf("memory", "SEGMENT_SPARK_CONF")
    monkeypatch.setenv("SEGMENT_SPARK_BUCKETS", "zero")
    with pytest.raises(EngineError, match="SEGMENT_SPARK_BUCKETS: expected a whole number of 1 or more, found 'zero'"):
        SparkSettings.from_env()


def test_spark_options_need_engine_spark(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), "--buckets", "4"])
    assert result.exit_code == 2
    assert "--buckets need(s) --engine spark" in result.output


def test_lake_table_without_canonical_columns(spark: Any, tmp_path: Path) -> None:
    from segment.spark import evaluate_spark

    pl.DataFrame({"patient_id": ["a"], "birth_date": [dt.date(1960, 1, 1)]}).write_parquet(tmp_path / "p.parquet")
    pl.DataFrame({"patient_id": ["a"], "code": ["Z12.11"]}).write_parquet(tmp_path / "e.parquet")
    with pytest.raises(StageInputError, match=r"p.parquet lacks the canonical column\(s\) sex, deceased_date"):
        evaluate_spark(tmp_path, Path("rules"), dt.date(2026, 1, 1), spark=spark, buckets=2,
                       patients=str(tmp_path / "p.parquet"), events=str(tmp_path / "e.parquet"))
    pl.DataFrame({"patient_id": ["a"], "birth_date": [dt.date(1960, 1, 1)], "sex": ["F"],
                  "deceased_date": [None]}).write_parquet(tmp_path / "p.parquet")
    with pytest.raises(StageInputError, match=r"e.parquet lacks the canonical column\(s\) event_type, "
                                              "code_system, event_date, value, unit, event_end"):
        evaluate_spark(tmp_path, Path("rules"), dt.date(2026, 1, 1), spark=spark, buckets=2,
                       patients=str(tmp_path / "p.parquet"), events=str(tmp_path / "e.parquet"))
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), "--engine", "spark", "--patients",
                                      str(tmp_path / "missing.parquet"), "--events", str(tmp_path / "e.parquet")])
    assert result.exit_code == 1
    assert "missing.parquet does not exist" in result.output.strip().splitlines()[-1]
