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
from segment.campaign.select import listed
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


@dataclass(frozen=True)
class _Table:
    """One vendor file's cells before serialization, and the patients it names, in file order."""

    channel: Channel
    profile: ResolvedProfile
    frame: pl.DataFrame
    patient_ids: pl.Series
    #: the column holding the vendor's own key for each row ("" when the profile has none)
    key_column: str = ""


def _removed(c: Campaign, plan: pl.DataFrame) -> dict[str, int]:
    """Per contact status other than selected (holdout and journey ones only when used): rows removed."""
    removed = {str(s): 0 for s in ContactStatus if s is not ContactStatus.SELECTED
               and (s is not ContactStatus.HOLDOUT or c.holdout is not None)
               and (s is not ContactStatus.JOURNEY_WAITING or c.journey is not None)}
    for status, n in plan.group_by("contact_status").len().iter_rows():
        if status in removed:
            removed[status] = n
    return removed


def _of(people: pl.LazyFrame, ids: pl.Series) -> pl.LazyFrame:
    """The rows of ``people`` with one of ``ids``: the filter is applied while the patient file is
    read, so a join of the chosen few holds only their rows, not every patient's (issue #18)."""
    return people.filter(listed("patient_id", ids))


def _rows(chosen: pl.DataFrame, people: pl.LazyFrame, at: dt.datetime) -> pl.DataFrame:
    """The chosen contacts joined to their patient rows, with SFMC's time-zone columns."""
    extra = [c for c in ("variant", "journey_step") if c in chosen.columns]
    rows = chosen.lazy().select("patient_id", "channel", "timezone", "send_after_utc", *extra).with_columns(
        *([pl.col("variant").alias(VARIANT_FIELD)] if "variant" in extra else [])).join(
        _of(people, chosen.get_column("patient_id")), on="patient_id", how="left",
    ).collect()
    sms_rows = rows.filter(pl.col("channel") == str(Channel.SMS))
    return rows.join(zone_columns(sms_rows.get_column("timezone"), at), on="timezone", how="left")


def _channel_tables(
    c: Campaign, rows: pl.DataFrame, removed: dict[str, int], failures: list[RuleFailure],
    *, now: dt.datetime | None, dry_run: bool,
) -> tuple[list[_Table], dict[str, int]]:
    """Each channel's vendor table (empty ones left out) and rows sent per channel.

    Rows dropped for an identifier over its byte limit are counted in ``removed``; import
    rule failures are added to ``failures``.
    """
    tables: list[_Table] = []
    sent: dict[str, int] = {}
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
        tables.append(_Table(ch, prof, table.frame, table.patient_ids.cast(pl.String),
                             key if key is not None and key in table.frame.columns else ""))
    return tables, sent


def _unsubscribe_tables(
    c: Campaign, unsubscribe: dict[Channel, pl.DataFrame], people: pl.LazyFrame, failures: list[RuleFailure]
) -> tuple[list[_Table], pl.DataFrame]:
    """Each vendor's unsubscribe table, and who they name (``vendor``, ``patient_id``, ``channel``)."""
    tables: list[_Table] = []
    named: list[pl.DataFrame] = []
    for ch, who in unsubscribe.items():
        uprof = unsubscribe_profile(resolve_profile(c.vendors[ch].profile, ch, c.profiles))
        if uprof is None or who.height == 0:
            continue
        rows = who.lazy().join(_of(people, who.get_column("patient_id")), on="patient_id", how="left").collect()
        table = vendor_table(rows, uprof, [], code=c.code, options=dict(c.vendors[ch].options))
        failures += rule_failures(table.frame, uprof)
        tables.append(_Table(ch, uprof, table.frame, table.patient_ids.cast(pl.String)))
        named.append(table.patient_ids.cast(pl.String).rename("patient_id").to_frame().select(
            pl.lit(vendor_name(uprof)).alias("vendor"), "patient_id", pl.lit(str(ch)).alias("channel")))
    return tables, pl.concat(named) if named else pl.DataFrame(schema=UNSUBSCRIBE_SCHEMA)


def vendor_name(prof: ResolvedProfile) -> str:
    """The vendor a profile writes for (the profile's own name for a profile without a spec)."""
    return prof.spec.vendor if prof.spec is not None else prof.name


def _files(c: Campaign, table: _Table, stem: str) -> tuple[list[ExportedFile], pl.DataFrame]:
    """The parts of one vendor file, and one contact row per patient each part holds."""
    files: list[ExportedFile] = []
    contacts: list[pl.DataFrame] = []
    offset = 0
    frame = table.frame
    keys = (frame.get_column(table.key_column).cast(pl.String) if table.key_column
            else pl.Series([None] * frame.height, dtype=pl.String))
    for name, data, plain, n_rows in _parts(c, table.channel, table.profile, frame, stem):
        files.append(_file(c, table.channel, table.profile, name, data, plain, n_rows))
        # records never span lines, so part i holds the next n_rows patients in file order
        contacts.append(pl.DataFrame({
            "patient_id": table.patient_ids.slice(offset, n_rows),
            "vendor_key": keys.slice(offset, n_rows),
        }).select("patient_id", pl.lit(str(table.channel)).alias("channel"), pl.lit(name).alias("file_name"),
                  pl.lit(vendor_name(table.profile)).alias("vendor"), "vendor_key"))
        offset += n_rows
    return files, pl.concat(contacts)


def _contacts(chosen: pl.DataFrame, written: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per contact written (:data:`CONTACT_SCHEMA`), with its journey step and variant."""
    if not written:
        return pl.DataFrame(schema=CONTACT_SCHEMA)
    tags = chosen.select(
        "patient_id",
        pl.col("journey_step").cast(pl.Int32).alias("step") if "journey_step" in chosen.columns
        else pl.lit(None, pl.Int32).alias("step"),
        pl.col("variant") if "variant" in chosen.columns else pl.lit(None, pl.String).alias("variant"),
    )
    return pl.concat(written).join(tags, on="patient_id", how="left").select(list(CONTACT_SCHEMA))


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
    removed = _removed(c, plan)
    chosen = plan.filter(pl.col("contact_status") == str(ContactStatus.SELECTED))
    if delta:
        removed["already_sent"] = int(chosen.get_column("already_sent").sum())
        chosen = chosen.filter(~pl.col("already_sent"))
    people = patients.with_columns(pl.col("patient_id").cast(pl.String))
    failures: list[RuleFailure] = []
    tables, sent = _channel_tables(c, _rows(chosen, people, planned_send_utc(as_of, c.schedule)), removed,
                                   failures, now=now, dry_run=dry_run)
    unsub_tables, unsubscribes = _unsubscribe_tables(c, unsubscribe or {}, people, failures)
    raise_failures(failures)  # before any byte is produced
    files: list[ExportedFile] = []
    written: list[pl.DataFrame] = []
    for table in tables:
        parts, contacts = _files(c, table, render_name(c, table.channel, table.profile.name, as_of, run_id))
        files += parts
        written.append(contacts)
    for table in unsub_tables:
        files += _files(c, table, render_name(c, table.channel, table.profile.name, as_of, run_id)
                        + "_unsubscribe")[0]
    return BuiltExport(
        files=files, contacts=_contacts(chosen, written), sent=sent, removed=removed, patients=plan.height,
        in_audience=int(plan.get_column("in_audience").sum()), unsubscribes=unsubscribes,
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
