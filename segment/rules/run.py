"""The evaluate stage: :func:`evaluate` (the entry point) and :class:`EvaluateStage`.

``segment evaluate`` and ``segment run`` both go through :class:`EvaluateStage`; with
``--engine spark`` they run its Spark twin, :class:`segment.spark.stages.SparkEvaluateStage`
(same inputs, outputs and key). The plan itself is :func:`segment.rules.evaluate.evaluate_frames`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from segment import progress
from segment import workdir as wd
from segment.config import Settings
from segment.log import get_logger
from segment.memory import Batch, OrderedParts, patient_batches, table_rows
from segment.rules.evaluate import (
    ELIGIBILITY_SCHEMA,
    absent_columns,
    absent_warnings,
    evaluate_frames,
    patient_source,
    waterfall_from_counts,
)
from segment.rules.loader import load_rules
from segment.rules.model import RuleSet
from segment.stage import Stage, StageContext

log = get_logger("evaluate")


@dataclass(frozen=True)
class EvaluateResult:
    """What ``segment evaluate`` wrote and the waterfall it prints."""

    eligibility: Path
    report: Path
    as_of: dt.date
    patients: int
    rows: int
    waterfall: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    #: batches of patients evaluated one at a time (1: all at once; see :mod:`segment.memory`)
    batches: int = 1


def evaluate(
    workdir: str | Path,
    rules: str | Path,
    as_of: dt.date | None = None,
    *,
    only: list[str] | None = None,
    settings: Settings | None = None,
) -> EvaluateResult:
    """Apply every rule to every patient; write ``eligibility.parquet`` and ``evaluate-report.json``.

    ``rules`` is a rules folder; ``settings.vsac_dir`` (when given) is the folder of
    official value sets read besides it (else :func:`~segment.rules.loader.using_vsac`'s
    folder, else ``SEGMENT_VSAC_DIR``).
    """
    folder = Path(workdir)
    # validate everything before touching data
    ruleset = load_rules(rules, only, vsac=settings.vsac_dir if settings is not None else None)
    day = as_of or dt.date.today()
    patients, source, enriched = patient_source(folder)
    events = wd.scan(folder, wd.EVENTS, produced_by="ingest")
    absent = absent_columns(folder)
    warnings = absent_warnings(ruleset, absent)
    args = _Args(patients, events, ruleset, day, source, enriched, warnings, absent)
    whole = args.plan(patients, events)  # checks the rules' columns before any data is read
    batches = patient_batches(table_rows(folder / source), EVALUATE_BYTES_PER_PATIENT)
    log.info("evaluating rules", rules=len(ruleset.rules), batches=len(batches))
    progress.step("evaluate", f"{len(ruleset.rules)} rules, every patient")
    if len(batches) == 1:
        counts, rows_written = _evaluate_whole(whole, folder / wd.ELIGIBILITY)
    else:
        counts, rows_written = _evaluate_batches(args, folder / wd.ELIGIBILITY, batches)
    rows = waterfall_from_counts(counts, ruleset)
    n_patients = rows[0]["patients"] if rows else 0
    report = wd.write_json(folder / wd.EVALUATE_REPORT, {
        "as_of": day.isoformat(),
        "rules_dir": str(Path(rules)),
        "patient_source": source,
        "patients": n_patients,
        "rows": rows_written,
        "rules": rows,
        "warnings": warnings,
    })
    log.info("wrote eligibility", rows=rows_written, patients=n_patients, batches=len(batches))
    return EvaluateResult(folder / wd.ELIGIBILITY, report, day, n_patients, rows_written, rows, warnings,
                          batches=len(batches))


#: evaluate's working set per patient (1M patients with 20M events peaked at 2.85 GiB)
EVALUATE_BYTES_PER_PATIENT = 3000
#: the column numbering the plan's blocks of rows (one per rule and branch) in a batched run
_PART = "__part"


@dataclass(frozen=True)
class _Args:
    patients: pl.LazyFrame
    events: pl.LazyFrame
    ruleset: RuleSet
    day: dt.date
    source: str
    enriched: bool
    warnings: list[str]
    absent: frozenset[str]

    def plan(self, patients: pl.LazyFrame, events: pl.LazyFrame, part: str | None = None) -> pl.LazyFrame:
        """The whole plan (``part`` None: its warnings noted) or a batch's (``part`` set: quiet)."""
        return evaluate_frames(patients, events, self.ruleset, self.day, source=self.source,
                               enriched=self.enriched, warnings=None if part else self.warnings,
                               absent=self.absent, part_column=part, quiet=part is not None)


def _counts(result: pl.DataFrame) -> pl.DataFrame:
    return result.group_by("rule_id", "step", "status").len()


def _evaluate_whole(plan: pl.LazyFrame, target: Path) -> tuple[pl.DataFrame, int]:
    """Every patient at once (the whole input fits the memory budget)."""
    # the streaming engine aggregates the 20M-event side about twice as fast (measured)
    result = plan.collect(engine="streaming")
    progress.step("evaluate", "writing eligibility.parquet")
    wd.write_parquet(result.drop("step"), target)
    return _counts(result), result.height


def _evaluate_batches(args: _Args, target: Path, batches: list[Batch]) -> tuple[pl.DataFrame, int]:
    """Batch by batch of patients (and their range of events), then the rows put back in the
    whole plan's order (rule by rule, branch by branch, patients in order); the waterfall's
    counts are sums of the batches'."""
    parts = OrderedParts(target, _PART)
    counts: list[pl.DataFrame] = []
    n_parts = 0
    try:
        for batch in batches:
            progress.step("evaluate", f"batch {batch.index + 1} of {batch.count}")
            result = args.plan(batch.patients(args.patients), batch.events(args.events, args.patients),
                               _PART).collect(engine="streaming")
            counts.append(_counts(result))
            n_parts = max(n_parts, result.select(pl.col(_PART).cast(pl.Int64).max().fill_null(-1)).item() + 1)
            parts.add(result.drop("step"))
            del result
        progress.step("evaluate", "writing eligibility.parquet")
        rows = parts.frame(n_parts)
        if rows is None:
            rows = pl.LazyFrame(schema=ELIGIBILITY_SCHEMA)
        # one streaming sink: Polars' Parquet writer on every core, reading the parts in order
        wd.write_parquet(rows, target)
    finally:
        parts.remove()
    summed = pl.concat(counts).group_by("rule_id", "step", "status").agg(pl.col("len").sum())
    return summed, table_rows(target)


class EvaluateReport(Protocol):
    """What an evaluation reports, on either engine: the waterfall and its counts."""

    @property
    def as_of(self) -> dt.date:
        """The date windows and ages were counted from."""

    @property
    def patients(self) -> int:
        """Patients evaluated."""

    @property
    def rows(self) -> int:
        """Rows written (one per patient and rule)."""

    @property
    def waterfall(self) -> list[dict[str, Any]]:
        """Per rule: patients, in population, not excluded, due, not due, excluded, unknown."""

    @property
    def warnings(self) -> list[str]:
        """What the evaluation warned about (absent columns)."""


@dataclass(frozen=True)
class EvaluateStage(Stage[EvaluateReport]):
    """Every rule applied to every patient (``eligibility.parquet``).

    ``patients``: the patient table ``segment evaluate --engine spark`` reads instead of
    the working folder's (not the context's ``spark.patients``: in ``segment run`` that is
    the lake table ingest would read, and evaluate reads the enriched patients). Events
    and the output location come from the context's ``spark``.
    """

    rules: Path
    patients: str | None = None
    name: ClassVar[str] = "evaluate"

    def inputs(self, ctx: StageContext) -> Sequence[Path]:
        """The patient frame, the events, the rules folder and the VSAC folder when set."""
        vsac = [ctx.settings.vsac_dir] if ctx.settings.vsac_dir else []
        return [ctx.path(wd.ENRICHED), ctx.path(wd.EVENTS), self.rules, *vsac]

    def outputs(self, ctx: StageContext) -> Sequence[Path]:
        """``eligibility.parquet`` and ``evaluate-report.json``."""
        return [ctx.path(wd.ELIGIBILITY), ctx.path(wd.EVALUATE_REPORT)]

    def params(self, ctx: StageContext) -> Mapping[str, Any]:
        """The as-of date (windows and ages are counted from it)."""
        return {"as_of": ctx.as_of}

    def run(self, ctx: StageContext) -> EvaluateReport:
        """Evaluate the working folder with Polars."""
        return evaluate(ctx.workdir, self.rules, ctx.as_of, settings=ctx.settings)
