"""``export_campaign``: reconcile, plan under the ledger's lock, build, deliver.

Order:

1. Reconcile: every unfinished delivery in the ledger whose process is gone is
   completed (contacts committed: its files go out) or withdrawn (nothing committed:
   its temporary files are removed), before anything else.
2. The run's content key: a hash of every input that can change who is sent (patient
   and eligibility files, the campaign file, suppression files, as-of date, mode,
   segment's version). The default run id is ``r`` + its first 12 hex digits. A run
   already published to this destination with the same key is not sent again; with
   another key (an explicit ``--run-id`` reused) it is refused.
3. In one ``BEGIN IMMEDIATE`` ledger transaction: refuse a run dated before contacts
   already recorded, read every contact (all campaigns, any working folder), plan,
   build the vendor files, and record the delivery's intent with its contacts reserved.
4. :func:`segment.export.delivery.run_delivery`: stage under temporary names, commit
   the contacts, rename into place, manifest, ``.done`` trigger last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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
from segment.campaign.preferences import load_preferences, write_rejects
from segment.campaign.quiet_hours import planned_send_utc
from segment.campaign.select import plan_contacts
from segment.campaign.suppression import load_suppression
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
    reconcile,
    run_delivery,
)
from segment.export.encrypt import check_recipient
from segment.export.personal import personalization_manifest
from segment.export.transfer import open_transport
from segment.export.unsubscribe import unsubscribe_rows
from segment.log import get_logger

log = get_logger("export")

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

__all__ = ["ExportMode", "ExportResult", "ExportedFile", "export_campaign"]


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


def content_key(inputs: dict[str, str], as_of: dt.date, mode: str) -> str:
    """The hash of everything that decides who an export sends, except the ledger."""
    from segment import __version__

    payload = {"files": inputs, "as_of": as_of.isoformat(), "mode": mode, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_not_backdated(
    latest: tuple[dt.datetime, str, str] | None, campaign: Campaign, as_of: dt.date, ledger_path: Path
) -> None:
    """Refuse a run dated before a contact already in the ledger (caps would miss it)."""
    if latest is None:
        return
    when, code, run = latest
    day = when.astimezone(ZoneInfo(campaign.schedule.timezone)).date()
    if day > as_of:
        raise CampaignError(
            f"--as-of {as_of.isoformat()} is before contacts already in the contact ledger "
            f"(latest on {day.isoformat()}, campaign {code} run {run}); a backdated run is refused "
            "(preview it with --dry-run, or run as of that date or later)",
            path=ledger_path, key="as_of",
        )


def refuse_backdated(ledger: ContactLedger, campaign: Campaign, as_of: dt.date, run_id: str | None) -> None:
    """:func:`check_not_backdated` against the ledger as it is now (cheap; before any data is read)."""
    if ledger.path.exists():
        check_not_backdated(ledger.latest_contact(exclude_run_id=run_id), campaign, as_of, ledger.path)


def reconcile_before_run(ledger: ContactLedger, campaign_code: str) -> list[Reconciled]:
    """Reconcile the ledger's unfinished deliveries; fail if one of this campaign's cannot be."""
    found = reconcile(ledger)
    for r in found:
        if r.campaign_code == campaign_code and r.action == "in progress elsewhere":
            raise DeliveryError(
                f"run {r.run_id} of {campaign_code} to {r.destination} is being delivered by another "
                f"process ({r.detail}); wait for it to finish; nothing was done",
                path=ledger.path,
            )
        if r.campaign_code == campaign_code and r.action == "failed":
            raise DeliveryError(
                f"an earlier delivery of this campaign is unfinished and could not be reconciled: "
                f"{r.describe()}; nothing else was done",
                path=ledger.path,
            )
    return found


def _ledger_for(c: Campaign, ledger: ContactLedger | str | Path | None, settings: Settings) -> ContactLedger:
    if isinstance(ledger, ContactLedger):
        return ledger
    return ContactLedger(Path(ledger) if ledger is not None else (c.ledger or settings.ledger_path))


def _manifest_path(destination: Destination, work: Path, c: Campaign, as_of: dt.date, run_id: str) -> Path:
    name = manifest_name(c, run_id)
    if isinstance(destination, FolderDestination):
        return destination.path / name
    # the manifest names rules: it stays local for a remote destination
    return work / "exports" / f"{c.code}_{as_of.strftime('%Y%m%d')}_{run_id}" / name


def export_campaign(
    campaign: Campaign | str | Path,
    workdir: str | Path,
    dest: str | Path | None = None,
    *,
    as_of: dt.date | None = None,
    mode: ExportMode | str = ExportMode.FULL,
    dry_run: bool = False,
    run_id: str | None = None,
    ledger: ContactLedger | str | Path | None = None,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> ExportResult:
    """Export one campaign from a working folder to ``dest`` (folder or ``sftp://`` URL).

    Same inputs, as-of date and mode give the same run id and byte-identical
    (unencrypted) vendor files; a run already published to ``dest`` is not sent twice.
    A vendor file is visible at ``dest`` only once its contacts are committed to the
    ledger. Raises :class:`DeliveryError` (saying what, if anything, is left
    delivered), :class:`CampaignError`, :class:`PrivacyError` or :class:`StageInputError`.

    ``now`` (default: the clock) is when the vendor gets the files: SMS planned before the
    vendor's minimum lead time (a past ``as_of``) is sent from now instead (``--dry-run``
    plans in the past), and send times beyond the vendor's window are refused.
    """
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    mode = ExportMode(mode)
    work = Path(workdir)
    target = dest if dest is not None else c.destination
    if target is None:
        raise CampaignError("no destination: pass --to DEST or set `destination:` in the campaign",
                            path=c.path, key="destination")
    destination = parse_destination(target)
    settings = settings or Settings.from_env()
    as_of = as_of or c.as_of or dt.date.today()
    if run_id is not None and not RUN_ID_PATTERN.match(run_id):
        raise DeliveryError("a run id may use letters, digits, `-` and `_` only (max 64)")
    # encryption keys are checked before any data is read
    for ch, vendor in c.vendors.items():
        if vendor.encrypt is not None:
            try:
                check_recipient(vendor.encrypt)
            except DeliveryError as exc:
                raise DeliveryError(f"vendors.{ch}.encrypt: {exc.message}", path=c.path) from exc
    led = _ledger_for(c, ledger, settings)
    clock = now or dt.datetime.now(dt.UTC)
    baa = baa_record(c, work)  # a clinical list to a vendor without a BAA: refused before any data is read
    reconciled = [] if dry_run else reconcile_before_run(led, c.code)

    pfile = wd.patients_path(work)
    efile = wd.require(work, wd.ELIGIBILITY, produced_by="evaluate")
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
    key = content_key(inputs, as_of, str(mode))
    run_id = run_id or f"r{key[:12]}"
    url = destination_url(destination)
    delivery_id = delivery_id_for(c.code, run_id, url)
    manifest_path = _manifest_path(destination, work, c, as_of, run_id)
    trigger = trigger_name(c, as_of, run_id)

    if not dry_run:
        previous = led.delivery(delivery_id) if led.path.exists() else None
        if previous is not None and previous.state == "published":
            if previous.content_key != key:
                raise DeliveryError(
                    f"run {run_id} of {c.code} was already delivered to {destination.describe()} from "
                    "different inputs; nothing was sent (use a new --run-id, or the default one)"
                )
            log.info("already delivered: nothing sent again", run_id=run_id)
            return _already_delivered(previous, c, run_id, as_of, mode, destination, reconciled)
        refuse_backdated(led, c, as_of, run_id)

    patients = pl.scan_parquet(pfile)
    eligibility = pl.scan_parquet(efile)
    suppression = load_suppression(list(c.suppression))
    prefs = load_preferences(c.preferences, patients) if c.preferences is not None else None
    if prefs is not None and not dry_run:
        write_rejects(prefs, work)
    planned = planned_send_utc(as_of, c.schedule)
    send_from = _send_from(planned, clock, c) if not dry_run else None
    if send_from is not None:
        log.warning("the as-of date's send time has passed: SMS is scheduled from now",
                    planned=planned.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    send_from=send_from.strftime("%Y-%m-%dT%H:%M:%SZ"))

    drawn: pl.DataFrame | None = None  # the holdout draw of the plan, recorded with the delivery
    stopped: pl.DataFrame | None = None  # journeys stopped tonight, recorded with the delivery

    def build(history: ContactLedger | pl.DataFrame | None, blocked: pl.DataFrame,
              audience: pl.DataFrame, arms: pl.DataFrame | None = None,
              journey: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None = None,
              ) -> tuple[BuiltExport, dict[str, Any]]:
        nonlocal stopped
        jhist = journey_history(c, *journey) if c.journey is not None and journey is not None else None
        plan = plan_contacts(c, patients, eligibility, history, as_of, run_id=run_id,
                             suppression=suppression, send_from=send_from, blocked=blocked,
                             arms=arms, preferences=prefs, journey=jhist).collect()
        stopped = exits_today(plan) if c.journey is not None else None
        unsub = unsubscribe_rows(c, patients, suppression, audience, blocked)
        built = build_files(c, plan, patients, delta=mode is ExportMode.DELTA, as_of=as_of, run_id=run_id,
                            now=clock, dry_run=dry_run, unsubscribe=unsub)
        manifest = build_manifest(
            c, built, run_id=run_id, as_of=as_of, mode=str(mode), destination=destination.describe(),
            trigger=trigger, eligibility=eligibility, workdir=work, inputs=inputs, content_key=key,
            suppression=suppression,
        )
        manifest["baa"] = baa
        manifest["schedule"] = {
            "planned_send_utc": planned.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sms_sent_from_utc": send_from.strftime("%Y-%m-%dT%H:%M:%SZ") if send_from else None,
        }
        manifest["feedback_suppressed"] = blocked.group_by("channel").len().sort("channel").rows()
        manifest["unsubscribes"] = dict(built.unsubscribes.group_by("channel").len().sort("channel").rows())
        if c.holdout is not None:
            manifest["holdout"] = holdout_manifest(c, plan, arms)
        manifest.update(personalization_manifest(c, plan, prefs))
        nonlocal drawn
        drawn = plan.filter(pl.col("arm").is_not_null()).select("patient_id", "arm") if c.holdout else None
        return built, manifest

    def result(built: BuiltExport, manifest: dict[str, Any], rows: int) -> ExportResult:
        return ExportResult(
            campaign_code=c.code, run_id=run_id, as_of=as_of, mode=mode, dry_run=dry_run,
            destination=destination.describe(), sent=built.sent, removed=built.removed, files=built.files,
            manifest=manifest, manifest_path=None if dry_run else manifest_path,
            trigger=None if dry_run else trigger, ledger_rows=rows,
            delivery_id=None if dry_run else delivery_id, reconciled=reconciled,
        )

    if dry_run:
        exists = led.path.exists()
        empty_blocked = pl.DataFrame(schema={"patient_id": pl.String, "channel": pl.String})
        empty_audience = pl.DataFrame(schema=dict.fromkeys(
            ["vendor", "patient_id", "channel", "last_sent", "last_unsubscribed"], pl.String))
        built, manifest = build(led if exists else None, led.blocked() if exists else empty_blocked,
                                led.vendor_audience() if exists else empty_audience,
                                led.arms(c.code) if exists else None,
                                led.journey_inputs(c.code) if c.journey is not None else None)
        log.info("dry run: nothing written", files=len(built.files), sent=sum(built.sent.values()))
        return result(built, manifest, 0)

    lock = delivery_lock(led, delivery_id)
    if not lock.try_acquire():
        raise DeliveryError(
            f"run {run_id} of {c.code} to {destination.describe()} is being delivered by another "
            f"process (pid {lock.busy_holder().get('pid', '?')}); nothing was done"
        )
    try:
        with led.immediate() as tx:
            check_not_backdated(tx.latest_contact(exclude_run_id=run_id), c, as_of, led.path)
            days = longest_window(list(c.frequency_caps))
            history = tx.history(planned - dt.timedelta(days=days) if days else None, c.code)
            built, manifest = build(history, tx.blocked(), tx.vendor_audience(), tx.arms(c.code),
                                    tx.journey_inputs(c.code) if c.journey is not None else None)
            checkpoint("planned")
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = {
                "destination": url,
                "sftp": c.sftp.model_dump(mode="json"),
                "files": [f.entry() for f in built.files],
                "trigger": trigger,
                "trigger_body": trigger_body(c.code, run_id, built.files),
                "manifest_path": str(manifest_path.absolute()),
                "manifest": manifest,
                "as_of": as_of.isoformat(),
            }
            delivery = Delivery(delivery_id, c.code, run_id, key, destination.describe(), "intent",
                                record, stamp, stamp)
            tx.begin_delivery(delivery, built.contacts, sent_at=planned)
            tx.record_unsubscribes(delivery_id, built.unsubscribes, sent_at=planned)
            if stopped is not None and stopped.height:
                tx.record_journey_exits(stopped, campaign_code=c.code, run_id=run_id, exited_at=planned)
            if drawn is not None:
                tx.record_arms(with_strata(c, drawn, patients, as_of), campaign_code=c.code, run_id=run_id,
                               delivery_id=delivery_id, assigned_at=planned)
        checkpoint("reserved")
        rows = run_delivery(led, delivery, open_transport(destination, c.sftp),
                            {f.name: f.data for f in built.files})
    finally:
        lock.release()
    log.info("export complete", files=len(built.files), sent=sum(built.sent.values()), ledger_rows=rows)
    return result(built, manifest, rows)


def _send_from(planned: dt.datetime, now: dt.datetime, c: Campaign) -> dt.datetime | None:
    """When a past as-of date's SMS must be sent from instead (None: the planned time is still ahead).

    The vendor's minimum lead time plus a minute for the transfer, rounded up to the minute.
    """
    earliest = now + min_lead(c) + dt.timedelta(minutes=1)
    if planned >= earliest:
        return None
    return (earliest + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)


def _already_delivered(
    previous: Delivery, c: Campaign, run_id: str, as_of: dt.date, mode: ExportMode,
    destination: Destination, reconciled: list[Reconciled],
) -> ExportResult:
    record = previous.record
    manifest = dict(record.get("manifest", {}))
    counts = manifest.get("counts", {})
    return ExportResult(
        campaign_code=c.code, run_id=run_id, as_of=as_of, mode=mode, dry_run=False,
        destination=destination.describe(), sent=dict(counts.get("per_channel", {})),
        removed=dict(counts.get("removed", {})),
        files=[ExportedFile.from_entry(e) for e in manifest.get("files", [])],
        manifest=manifest, manifest_path=Path(str(record["manifest_path"])), trigger=str(record["trigger"]),
        ledger_rows=0, delivery_id=previous.delivery_id, already_delivered=True, reconciled=reconciled,
    )
