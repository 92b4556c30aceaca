"""Did it work? Completion in the contacted arm against the randomized holdout.

``measure_campaign(campaign, workdir)`` reads the arms, contacts and vendor feedback the
contact ledger recorded for a campaign with a ``holdout:``, and a later extract's patients
and events; it evaluates the campaign's rules again for the assigned patients, as of the end
of each one's window (:mod:`.completion`), counts who completed within the window
(:mod:`.cohort`), compares the arms with
Newcombe intervals, by every audit group, with cost (:mod:`.document`, :mod:`.stats`),
and writes ``measure.json`` and ``measure.html``. ``plan_campaign`` gives the minimum
detectable effect before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment import workdir as wd
from segment.audit.metrics import available_dimensions
from segment.audit.power import plan_section
from segment.campaign.model import Arm, RuleStatus
from segment.errors import CampaignError, ConfigError
from segment.log import get_logger
from segment.measure.cohort import assignments, cohort
from segment.measure.completion import completions, extract_frames
from segment.measure.document import build_document
from segment.measure.html import render_html

if TYPE_CHECKING:
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.model import Campaign

__all__ = ["MEASURE_HTML", "MEASURE_JSON", "MeasureResult", "measure_campaign", "parse_window", "plan_campaign"]

MEASURE_JSON = "measure.json"
MEASURE_HTML = "measure.html"
DEFAULT_WINDOW_DAYS = 90

_log = get_logger("measure")
_WINDOW = re.compile(r"^\s*(\d{1,4})\s*([dw]?)\s*$")


def parse_window(text: str) -> int:
    """``90d`` -> 90, ``12w`` -> 84, ``30`` -> 30 (days); a clear error otherwise."""
    m = _WINDOW.match(text)
    days = int(m.group(1)) * (7 if m.group(2) == "w" else 1) if m else 0
    if not m or not 1 <= days <= 3660:
        raise ConfigError(
            f"option `--window`: found {text!r}; valid options are: a number of days or weeks from 1d to 3660d, "
            "for example 90d or 12w", key="window")
    return days


@dataclass(frozen=True)
class MeasureResult:
    """What a measurement produced: the published document and where it was written."""

    document: dict[str, Any]
    json_path: Path | None = None
    html_path: Path | None = None


def completion_rules(campaign: Campaign) -> list[str]:
    """The audience rules a completion is counted on: those selected while ``due``."""
    rules = []
    for rule, sel in [*campaign.audience.all.items(), *campaign.audience.any.items()]:
        statuses = sel if isinstance(sel, list) else [sel]
        if RuleStatus.DUE in statuses or "due" in [str(s) for s in statuses]:
            rules.append(str(rule))
    if not rules:
        raise CampaignError(
            "the campaign's audience selects no rule while `due`, so there is no completion to measure",
            path=campaign.path, key="audience")
    return list(dict.fromkeys(rules))


def _load(campaign: Campaign | str | Path) -> Campaign:
    from segment.campaign import load_campaign

    c = load_campaign(campaign) if isinstance(campaign, str | Path) else campaign
    if c.holdout is None:
        raise CampaignError(
            "the campaign has no `holdout:`, so there is nothing to compare with; add "
            "`holdout: {percent: 10, seed: ...}` before the next send", path=c.path, key="holdout")
    return c


def _ledger(c: Campaign, ledger: ContactLedger | str | Path | None) -> ContactLedger:
    from segment.campaign.ledger import ContactLedger
    from segment.config import Settings

    led = ledger if isinstance(ledger, ContactLedger) else ContactLedger(
        ledger or c.ledger or Settings.from_env().ledger_path)
    if not led.path.exists():
        raise CampaignError(f"no contact ledger at {led.path}: nothing was sent for {c.code} yet",
                            path=c.path, key="ledger")
    return led


def measure_campaign(
    campaign: Campaign | str | Path,
    workdir: str | Path,
    *,
    as_of: dt.date | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    ledger: ContactLedger | str | Path | None = None,
    out_html: str | Path | None = None,
    groups: list[str] | None = None,
    rules_dir: str | Path | None = None,
) -> MeasureResult:
    """Measure a campaign's completion lift on a later extract; write ``measure.json``/``.html``.

    The campaign's ``due`` audience rules (from ``rules_dir``, default the campaign's
    ``rules:`` or the shipped rules) are evaluated on the working folder's patients and
    events for every patient assigned to either arm, as of the end of their window:
    ``as_of`` (default today) caps it, so events after it are not counted, and patients
    whose window has not ended are reported as follow-up incomplete. The HTML goes to
    ``out_html`` (default ``WORKDIR/measure.html``) and the JSON beside it.
    """
    from segment.rules.loader import default_rules_dir, load_rules

    c = _load(campaign)
    rules = completion_rules(c)
    ruleset = load_rules(rules_dir or c.rules or default_rules_dir(), rules)  # every rule checked before data
    led = _ledger(c, ledger)
    folder = Path(workdir)
    as_of = as_of or dt.date.today()
    arms = led.arms(c.code)
    if arms.height == 0:
        raise CampaignError(f"the ledger holds no holdout assignment for {c.code}: export the campaign first",
                            path=c.path, key="holdout")
    extract = extract_frames(folder)
    extra = [*c.audit.groups, *(groups or [])]
    dims, skipped = available_dimensions(extract.patients.collect_schema().names(), extra)
    contacts = led.contacts(c.code)
    contact_ids = arms.filter(pl.col("arm") == str(Arm.CONTACT)).select("patient_id")
    contacts = contacts.join(contact_ids, on="patient_id", how="semi")
    assigned = assignments(arms, contacts, extract.patients, window_days=window_days, as_of=as_of,
                           outcomes=led.delivery_outcomes(c.code)).collect()
    windows = assigned.filter(pl.col("patient_id").is_not_null() & ~pl.col("duplicate")).select(
        "patient_id", "window_end")
    warnings: list[str] = []
    done = completions(windows, extract, ruleset, warnings=warnings).collect(engine="streaming")
    frame = cohort(assigned.lazy(), extract.patients, done.lazy(), window_days=window_days, as_of=as_of,
                   dimensions=dims).collect()
    messages = {str(k): int(v) for k, v in contacts.group_by("channel").len().rows()}
    design = {
        "percent": c.holdout.percent if c.holdout else None,
        "stratify": list(c.holdout.stratify) if c.holdout else [],
        "baseline_rate": c.holdout.baseline_rate if c.holdout else None,
        "assigned": {a: int(n) for a, n in arms.group_by("arm").len().sort("arm").rows()},
        "runs": sorted(set(arms.get_column("run_id").to_list())),
        "first_assigned": arms.get_column("assigned_at").min().date().isoformat(),  # type: ignore[union-attr]
    }
    document = build_document(
        frame, dimensions=list(dims), campaign={"code": c.code, "channels": [str(ch) for ch in c.channels]},
        as_of=as_of, window_days=window_days, rules=rules, messages=messages,
        costs={str(k): float(v) for k, v in c.costs.items()}, design=design, skipped_dimensions=skipped,
    )
    document["notes"].extend(w for w in dict.fromkeys(warnings) if w not in document["notes"])
    html_path = Path(out_html) if out_html is not None else folder / MEASURE_HTML
    json_path = html_path.with_suffix(".json")
    wd.write_json(json_path, document)
    with wd.atomic_open(html_path, "w", encoding="utf-8") as fh:
        fh.write(render_html(document))
    lost = frame.filter(pl.col("lost").is_not_null()).height
    _log.info("measure written", assigned=frame.height, lost=lost, dimensions=len(document["dimensions"]))
    return MeasureResult(document=document, json_path=json_path, html_path=html_path)


def plan_campaign(
    campaign: Campaign | str | Path,
    workdir: str | Path,
    *,
    as_of: dt.date | None = None,
    ledger: ContactLedger | str | Path | None = None,
) -> dict[str, Any]:
    """Before sending: the arms the next export would draw and the minimum detectable effect.

    Uses the campaign's contact plan over the working folder (no file is written) and its
    ``holdout.baseline_rate``. The result's ``warning`` says when a 3-point difference
    cannot be detected at 80% power.
    """
    from segment.campaign import plan_contacts
    from segment.campaign.ledger import ContactLedger

    c = _load(campaign)
    folder = Path(workdir)
    enriched = wd.scan(folder, wd.ENRICHED, produced_by="enrich")
    eligibility = wd.scan(folder, wd.ELIGIBILITY, produced_by="evaluate")
    led: ContactLedger | None = None
    path = ledger.path if isinstance(ledger, ContactLedger) else Path(ledger or c.ledger or "") if (ledger or c.ledger) else None
    if path is not None and path.exists():
        led = ContactLedger(path)
    plan = plan_contacts(c, enriched, eligibility, led, as_of or c.as_of or dt.date.today()).collect()
    return arms_plan(plan, c)


def arms_plan(plan: pl.DataFrame, c: Campaign) -> dict[str, Any]:
    """The plan section from a contact plan's ``arm`` column (used by the audit too)."""
    counts = dict(plan.filter(pl.col("arm").is_not_null()).group_by("arm").len().rows())
    assert c.holdout is not None
    return plan_section(int(counts.get(str(Arm.CONTACT), 0)), int(counts.get(str(Arm.HOLDOUT), 0)),
                        c.holdout.baseline_rate, source="campaign holdout.baseline_rate")
