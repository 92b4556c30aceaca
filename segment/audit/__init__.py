"""Equity and reach audit: who a campaign reaches and who it leaves out.

``audit_campaign(campaign, workdir)`` (:mod:`.run`, with :class:`AuditStage`) reads the
working folder's ``enriched.parquet`` and ``eligibility.parquet``, asks the campaign module
for each patient's contact plan (``segment.campaign.plan_contacts``), and writes
``audit.json`` and ``audit.html``. The pure document is :mod:`.document`; the arithmetic
lives in pure functions over LazyFrames (:mod:`.metrics`), suppression in :mod:`.suppress`,
the published document in :mod:`.report_json` (key layout: ``docs/audit.md``), charts in
:mod:`.charts` and the page in :mod:`.html`.
"""

from __future__ import annotations

from segment.audit.document import audit_document, parse_reference_groups
from segment.audit.html import render_html
from segment.audit.metrics import wilson_interval
from segment.audit.run import AUDIT_HTML, AUDIT_JSON, AuditResult, AuditStage, audit_campaign

__all__ = [
    "AUDIT_HTML",
    "AUDIT_JSON",
    "AuditResult",
    "AuditStage",
    "audit_campaign",
    "audit_document",
    "parse_reference_groups",
    "render_html",
    "wilson_interval",
]
