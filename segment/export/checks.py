"""Checks of vendor files against their vendor's documented import rules, before anything is written.

Every rule of :mod:`segment.export.specs` that applies to a file's profile and channel is
tested on the file's cells (vectorized); all failures are collected and one
:class:`DeliveryError` names each rule, how many rows break it and the rule's source.
Also here: the scheduling window of a vendor that sends at ``send_after_utc``, and the
business associate agreement (BAA) check of a campaign.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.campaign.model import Campaign, Channel
from segment.campaign.profiles import ResolvedProfile, resolve_profile
from segment.campaign.specs import ImportRule, RuleKind
from segment.errors import DeliveryError, PrivacyError


@dataclass(frozen=True)
class RuleFailure:
    """One rule a vendor file breaks."""

    profile: str
    channel: str
    rule: ImportRule
    rows: int
    detail: str = ""

    def describe(self) -> str:
        """``profile (channel): rule id: text: N row(s) [detail] (source URL, read DATE)``."""
        what = f"{self.rows} row(s)" if self.rows else "the header"
        extra = f" [{self.detail}]" if self.detail else ""
        src = self.rule.source
        return (f"profile {self.profile} ({self.channel}): rule {self.rule.id} \"{self.rule.text}\" is broken "
                f"by {what}{extra} (source {src.url}, read {src.checked})")


#: a rule's outcome on one file: None (kept), else the rows breaking it and a detail
Broken = tuple[int, str] | None


def _header_pattern(table: pl.DataFrame, rule: ImportRule) -> Broken:
    headers = pl.Series(table.columns, dtype=pl.String)
    bad = headers.filter(~headers.str.contains(rule.pattern or "")).to_list()
    return (table.height, "headers " + ", ".join(bad)) if bad else None


def _required_headers(table: pl.DataFrame, rule: ImportRule) -> Broken:
    missing = [h for h in rule.headers if h not in table.columns]
    return (table.height, "missing " + ", ".join(missing)) if missing else None


def _any_header(table: pl.DataFrame, rule: ImportRule) -> Broken:
    if any(h in table.columns for h in rule.headers):
        return None
    return table.height, "none of " + ", ".join(rule.headers)


def _max_rows(table: pl.DataFrame, rule: ImportRule) -> Broken:
    if rule.limit is None or table.height <= rule.limit:
        return None
    return table.height, f"{table.height} rows, limit {rule.limit}"


def _cells(table: pl.DataFrame, bad: pl.Expr, detail: str = "") -> Broken:
    n = int(table.select(bad.sum()).item())
    return (n, detail) if n else None


def _cell_pattern(table: pl.DataFrame, rule: ImportRule) -> Broken:
    col = pl.col(rule.header or "")
    return _cells(table, col.is_not_null() & ~col.str.contains(rule.pattern or ""))


def _not_blank(table: pl.DataFrame, rule: ImportRule) -> Broken:
    return _cells(table, pl.col(rule.header or "").is_null())


def _unique(table: pl.DataFrame, rule: ImportRule) -> Broken:
    col = pl.col(rule.header or "")
    return _cells(table, col.is_not_null() & col.is_duplicated(), "duplicated values")


#: how each kind of rule is tested on a file's cells (vectorized)
RULE_TESTS: dict[RuleKind, Callable[[pl.DataFrame, ImportRule], Broken]] = {
    RuleKind.HEADER_PATTERN: _header_pattern,
    RuleKind.REQUIRED_HEADERS: _required_headers,
    RuleKind.ANY_HEADER: _any_header,
    RuleKind.MAX_ROWS: _max_rows,
    RuleKind.CELL_PATTERN: _cell_pattern,
    RuleKind.NOT_BLANK: _not_blank,
    RuleKind.UNIQUE: _unique,
}
#: rules about one column's cells: a file that does not write the column keeps them
CELL_RULES = frozenset({RuleKind.CELL_PATTERN, RuleKind.NOT_BLANK, RuleKind.UNIQUE})


def rule_failures(table: pl.DataFrame, prof: ResolvedProfile) -> list[RuleFailure]:
    """Every documented rule of ``prof``'s vendor that ``table`` (the file's cells) breaks."""
    if prof.spec is None:
        return []
    ch = str(prof.channel)
    out: list[RuleFailure] = []
    for rule in prof.spec.rules:
        if rule.channels and ch not in rule.channels:
            continue
        if rule.kind in CELL_RULES and (rule.header is None or rule.header not in table.columns):
            continue  # a cell rule about a column this file does not write
        broken = RULE_TESTS[rule.kind](table, rule)
        if broken is not None:
            out.append(RuleFailure(prof.name, ch, rule, *broken))
    return out


def raise_failures(failures: list[RuleFailure]) -> None:
    """One error naming every rule broken (nothing has been written yet)."""
    if failures:
        raise DeliveryError(
            "vendor file(s) would break the vendor's import rules; nothing was written: "
            + "; ".join(f.describe() for f in failures)
        )


def check_schedule(
    send_times: pl.Series, prof: ResolvedProfile, now: dt.datetime, *, dry_run: bool
) -> None:
    """Send times outside the vendor's scheduling window are an error (``--dry-run`` may plan in the past)."""
    spec = prof.spec
    if spec is None or spec.schedule is None or send_times.is_empty():
        return
    win = spec.schedule
    times = send_times.drop_nulls()
    early = now + dt.timedelta(seconds=win.min_lead_s)
    problems = []
    n_early = int((times <= early).sum())
    if n_early and not dry_run:
        problems.append(f"{n_early} row(s) are less than {win.min_lead_s} s after now "
                        f"({now.strftime('%Y-%m-%dT%H:%M:%SZ')})")
    if win.max_ahead_s is not None:
        late = now + dt.timedelta(seconds=win.max_ahead_s)
        n_late = int((times > late).sum())
        if n_late:
            problems.append(f"{n_late} row(s) are more than {win.max_ahead_s // 86400} days after now "
                            f"(latest {_stamp(times.max())}); use an --as-of closer to today")
    if problems:
        raise DeliveryError(
            f"profile {prof.name} ({prof.channel}): scheduled send times outside the vendor's window: "
            + "; ".join(problems) + f"; {win.text} (source {win.source.url}, read {win.source.checked}); "
            "nothing was written"
        )


def _stamp(value: object) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, dt.datetime) else str(value)


def min_lead(campaign: Campaign) -> dt.timedelta:
    """The longest minimum lead time of the campaign's SMS vendors (zero when none schedules)."""
    lead = 0
    for ch, vendor in campaign.vendors.items():
        if ch is not Channel.SMS:
            continue
        spec = resolve_profile(vendor.profile, ch, campaign.profiles).spec
        if spec is not None and spec.schedule is not None:
            lead = max(lead, spec.schedule.min_lead_s)
    return dt.timedelta(seconds=lead)


# -- business associate agreements -------------------------------------------------------------
def rule_kinds(workdir: Path) -> dict[str, dict[str, Any]]:
    """Per rule id, what ``evaluate-report.json`` says about it (``kind``, ``uses_events``)."""
    path = workdir / wd.EVALUATE_REPORT
    if not path.exists():
        return {}
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    rows = report.get("rules", []) if isinstance(report, dict) else []
    return {str(r["rule_id"]): r for r in rows if isinstance(r, dict) and "rule_id" in r}


def clinical_rules(campaign: Campaign, workdir: Path) -> list[str]:
    """Audience rules that select on clinical information.

    A screening rule is clinical; a risk rule is clinical unless the evaluate report says
    it reads no events (only enriched, non-clinical columns). A rule the report does not
    describe is taken as clinical.
    """
    kinds = rule_kinds(workdir)
    out = []
    for rid in campaign.audience.rule_ids():
        info = kinds.get(rid)
        if info is None or info.get("kind") != "risk" or info.get("uses_events", True):
            out.append(rid)
    return out


def baa_record(campaign: Campaign, workdir: Path) -> dict[str, Any]:
    """Check every vendor's BAA against the audience; the manifest's ``baa`` section.

    Refused: a clinical audience sent to a vendor that offers no BAA, unless the campaign
    declares ``baa: {vendor: ..., signed: true}``; with ``signed: false`` only a
    non-clinical audience may go.
    """
    clinical = clinical_rules(campaign, workdir)
    declared = {d.vendor: d for d in campaign.baa}
    vendors: dict[str, Any] = {}
    for ch, vendor in campaign.vendors.items():
        prof = resolve_profile(vendor.profile, ch, campaign.profiles)
        spec = prof.spec
        name = spec.vendor if spec is not None else prof.name
        decl = declared.get(name) or declared.get(prof.name)
        offers = spec.baa.offers if spec is not None else None
        entry: dict[str, Any] = {
            "profile": prof.name, "offers_baa": offers,
            "conditions": spec.baa.conditions if spec is not None else "unknown vendor format",
            "source": spec.baa.source.url if spec is not None and spec.baa.source else None,
            "source_read": spec.baa.source.checked if spec is not None and spec.baa.source else None,
            "declared": None if decl is None else {"signed": decl.signed, "note": decl.note},
        }
        if clinical and decl is not None and not decl.signed:
            raise PrivacyError(
                f"vendors.{ch}: the campaign declares no signed BAA with {name} (`baa: signed: false`), "
                f"so only a non-clinical audience may go to it, but audience rule(s) "
                f"{', '.join(clinical)} select on clinical information; nothing was written",
                path=campaign.path, key="baa",
            )
        if clinical and offers is False and decl is None:
            src = spec.baa.source if spec is not None else None
            raise PrivacyError(
                f"vendors.{ch}: {name} does not offer a business associate agreement "
                f"({spec.baa.conditions if spec else ''}; source {src.url if src else '?'}, read "
                f"{src.checked if src else '?'}), and audience rule(s) {', '.join(clinical)} select on "
                "clinical information, so the list is PHI; use a vendor that signs a BAA, or declare "
                f"`baa: {{vendor: {name}, signed: true, note: ...}}` if you hold one; nothing was written",
                path=campaign.path, key="baa",
            )
        vendors[str(ch)] = entry
    return {"clinical_audience": bool(clinical), "clinical_rules": clinical, "vendors": vendors}

