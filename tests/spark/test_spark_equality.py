"""Both engines give identical rows: every shipped rule's examples and a 20,000-patient extract."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from segment.cli import cli
from segment.config import Settings
from segment.rules import default_rules_dir, evaluate, evaluate_frames, load_rules
from segment.rules.examples import example_frames
from segment.rules.model import STATUS_DTYPE, RuleSet

AS_OF = dt.date(2026, 11, 23)
KEY = ["patient_id", "rule_id"]


def _examples_by_day(ruleset: RuleSet) -> dict[dt.date, tuple[pl.DataFrame, pl.DataFrame, dict[tuple[str, str], str]]]:
    """Every example of every rule as one patient each, grouped by as-of date."""
    groups: dict[dt.date, tuple[list[pl.DataFrame], list[pl.DataFrame], dict[tuple[str, str], str]]] = {}
    for rule in ruleset.rules:
        for i, example in enumerate(rule.examples):
            patients, events = example_frames(rule, example)
            pid = f"{rule.id}#{i}"
            ps, es, expected = groups.setdefault(example.as_of, ([], [], {}))
            ps.append(patients.collect().with_columns(pl.lit(pid).alias("patient_id")))
            es.append(events.collect().with_columns(pl.lit(pid).alias("patient_id")))
            expected[(pid, rule.id)] = example.expect.value
    out = {}
    for day, (ps, es, expected) in groups.items():
        patients = pl.concat(ps, how="diagonal_relaxed")
        patients = patients.with_columns(pl.col(c).cast(pl.Float64) for c, t in patients.schema.items() if t == pl.Null)
        out[day] = (patients, pl.concat(es), expected)
    return out


def _spark_rows(spark: Any, patients: pl.DataFrame, events: pl.DataFrame, ruleset: RuleSet,
                day: dt.date, buckets: int) -> pl.DataFrame:
    from segment.spark.evaluate import evaluate_dataframes

    p = spark.createDataFrame(patients.to_arrow())
    e = spark.createDataFrame(events.to_arrow())
    table = evaluate_dataframes(spark, p, e, ruleset, day, buckets=buckets, enriched=True).toArrow()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    # Spark has no Enum: its status is text, which the eligibility file's writer casts back
    return frame.with_columns(pl.col("status").cast(STATUS_DTYPE))


@pytest.mark.parametrize("folder", ["rules", "ecqm"])
def test_every_shipped_rule_example_gives_identical_rows(spark: Any, folder: str, reference_data: Path) -> None:
    vsac = reference_data / "vsac" / "ecqm_cms_2025"
    ruleset = (load_rules(default_rules_dir()) if folder == "rules"
               else load_rules(default_rules_dir() / "ecqm", vsac=vsac))
    checked = 0
    for day, (patients, events, expected) in _examples_by_day(ruleset).items():
        polars_rows = evaluate_frames(patients.lazy(), events.lazy(), ruleset, day, enriched=True).collect()
        spark_rows = _spark_rows(spark, patients, events, ruleset, day, buckets=3)
        assert_frame_equal(polars_rows.sort(KEY), spark_rows.sort(KEY))
        got = {(r["patient_id"], r["rule_id"]): r["status"] for r in spark_rows.iter_rows(named=True)}
        assert {k: got[k] for k in expected} == expected  # and each example says what it documents
        checked += len(expected)
    assert checked == sum(len(r.examples) for r in ruleset.rules) > 0


def test_20000_patients_identical_eligibility_and_waterfall(spark: Any, world20k: dict[str, Path],
                                                             tmp_path: Path) -> None:
    from segment.spark import evaluate_spark

    work = world20k["work"]
    polars_result = evaluate(work, default_rules_dir(), AS_OF)
    polars_rows = pl.read_parquet(work / "eligibility.parquet")
    out = tmp_path / "out"
    spark_result = evaluate_spark(work, default_rules_dir(), AS_OF, spark=spark, buckets=5, out=str(out))
    spark_rows = pl.read_parquet(out / "eligibility.parquet")
    assert polars_rows.height == spark_rows.height == 9 * polars_result.patients
    assert polars_result.patients > 19_000  # the de-duplicated people of the 20,000-person extract
    assert_frame_equal(polars_rows.sort(KEY), spark_rows.sort(KEY))
    assert spark_result.waterfall == polars_result.waterfall
    assert stat.S_IMODE((out / "eligibility.parquet").stat().st_mode) == 0o600
    assert not list(out.glob(".spark-staging*"))  # part files gathered and removed


def test_20000_patients_identical_tracts_and_enrichment(spark: Any, world20k: dict[str, Path],
                                                        tmp_path: Path) -> None:
    from segment.spark import enrich_spark, geocode_spark

    work, reference, polars = world20k["work"], world20k["reference"], world20k["polars"]
    out = tmp_path / "out"
    result = geocode_spark(work, spark=spark, buckets=4, settings=Settings.from_env(reference_dir=reference),
                           out=str(out))
    expected = pl.read_parquet(polars / "geocoded.parquet").sort("patient_id")
    got = pl.read_parquet(out / "geocoded.parquet").sort("patient_id")
    assert_frame_equal(expected, got)
    assert got["tract_geoid"].is_not_null().sum() > 18_000
    assert result.patients == expected.height
    assert result.by_precision["range_interpolated"] == expected.filter(
        pl.col("geo_precision") == "range_interpolated").height
    report = enrich_spark(work, reference, spark=spark, patients=str(out / "geocoded.parquet"), out=str(out))
    assert_frame_equal(pl.read_parquet(polars / "enriched.parquet").sort("patient_id"),
                       pl.read_parquet(out / "enriched.parquet").sort("patient_id"))
    assert report.patients == expected.height and report.sdoh_source["tract"] > 18_000


def test_cli_evaluate_engine_spark(spark: Any, world20k: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("enriched.parquet", "events.parquet", "ingest-report.json"):
        shutil.copy(world20k["work"] / name, work / name)
    result = CliRunner().invoke(cli, ["evaluate", str(work), "--as-of", "2026-11-23", "--engine", "spark",
                                      "--buckets", "3", "--log-format", "plain"])
    assert result.exit_code == 0, result.output
    assert "colorectal-cancer-screening" in result.output
    rows = pl.read_parquet(work / "eligibility.parquet")
    assert rows.columns == ["patient_id", "rule_id", "rule_version", "status", "reason", "evidence_date"]
    assert stat.S_IMODE((work / "eligibility.parquet").stat().st_mode) == 0o600
    import json

    report = json.loads((work / "evaluate-report.json").read_text())
    assert report["engine"]["name"] == "spark" and report["engine"]["buckets"] == 3
