"""Equity and reach audit: who a campaign reaches and who it leaves out.

``audit_campaign(campaign, workdir)`` reads the working folder's ``enriched.parquet``
and ``eligibility.parquet``, asks the campaign module for each patient's contact plan
(``segment.campaign.plan_contacts``), and writes ``audit.json`` and ``audit.html``.
The arithmetic lives in pure functions over LazyFrames (:mod:`.metrics`), suppression in
:mod:`.suppress`, the published document in :mod:`.report_json` (key layout:
``docs/audit.md``), charts in :mod:`.charts` and the page in :mod:`.html`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment import workdir as wd
from segment.audit.balance import holdout_balance
from segment.audit.html import render_html
from segment.audit.metrics import (
    DEFAULT_DIMENSIONS,
    DELIVERY_COLUMNS,
    available_dimensions,
    choose_references,
    delivery_flags,
    group_counts,
    patient_flags,
    selection_ratios,
    wilson_interval,
)
from segment.audit.report_json import build_delivery, build_document
from segment.errors import ConfigError, PrivacyError
from segment.log import get_logger
from segment.schema import DIRECT_IDENTIFIERS

if TYPE_CHECKING:
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.model import Campaign

__all__ = [
    "AUDIT_HTML",
    "AUDIT_JSON",
    "AuditResult",
    "audit_campaign",
    "audit_document",
    "parse_reference_groups",
    "render_html",
    "wilson_interval",
]

AUDIT_JSON = "audit.json"
AUDIT_HTML = "audit.html"

_log = get_logger("audit")


@dataclass(frozen=True)
class AuditResult:
    """What an audit produced: the published document and where it was written."""

    document: dict[str, Any]
    json_path: Path | None = None
    html_path: Path | None = None

    @property
    def flags(self) -> list[dict[str, Any]]:
        """The flagged groups, in plain words (``document["flags"]``)."""
        return list(self.document.get("flags", []))

    @property
    def flagged(self) -> bool:
        """True when any group's selection rate is outside the 0.8-1.25 band."""
        return bool(self.document.get("flags"))

    def summary_rows(self) -> list[dict[str, Any]]:
        """One published (suppressed) row per group, for a terminal table."""
        rows = []
        for dim in self.document.get("dimensions", []):
            for g in dim["groups"]:
                sel = g["selection"]
                rows.append(
                    {
                        "dimension": dim["name"],
                        "group": g["group"] + (" (ref)" if g["is_reference"] else ""),
                        "eligible": g["funnel"]["eligible"],
                        "contactable": g["funnel"]["contactable"],
                        "selected": g["funnel"]["selected"],
                        "rate": _round(sel["rate"]),
                        "ratio": _round(sel["ratio"]),
                        "flag": sel["flag"] or "",
                        "no_digital": g["reach"]["no_digital"],
                    }
                )
        return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def parse_reference_groups(items: Sequence[str]) -> dict[str, str]:
    """``["race=White", "sex=F"]`` -> ``{"race": "White", "sex": "F"}``."""
    parsed: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip() or not value.strip():
            raise ConfigError(
                f"key `reference_group`: found {item!r}; expected COLUMN=VALUE", key="reference_group"
            )
        parsed[column.strip()] = value.strip()
    return parsed


def _as_categories(named: Mapping[str, str] | None, counts: pl.DataFrame) -> dict[str, str]:
    """Named race/ethnicity reference groups in the words ingest stores (``Black`` -> the OMB name).

    A name that is already a group of the data is kept as written.
    """
    from segment.ingest.race import normalize_ethnicity, normalize_race

    out = dict(named or {})
    present = set(zip(counts["dimension"], counts["group"], strict=True)) if counts.height else set()
    for dim, normalize in (("race", normalize_race), ("ethnicity", normalize_ethnicity)):
        if dim in out and (dim, out[dim]) not in present:
            value = pl.select(normalize(pl.lit(out[dim])).value).item()
            out[dim] = value if value is not None else out[dim]
    return out


def _check_groups(groups: Sequence[str]) -> list[str]:
    refused = [g for g in groups if g in DIRECT_IDENTIFIERS or g == "patient_id"]
    if refused:
        raise PrivacyError(
            f"audit group column(s) {', '.join(refused)} identify people; "
            "group by a category (for example county_fips or language)"
        )
    return [g for g in dict.fromkeys(groups) if g not in DEFAULT_DIMENSIONS]


def audit_document(
    enriched: pl.LazyFrame,
    contacts: pl.LazyFrame,
    *,
    channels: Sequence[str],
    as_of: dt.date,
    groups: Sequence[str] = (),
    reference_group: Mapping[str, str] | None = None,
    campaign_info: Mapping[str, Any] | None = None,
    delivery: pl.LazyFrame | pl.DataFrame | None = None,
    holdout: Mapping[str, Any] | None = None,
    variants: Sequence[str] = (),
    journey_steps: pl.DataFrame | None = None,
    n_steps: int = 0,
) -> dict[str, Any]:
    """The published audit document from enriched patients and their contact plan.

    Pure: no files are read or written. ``groups`` adds dimensions (enriched columns);
    ``reference_group`` names the reference group per dimension (default: largest).
    ``delivery``: per patient sent, ``delivered`` and ``failed`` from vendor feedback
    (:meth:`ContactLedger.delivery_outcomes`); the document's ``delivery`` key is null
    without it. ``holdout`` (``{"baseline_rate": ...}``, for a campaign with a holdout):
    the document's ``holdout`` key shows the arms' balance on every group and the plan.
    ``variants`` (codes), ``journey_steps`` (``patient_id``, ``step`` from the ledger) and
    ``n_steps``: the ``variants``, ``journey_steps`` and ``preferred_channel`` breakdowns
    (:mod:`segment.audit.personal`; null keys when the campaign does not use them).
    """
    extra = _check_groups(groups)
    dims, skipped = available_dimensions(enriched.collect_schema().names(), extra)
    for item in skipped:
        _log.warning(f"dimension {item['name']} skipped: {item['reason']}")
    flags = patient_flags(
        enriched, contacts, channels=channels, as_of=as_of, extra_groups=extra, dimensions=dims
    )
    counts = group_counts(flags).collect()
    references = choose_references(counts, _as_categories(reference_group, counts))
    ratios = selection_ratios(counts, references)
    document = build_document(
        ratios,
        references,
        named_references=list(reference_group or {}),
        columns=dims,
        campaign={"channels": list(channels), **dict(campaign_info or {})},
        as_of=as_of,
    )
    document["skipped_dimensions"] = skipped
    document["holdout"] = None
    if "arm" in contacts.collect_schema() and holdout is not None:
        document["holdout"] = holdout_balance(flags, contacts, baseline_rate=holdout["baseline_rate"])
    from segment.audit.personal import personalization

    document.update(personalization(flags, contacts, variants=variants, steps=journey_steps, n_steps=n_steps))
    document["delivery"] = None
    if delivery is not None:
        sent = delivery_flags(flags, delivery.lazy())
        document["delivery"] = build_delivery(group_counts(sent, DELIVERY_COLUMNS).collect())
    return document


def _identity_counts(folder: Path) -> dict[str, Any] | None:
    """How ingest linked records (``identity-report.json``): the linkage, pairs merged and left for review."""
    import json

    path = folder / "identity-report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return {"linkage": report.get("linkage"), "merge_pairs": report.get("merge_pairs"),
            "review_pairs": report.get("review_pairs", 0)}


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
) -> AuditResult:
    """Audit one campaign over a working folder; write ``audit.json`` and ``audit.html``.

    The HTML goes to ``out_html`` (default ``WORKDIR/audit.html``) and the JSON beside
    it with the same stem (``audit.json`` by default). ``as_of`` defaults to the
    campaign's ``as_of`` or today. Frequency caps are read from ``ledger`` (default: the
    campaign's or the settings' ledger; the audit never creates one). ``run_id`` names
    an export whose own ledger rows are ignored, so an audit written just after that
    export shows the selection it made rather than everyone as capped.
    """
    from segment.campaign import load_campaign, plan_contacts
    from segment.campaign.ledger import ContactLedger

    if isinstance(campaign, str | Path):
        campaign = load_campaign(campaign)
    folder = Path(workdir)
    enriched = wd.scan(folder, wd.ENRICHED, produced_by="enrich")
    eligibility = wd.scan(folder, wd.ELIGIBILITY, produced_by="evaluate")
    as_of = as_of or campaign.as_of or dt.date.today()
    if ledger is None:
        from segment.config import Settings

        ledger = campaign.ledger or Settings.from_env().ledger_path
    if isinstance(ledger, str | Path):
        ledger = ContactLedger(ledger) if Path(ledger).exists() else None
    history = None
    if campaign.journey is not None and ledger is not None:
        from segment.campaign.journey import journey_history

        history = journey_history(campaign, *ledger.journey_inputs(campaign.code))
    contacts = plan_contacts(campaign, enriched, eligibility, ledger, as_of, run_id=run_id, journey=history)
    campaign_groups = list(getattr(getattr(campaign, "audit", None), "groups", None) or [])
    campaign_refs = dict(getattr(getattr(campaign, "audit", None), "reference_groups", None) or {})
    document = audit_document(
        enriched,
        contacts,
        channels=[str(c) for c in campaign.channels],
        as_of=as_of,
        groups=[*campaign_groups, *groups],
        reference_group={**campaign_refs, **dict(reference_group or {})},
        campaign_info={"code": campaign.code},
        delivery=ledger.delivery_outcomes(campaign.code) if ledger is not None else None,
        holdout={"baseline_rate": campaign.holdout.baseline_rate} if campaign.holdout is not None else None,
        variants=[v.code for v in campaign.variants],
        journey_steps=(ledger.journey_inputs(campaign.code)[0].select("patient_id", "step")
                       if campaign.journey is not None and ledger is not None else None),
        n_steps=len(campaign.journey.steps) if campaign.journey is not None else 0,
    )
    document["identity"] = _identity_counts(folder)
    html_path = Path(out_html) if out_html is not None else folder / AUDIT_HTML
    json_path = html_path.with_suffix(".json")
    wd.write_json(json_path, document)
    with wd.atomic_open(html_path, "w", encoding="utf-8") as fh:
        fh.write(render_html(document))
    _log.info(
        "audit written",
        groups=sum(len(d["groups"]) for d in document["dimensions"]),
        flagged=len(document["flags"]),
    )
    return AuditResult(document=document, json_path=json_path, html_path=html_path)
