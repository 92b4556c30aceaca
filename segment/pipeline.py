"""`segment run`: stage orchestration with reuse by content hash, locking and a run log.

A run is a list of :class:`Stage` objects. Each stage names its input files, the
settings that change its result, and its outputs. Before running a stage the
orchestrator computes a key from the SHA-256 of its inputs, its settings and segment's
version; when the key matches the one recorded for the outputs that are still in place,
the stage is reused instead of rerun. Because a stage's inputs include the previous
stage's outputs, a rerun upstream that produced identical files does not force a rerun
downstream.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segment import progress
from segment.config import Settings
from segment.log import get_logger, peak_rss_bytes
from segment.runstate import StageCache, stage_key

if TYPE_CHECKING:
    from segment.stage import SparkRun

log = get_logger("run")


@dataclass(frozen=True)
class Stage:
    """One pipeline stage as the orchestrator sees it."""

    name: str
    run: Callable[[], Mapping[str, Any]]
    inputs: Sequence[Path] = ()
    outputs: Sequence[Path] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    cacheable: bool = True


@dataclass
class StageOutcome:
    """What happened to a stage in a run."""

    name: str
    status: str  # ran, reused, failed
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)
    #: the process's peak resident memory so far, when the stage ended (MiB); None where
    #: the platform does not say
    peak_rss_mib: float | None = field(default_factory=lambda: _peak_rss_mib())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (no PHI: counts only)."""
        return {
            "stage": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
        }


def _peak_rss_mib() -> float | None:
    peak = peak_rss_bytes()
    return None if peak is None else peak / 2**20


class StageFailed(Exception):
    """Wraps the error of a failed stage with the outcomes so far."""

    def __init__(self, stage: str, cause: BaseException, outcomes: list[StageOutcome]) -> None:
        super().__init__(f"stage {stage} failed")
        self.stage = stage
        self.cause = cause
        self.outcomes = outcomes


def run_stages(workdir: Path, stages: Sequence[Stage], *, force: bool = False) -> list[StageOutcome]:
    """Run ``stages`` in order, reusing those whose inputs and settings are unchanged."""
    cache = StageCache(workdir)
    outcomes: list[StageOutcome] = []
    for stage in stages:
        start = time.perf_counter()
        key = stage_key(stage.name, stage.inputs, stage.params) if stage.cacheable else ""
        if stage.cacheable and not force and cache.is_fresh(stage.name, key, stage.outputs):
            outcome = StageOutcome(stage.name, "reused", time.perf_counter() - start)
            log.info(f"{stage.name}: inputs unchanged, reusing outputs")
            outcomes.append(outcome)
            continue
        log.info(f"{stage.name}: running")
        progress.step(stage.name, "running")
        try:
            counts = dict(stage.run() or {})
        except BaseException as exc:
            outcomes.append(StageOutcome(stage.name, "failed", time.perf_counter() - start))
            raise StageFailed(stage.name, exc, outcomes) from exc
        if stage.cacheable:
            cache.record(stage.name, key, stage.outputs)
        outcome = StageOutcome(stage.name, "ran", time.perf_counter() - start, counts)
        log.info(f"{stage.name}: done in {outcome.seconds:.1f} s", **counts)
        outcomes.append(outcome)
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


def _campaign_run_settings(campaign: Any, campaign_path: Path, settings: Settings,
                           lake: bool = False) -> dict[str, Any]:
    from segment.errors import CampaignError
    from segment.resources import shipped_rules_dir

    if not campaign.sources and not lake:
        raise CampaignError(
            "key `sources` is required for `segment run` (the extracts to ingest)",
            path=campaign_path,
            key="sources",
        )
    workdir = Path(campaign.workdir or campaign_path.parent / "work")
    return {
        "workdir": workdir,
        "reference": Path(campaign.reference or settings.reference_dir),
        "rules": Path(campaign.rules or shipped_rules_dir()),
        "ledger": Path(campaign.ledger or settings.ledger_path),
        "destination": str(campaign.destination or workdir / "exports"),
        "paths": [Path(s.path) for s in campaign.sources],
        "mappings": sorted({Path(s.mapping) for s in campaign.sources if s.mapping}),
        "sources": campaign.sources,
        "allow_orphan_events": campaign.allow_orphan_events,
        "linkage": campaign.linkage,
        "linkage_model": campaign.linkage_model,
    }


def run_content_key(campaign: Any, campaign_path: Path, cfg: Mapping[str, Any], day: dt.date,
                    settings: Settings) -> str:
    """The hash of every input of a run that can change who is sent (the run id is its first 12 hex).

    Sources and mapping files, the campaign file, its suppression files, the rules folder
    (rules and value sets) and any external VSAC folder, the reference pack's manifest
    (which lists the SHA-256 of each pack file), the as-of date and segment's version.
    The ledger is not part of it: caps are checked again, under the ledger's lock, by
    every attempt.
    """
    import hashlib

    from segment import __version__
    from segment.runstate import tree_fingerprint

    reference: Path = cfg["reference"]
    payload = {
        "code": campaign.code,
        "as_of": day.isoformat(),
        "version": __version__,
        "sources": tree_fingerprint([*cfg["paths"], *cfg["mappings"],
                                     *([cfg["linkage_model"]] if cfg.get("linkage_model") else [])]),
        "campaign": tree_fingerprint([campaign_path]),
        "suppression": tree_fingerprint([s.path for s in campaign.suppression]),
        # lake tables (`run --engine spark --patients URI`) are named, not read, here
        **({"lake": cfg["lake"]} if cfg.get("lake") else {}),
        "rules": tree_fingerprint([cfg["rules"]]),
        "vsac": tree_fingerprint([settings.vsac_dir]) if settings.vsac_dir else None,
        "reference": tree_fingerprint([reference / "manifest.json"]),
    }
    return hashlib.sha256(json_dumps(payload)).hexdigest()


def _input_specs(sources: list[Any]) -> list[Any]:
    """The campaign's ``sources`` as ingest inputs, each with its own name, format and mapping."""
    from segment.ingest.detect import InputSpec
    from segment.ingest.mapping import load_mapping

    return [
        InputSpec.of(Path(s.path), source=s.name, input_format=s.format,
                     mapping=load_mapping(s.mapping) if s.mapping else None)
        for s in sources
    ]


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
    from segment.audit import audit_campaign
    from segment.campaign import load_campaign
    from segment.campaign.ledger import ContactLedger
    from segment.export import export_campaign
    from segment.export.core import reconcile_before_run, refuse_backdated
    from segment.runstate import RunLock, append_run_record, keep_hashes, recall_hashes

    started = time.perf_counter()
    path = Path(campaign_path)
    campaign = load_campaign(path)  # validated before any data is touched
    settings = settings or Settings.from_env()
    lake = spark is not None and spark.lake
    cfg = _campaign_run_settings(campaign, path, settings, lake=lake)
    if spark is not None and lake:
        cfg["lake"] = [spark.patients, spark.events]
    day = as_of or campaign.as_of or dt.date.today()
    folder = wd.ensure_private_dir(cfg["workdir"])
    recall_hashes(folder)  # an untouched extract is not read again to learn it is unchanged
    reference: Path = cfg["reference"]
    manifest = reference / "manifest.json"
    stage_settings = Settings.from_env(reference_dir=reference, ledger_path=cfg["ledger"])

    run_id = run_content_key(campaign, path, cfg, day, settings)[:12]
    ledger = ContactLedger(cfg["ledger"])

    def p(name: str) -> Path:
        return folder / name

    # Each stage's module is imported when the stage runs: a reused stage costs no import
    # (enrich alone loads GeoPandas and pandas).
    def run_ingest() -> dict[str, Any]:
        from segment.ingest import ingest
        from segment.ingest.identity import IdentityOptions, Linkage

        return _counts(ingest(_input_specs(cfg["sources"]), folder, as_of=day,
                              allow_orphan_events=cfg["allow_orphan_events"],
                              identity=IdentityOptions(Linkage(cfg["linkage"]), cfg["linkage_model"])))

    sessions: list[Any] = []

    def spark_session() -> tuple[Any, int]:
        """Started by the first stage that runs on Spark (a reused stage starts no JVM)."""
        from segment.spark.session import SparkSettings, default_buckets
        from segment.spark.session import spark_session as start

        assert spark is not None
        spark_settings = SparkSettings.from_env().resolve(master=spark.master, buckets=spark.buckets,
                                                          campaign=campaign)
        if not sessions:
            sessions.append(start(spark_settings))
        return sessions[0], default_buckets(sessions[0], spark_settings)

    def run_geocode() -> dict[str, Any]:
        from segment.geocode import geocode

        if spark is not None:
            from segment.spark import geocode_spark

            session, buckets = spark_session()
            return _counts(geocode_spark(folder, spark=session, buckets=buckets, settings=stage_settings,
                                         patients=spark.patients))

        return _counts(geocode(folder, settings=stage_settings))

    def run_enrich() -> dict[str, Any]:
        from segment.enrich import enrich_workdir

        if spark is not None:
            from segment.spark import enrich_spark

            return _counts(enrich_spark(folder, reference, spark=spark_session()[0]))
        return _counts(enrich_workdir(folder, reference))

    def run_evaluate() -> dict[str, Any]:
        from segment.rules import evaluate

        if spark is not None:
            from segment.spark import evaluate_spark

            session, buckets = spark_session()
            return _counts(evaluate_spark(folder, cfg["rules"], day, spark=session, buckets=buckets,
                                          events=spark.events))
        return _counts(evaluate(folder, cfg["rules"], day))

    stages = [
        Stage(
            "ingest",
            run_ingest,
            inputs=[*cfg["paths"], *cfg["mappings"], *([cfg["linkage_model"]] if cfg["linkage_model"] else [])],
            outputs=[p(wd.PATIENTS), p(wd.EVENTS), p(wd.REJECTS), p(wd.INGEST_REPORT)],
            params={"sources": [[s.name, s.format, str(s.mapping)] for s in cfg["sources"]], "today": day,
                    "allow_orphan_events": cfg["allow_orphan_events"], "linkage": cfg["linkage"]},
        ),
        Stage(
            "geocode",
            run_geocode,
            inputs=[p(wd.PATIENTS), manifest],
            outputs=[p(wd.GEOCODED), p(wd.GEOCODE_REPORT)],
        ),
        Stage(
            "enrich",
            run_enrich,
            inputs=[p(wd.GEOCODED), manifest],
            outputs=[p(wd.ENRICHED), p(wd.ENRICH_REPORT)],
        ),
        Stage(
            "evaluate",
            run_evaluate,
            inputs=[p(wd.ENRICHED), p(wd.EVENTS), cfg["rules"],
                    *([settings.vsac_dir] if settings.vsac_dir else [])],
            outputs=[p(wd.ELIGIBILITY), p(wd.EVALUATE_REPORT)],
            params={"as_of": day},
        ),
    ]

    if lake:
        # canonical lake tables instead of ingest; their content is not hashed, so the
        # stages that read them always run
        stages = [stage if stage.name != "geocode" and stage.name != "evaluate"
                  else replace(stage, cacheable=False) for stage in stages if stage.name != "ingest"]
    result = RunResult(run_id, campaign.code, folder, day.isoformat(), dry_run, "failed", [])
    with RunLock(folder, run_id):
        try:
            result.temp_files_removed = wd.remove_stale_temp_files(folder)
            if result.temp_files_removed:
                log.info("removed temporary files left by a killed run", files=len(result.temp_files_removed))
            if not dry_run:
                result.reconciled = [r.describe() for r in reconcile_before_run(ledger, campaign.code)]
                refuse_backdated(ledger, campaign, day, run_id)
            result.stages = run_stages(folder, stages, force=force)
            t0 = time.perf_counter()
            audit_dir = wd.ensure_private_dir(folder / "runs" / run_id)
            audit_outputs = [audit_dir / "audit.html", audit_dir / "audit.json"]
            cache = StageCache(folder)
            audit_in = AuditInputs(folder, run_id, cfg["ledger"])
            reused_flags = None if force else _reusable_audit(cache, audit_in, audit_outputs)
            result.audit_html = audit_outputs[0]
            if reused_flags is not None:
                result.audit_flags = reused_flags
                log.info("audit: inputs unchanged, reusing outputs")
                result.stages.append(StageOutcome("audit", "reused", time.perf_counter() - t0,
                                                  {"flags": reused_flags}))
            else:
                cache.forget_from(["audit"])
                audit = audit_campaign(campaign, folder, audit_outputs[0], as_of=day,
                                       ledger=cfg["ledger"], run_id=run_id)
                result.audit_flags = len(audit.flags)
                result.stages.append(StageOutcome("audit", "ran", time.perf_counter() - t0,
                                                  {"flags": result.audit_flags}))
            t0 = time.perf_counter()
            exported = export_campaign(
                campaign, folder, cfg["destination"], as_of=day, run_id=run_id, dry_run=dry_run,
                ledger=cfg["ledger"],
            )
            result.export = {
                **({"already delivered": "yes: nothing sent again"} if exported.already_delivered else {}),
                "sent": sum(exported.sent.values()),
                **{f"sent by {ch}": n for ch, n in sorted(exported.sent.items())},
                **{f"removed: {why}": n for why, n in sorted(exported.removed.items()) if n},
                "vendor files": len(exported.files),
                "destination": exported.destination,
                "manifest": str(exported.manifest_path) if exported.manifest_path else None,
            }
            result.stages.append(StageOutcome(
                "export", "dry-run" if dry_run else "reused" if exported.already_delivered else "ran",
                time.perf_counter() - t0, result.export))
            # The audit ignores this run's own ledger rows, so what it saw equals the ledger as
            # this run leaves it: record that state, and an unchanged rerun reuses the audit.
            cache.record("audit", audit_in.key(), audit_outputs)
            result.outcome = "ok"
        except StageFailed as failed:
            result.stages = failed.outcomes
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


@dataclass(frozen=True)
class AuditInputs:
    """What a run's audit depends on, as a stage key.

    The run id already covers the campaign file, its suppression files, the sources, the
    rules, the reference pack, the as-of date and segment's version; to it come the files
    the audit reads (``enriched.parquet``, ``eligibility.parquet``) and the contact ledger
    (frequency caps and opt-outs), by content. Any change gives a new key: the audit reruns.
    """

    workdir: Path
    run_id: str
    ledger: Path

    def key(self) -> str:
        """The key; equal keys mean the audit would come out the same."""
        from segment import workdir as wd

        ledger_files = [self.ledger, Path(f"{self.ledger}-wal")]
        return stage_key(
            "audit",
            [self.workdir / wd.ENRICHED, self.workdir / wd.ELIGIBILITY,
             *[f for f in ledger_files if f.exists()]],
            {"run_id": self.run_id, "ledger": str(self.ledger.resolve()),
             "ledger_exists": self.ledger.exists()},
        )


def _reusable_audit(cache: StageCache, inputs: AuditInputs, outputs: Sequence[Path]) -> int | None:
    """The flag count of a reusable earlier audit of this run, or None to audit again."""
    import json

    if not cache.is_fresh("audit", inputs.key(), outputs):
        return None
    try:
        flags = json.loads(outputs[1].read_text()).get("flags")
    except (OSError, ValueError, AttributeError):
        return None
    return len(flags) if isinstance(flags, list) else None


def json_dumps(value: Any) -> bytes:
    """Canonical JSON bytes for hashing."""
    import json

    return json.dumps(value, sort_keys=True, default=str).encode()


def _counts(result: Any) -> dict[str, Any]:
    """The integer figures of a stage result (dataclass or mapping), for the run log."""
    import dataclasses

    if result is None:
        return {}
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        items = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    elif isinstance(result, Mapping):
        items = dict(result)
    else:
        items = {k: v for k, v in vars(result).items() if not k.startswith("_")}
    return {k: v for k, v in items.items() if isinstance(v, int | float) and not isinstance(v, bool)}
