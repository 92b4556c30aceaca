"""`segment evaluate --engine spark`: the one rule compiler, run per bucket of patients.

Spark reads the patients and events, keeps only the events the rules can use (on or
before the as-of date, with a code in a value set the rules read: a broadcast semi-join
against the value sets' codes, plus ICD-10-CM category prefixes and discharge
dispositions), hashes ``patient_id`` into buckets, and co-groups the two sides so each
bucket holds all rows of its patients. Each bucket is evaluated by
:func:`segment.rules.evaluate.evaluate_frames` - the same Polars plan as the single-machine
engine, so results are identical - and the waterfall is counted by Spark: only the
counts and the written result leave the workers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment import progress
from segment import workdir as wd
from segment.log import get_logger
from segment.rules.codes import code_variants
from segment.rules.compiler import CompiledRule, compile_rule
from segment.rules.evaluate import (
    ELIGIBILITY_SCHEMA,
    absent_columns,
    absent_warnings,
    evaluate_frames,
    waterfall_from_counts,
)
from segment.rules.loader import load_rules
from segment.rules.model import STATUS_DTYPE, EvidenceField, RuleSet
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA, SDOH_SOURCE, CodeSystem
from segment.spark.io import (
    arrow_to_polars_schema,
    canonical_types,
    persisted,
    read_table,
    require_columns,
    write_output,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("spark")

BUCKET = "_bucket"
#: the event columns evaluation reads
EVENT_COLUMNS = ("patient_id", "event_type", "code_system", "code", "event_date", "value", "unit",
                 "event_end", "value_code", "discharge_disposition")
#: the patient columns every rule reads
PATIENT_COLUMNS = ("patient_id", "birth_date", "sex", "deceased_date")
RESULT_SCHEMA = {**ELIGIBILITY_SCHEMA, "step": pl.Int8}
RESULT_DDL = ("patient_id string, rule_id string, rule_version int, status string, reason string, "
              "evidence_date date, step tinyint")


@dataclass(frozen=True)
class EventCodes:
    """What an event needs to be of use to the rules (a superset of what they match)."""

    spellings: frozenset[str] = frozenset()
    icd_heads: frozenset[str] = frozenset()
    dispositions: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """No rule reads events."""
        return not (self.spellings or self.icd_heads or self.dispositions)


def event_codes(compiled: list[CompiledRule], ruleset: RuleSet) -> EventCodes:
    """The codes (every spelling), ICD-10-CM heads and dispositions the compiled rules look up."""
    spellings: set[str] = set()
    heads: set[str] = set()
    dispositions: set[str] = set()
    for cr in compiled:
        for e in cr.evidence:
            vs = ruleset.valuesets[e.valueset]
            codes = {v for s, c in vs.codes for v in code_variants(s, c)}
            if e.field is EvidenceField.DISCHARGE_DISPOSITION:
                dispositions |= codes
                continue
            spellings |= codes
            heads |= {c[:3].upper() for _s, c in vs.prefixes}
    return EventCodes(frozenset(spellings), frozenset(heads), frozenset(dispositions))


def useful_events(spark: SparkSession, events: DataFrame, codes: EventCodes, as_of: dt.date) -> DataFrame:
    """Events on or before ``as_of`` whose code the rules can match (semi-join, broadcast)."""
    from pyspark.sql import functions as F

    ev = events.select(*EVENT_COLUMNS).filter(
        F.col("event_date").isNotNull() & (F.col("event_date") <= F.lit(as_of)))
    if codes.empty:
        return ev.limit(0)
    keep = F.lit(False)
    if codes.spellings:
        wanted = spark.createDataFrame([(c,) for c in sorted(codes.spellings)], "_code string")
        ev = ev.join(F.broadcast(wanted.withColumn("_hit", F.lit(True))),
                     ev["code"] == F.col("_code"), "left").drop("_code")
        keep = keep | F.col("_hit").isNotNull()
    if codes.icd_heads:
        keep = keep | ((F.col("code_system") == CodeSystem.ICD10CM.value)
                       & F.upper(F.substring("code", 1, 3)).isin(sorted(codes.icd_heads)))
    if codes.dispositions:
        keep = keep | F.col("discharge_disposition").isin(sorted(codes.dispositions))
    return ev.filter(keep).select(*EVENT_COLUMNS)


class BucketEvaluator:
    """Evaluates one bucket (all rows of its patients) with the Polars plan; picklable."""

    def __init__(self, ruleset: RuleSet, as_of: dt.date, source: str, enriched: bool,
                 absent: frozenset[str]) -> None:
        self.ruleset = ruleset
        self.as_of = as_of
        self.source = source
        self.enriched = enriched
        self.absent = absent

    def frame(self, patients: pl.DataFrame | pl.LazyFrame, events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
        """The eligibility plan of one bucket (``RESULT_SCHEMA``)."""
        return evaluate_frames(patients.lazy(), events.lazy(), self.ruleset, self.as_of,
                               source=self.source, enriched=self.enriched, absent=self.absent)

    def __call__(self, patients: pa.Table, events: pa.Table) -> pa.Table:
        """Spark's ``applyInArrow`` entry: Arrow in, Arrow out."""
        import pyarrow as pa

        p = _polars(patients).drop(BUCKET, strict=False)
        e = _polars(events).drop(BUCKET, strict=False)
        out = self.frame(p, e).collect().select(list(RESULT_SCHEMA))
        return out.to_arrow().cast(pa.schema([
            ("patient_id", pa.string()), ("rule_id", pa.string()), ("rule_version", pa.int32()),
            ("status", pa.string()), ("reason", pa.string()), ("evidence_date", pa.date32()),
            ("step", pa.int8())]))


def _polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def evaluate_dataframes(
    spark: SparkSession,
    patients: DataFrame,
    events: DataFrame,
    ruleset: RuleSet,
    as_of: dt.date,
    *,
    buckets: int,
    source: str = "patients",
    enriched: bool = False,
    absent: frozenset[str] = frozenset(),
    warnings: list[str] | None = None,
) -> DataFrame:
    """The eligibility rows (``RESULT_SCHEMA``) of Spark patients and events, bucket by bucket.

    Configuration problems (a rule reading a column the table lacks) are raised here, on
    the driver, before any task runs: the plan is first built over an empty frame of the
    table's schema.
    """
    from pyspark.sql import functions as F

    compiled = [compile_rule(r, ruleset.valuesets, as_of, absent=absent) for r in ruleset.rules]
    require_columns(patients, list(PATIENT_COLUMNS[:1]), source)
    needed = sorted(set().union(*(c.columns for c in compiled))) if compiled else list(PATIENT_COLUMNS)
    patients = canonical_types(patients.select(*[c for c in needed if c in patients.columns]),
                               PATIENT_SCHEMA)
    events = canonical_types(events, EVENT_SCHEMA)
    evaluator = BucketEvaluator(ruleset, as_of, source, enriched, absent)
    # the same checks and warnings as the single-machine engine, before any task runs
    empty = pl.DataFrame(schema=arrow_to_polars_schema(patients))
    no_events = pl.DataFrame(schema={c: EVENT_SCHEMA[c] for c in EVENT_COLUMNS})
    found: list[str] = []
    evaluate_frames(empty.lazy(), no_events.lazy(), ruleset, as_of, source=source,
                    enriched=enriched, warnings=found, absent=absent).collect_schema()
    if warnings is not None:
        warnings.extend(found)
    codes = event_codes(compiled, ruleset)
    bucket = F.pmod(F.xxhash64("patient_id"), F.lit(buckets)).cast("int").alias(BUCKET)
    left = patients.select("*", bucket)
    right = useful_events(spark, events, codes, as_of).select("*", bucket)
    log.info("spark evaluation planned", rules=len(ruleset.rules), buckets=buckets,
             codes=len(codes.spellings), icd_heads=len(codes.icd_heads))

    def evaluate_bucket(patients: pa.Table, events: pa.Table) -> pa.Table:
        return evaluator(patients, events)  # a plain function: Spark reads its argument count

    return left.groupBy(BUCKET).cogroup(right.groupBy(BUCKET)).applyInArrow(evaluate_bucket, RESULT_DDL)


@dataclass(frozen=True)
class SparkEvaluateResult:
    """What ``segment evaluate --engine spark`` wrote and the waterfall it prints."""

    eligibility: str
    report: Path
    as_of: dt.date
    patients: int
    rows: int
    waterfall: list[dict[str, Any]]
    buckets: int
    warnings: list[str] = field(default_factory=list)


def evaluate_spark(
    workdir: str | Path,
    rules_dir: str | Path,
    as_of: dt.date | None = None,
    *,
    spark: SparkSession,
    buckets: int,
    patients: str | None = None,
    events: str | None = None,
    out: str | None = None,
    only: list[str] | None = None,
) -> SparkEvaluateResult:
    """Like :func:`segment.rules.evaluate`, on Spark; inputs and output may be any URI Spark reads.

    ``patients`` defaults to the working folder's ``enriched.parquet`` (else
    ``patients.parquet``), ``events`` to its ``events.parquet``, ``out`` to the working
    folder. ``evaluate-report.json`` is written in the working folder.
    """
    folder = Path(workdir)
    ruleset = load_rules(rules_dir, only)  # validate everything before touching data
    day = as_of or dt.date.today()
    if patients is None:
        enriched_file = folder / wd.ENRICHED
        patients = str(enriched_file if enriched_file.exists()
                       else wd.require(folder, wd.PATIENTS, produced_by="ingest"))
    if events is None:
        events = str(wd.require(folder, wd.EVENTS, produced_by="ingest"))
    p_df = read_table(spark, patients)
    e_df = read_table(spark, events)
    require_columns(p_df, list(PATIENT_COLUMNS), patients)
    require_columns(e_df, list(EVENT_COLUMNS), events)
    enriched = SDOH_SOURCE in p_df.columns
    source = Path(patients).name if Path(patients).exists() else patients
    absent = absent_columns(folder)
    warnings = absent_warnings(ruleset, absent)
    result = evaluate_dataframes(spark, p_df, e_df, ruleset, day, buckets=buckets, source=source,
                                 enriched=enriched, absent=absent, warnings=warnings)
    progress.step("evaluate", f"{len(ruleset.rules)} rules on spark, {buckets} buckets")
    with persisted(result) as rows_df:
        counts_rows = rows_df.groupBy("rule_id", "step", "status").count().collect()
        written = write_output(rows_df.drop("step"), out or folder, wd.ELIGIBILITY,
                               dtypes={"status": STATUS_DTYPE})
    counts = pl.DataFrame(
        [(r["rule_id"], r["step"], r["status"], r["count"]) for r in counts_rows],
        schema={"rule_id": pl.String, "step": pl.Int8, "status": pl.String, "len": pl.UInt32},
        orient="row")
    rows = waterfall_from_counts(counts, ruleset)
    n_patients = rows[0]["patients"] if rows else 0
    n_rows = int(counts["len"].sum()) if counts.height else 0
    report = wd.write_json(folder / wd.EVALUATE_REPORT, {
        "as_of": day.isoformat(),
        "rules_dir": str(Path(rules_dir)),
        "patient_source": source,
        "patients": n_patients,
        "rows": n_rows,
        "rules": rows,
        "warnings": warnings,
        "engine": {"name": "spark", "buckets": buckets,
                   "master": spark.sparkContext.master, "output": written},
    })
    log.info("wrote eligibility", rows=n_rows, patients=n_patients, engine="spark")
    return SparkEvaluateResult(written, report, day, n_patients, n_rows, rows, buckets, warnings)
