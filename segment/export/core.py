"""``export_campaign``: plan, build vendor files, deliver them, record the ledger, trigger.

Order (a failure at any step leaves no vendor file under its final name and no ledger
rows): build every file in memory -> encrypt -> upload/write each under a temporary
name and check its size -> rename all -> manifest -> ledger rows in one transaction ->
the ``.done`` trigger file last.
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

import polars as pl

from segment import workdir as wd
from segment.campaign.ledger import ContactLedger
from segment.campaign.loader import load_campaign
from segment.campaign.model import Campaign, Channel, ContactStatus
from segment.campaign.phi import clinical_word_in
from segment.campaign.quiet_hours import planned_send_utc
from segment.campaign.select import plan_contacts
from segment.campaign.suppression import load_suppression
from segment.config import Settings
from segment.errors import CampaignError, DeliveryError, PrivacyError, SegmentError, StageInputError
from segment.export.deliver import FolderDestination, parse_destination
from segment.export.encrypt import check_recipient, encrypt_bytes
from segment.export.profiles import resolve_profile
from segment.export.transfer import Transport, open_transport
from segment.export.writer import safe_file_name, split_csv, to_csv_bytes, vendor_table
from segment.log import get_logger

log = get_logger("export")

MANIFEST = "manifest.json"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PATIENT_FILES = (wd.ENRICHED, wd.GEOCODED, wd.PATIENTS)


class ExportMode(StrEnum):
    """``full``: everyone eligible; ``delta``: only patients not yet sent for this campaign."""

    FULL = "full"
    DELTA = "delta"


@dataclass(frozen=True)
class ExportedFile:
    """One vendor file as delivered."""

    name: str
    channel: str
    profile: str
    rows: int
    size: int
    sha256: str
    plaintext_sha256: str
    encrypted_to: str | None
    data: bytes = field(repr=False, compare=False)


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


def patients_path(workdir: Path) -> Path:
    """``enriched.parquet``, else ``geocoded.parquet``, else ``patients.parquet``."""
    for name in PATIENT_FILES:
        if (workdir / name).exists():
            return workdir / name
    raise StageInputError(
        f"no patient file ({', '.join(PATIENT_FILES)}) found; run `segment ingest` first",
        path=workdir,
    )


def _reference_vintages(workdir: Path) -> Any:
    """The reference pack(s) and tract vintages the geocode and enrich stages used."""
    found: dict[str, Any] = {}
    for stage, name in (("geocode", wd.GEOCODE_REPORT), ("enrich", wd.ENRICH_REPORT)):
        p = workdir / name
        if not p.exists():
            continue
        try:
            report = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict):
            continue
        pack = report.get("pack")
        entry: dict[str, Any] = dict(pack) if isinstance(pack, dict) else {"name": pack}
        for key in ("tract_vintage", "indicator_tract_vintage"):
            if key in report:
                entry[key] = report[key]
        if entry.get("name") is not None or len(entry) > 1:
            found[stage] = entry
    return found or None


def _render_name(campaign: Campaign, channel: Channel, profile: str, as_of: dt.date, run_id: str) -> str:
    return campaign.file_name.format(
        code=campaign.code, channel=str(channel), vendor=profile,
        date=as_of.strftime("%Y%m%d"), run_id=run_id,
    )


def _check_name(name: str, campaign: Campaign) -> str:
    safe_file_name(name)
    word = clinical_word_in(name, campaign.clinical_words)
    if word:
        raise PrivacyError(f"vendor file name would contain the clinical word `{word}`")
    return name


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
) -> ExportResult:
    """Export one campaign from a working folder to ``dest`` (folder or ``sftp://`` URL).

    Same inputs, as-of date and mode give the same run id and byte-identical
    (unencrypted) vendor files. Raises :class:`DeliveryError` (nothing left behind),
    :class:`CampaignError`, :class:`PrivacyError` or :class:`StageInputError`.
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
    # encryption keys are checked before any data is read
    for ch, vendor in c.vendors.items():
        if vendor.encrypt is not None:
            try:
                check_recipient(vendor.encrypt)
            except DeliveryError as exc:
                raise DeliveryError(f"vendors.{ch}.encrypt: {exc.message}", path=c.path) from exc

    pfile = patients_path(work)
    efile = wd.require(work, wd.ELIGIBILITY, produced_by="evaluate")
    inputs = {
        pfile.name: wd.sha256_file(pfile),
        efile.name: wd.sha256_file(efile),
    }
    if c.path is not None:
        inputs[f"campaign:{c.path.name}"] = wd.sha256_file(c.path)
    for sup in c.suppression:
        inputs[f"suppression:{sup.path.name}"] = wd.sha256_file(sup.path)
    inputs_hash = hashlib.sha256(
        json.dumps(inputs, sort_keys=True).encode() + f"|{as_of}|{mode}".encode()
    ).hexdigest()
    run_id = run_id or f"r{inputs_hash[:12]}"
    if not RUN_ID_PATTERN.match(run_id):
        raise DeliveryError("a run id may use letters, digits, `-` and `_` only (max 64)")

    led = ledger if isinstance(ledger, ContactLedger) else ContactLedger(
        Path(ledger) if ledger is not None else (c.ledger or settings.ledger_path)
    )
    patients = pl.scan_parquet(pfile)
    eligibility = pl.scan_parquet(efile)
    suppression = load_suppression(list(c.suppression))
    plan = plan_contacts(
        c, patients, eligibility, led, as_of, run_id=run_id, suppression=suppression
    ).collect()

    removed = {str(s): 0 for s in ContactStatus if s is not ContactStatus.SELECTED}
    for status, n in plan.group_by("contact_status").len().iter_rows():
        if status in removed:
            removed[status] = n
    chosen = plan.filter(pl.col("contact_status") == str(ContactStatus.SELECTED))
    if mode is ExportMode.DELTA:
        removed["already_sent"] = int(chosen.get_column("already_sent").sum())
        chosen = chosen.filter(~pl.col("already_sent"))
    rows = chosen.select("patient_id", "channel", "timezone", "send_after_utc").join(
        patients.with_columns(pl.col("patient_id").cast(pl.String)).collect(),
        on="patient_id", how="left",
    )

    files: list[ExportedFile] = []
    sent: dict[str, int] = {}
    written_ids: list[pl.DataFrame] = []
    removed["field_too_long"] = 0
    for ch in c.channels:
        vendor = c.vendors[ch]
        prof = resolve_profile(vendor.profile, ch, c.profiles)
        ch_rows = rows.filter(pl.col("channel") == str(ch))
        table = vendor_table(ch_rows, prof, list(vendor.fields), code=c.code, options=dict(vendor.options))
        removed["field_too_long"] += table.rejected_too_long
        sent[str(ch)] = table.frame.height
        if table.frame.height == 0:
            continue
        written_ids.append(pl.DataFrame({
            "patient_id": table.patient_ids, "channel": [str(ch)] * table.frame.height,
        }, schema={"patient_id": pl.String, "channel": pl.String}))
        blob, header_len = to_csv_bytes(table.frame, prof)
        parts = split_csv(blob, header_len, prof.max_file_bytes, prof.line_terminator)
        stem = _render_name(c, ch, prof.name, as_of, run_id)
        for i, part in enumerate(parts, start=1):
            name = f"{stem}_part{i:03d}" if len(parts) > 1 else stem
            name = f"{name}.{prof.extension}"
            plain_sha = hashlib.sha256(part).hexdigest()
            data, fpr = part, None
            if vendor.encrypt is not None:
                data = encrypt_bytes(part, vendor.encrypt)
                fpr = vendor.encrypt.recipient.upper()
                name += ".asc" if vendor.encrypt.armor else ".gpg"
            n_rows = part.count(prof.line_terminator.encode()) - 1
            files.append(ExportedFile(
                name=_check_name(name, c), channel=str(ch), profile=prof.name, rows=n_rows,
                size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                plaintext_sha256=plain_sha, encrypted_to=fpr, data=data,
            ))
    trigger = _check_name(f"{c.code}_{as_of.strftime('%Y%m%d')}_{run_id}.done", c)

    elig_rules = (
        eligibility.filter(pl.col("rule_id").is_in(c.audience.rule_ids()))
        .select(pl.col("rule_id"), pl.col("rule_version").cast(pl.String)
                if "rule_version" in eligibility.collect_schema() else pl.lit(None, pl.String).alias("rule_version"))
        .unique().sort("rule_id", "rule_version").collect()
    )
    manifest: dict[str, Any] = {
        "format": 1,
        "campaign_code": c.code,
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "mode": str(mode),
        "planned_send_utc": planned_send_utc(as_of, c.schedule).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "destination": destination.describe(),
        "counts": {
            "patients": plan.height,
            "in_audience": int(plan.get_column("in_audience").sum()),
            "sent": sum(sent.values()),
            "per_channel": sent,
            "removed": removed,
        },
        "files": [
            {"name": f.name, "channel": f.channel, "profile": f.profile, "rows": f.rows,
             "bytes": f.size, "sha256": f.sha256, "plaintext_sha256": f.plaintext_sha256,
             "encrypted_to": f.encrypted_to}
            for f in files
        ],
        "trigger": trigger,
        "rules": [{"rule_id": r, "rule_version": v} for r, v in elig_rules.iter_rows()],
        "reference": _reference_vintages(work),
        "inputs": {"files": inputs, "hash": inputs_hash},
        "allow_phi": dict(sorted(c.allow_phi.items())),
        "fields": {str(ch): list(v.fields) for ch, v in c.vendors.items()},
        "encryption": {
            str(ch): v.encrypt.recipient.upper() for ch, v in c.vendors.items() if v.encrypt is not None
        },
        "suppression_counts": suppression.counts,
    }
    if isinstance(destination, FolderDestination):
        manifest_path = destination.path / MANIFEST
    else:
        manifest_path = work / "exports" / f"{c.code}_{as_of.strftime('%Y%m%d')}_{run_id}" / MANIFEST
    result = ExportResult(
        campaign_code=c.code, run_id=run_id, as_of=as_of, mode=mode, dry_run=dry_run,
        destination=destination.describe(), sent=sent, removed=removed, files=files,
        manifest=manifest, manifest_path=None if dry_run else manifest_path,
        trigger=None if dry_run else trigger, ledger_rows=0,
    )
    if dry_run:
        log.info("dry run: nothing written", files=len(files), sent=sum(sent.values()))
        return result
    contacts = pl.concat(written_ids) if written_ids else pl.DataFrame(
        schema={"patient_id": pl.String, "channel": pl.String}
    )
    ledger_rows = _deliver(
        open_transport(destination, c.sftp), files, manifest, manifest_path, trigger, led,
        contacts, c, run_id, planned_send_utc(as_of, c.schedule),
    )
    log.info("export complete", files=len(files), sent=sum(sent.values()), ledger_rows=ledger_rows)
    return ExportResult(**{**result.__dict__, "ledger_rows": ledger_rows})


def _deliver(
    transport: Transport,
    files: list[ExportedFile],
    manifest: dict[str, Any],
    manifest_path: Path,
    trigger: str,
    ledger: ContactLedger,
    contacts: pl.DataFrame,
    campaign: Campaign,
    run_id: str,
    sent_at: dt.datetime,
) -> int:
    published: list[str] = []
    staged: list[str] = []
    manifest_written = False
    recorded = False
    trigger_started = False
    # A rerun of the same run (same inputs, same run id) finds its files already delivered:
    # they are left alone, and neither they nor the earlier run's ledger rows are undone
    # if this attempt fails.
    delivered = {name for name in [f.name for f in files] + [trigger] if transport.exists(name)}
    earlier_rows = ledger.has_run(run_id)
    try:
        for f in files:
            if f.name in delivered:
                continue
            staged.append(f.name)
            transport.stage(f.name, f.data)
        for f in files:
            if f.name in delivered:
                continue
            transport.publish(f.name)
            published.append(f.name)
        wd.write_json(manifest_path, manifest)
        manifest_written = True
        written = ledger.record(contacts, campaign_code=campaign.code, run_id=run_id, sent_at=sent_at)
        recorded = True
        body = json.dumps(
            {"run_id": run_id, "campaign_code": campaign.code,
             "files": [{"name": f.name, "rows": f.rows, "bytes": f.size, "sha256": f.sha256} for f in files]},
            indent=2, sort_keys=True,
        ).encode() + b"\n"
        trigger_started = True
        transport.put(trigger, body)
        return written
    except BaseException as exc:
        for name in staged:
            transport.discard(name, final=name in published)
        if trigger_started and trigger not in delivered:
            transport.discard(trigger, final=True)
        if manifest_written and not earlier_rows:
            manifest_path.unlink(missing_ok=True)
        if recorded and not earlier_rows:
            ledger.forget_run(run_id)
        if isinstance(exc, SegmentError) and not isinstance(exc, DeliveryError):
            raise
        if isinstance(exc, DeliveryError):
            raise DeliveryError(
                f"{exc.message}; nothing was delivered and no contacts were recorded",
                path=exc.path,
            ) from exc
        if isinstance(exc, OSError):
            raise DeliveryError(
                f"writing vendor files failed ({type(exc).__name__}: {exc.strerror or exc}); "
                "nothing was delivered and no contacts were recorded"
            ) from exc
        raise
    finally:
        transport.close()
