"""The measure stage: ``measure_campaign`` (the entry point), ``plan_campaign`` and :class:`MeasureStage`.

``measure_campaign(campaign, workdir)`` reads the arms, contacts and vendor feedback the
contact ledger recorded for a campaign with a ``holdout:``, and a later extract's patients
and events; it evaluates the campaign's rules again for the assigned patients, as of the
end of each one's window (:mod:`.completion`), counts who completed within the window
(:mod:`.cohort`), compares the arms (:mod:`.document`, :mod:`.stats`) and writes
``measure.json`` and ``measure.html``. ``segment measure`` goes through :class:`MeasureStage`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from segment import workdir as wd
from segment.audit.metrics import available_dimensions
from segment.audit.publish import ReportResult, write_report
from segment.campaign.model import Arm
from segment.config import Settings
from segment.errors import CampaignError
from segment.log import get_logger
from segment.measure.cohort import assignments, cohort
from segment.measure.completion import completions, extract_frames
from segment.measure.document import build_document
from segment.measure.html import render_html
from segment.measure.inputs import (
    DEFAULT_WINDOW_DAYS,
    arms_plan,
    completion_rules,
    holdout_campaign,
    open_ledger,
)
from segment.stage import Stage, StageContext

if TYPE_CHECKING:
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.model import Campaign

MEASURE_JSON = "measure.json"
MEASURE_HTML = "measure.html"

_log = get_logger("measure")


@dataclass(frozen=True)
class MeasureResult(ReportResult):
    """What a measurement produced: the published document and where it was written."""


def _design(c: Campaign, arms: pl.DataFrame) -> dict[str, Any]:
    """The holdout as designed and as drawn: percent, strata, baseline, arm sizes, runs, first draw."""
    return {
        "percent": c.holdout.percent if c.holdout else None,
        "stratify": list(c.holdout.stratify) if c.holdout else [],
        "baseline_rate": c.holdout.baseline_rate if c.holdout else None,
        "assigned": {a: int(n) for a, n in arms.group_by("arm").len().sort("arm").rows()},
        "runs": sorted(set(arms.get_column("run_id").to_list())),
        "first_assigned": arms.get_column("assigned_at").min().date().isoformat(),  # type: ignore[union-attr]
    }


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
    settings: Settings | None = None,
) -> MeasureResult:
    """Measure a campaign's completion lift on a later extract; write ``measure.json``/``.html``.

    The campaign's ``due`` audience rules (from ``rules_dir``, default the campaign's
    ``rules:`` or the shipped rules) are evaluated on the working folder's patients and
    events for every patient assigned to either arm, as of the end of their window:
    ``as_of`` (default today) caps it, so events after it are not counted, and patients
    whose window has not ended are reported as follow-up incomplete. The HTML goes to
    ``out_html`` (default ``WORKDIR/measure.html``) and the JSON beside it. The ledger
    defaults to the campaign's, else ``settings.ledger_path``.
    """
    from segment.rules.loader import default_rules_dir, load_rules

    c = holdout_campaign(campaign)
    rules = completion_rules(c)
    ruleset = load_rules(rules_dir or c.rules or default_rules_dir(), rules)  # every rule checked before data
    led = open_ledger(c, ledger, settings)
    folder = Path(workdir)
    as_of = as_of or dt.date.today()
    arms = led.arms(c.code)
    if arms.height == 0:
        raise CampaignError(f"the ledger holds no holdout assignment for {c.code}: export the campaign first",
                            path=c.path, key="holdout")
    extract = extract_frames(folder)
    dims, skipped = available_dimensions(extract.patients.collect_schema().names(), [*c.audit.groups, *(groups or [])])
    contacts = led.contacts(c.code).join(arms.filter(pl.col("arm") == str(Arm.CONTACT)).select("patient_id"),
                                         on="patient_id", how="semi")
    assigned = assignments(arms, contacts, extract.patients, window_days=window_days, as_of=as_of,
                           outcomes=led.delivery_outcomes(c.code)).collect()
    windows = assigned.filter(pl.col("patient_id").is_not_null() & ~pl.col("duplicate")).select(
        "patient_id", "window_end")
    warnings: list[str] = []
    done = completions(windows, extract, ruleset, warnings=warnings).collect(engine="streaming")
    frame = cohort(assigned.lazy(), extract.patients, done.lazy(), window_days=window_days, as_of=as_of,
                   dimensions=dims).collect()
    document = build_document(
        frame, dimensions=list(dims), campaign={"code": c.code, "channels": [str(ch) for ch in c.channels]},
        as_of=as_of, window_days=window_days, rules=rules,
        messages={str(k): int(v) for k, v in contacts.group_by("channel").len().rows()},
        costs={str(k): float(v) for k, v in c.costs.items()}, design=_design(c, arms), skipped_dimensions=skipped,
    )
    document["notes"].extend(w for w in dict.fromkeys(warnings) if w not in document["notes"])
    json_path, html_path = write_report(document, Path(out_html or folder / MEASURE_HTML), render_html)
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

    c = holdout_campaign(campaign)
    folder = Path(workdir)
    enriched = wd.scan(folder, wd.ENRICHED, produced_by="enrich")
    eligibility = wd.scan(folder, wd.ELIGIBILITY, produced_by="evaluate")
    led: ContactLedger | None = None
    path = ledger.path if isinstance(ledger, ContactLedger) else Path(ledger or c.ledger or "") if (ledger or c.ledger) else None
    if path is not None and path.exists():
        led = ContactLedger(path)
    plan = plan_contacts(c, enriched, eligibility, led, as_of or c.as_of or dt.date.today()).collect()
    return arms_plan(plan, c)


@dataclass(frozen=True)
class MeasureStage(Stage[MeasureResult]):
    """The completion lift of a campaign with a holdout, on a later extract (``segment measure``).

    Not part of ``segment run`` and never reused: it reads the ledger's arms and the
    extract, and writes ``html`` (default ``WORKDIR/measure.html``) and the JSON beside it.
    """

    campaign: Campaign
    window_days: int = DEFAULT_WINDOW_DAYS
    html: Path | None = None
    ledger: Path | None = None
    groups: Sequence[str] = ()
    rules_dir: Path | None = None

    name: ClassVar[str] = "measure"
    cacheable: ClassVar[bool] = False

    def ledger_path(self, ctx: StageContext) -> Path:
        """The contact ledger: the one given, the campaign's, else the settings'."""
        return Path(self.ledger or self.campaign.ledger or ctx.settings.ledger_path)

    def inputs(self, ctx: StageContext) -> list[Path]:
        """The later extract's patients (enriched when it is) and events, and the ledger."""
        patients = wd.ENRICHED if ctx.path(wd.ENRICHED).exists() else wd.PATIENTS
        return [ctx.path(patients), ctx.path(wd.EVENTS), self.ledger_path(ctx)]

    def params(self, ctx: StageContext) -> dict[str, Any]:
        """The window, the as-of date, the extra groups and the rules folder."""
        return {"window_days": self.window_days, "as_of": ctx.as_of, "groups": list(self.groups),
                "rules": str(self.rules_dir or self.campaign.rules or "")}

    def outputs(self, ctx: StageContext) -> list[Path]:
        """``measure.html`` and ``measure.json``."""
        html = self.html if self.html is not None else ctx.path(MEASURE_HTML)
        return [html, html.with_suffix(".json")]

    def run(self, ctx: StageContext) -> MeasureResult:
        """Measure as of ``ctx.as_of``."""
        return measure_campaign(self.campaign, ctx.workdir, as_of=ctx.as_of, window_days=self.window_days,
                                ledger=self.ledger_path(ctx), out_html=self.outputs(ctx)[0],
                                groups=list(self.groups), rules_dir=self.rules_dir, settings=ctx.settings)

    def counts(self, report: MeasureResult) -> dict[str, Any]:
        """The number of dimensions measured."""
        return {"dimensions": len(report.document.get("dimensions", []))}
