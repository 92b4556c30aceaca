"""Checks an export makes before it reads any patient row.

A bad run id, an encryption key the keyring lacks, an unfinished delivery of the same
campaign that cannot be reconciled, or a run dated before contacts already in the
contact ledger: each stops the export (and ``segment run``, which calls
:func:`reconcile_before_run` and :func:`refuse_backdated` before its first stage) while
nothing has been read or written yet.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from segment.campaign.ledger import ContactLedger
from segment.campaign.model import Campaign
from segment.errors import CampaignError, DeliveryError
from segment.export.delivery import Reconciled, reconcile
from segment.export.encrypt import check_recipient

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_run_id(run_id: str | None) -> None:
    """Refuse an explicit run id that could not be part of a file name."""
    if run_id is not None and not RUN_ID_PATTERN.match(run_id):
        raise DeliveryError("a run id may use letters, digits, `-` and `_` only (max 64)")


def check_recipients(campaign: Campaign) -> None:
    """Every vendor's encryption key is in the keyring (checked before any data is read)."""
    for ch, vendor in campaign.vendors.items():
        if vendor.encrypt is not None:
            try:
                check_recipient(vendor.encrypt)
            except DeliveryError as exc:
                raise DeliveryError(f"vendors.{ch}.encrypt: {exc.message}", path=campaign.path) from exc


def check_not_backdated(
    latest: tuple[dt.datetime, str, str] | None, campaign: Campaign, as_of: dt.date, ledger_path: Path
) -> None:
    """Refuse a run dated before a contact already in the ledger (caps would miss it)."""
    if latest is None:
        return
    when, code, run = latest
    day = when.astimezone(ZoneInfo(campaign.schedule.timezone)).date()
    if day > as_of:
        raise CampaignError(
            f"--as-of {as_of.isoformat()} is before contacts already in the contact ledger "
            f"(latest on {day.isoformat()}, campaign {code} run {run}); a backdated run is refused "
            "(preview it with --dry-run, or run as of that date or later)",
            path=ledger_path, key="as_of",
        )


def refuse_backdated(ledger: ContactLedger, campaign: Campaign, as_of: dt.date, run_id: str | None) -> None:
    """:func:`check_not_backdated` against the ledger as it is now (cheap; before any data is read)."""
    if ledger.path.exists():
        check_not_backdated(ledger.latest_contact(exclude_run_id=run_id), campaign, as_of, ledger.path)


def reconcile_before_run(ledger: ContactLedger, campaign_code: str) -> list[Reconciled]:
    """Reconcile the ledger's unfinished deliveries; fail if one of this campaign's cannot be."""
    found = reconcile(ledger)
    for r in found:
        if r.campaign_code == campaign_code and r.action == "in progress elsewhere":
            raise DeliveryError(
                f"run {r.run_id} of {campaign_code} to {r.destination} is being delivered by another "
                f"process ({r.detail}); wait for it to finish; nothing was done",
                path=ledger.path,
            )
        if r.campaign_code == campaign_code and r.action == "failed":
            raise DeliveryError(
                f"an earlier delivery of this campaign is unfinished and could not be reconciled: "
                f"{r.describe()}; nothing else was done",
                path=ledger.path,
            )
    return found
