"""`segment run`: one campaign end to end, with reuse by content key, a lock and a run log.

A run is a typed :class:`RunPlan` (from the campaign file and the settings) and the list of
stage objects it builds (:mod:`segment.stage`): ingest, geocode, enrich, evaluate, audit and
export, the same objects the single-stage commands run. Before running a stage the
orchestrator computes its content key from the SHA-256 of its inputs, its settings and
segment's version; when the key matches the one recorded for outputs still in place, the
stage is reused instead of rerun. Because a stage's inputs include the previous stage's
outputs, a rerun upstream that produced identical files does not force a rerun downstream.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segment import progress
from segment.config import Settings
from segment.log import get_logger
from segment.memory import start_stage_peak
from segment.runstate import StageCache, content_hash, run_id_of, tree_fingerprint
from segment.stage import SparkRun, Stage, StageContext

if TYPE_CHECKING:
    from segment.campaign.model import Campaign, Source

log = get_logger("run")


@dataclass
class StageOutcome:
    """What happened to a stage in a run."""

    name: str
    status: str  # ran, reused, failed, dry-run
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)
    #: the process's peak resident memory so far, when the stage ended (MiB); None where
    #: the platform does not say
    peak_rss_mib: float | None = field(default_factory=lambda: _peak_rss_mib())
    #: the stage's own peak resident memory (MiB; Linux resets the high-water mark when the
    #: stage starts); None for a reused stage or where the platform does not say
    stage_peak_rss_mib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (no PHI: counts only)."""
        return {
            "stage": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
            "stage_peak_rss_mib": None if self.stage_peak_rss_mib is None else round(self.stage_peak_rss_mib, 1),
        }


def _peak_rss_mib() -> float | None:
    from segment.memory import process_peak_bytes

    peak = process_peak_bytes()
    return None if peak is None else peak / 2**20


def _stage_peak_mib(measured: bool) -> float | None:
    from segment.memory import stage_peak_bytes

    peak = stage_peak_bytes() if measured else None
    return None if peak is None else peak / 2**20


class StageFailed(Exception):
    """Wraps the error of a failed stage with the outcomes so far."""

    def __init__(self, stage: str, cause: BaseException, outcomes: list[StageOutcome]) -> None:
        super().__init__(f"stage {stage} failed")
        self.stage = stage
        self.cause = cause
        self.outcomes = outcomes


def run_stages(ctx: StageContext, stages: Sequence[Stage[Any]], *, force: bool = False,
               always_run: frozenset[str] = frozenset()) -> list[StageOutcome]:
    """Run ``stages`` in order, reusing those whose content key and outputs are unchanged.

    Stages named
    in ``always_run`` (or not :attr:`~segment.stage.Stage.cacheable`) are never reused;
    those that :attr:`~segment.stage.Stage.record_after_run` have their key recorded after
    the last stage, against their inputs as the run leaves them.
    """
    cache = StageCache(ctx.workdir)
    outcomes: list[StageOutcome] = []
    settle: list[Stage[Any]] = []
    for stage in stages:
        start = time.perf_counter()
        cacheable = stage.cacheable and stage.name not in always_run
        key = stage.key(ctx) if cacheable else ""
        if cacheable and not force and cache.is_fresh(stage.name, key, stage.outputs(ctx)):
            counts = stage.reused(ctx)
            if counts is not None:
                log.info(f"{stage.name}: inputs unchanged, reusing outputs")
                outcomes.append(StageOutcome(stage.name, "reused", time.perf_counter() - start, counts))
                continue
        log.info(f"{stage.name}: running")
        progress.step(stage.name, "running")
        measured = start_stage_peak()
        try:
            report = stage.run(ctx)
        except BaseException as exc:
            outcomes.append(StageOutcome(stage.name, "failed", time.perf_counter() - start))
            raise StageFailed(stage.name, exc, outcomes) from exc
        if cacheable:
            if stage.record_after_run:
                settle.append(stage)
            else:
                cache.record(stage.name, key, stage.outputs(ctx))
        counts = stage.counts(report)
        outcome = StageOutcome(stage.name, stage.status(report), time.perf_counter() - start, counts,
                               stage_peak_rss_mib=_stage_peak_mib(measured))
        log.info(f"{stage.name}: done in {outcome.seconds:.1f} s",
                 **{k: v for k, v in counts.items() if isinstance(v, int | float)})
        outcomes.append(outcome)
    for stage in settle:
        cache.record(stage.name, stage.key(ctx), stage.outputs(ctx))
    return outcomes


# -- a campaign run ------------------------------------------------------------------


@dataclass
class RunResult:
    """The outcome of ``segment run`` for one campaign (counts only, no PHI)."""

    run_id: str
    campaign_code: str
    workdir: Path
    as_of: str
    dry_run: bool
    outcome: str
    stages: list[StageOutcome]
    audit_html: Path | None = None
    audit_flags: int = 0
    export: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: unfinished deliveries found in the ledger and what this run did about them
    reconciled: list[str] = field(default_factory=list)
    #: temporary files a killed run left in the working folder, removed by this one
    temp_files_removed: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The line appended to the run log."""
        return {
            "run_id": self.run_id,
            "campaign": self.campaign_code,
            "as_of": self.as_of,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "stages": [s.to_dict() for s in self.stages],
            "audit_flags": self.audit_flags,
            "export": self.export,
            "reconciled": self.reconciled,
            "temp_files_removed": len(self.temp_files_removed),
        }


@dataclass(frozen=True)
class RunPlan:
    """What one ``segment run`` of a campaign does, resolved from the campaign and settings.

    ``settings`` are the caller's, with the campaign's reference pack and ledger put in;
    every stage receives them.
    """

    campaign: Campaign
    campaign_path: Path
    workdir: Path
    as_of: dt.date
    settings: Settings
    rules: Path
    destination: str
    sources: tuple[Source, ...] = ()
    dry_run: bool = False
    spark: SparkRun | None = None

    @classmethod
    def of(cls, campaign: Campaign, campaign_path: Path, *, settings: Settings | None = None,
           as_of: dt.date | None = None, dry_run: bool = False, spark: SparkRun | None = None) -> RunPlan:
        """The plan of ``campaign`` (loaded from ``campaign_path``); the campaign's paths win."""
        from segment.errors import CampaignError
        from segment.resources import shipped_rules_dir

        lake = spark is not None and spark.lake
        if not campaign.sources and not lake:
            raise CampaignError("key `sources` is required for `segment run` (the extracts to ingest)",
                                path=campaign_path, key="sources")
        settings = settings or Settings.from_env()
        workdir = Path(campaign.workdir or campaign_path.parent / "work")
        settings = replace(settings, reference_dir=Path(campaign.reference or settings.reference_dir),
                           ledger_path=Path(campaign.ledger or settings.ledger_path))
        return cls(
            campaign=campaign, campaign_path=campaign_path, workdir=workdir,
            as_of=as_of or campaign.as_of or dt.date.today(), settings=settings,
            rules=Path(campaign.rules or shipped_rules_dir()),
            destination=str(campaign.destination or workdir / "exports"),
            sources=tuple(campaign.sources), dry_run=dry_run, spark=spark,
        )

    @property
    def lake(self) -> bool:
        """True when the run reads canonical lake tables (Spark) instead of ingesting sources."""
        return self.spark is not None and self.spark.lake

    @property
    def source_files(self) -> list[Path]:
        """The extracts, their mapping files and a pinned identity model: what ingest reads."""
        mappings = sorted({Path(s.mapping) for s in self.sources if s.mapping})
        model = [Path(self.campaign.linkage_model)] if self.campaign.linkage_model else []
        return [*(Path(s.path) for s in self.sources), *mappings, *model]

    def content_key(self) -> str:
        """The hash of every input of a run that can change who is sent (the run id is its first 12 hex).

        Sources and mapping files, the campaign file, its suppression files, the rules folder
        (rules and value sets) and any external VSAC folder, the reference pack's manifest
        (which lists the SHA-256 of each pack file), the as-of date and segment's version.
        The ledger is not part of it: caps are checked again, under the ledger's lock, by
        every attempt.
        """
        from segment import __version__

        vsac = self.settings.vsac_dir
        return content_hash({
            "code": self.campaign.code,
            "as_of": self.as_of.isoformat(),
            "version": __version__,
            "sources": tree_fingerprint(self.source_files),
            "campaign": tree_fingerprint([self.campaign_path]),
            "suppression": tree_fingerprint([s.path for s in self.campaign.suppression]),
            # lake tables (`run --engine spark --patients URI`) are named, not read, here
            **({"lake": [self.spark.patients, self.spark.events]} if self.lake and self.spark else {}),
            "rules": tree_fingerprint([self.rules]),
            "vsac": tree_fingerprint([vsac]) if vsac else None,
            "reference": tree_fingerprint([self.settings.reference_dir / "manifest.json"]),
        })

    def stages(self) -> list[Stage[Any]]:
        """ingest → geocode → enrich → evaluate → audit → export (without ingest on lake tables).

        With Spark, geocode, enrich and evaluate are their Spark twins (:mod:`segment.spark.stages`).

        Each stage's module is imported here, not at the top: a command that only reads a
        plan loads none of them.
        """
        from segment.audit.run import AuditStage
        from segment.enrich.run import EnrichStage
        from segment.export.run import ExportStage
        from segment.geocode.run import GeocodeStage
        from segment.ingest.run import IngestStage
        from segment.rules.run import EvaluateStage

        c = self.campaign
        stages: list[Stage[Any]] = [] if self.lake else [IngestStage.of_sources(
            self.sources, allow_orphan_events=c.allow_orphan_events, linkage=c.linkage,
            linkage_model=c.linkage_model)]
        stages += [GeocodeStage(), EnrichStage(), EvaluateStage(rules=self.rules), AuditStage(campaign=c),
                   ExportStage(campaign=c, destination=self.destination, dry_run=self.dry_run)]
        if self.spark is not None:
            from segment.spark.stages import on_spark

            stages = [on_spark(stage) for stage in stages]
        return stages


def run_campaign(
    campaign_path: str | Path,
    *,
    as_of: dt.date | None = None,
    dry_run: bool = False,
    force: bool = False,
    settings: Settings | None = None,
    spark: SparkRun | None = None,
) -> RunResult:
    """Run ingest → geocode → enrich → evaluate → audit → export for one campaign.

    With ``spark``, geocode, enrich and evaluate run on Apache Spark (docs/spark.md); with
    its lake tables, ingest is skipped and they are read instead of the campaign's sources.

    Stages whose inputs, rules and reference pack are unchanged are reused. A lock stops a
    concurrent run on the same working folder; a run record is appended to the run log
    whatever the outcome. Before anything else, under that lock, the run removes
    temporary files a killed run left in the working folder and reconciles every
    unfinished delivery in the contact ledger (see :mod:`segment.export.delivery`); a
    run dated before contacts already in the ledger is refused unless ``dry_run``.
    """
    from segment import workdir as wd
    from segment.campaign import load_campaign
    from segment.runstate import RunLock, append_run_record, keep_hashes, recall_hashes

    started = time.perf_counter()
    path = Path(campaign_path)
    campaign = load_campaign(path)  # validated before any data is touched
    from segment.memory import memory_budget_bytes

    memory_budget_bytes()  # SEGMENT_MEMORY_GB too, even when no stage that reads it runs
    plan = RunPlan.of(campaign, path, settings=settings, as_of=as_of, dry_run=dry_run, spark=spark)
    folder = wd.ensure_private_dir(plan.workdir)
    recall_hashes(folder)  # an untouched extract is not read again to learn it is unchanged
    run_id = run_id_of(plan.content_key())
    ctx = StageContext(workdir=folder, as_of=plan.as_of, settings=plan.settings, spark=spark,
                       run_id=run_id, start_spark=_spark_starter(spark, campaign))
    result = RunResult(run_id, campaign.code, folder, plan.as_of.isoformat(), dry_run, "failed", [])
    stages = plan.stages()
    with RunLock(folder, run_id):
        try:
            _before_stages(plan, result, run_id)
            result.stages = run_stages(
                ctx, stages, force=force,
                always_run=frozenset({"geocode", "evaluate"}) if plan.lake else frozenset())
            _summarise(result, ctx, stages)
            result.outcome = "ok"
        except StageFailed as failed:
            result.stages = failed.outcomes
            _summarise(result, ctx, stages)  # what ran before the failure (the audit's flags) stays in the log
            result.outcome = f"failed in {failed.stage}"
            raise failed.cause from None
        except BaseException as exc:
            result.outcome = f"failed: {type(exc).__name__}"
            raise
        finally:
            result.seconds = time.perf_counter() - started
            append_run_record(folder, result.record())
            keep_hashes(folder)
    return result


def _spark_starter(spark: SparkRun | None, campaign: Campaign) -> Callable[[], tuple[Any, int]] | None:
    """Starts the Spark session for the first stage that runs on Spark (a reused stage starts no JVM)."""
    if spark is None:
        return None

    def start() -> tuple[Any, int]:
        from segment.spark.session import start_session

        return start_session(spark, campaign)

    return start


def _before_stages(plan: RunPlan, result: RunResult, run_id: str) -> None:
    """Remove a killed run's temporary files; reconcile unfinished deliveries; refuse a backdated run."""
    from segment import workdir as wd
    from segment.campaign.ledger import ContactLedger
    from segment.export import reconcile_before_run, refuse_backdated

    result.temp_files_removed = wd.remove_stale_temp_files(plan.workdir)
    if result.temp_files_removed:
        log.info("removed temporary files left by a killed run", files=len(result.temp_files_removed))
    if not plan.dry_run:
        ledger = ContactLedger(plan.settings.ledger_path)
        result.reconciled = [r.describe() for r in reconcile_before_run(ledger, plan.campaign.code)]
        refuse_backdated(ledger, plan.campaign, plan.as_of, run_id)


def _summarise(result: RunResult, ctx: StageContext, stages: Sequence[Stage[Any]]) -> None:
    """The audit report (its stage's first output), its flag count and the export figures."""
    by_name = {stage.name: stage for stage in stages}
    for outcome in result.stages:
        if outcome.name == "audit":
            result.audit_html = by_name["audit"].outputs(ctx)[0]
            flags = outcome.counts.get("flags", 0)
            result.audit_flags = flags if isinstance(flags, int) else 0
        elif outcome.name == "export":
            result.export = dict(outcome.counts)
