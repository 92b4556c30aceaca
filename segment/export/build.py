"""Building one export in memory: vendor files from a contact plan, who is in which file, the manifest.

Nothing here writes anywhere: :mod:`segment.export.core` calls it inside the ledger's
write transaction (so the plan's frequency caps see every other run's contacts) and
:mod:`segment.export.delivery` puts the result at the destination.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from segment import workdir as wd
from segment.campaign.model import Campaign, Channel, ContactStatus
from segment.campaign.phi import clinical_word_in
from segment.campaign.profiles import ResolvedProfile, resolve_profile
from segment.campaign.quiet_hours import planned_send_utc
from segment.campaign.suppression import Suppression
from segment.errors import PrivacyError
from segment.export.checks import RuleFailure, check_schedule, raise_failures, rule_failures
from segment.export.encrypt import encrypt_bytes
from segment.export.unsubscribe import UNSUBSCRIBE_SCHEMA, unsubscribe_profile
from segment.export.writer import safe_file_name, split_csv, to_csv_bytes, vendor_table

CONTACT_SCHEMA = {"patient_id": pl.String, "channel": pl.String, "file_name": pl.String,
                  "vendor": pl.String, "vendor_key": pl.String, "step": pl.Int32, "variant": pl.String}
#: the derived field carrying a patient's message variant code (written whenever a campaign declares variants)
VARIANT_FIELD = "variant_code"


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

    def entry(self) -> dict[str, Any]:
        """The file as the manifest and the delivery journal describe it (no PHI)."""
        return {"name": self.name, "channel": self.channel, "profile": self.profile, "rows": self.rows,
                "bytes": self.size, "sha256": self.sha256, "plaintext_sha256": self.plaintext_sha256,
                "encrypted_to": self.encrypted_to}

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> ExportedFile:
        """A file described by a manifest entry (its bytes are not kept)."""
        return cls(name=entry["name"], channel=entry["channel"], profile=entry["profile"],
                   rows=int(entry["rows"]), size=int(entry["bytes"]), sha256=entry["sha256"],
                   plaintext_sha256=entry["plaintext_sha256"], encrypted_to=entry.get("encrypted_to"),
                   data=b"")


@dataclass(frozen=True)
class BuiltExport:
    """The vendor files of one export and the contacts each one holds."""

    files: list[ExportedFile]
    #: ``patient_id``, ``channel``, ``file_name``: one row per contact written
    contacts: pl.DataFrame
    sent: dict[str, int]
    removed: dict[str, int]
    patients: int
    in_audience: int
    #: ``vendor``, ``patient_id``, ``channel``: who the unsubscribe files name
    unsubscribes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=UNSUBSCRIBE_SCHEMA))


def zone_columns(zones: pl.Series, at: dt.datetime) -> pl.DataFrame:
    """Per IANA zone: ``utc_offset`` (hours at ``at``, e.g. ``-5``) and ``is_honor_dst`` (``true``/``false``).

    One row per distinct zone (a handful), for SFMC MobileConnect's time-zone sends.
    """
    rows = []
    for name in zones.drop_nulls().unique().sort().to_list():
        zone = ZoneInfo(name)
        offset = at.astimezone(zone).utcoffset() or dt.timedelta(0)
        jan, jul = (dt.datetime(at.year, m, 1, tzinfo=dt.UTC).astimezone(zone).dst() for m in (1, 7))
        hours = offset.total_seconds() / 3600
        rows.append((name, f"{hours:g}", "true" if (jan or jul) else "false"))
    return pl.DataFrame(rows, schema={"timezone": pl.String, "utc_offset": pl.String, "is_honor_dst": pl.String},
                        orient="row")


def _parts(
    c: Campaign, ch: Channel, prof: ResolvedProfile, frame: pl.DataFrame, stem: str
) -> list[tuple[str, bytes, str, int]]:
    """(file name, bytes as delivered, plaintext sha256, rows) for each part of one vendor file."""
    vendor = c.vendors[ch]
    blob, header_len = to_csv_bytes(frame, prof)
    parts = split_csv(blob, header_len, prof.max_file_bytes, prof.line_terminator)
    out = []
    for i, part in enumerate(parts, start=1):
        name = f"{stem}_part{i:03d}" if len(parts) > 1 else stem
        name = f"{name}.{prof.extension}"
        data = part
        if vendor.encrypt is not None:
            data = encrypt_bytes(part, vendor.encrypt)
            name += ".asc" if vendor.encrypt.armor else ".gpg"
        out.append((check_name(name, c), data, hashlib.sha256(part).hexdigest(),
                    part.count(prof.line_terminator.encode()) - 1))
    return out


def _file(c: Campaign, ch: Channel, prof: ResolvedProfile, name: str, data: bytes, plain: str, rows: int
          ) -> ExportedFile:
    vendor = c.vendors[ch]
    return ExportedFile(
        name=name, channel=str(ch), profile=prof.name, rows=rows, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), plaintext_sha256=plain,
        encrypted_to=vendor.encrypt.recipient.upper() if vendor.encrypt is not None else None, data=data,
    )


def render_name(campaign: Campaign, channel: Channel, profile: str, as_of: dt.date, run_id: str) -> str:
    """A vendor file's stem from the campaign's ``file_name`` pattern."""
    return campaign.file_name.format(
        code=campaign.code, channel=str(channel), vendor=profile,
        date=as_of.strftime("%Y%m%d"), run_id=run_id,
    )


def check_name(name: str, campaign: Campaign) -> str:
    """``name`` if it is a safe file name without a clinical word."""
    safe_file_name(name)
    word = clinical_word_in(name, campaign.clinical_words)
    if word:
        raise PrivacyError(f"vendor file name would contain the clinical word `{word}`")
    return name


def trigger_name(campaign: Campaign, as_of: dt.date, run_id: str) -> str:
    """The ``.done`` trigger file of a run."""
    return check_name(f"{campaign.code}_{as_of.strftime('%Y%m%d')}_{run_id}.done", campaign)


def manifest_name(campaign: Campaign, run_id: str) -> str:
    """The manifest of one run of one campaign: ``manifest-<code>-<run>.json``."""
    return check_name(f"manifest-{campaign.code}-{run_id}.json", campaign)


def build_files(
    campaign: Campaign,
    plan: pl.DataFrame,
    patients: pl.LazyFrame,
    *,
    delta: bool,
    as_of: dt.date,
    run_id: str,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    unsubscribe: dict[Channel, pl.DataFrame] | None = None,
) -> BuiltExport:
    """Vendor files (split and encrypted as each profile says) for the selected rows of ``plan``.

    Every file is checked against its vendor's import rules (and SMS send times against the
    vendor's scheduling window from ``now``) before any is produced. ``unsubscribe``: per
    channel, the ``patient_id`` of people to name in the vendor's unsubscribe file.
    """
    c = campaign
    removed = {str(s): 0 for s in ContactStatus if s is not ContactStatus.SELECTED
               and (s is not ContactStatus.HOLDOUT or c.holdout is not None)
               and (s is not ContactStatus.JOURNEY_WAITING or c.journey is not None)}
    for status, n in plan.group_by("contact_status").len().iter_rows():
        if status in removed:
            removed[status] = n
    chosen = plan.filter(pl.col("contact_status") == str(ContactStatus.SELECTED))
    if delta:
        removed["already_sent"] = int(chosen.get_column("already_sent").sum())
        chosen = chosen.filter(~pl.col("already_sent"))
    extra = [c for c in ("variant", "journey_step") if c in chosen.columns]
    ids_as_text = patients.with_columns(pl.col("patient_id").cast(pl.String))
    rows = chosen.lazy().select("patient_id", "channel", "timezone", "send_after_utc", *extra).with_columns(
        *([pl.col("variant").alias(VARIANT_FIELD)] if "variant" in extra else [])).join(
        ids_as_text, on="patient_id", how="left",
    ).collect()
    sms_rows = rows.filter(pl.col("channel") == str(Channel.SMS))
    at = planned_send_utc(as_of, c.schedule)
    rows = rows.join(zone_columns(sms_rows.get_column("timezone"), at), on="timezone", how="left")
    files: list[ExportedFile] = []
    sent: dict[str, int] = {}
    contacts: list[pl.DataFrame] = []
    failures: list[RuleFailure] = []
    pending: list[tuple[Channel, ResolvedProfile, pl.DataFrame, pl.Series, str]] = []
    removed["field_too_long"] = 0
    for ch in c.channels:
        vendor = c.vendors[ch]
        prof = resolve_profile(vendor.profile, ch, c.profiles)
        mine = rows.filter(pl.col("channel") == str(ch))
        fields = list(vendor.fields)
        if c.variants and VARIANT_FIELD not in fields:
            fields.append(VARIANT_FIELD)  # only the neutral code: the vendor maps it to a template
        table = vendor_table(mine, prof, fields, code=c.code, options=dict(vendor.options))
        removed["field_too_long"] += table.rejected_too_long
        sent[str(ch)] = table.frame.height
        if table.frame.height == 0:
            continue
        failures += rule_failures(table.frame, prof)
        if now is not None and ch is Channel.SMS:
            check_schedule(mine.get_column("send_after_utc"), prof, now, dry_run=dry_run)
        key = prof.spec.key_header.get(str(ch)) if prof.spec is not None else None
        pending.append((ch, prof, table.frame, table.patient_ids.cast(pl.String),
                        key if key in table.frame.columns else ""))
    unsub_frames: list[pl.DataFrame] = []
    unsub_pending: list[tuple[Channel, ResolvedProfile, pl.DataFrame]] = []
    for ch, who in (unsubscribe or {}).items():
        prof = resolve_profile(c.vendors[ch].profile, ch, c.profiles)
        uprof = unsubscribe_profile(prof)
        if uprof is None or who.height == 0:
            continue
        people = who.lazy().join(ids_as_text, on="patient_id", how="left").collect()
        table = vendor_table(people, uprof, [], code=c.code, options=dict(c.vendors[ch].options))
        failures += rule_failures(table.frame, uprof)
        unsub_pending.append((ch, uprof, table.frame))
        unsub_frames.append(pl.DataFrame({"vendor": [uprof.spec.vendor if uprof.spec else uprof.name] * table.frame.height,
                                          "patient_id": table.patient_ids.cast(pl.String),
                                          "channel": [str(ch)] * table.frame.height}, schema=UNSUBSCRIBE_SCHEMA))
    raise_failures(failures)  # before any byte is produced
    for ch, prof, frame, ids, key in pending:
        stem = render_name(c, ch, prof.name, as_of, run_id)
        offset = 0
        vendor_name = prof.spec.vendor if prof.spec is not None else prof.name
        keys = frame.get_column(key) if key else pl.Series([None] * frame.height, dtype=pl.String)
        for name, data, plain, n_rows in _parts(c, ch, prof, frame, stem):
            files.append(_file(c, ch, prof, name, data, plain, n_rows))
            # records never span lines, so part i holds the next n_rows patients in file order
            contacts.append(pl.DataFrame({
                "patient_id": ids.slice(offset, n_rows), "channel": [str(ch)] * n_rows,
                "file_name": [name] * n_rows, "vendor": [vendor_name] * n_rows,
                "vendor_key": keys.slice(offset, n_rows).cast(pl.String),
            }, schema={k: v for k, v in CONTACT_SCHEMA.items() if k not in ("step", "variant")}))
            offset += n_rows
    for ch, uprof, frame in unsub_pending:
        stem = render_name(c, ch, uprof.name, as_of, run_id) + "_unsubscribe"
        for name, data, plain, n_rows in _parts(c, ch, uprof, frame, stem):
            files.append(_file(c, ch, uprof, name, data, plain, n_rows))
    tags = chosen.select("patient_id", pl.col("journey_step").cast(pl.Int32).alias("step") if "journey_step" in extra
                         else pl.lit(None, pl.Int32).alias("step"),
                         pl.col("variant") if "variant" in extra else pl.lit(None, pl.String).alias("variant"))
    return BuiltExport(
        files=files,
        contacts=(pl.concat(contacts).join(tags, on="patient_id", how="left").select(list(CONTACT_SCHEMA))
                  if contacts else pl.DataFrame(schema=CONTACT_SCHEMA)),
        sent=sent, removed=removed, patients=plan.height,
        in_audience=int(plan.get_column("in_audience").sum()),
        unsubscribes=pl.concat(unsub_frames) if unsub_frames else pl.DataFrame(schema=UNSUBSCRIBE_SCHEMA),
    )


def reference_vintages(workdir: Path) -> Any:
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


def build_manifest(
    campaign: Campaign,
    built: BuiltExport,
    *,
    run_id: str,
    as_of: dt.date,
    mode: str,
    destination: str,
    trigger: str,
    eligibility: pl.LazyFrame,
    workdir: Path,
    inputs: dict[str, str],
    content_key: str,
    suppression: Suppression,
) -> dict[str, Any]:
    """The manifest of one export: counts, files and hashes, rules, reference, inputs (no PHI)."""
    c = campaign
    schema = eligibility.collect_schema()
    version = (pl.col("rule_version").cast(pl.String) if "rule_version" in schema
               else pl.lit(None, pl.String).alias("rule_version"))
    elig_rules = (
        eligibility.filter(pl.col("rule_id").is_in(c.audience.rule_ids()))
        .select(pl.col("rule_id"), version).unique().sort("rule_id", "rule_version").collect()
    )
    return {
        "format": 1,
        "campaign_code": c.code,
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "mode": mode,
        "planned_send_utc": planned_send_utc(as_of, c.schedule).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "destination": destination,
        "counts": {
            "patients": built.patients,
            "in_audience": built.in_audience,
            "sent": sum(built.sent.values()),
            "per_channel": built.sent,
            "removed": built.removed,
        },
        "files": [f.entry() for f in built.files],
        "trigger": trigger,
        "rules": [{"rule_id": r, "rule_version": v} for r, v in elig_rules.iter_rows()],
        "reference": reference_vintages(workdir),
        "inputs": {"files": inputs, "hash": content_key},
        "allow_phi": dict(sorted(c.allow_phi.items())),
        "fields": {str(ch): list(v.fields) for ch, v in c.vendors.items()},
        "encryption": {
            str(ch): v.encrypt.recipient.upper() for ch, v in c.vendors.items() if v.encrypt is not None
        },
        "suppression_counts": suppression.counts,
    }


def trigger_body(campaign_code: str, run_id: str, files: list[ExportedFile]) -> str:
    """The ``.done`` file's text: what the vendor should find (names, rows, sizes, hashes)."""
    return json.dumps(
        {"run_id": run_id, "campaign_code": campaign_code,
         "files": [{"name": f.name, "rows": f.rows, "bytes": f.size, "sha256": f.sha256} for f in files]},
        indent=2, sort_keys=True,
    ) + "\n"
