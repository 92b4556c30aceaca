"""The steps of :func:`segment.export.run.export_campaign`: resolve, plan under the ledger's lock, deliver.

Order:

1. Resolve (:func:`prepare_job`): the campaign, the destination, the checks made before
   any data is read (:mod:`segment.export.preflight`), and reconciliation: every
   unfinished delivery in the ledger whose process is gone is completed (contacts
   committed: its files go out) or withdrawn (nothing committed: its temporary files are
   removed).
2. The run's content key: a hash of every input that can change who is sent (patient
   and eligibility files, the campaign file, suppression files, as-of date, mode,
   segment's version). The default run id is ``r`` + its first 12 hex digits. A run
   already published to this destination with the same key is not sent again; with
   another key (an explicit ``--run-id`` reused) it is refused (:func:`published_before`).
3. In one ``BEGIN IMMEDIATE`` ledger transaction (:func:`deliver`): refuse a run dated
   before contacts already recorded, read every contact (all campaigns, any working
   folder), plan, build the vendor files, and record the delivery's intent with its
   contacts reserved.
4. :func:`segment.export.delivery.run_delivery`: stage under temporary names, commit
   the contacts, rename into place, manifest, ``.done`` trigger last.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.campaign.caps import longest_window
from segment.campaign.destinations import (
    Destination,
    FolderDestination,
    destination_url,
    parse_destination,
)
from segment.campaign.holdout import holdout_manifest, with_strata
from segment.campaign.journey import exits_today, journey_history
from segment.campaign.ledger import ContactLedger, Delivery
from segment.campaign.loader import load_campaign
from segment.campaign.model import Campaign
from segment.campaign.preferences import Preferences, load_preferences, write_rejects
from segment.campaign.quiet_hours import planned_send_utc
from segment.campaign.select import plan_batches, plan_contacts
from segment.campaign.suppression import Suppression, load_suppression
from segment.config import Settings
from segment.errors import CampaignError, DeliveryError
from segment.export.build import (
    BuiltExport,
    ExportedFile,
    build_files,
    build_manifest,
    manifest_name,
    trigger_body,
    trigger_name,
)
from segment.export.checkpoints import checkpoint
from segment.export.checks import baa_record, min_lead
from segment.export.delivery import (
    Reconciled,
    delivery_id_for,
    delivery_lock,
    run_delivery,
)
from segment.export.personal import personalization_manifest
from segment.export.preflight import (
    check_not_backdated,
    check_recipients,
    check_run_id,
    reconcile_before_run,
    refuse_backdated,
)
from segment.export.transfer import open_transport
from segment.export.unsubscribe import unsubscribe_rows
from segment.log import get_logger
from segment.runstate import content_hash, run_id_of

log = get_logger("export")

UTC_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class ExportMode(StrEnum):
    """``full``: everyone eligible; ``delta``: only patients not yet sent for this campaign."""

    FULL = "full"
    DELTA = "delta"


@dataclass(frozen=True)
class ExportResult:
    """What an export did (or, with ``dry_run``, would do)."""

    campaign_code: str
    run_id: str
    as_of: dt.date
    mode: ExportMode
    dry_run: bool
    destination: str
    sent: dict[str, int]
    removed: dict[str, int]
    files: list[ExportedFile]
    manifest: dict[str, Any]
    manifest_path: Path | None
    trigger: str | None
    ledger_rows: int
    delivery_id: str | None = None
    #: this run was already published to this destination: nothing was sent again
    already_delivered: bool = False
    #: unfinished deliveries found (and completed or withdrawn) before this run
    reconciled: list[Reconciled] = field(default_factory=list)
    #: batches of patients the contact plan was made in (see :mod:`segment.memory`)
    batches: int = 1


@dataclass(frozen=True)
class ExportJob:
    """One export resolved before any patient row is read: what, where, as of when, under which ids."""

    campaign: Campaign
    workdir: Path
    destination: Destination
    as_of: dt.date
    mode: ExportMode
    dry_run: bool
    ledger: ContactLedger
    #: when the vendor gets the files (SMS planned before the vendor's lead time moves to it)
    clock: dt.datetime
    #: the business associate agreement record the manifest carries
    baa: Any
    reconciled: list[Reconciled]
    patients_file: Path
    eligibility_file: Path
    #: input name -> SHA-256 of every file that can change who is sent
    inputs: dict[str, str]
    content_key: str
    run_id: str
    url: str
    delivery_id: str
    manifest_path: Path
    trigger: str


@dataclass(frozen=True)
class ExportData:
    """The job's inputs, read lazily: patients, eligibility, suppression, preferences, send times."""

    patients: pl.LazyFrame
    eligibility: pl.LazyFrame
    suppression: Suppression
    preferences: Preferences | None
    planned: dt.datetime
    #: when a past as-of date's SMS is sent from instead of ``planned`` (None: as planned)
    send_from: dt.datetime | None


@dataclass(frozen=True)
class LedgerState:
    """What planning reads from the contact ledger (empty frames when there is none yet)."""

    history: ContactLedger | pl.DataFrame | None
    blocked: pl.DataFrame
    audience: pl.DataFrame
    arms: pl.DataFrame | None = None
    journey: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None


@dataclass(frozen=True)
class PlannedExport:
    """The vendor files and manifest of one plan, and what the delivery records beside its contacts."""

    built: BuiltExport
    manifest: dict[str, Any]
    #: the holdout draw of the plan (``patient_id``, ``arm``)
    drawn: pl.DataFrame | None
    #: journeys stopped tonight
    stopped: pl.DataFrame | None


def content_key(inputs: dict[str, str], as_of: dt.date, mode: str) -> str:
    """The hash of everything that decides who an export sends, except the ledger."""
    from segment import __version__

    return content_hash({"files": inputs, "as_of": as_of.isoformat(), "mode": mode, "version": __version__})


def _ledger_for(c: Campaign, ledger: ContactLedger | str | Path | None, settings: Settings) -> ContactLedger:
    if isinstance(ledger, ContactLedger):
        return ledger
    return ContactLedger(Path(ledger) if ledger is not None else (c.ledger or settings.ledger_path))


def _manifest_path(destination: Destination, workdir: Path, c: Campaign, as_of: dt.date, run_id: str) -> Path:
    name = manifest_name(c, run_id)
    if isinstance(destination, FolderDestination):
        return destination.path / name
    # the manifest names rules: it stays local for a remote destination
    return workdir / "exports" / f"{c.code}_{as_of.strftime('%Y%m%d')}_{run_id}" / name


def input_hashes(c: Campaign, workdir: Path) -> tuple[Path, Path, dict[str, str]]:
    """The patient and eligibility files, and the SHA-256 of every file that can change who is sent."""
    pfile = wd.patients_path(workdir)
    efile = wd.require(workdir, wd.ELIGIBILITY, produced_by="evaluate")
    inputs = {pfile.name: wd.sha256_file(pfile), efile.name: wd.sha256_file(efile)}
    if c.path is not None:
        inputs[f"campaign:{c.path.name}"] = wd.sha256_file(c.path)
    for sup in c.suppression:
        inputs[f"suppression:{sup.path.name}"] = wd.sha256_file(sup.path)
    if c.preferences is not None:
        inputs[f"preferences:{c.preferences.name}"] = wd.sha256_file(c.preferences)
    if c.variants:  # variant conditions over columns the patient file lacks: refused before any row is read
        from segment.campaign.variants import check_variant_columns

        check_variant_columns(c, pl.scan_parquet(pfile).collect_schema(), pfile.name)
    return pfile, efile, inputs


def prepare_job(
    campaign: Campaign | str | Path, workdir: str | Path, dest: str | Path | None, *, as_of: dt.date | None,
    mode: ExportMode | str, dry_run: bool, run_id: str | None, ledger: ContactLedger | str | Path | None,
    settings: Settings | None, now: dt.datetime | None,
) -> ExportJob:
    """Resolve an export and make every check that needs no patient row (see the module's steps 1-2)."""
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    mode = ExportMode(mode)
    target = dest if dest is not None else c.destination
    if target is None:
        raise CampaignError("no destination: pass --to DEST or set `destination:` in the campaign",
                            path=c.path, key="destination")
    destination = parse_destination(target)
    settings = settings or Settings.from_env()
    as_of = as_of or c.as_of or dt.date.today()
    check_run_id(run_id)
    check_recipients(c)  # encryption keys are checked before any data is read
    led = _ledger_for(c, ledger, settings)
    clock = now or dt.datetime.now(dt.UTC)
    work = Path(workdir)
    baa = baa_record(c, work)  # a clinical list to a vendor without a BAA: refused before any data is read
    reconciled = [] if dry_run else reconcile_before_run(led, c.code)
    pfile, efile, inputs = input_hashes(c, work)
    key = content_key(inputs, as_of, str(mode))
    run_id = run_id or f"r{run_id_of(key)}"
    url = destination_url(destination)
    return ExportJob(
        campaign=c, workdir=work, destination=destination, as_of=as_of, mode=mode, dry_run=dry_run,
        ledger=led, clock=clock, baa=baa, reconciled=reconciled, patients_file=pfile, eligibility_file=efile,
        inputs=inputs, content_key=key, run_id=run_id, url=url,
        delivery_id=delivery_id_for(c.code, run_id, url),
        manifest_path=_manifest_path(destination, work, c, as_of, run_id),
        trigger=trigger_name(c, as_of, run_id),
    )


def published_before(job: ExportJob) -> ExportResult | None:
    """The result of this run's earlier publication to this destination, if there was one.

    Refused when that publication came from other inputs (an explicit run id reused).
    """
    led = job.ledger
    previous = led.delivery(job.delivery_id) if led.path.exists() else None
    if previous is None or previous.state != "published":
        return None
    if previous.content_key != job.content_key:
        raise DeliveryError(
            f"run {job.run_id} of {job.campaign.code} was already delivered to {job.destination.describe()} "
            "from different inputs; nothing was sent (use a new --run-id, or the default one)"
        )
    log.info("already delivered: nothing sent again", run_id=job.run_id)
    record = previous.record
    manifest = dict(record.get("manifest", {}))
    counts = manifest.get("counts", {})
    return ExportResult(
        campaign_code=job.campaign.code, run_id=job.run_id, as_of=job.as_of, mode=job.mode, dry_run=False,
        destination=job.destination.describe(), sent=dict(counts.get("per_channel", {})),
        removed=dict(counts.get("removed", {})),
        files=[ExportedFile.from_entry(e) for e in manifest.get("files", [])],
        manifest=manifest, manifest_path=Path(str(record["manifest_path"])), trigger=str(record["trigger"]),
        ledger_rows=0, delivery_id=previous.delivery_id, already_delivered=True, reconciled=job.reconciled,
    )


def before_sending(job: ExportJob) -> ExportResult | None:
    """For a real run: the earlier publication's result (nothing to send), else None once the
    run is known not to be backdated (:func:`refuse_backdated`)."""
    previous = published_before(job)
    if previous is None:
        refuse_backdated(job.ledger, job.campaign, job.as_of, job.run_id)
    return previous


def _send_from(planned: dt.datetime, now: dt.datetime, c: Campaign) -> dt.datetime | None:
    """When a past as-of date's SMS must be sent from instead (None: the planned time is still ahead).

    The vendor's minimum lead time plus a minute for the transfer, rounded up to the minute.
    """
    earliest = now + min_lead(c) + dt.timedelta(minutes=1)
    if planned >= earliest:
        return None
    return (earliest + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)


def read_inputs(job: ExportJob) -> ExportData:
    """The job's inputs; a real run also writes the preferences' rejected rows beside the other rejects."""
    c = job.campaign
    patients = pl.scan_parquet(job.patients_file)
    prefs = load_preferences(c.preferences, patients) if c.preferences is not None else None
    if prefs is not None and not job.dry_run:
        write_rejects(prefs, job.workdir)
    planned = planned_send_utc(job.as_of, c.schedule)
    send_from = _send_from(planned, job.clock, c) if not job.dry_run else None
    if send_from is not None:
        log.warning("the as-of date's send time has passed: SMS is scheduled from now",
                    planned=planned.strftime(UTC_STAMP), send_from=send_from.strftime(UTC_STAMP))
    return ExportData(patients=patients, eligibility=pl.scan_parquet(job.eligibility_file),
                      suppression=load_suppression(list(c.suppression)), preferences=prefs,
                      planned=planned, send_from=send_from)


def export_manifest(
    job: ExportJob, data: ExportData, built: BuiltExport, plan: pl.DataFrame, state: LedgerState
) -> dict[str, Any]:
    """The manifest of a planned export (no PHI): :func:`build_manifest` plus the campaign's extras."""
    c = job.campaign
    manifest = build_manifest(
        c, built, run_id=job.run_id, as_of=job.as_of, mode=str(job.mode), destination=job.destination.describe(),
        trigger=job.trigger, eligibility=data.eligibility, workdir=job.workdir, inputs=job.inputs,
        content_key=job.content_key, suppression=data.suppression,
    )
    manifest["baa"] = job.baa
    manifest["schedule"] = {
        "planned_send_utc": data.planned.strftime(UTC_STAMP),
        "sms_sent_from_utc": data.send_from.strftime(UTC_STAMP) if data.send_from else None,
    }
    manifest["feedback_suppressed"] = state.blocked.group_by("channel").len().sort("channel").rows()
    manifest["unsubscribes"] = dict(built.unsubscribes.group_by("channel").len().sort("channel").rows())
    if c.holdout is not None:
        manifest["holdout"] = holdout_manifest(c, plan, state.arms)
    manifest.update(personalization_manifest(c, plan, data.preferences))
    return manifest


def plan_export(job: ExportJob, data: ExportData, state: LedgerState) -> PlannedExport:
    """Plan the contacts against the ledger's state and build the vendor files and manifest in memory."""
    c = job.campaign
    jhist = journey_history(c, *state.journey) if c.journey is not None and state.journey is not None else None
    plan = plan_contacts(c, data.patients, data.eligibility, state.history, job.as_of, run_id=job.run_id,
                         suppression=data.suppression, send_from=data.send_from, blocked=state.blocked,
                         arms=state.arms, preferences=data.preferences, journey=jhist).collect()
    stopped = exits_today(plan) if c.journey is not None else None
    unsub = unsubscribe_rows(c, data.patients, data.suppression, state.audience, state.blocked)
    built = build_files(c, plan, data.patients, delta=job.mode is ExportMode.DELTA, as_of=job.as_of,
                        run_id=job.run_id, now=job.clock, dry_run=job.dry_run, unsubscribe=unsub)
    manifest = export_manifest(job, data, built, plan, state)
    drawn = plan.filter(pl.col("arm").is_not_null()).select("patient_id", "arm") if c.holdout else None
    return PlannedExport(built, manifest, drawn, stopped)


def result_of(job: ExportJob, planned: PlannedExport, rows: int) -> ExportResult:
    """The result of a planned (and, unless a dry run, delivered) export."""
    built, dry = planned.built, job.dry_run
    return ExportResult(
        campaign_code=job.campaign.code, run_id=job.run_id, as_of=job.as_of, mode=job.mode, dry_run=dry,
        destination=job.destination.describe(), sent=built.sent, removed=built.removed, files=built.files,
        manifest=planned.manifest, manifest_path=None if dry else job.manifest_path,
        trigger=None if dry else job.trigger, ledger_rows=rows,
        delivery_id=None if dry else job.delivery_id, reconciled=job.reconciled,
        batches=len(plan_batches(pl.scan_parquet(job.patients_file))),
    )


def preview(job: ExportJob, data: ExportData) -> ExportResult:
    """A dry run: plan against the ledger as it is, write nothing."""
    c, led = job.campaign, job.ledger
    exists = led.path.exists()
    state = LedgerState(
        history=led if exists else None,
        blocked=led.blocked() if exists else pl.DataFrame(schema={"patient_id": pl.String, "channel": pl.String}),
        audience=led.vendor_audience() if exists else pl.DataFrame(schema=dict.fromkeys(
            ["vendor", "patient_id", "channel", "last_sent", "last_unsubscribed"], pl.String)),
        arms=led.arms(c.code) if exists else None,
        journey=led.journey_inputs(c.code) if c.journey is not None else None,
    )
    planned = plan_export(job, data, state)
    built = planned.built
    log.info("dry run: nothing written", files=len(built.files), sent=sum(built.sent.values()))
    return result_of(job, planned, 0)


def _intent(job: ExportJob, planned: PlannedExport) -> Delivery:
    """The delivery's write-ahead record: everything a later run needs to finish or withdraw it."""
    c, built = job.campaign, planned.built
    stamp = dt.datetime.now(dt.UTC).strftime(UTC_STAMP)
    record = {
        "destination": job.url,
        "sftp": c.sftp.model_dump(mode="json"),
        "files": [f.entry() for f in built.files],
        "trigger": job.trigger,
        "trigger_body": trigger_body(c.code, job.run_id, built.files),
        "manifest_path": str(job.manifest_path.absolute()),
        "manifest": planned.manifest,
        "as_of": job.as_of.isoformat(),
    }
    return Delivery(job.delivery_id, c.code, job.run_id, job.content_key, job.destination.describe(), "intent",
                    record, stamp, stamp)


def reserve(job: ExportJob, data: ExportData) -> tuple[PlannedExport, Delivery]:
    """In one ledger write transaction: plan under the caps, record the intent, reserve the contacts."""
    c, led = job.campaign, job.ledger
    with led.immediate() as tx:
        check_not_backdated(tx.latest_contact(exclude_run_id=job.run_id), c, job.as_of, led.path)
        days = longest_window(list(c.frequency_caps))
        state = LedgerState(
            history=tx.history(data.planned - dt.timedelta(days=days) if days else None, c.code),
            blocked=tx.blocked(), audience=tx.vendor_audience(), arms=tx.arms(c.code),
            journey=tx.journey_inputs(c.code) if c.journey is not None else None,
        )
        planned = plan_export(job, data, state)
        checkpoint("planned")
        delivery = _intent(job, planned)
        tx.begin_delivery(delivery, planned.built.contacts, sent_at=data.planned)
        tx.record_unsubscribes(job.delivery_id, planned.built.unsubscribes, sent_at=data.planned)
        if planned.stopped is not None and planned.stopped.height:
            tx.record_journey_exits(planned.stopped, campaign_code=c.code, run_id=job.run_id,
                                    exited_at=data.planned)
        if planned.drawn is not None:
            tx.record_arms(with_strata(c, planned.drawn, data.patients, job.as_of), campaign_code=c.code,
                           run_id=job.run_id, delivery_id=job.delivery_id, assigned_at=data.planned)
    return planned, delivery


def deliver(job: ExportJob, data: ExportData) -> ExportResult:
    """Reserve the contacts under the delivery's lock, then stage, commit and publish the files."""
    lock = delivery_lock(job.ledger, job.delivery_id)
    if not lock.try_acquire():
        raise DeliveryError(
            f"run {job.run_id} of {job.campaign.code} to {job.destination.describe()} is being delivered by "
            f"another process (pid {lock.busy_holder().get('pid', '?')}); nothing was done"
        )
    try:
        planned, delivery = reserve(job, data)
        checkpoint("reserved")
        rows = run_delivery(job.ledger, delivery, open_transport(job.destination, job.campaign.sftp),
                            {f.name: f.data for f in planned.built.files})
    finally:
        lock.release()
    built = planned.built
    log.info("export complete", files=len(built.files), sent=sum(built.sent.values()), ledger_rows=rows)
    return result_of(job, planned, rows)
