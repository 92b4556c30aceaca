"""The export stage: :func:`export_campaign` (the public entry) and :class:`ExportStage`.

``segment export`` and ``segment run`` build an :class:`ExportStage` and run it through
:func:`segment.stage.execute`; a Python caller may call :func:`export_campaign` directly.
The steps themselves live in :mod:`segment.export.core`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from segment.campaign.ledger import ContactLedger
from segment.campaign.model import Campaign
from segment.config import Settings
from segment.export.core import (
    ExportMode,
    ExportResult,
    before_sending,
    deliver,
    prepare_job,
    preview,
    read_inputs,
)
from segment.runstate import run_id_of
from segment.stage import Stage, StageContext


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

    The ledger is ``ledger``, else the campaign's ``ledger:``, else ``settings.ledger_path``
    (``settings`` default: the environment). ``now`` (default: the clock) is when the vendor
    gets the files: SMS planned before the vendor's minimum lead time (a past ``as_of``) is
    sent from now instead (``--dry-run`` plans in the past), and send times beyond the
    vendor's window are refused.
    """
    job = prepare_job(campaign, workdir, dest, as_of=as_of, mode=mode, dry_run=dry_run, run_id=run_id,
                      ledger=ledger, settings=settings, now=now)
    if not dry_run:
        previous = before_sending(job)
        if previous is not None:
            return previous
    data = read_inputs(job)
    return preview(job, data) if dry_run else deliver(job, data)


@dataclass(frozen=True)
class ExportStage(Stage[ExportResult]):
    """Export one campaign to its destination, as of the context's date, under its settings.

    ``run_id`` (``--run-id``) names the run's files; without it, the run's id (the first 12
    hex of ``ctx.run_id``, the whole run's content key in ``segment run``), else the export's
    own content key. Never reused by the stage cache: a run already published is recognised
    by the contact ledger instead (status ``reused``).
    """

    campaign: Campaign
    destination: str | Path | None = None
    dry_run: bool = False
    mode: ExportMode = ExportMode.FULL
    run_id: str | None = None

    name: ClassVar[str] = "export"
    cacheable: ClassVar[bool] = False

    def run(self, ctx: StageContext) -> ExportResult:
        """Export through :func:`export_campaign` with the context's date, run id and settings."""
        run_id = self.run_id or (run_id_of(ctx.run_id) if ctx.run_id else None)
        return export_campaign(self.campaign, ctx.workdir, self.destination, as_of=ctx.as_of, mode=self.mode,
                               dry_run=self.dry_run, run_id=run_id, settings=ctx.settings)

    def counts(self, report: ExportResult) -> dict[str, Any]:
        """What was sent, by channel, what was removed and why, and where it went (no PHI)."""
        return {
            **({"already delivered": "yes: nothing sent again"} if report.already_delivered else {}),
            "sent": sum(report.sent.values()),
            **{f"sent by {ch}": n for ch, n in sorted(report.sent.items())},
            **{f"removed: {why}": n for why, n in sorted(report.removed.items()) if n},
            "vendor files": len(report.files),
            **({} if report.already_delivered else {"batches": report.batches}),
            "destination": report.destination,
            "manifest": str(report.manifest_path) if report.manifest_path else None,
        }

    def status(self, report: ExportResult) -> str:
        """``dry-run``, ``reused`` (already delivered: nothing sent again) or ``ran``."""
        return "dry-run" if report.dry_run else "reused" if report.already_delivered else "ran"
