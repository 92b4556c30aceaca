"""The audit stage: ``audit_campaign`` (the entry point) and :class:`AuditStage`.

``audit_campaign(campaign, workdir)`` reads the working folder's ``enriched.parquet``
and ``eligibility.parquet``, asks the campaign module for each patient's contact plan
(``segment.campaign.plan_contacts``), and writes ``audit.json`` and ``audit.html``.
``segment audit`` and ``segment run`` both go through :class:`AuditStage`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from segment import workdir as wd
from segment.audit.document import audit_document, identity_counts
from segment.audit.html import render_html
from segment.audit.publish import ReportResult, write_report
from segment.config import Settings
from segment.log import get_logger
from segment.stage import Stage, StageContext

if TYPE_CHECKING:
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.model import Campaign

AUDIT_JSON = "audit.json"
AUDIT_HTML = "audit.html"

_log = get_logger("audit")


@dataclass(frozen=True)
class AuditResult(ReportResult):
    """What an audit produced: the published document and where it was written."""

    #: batches of patients the contact plan was made in (see :mod:`segment.memory`; not in the document)
    batches: int = 1

    @property
    def flags(self) -> list[dict[str, Any]]:
        """The flagged groups, in plain words (``document["flags"]``)."""
        return list(self.document.get("flags", []))

    @property
    def is_flagged(self) -> bool:
        """True when any group's selection rate is outside the 0.8-1.25 band."""
        return bool(self.document.get("flags"))

    def summary_rows(self) -> list[dict[str, Any]]:
        """One published (suppressed) row per group, for a terminal table."""
        return [
            {
                "dimension": dim["name"],
                "group": g["group"] + (" (ref)" if g["is_reference"] else ""),
                "eligible": g["funnel"]["eligible"],
                "contactable": g["funnel"]["contactable"],
                "selected": g["funnel"]["selected"],
                "rate": _round(g["selection"]["rate"]),
                "ratio": _round(g["selection"]["ratio"]),
                "flag": g["selection"]["flag"] or "",
                "no_digital": g["reach"]["no_digital"],
            }
            for dim in self.document.get("dimensions", [])
            for g in dim["groups"]
        ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _open_ledger(campaign: Campaign, ledger: ContactLedger | str | Path | None,
                 settings: Settings | None) -> ContactLedger | None:
    """The contact ledger to read caps from (the campaign's or the settings'); None when absent.

    The audit never creates a ledger.
    """
    from segment.campaign.ledger import ContactLedger

    if ledger is None:
        ledger = campaign.ledger or (settings or Settings.from_env()).ledger_path
    if isinstance(ledger, str | Path):
        return ContactLedger(ledger) if Path(ledger).exists() else None
    return ledger


def _campaign_document(campaign: Campaign, workdir: Path, ledger: ContactLedger | None, as_of: dt.date,
                       run_id: str | None, groups: Sequence[str],
                       reference_group: Mapping[str, str]) -> dict[str, Any]:
    """Plan the campaign's contacts over the working folder and audit that plan."""
    from segment.campaign import plan_contacts
    from segment.campaign.journey import journey_history

    enriched = wd.scan(workdir, wd.ENRICHED, produced_by="enrich")
    eligibility = wd.scan(workdir, wd.ELIGIBILITY, produced_by="evaluate")
    journey = campaign.journey is not None and ledger is not None
    inputs = ledger.journey_inputs(campaign.code) if journey and ledger is not None else None
    history = journey_history(campaign, *inputs) if inputs is not None else None
    contacts = plan_contacts(campaign, enriched, eligibility, ledger, as_of, run_id=run_id, journey=history,
                             timing=False)  # the audit counts the plan: no time zones
    steps: pl.DataFrame | None = inputs[0].select("patient_id", "step") if inputs is not None else None
    return audit_document(
        enriched, contacts,
        channels=[str(c) for c in campaign.channels],
        as_of=as_of,
        groups=[*campaign.audit.groups, *groups],
        reference_group={**campaign.audit.reference_groups, **dict(reference_group)},
        campaign_info={"code": campaign.code},
        delivery=ledger.delivery_outcomes(campaign.code) if ledger is not None else None,
        holdout={"baseline_rate": campaign.holdout.baseline_rate} if campaign.holdout is not None else None,
        variants=[v.code for v in campaign.variants],
        journey_steps=steps,
        n_steps=len(campaign.journey.steps) if campaign.journey is not None else 0,
    )


def audit_campaign(
    campaign: Campaign | str | Path,
    workdir: str | Path,
    out_html: str | Path | None = None,
    reference_group: Mapping[str, str] | None = None,
    *,
    groups: Sequence[str] = (),
    as_of: dt.date | None = None,
    ledger: ContactLedger | str | Path | None = None,
    run_id: str | None = None,
    settings: Settings | None = None,
) -> AuditResult:
    """Audit one campaign over a working folder; write ``audit.json`` and ``audit.html``.

    The HTML goes to ``out_html`` (default ``WORKDIR/audit.html``) and the JSON beside
    it with the same stem (``audit.json`` by default). ``as_of`` defaults to the
    campaign's ``as_of`` or today. Frequency caps are read from ``ledger`` (default: the
    campaign's, else ``settings.ledger_path``; the audit never creates one). ``run_id``
    names an export whose own ledger rows are ignored, so an audit written just after that
    export shows the selection it made rather than everyone as capped.
    """
    from segment.campaign import load_campaign

    if isinstance(campaign, str | Path):
        campaign = load_campaign(campaign)
    folder = Path(workdir)
    as_of = as_of or campaign.as_of or dt.date.today()
    opened = _open_ledger(campaign, ledger, settings)
    document = _campaign_document(campaign, folder, opened, as_of, run_id, groups, reference_group or {})
    document["identity"] = identity_counts(folder)
    json_path, html_path = write_report(document, Path(out_html or folder / AUDIT_HTML), render_html)
    _log.info("audit written", groups=sum(len(d["groups"]) for d in document["dimensions"]),
              flagged=len(document["flags"]))
    from segment.campaign.select import plan_batches

    batches = len(plan_batches(wd.scan(folder, wd.ENRICHED, produced_by="enrich")))
    return AuditResult(document=document, json_path=json_path, html_path=html_path, batches=batches)


@dataclass(frozen=True)
class AuditStage(Stage[AuditResult]):
    """The equity and reach audit of one campaign, as a pipeline stage.

    In ``segment run`` (``ctx.run_id`` set) it writes ``runs/<run_id>/audit.html`` and
    ``audit.json``; alone, ``html`` (default ``WORKDIR/audit.html``) and the JSON beside
    it. Its key covers ``enriched.parquet``, ``eligibility.parquet`` and the contact
    ledger (frequency caps and opt-outs), by content, and the run id (which covers the
    campaign file, sources, rules, pack, as-of date and segment's version). The key is
    recorded after the whole run: the audit ignores the run's own ledger rows, so what it
    saw equals the ledger as the run leaves it.
    """

    campaign: Campaign
    html: Path | None = None
    reference_group: Mapping[str, str] = field(default_factory=dict)
    groups: Sequence[str] = ()

    name: ClassVar[str] = "audit"
    record_after_run: ClassVar[bool] = True

    def ledger(self, ctx: StageContext) -> Path:
        """The contact ledger the audit reads: the campaign's, else the settings'."""
        return Path(self.campaign.ledger or ctx.settings.ledger_path)

    def inputs(self, ctx: StageContext) -> list[Path]:
        """The enriched patients, the eligibility and the ledger (its WAL folded in) when they exist."""
        from segment.campaign.ledger import ledger_files

        return [ctx.path(wd.ENRICHED), ctx.path(wd.ELIGIBILITY), *ledger_files(self.ledger(ctx))]

    def params(self, ctx: StageContext) -> dict[str, Any]:
        """The run id and which ledger (resolved path, and whether it exists yet)."""
        ledger = self.ledger(ctx)
        return {"run_id": ctx.run_id, "ledger": str(ledger.resolve()), "ledger_exists": ledger.exists()}

    def outputs(self, ctx: StageContext) -> list[Path]:
        """``audit.html`` and ``audit.json``."""
        if self.html is not None:
            html = self.html
        elif ctx.run_id:
            html = ctx.workdir / "runs" / ctx.run_id / AUDIT_HTML
        else:
            html = ctx.path(AUDIT_HTML)
        return [html, html.with_suffix(".json")]

    def run(self, ctx: StageContext) -> AuditResult:
        """Audit the campaign as of ``ctx.as_of`` (ignoring the ledger rows of ``ctx.run_id``)."""
        html = self.outputs(ctx)[0]
        if self.html is None and ctx.run_id:
            wd.ensure_private_dir(html.parent)
        return audit_campaign(self.campaign, ctx.workdir, html, self.reference_group, groups=self.groups,
                              as_of=ctx.as_of, ledger=self.ledger(ctx), run_id=ctx.run_id or None,
                              settings=ctx.settings)

    def counts(self, report: AuditResult) -> dict[str, Any]:
        """The number of flagged groups, and the batches the contact plan was made in."""
        return {"flags": len(report.flags), "batches": report.batches}

    def reused(self, ctx: StageContext) -> dict[str, Any] | None:
        """The flag count of the earlier ``audit.json``; None when it cannot be read."""
        try:
            flags = json.loads(self.outputs(ctx)[1].read_text()).get("flags")
        except (OSError, ValueError, AttributeError):
            return None
        return {"flags": len(flags)} if isinstance(flags, list) else None
