"""One patient in one campaign: status, channel (and whether preferred), variant and why, journey step."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from segment.campaign.model import Campaign


def explain_contact(
    campaign: Campaign | str | Path, workdir: str | Path, patient_id: str, *, as_of: dt.date | None = None,
    ledger: str | Path | None = None,
) -> dict[str, Any]:
    """What the next export of ``campaign`` would do for ``patient_id`` (nothing is written).

    Keys: contact status, channel, preferred channel (and whether it was used), variant and
    the condition that chose it, and for a journey the step and state. The plan is the
    export's own (:func:`segment.campaign.select.plan_contacts`) over this one patient.
    """
    from segment import workdir as wd
    from segment.campaign.journey import journey_history
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.loader import load_campaign
    from segment.campaign.preferences import load_preferences
    from segment.campaign.select import plan_contacts
    from segment.campaign.variants import check_variant_columns
    from segment.config import Settings
    from segment.workdir import patients_path

    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    work = Path(workdir)
    pfile = patients_path(work)
    efile = wd.require(work, wd.ELIGIBILITY, produced_by="evaluate")
    check_variant_columns(c, pl.scan_parquet(pfile).collect_schema(), pfile.name)
    day = as_of or c.as_of or dt.date.today()
    led = ContactLedger(Path(ledger) if ledger is not None else (c.ledger or Settings.from_env().ledger_path))
    exists = led.path.exists()
    everyone = pl.scan_parquet(pfile)
    prefs = load_preferences(c.preferences, everyone) if c.preferences is not None else None
    one = everyone.filter(pl.col("patient_id") == patient_id)
    elig = pl.scan_parquet(efile).filter(pl.col("patient_id") == patient_id)
    history = None
    if c.journey is not None and exists:
        contacts, exits, feedback = led.journey_inputs(c.code)
        history = journey_history(c, contacts.filter(pl.col("patient_id") == patient_id),
                                  exits.filter(pl.col("patient_id") == patient_id),
                                  feedback.filter(pl.col("patient_id") == patient_id))
    plan = plan_contacts(c, one, elig, led if exists else None, day, preferences=prefs,
                         blocked=led.blocked() if exists else None, journey=history).collect()
    if plan.height == 0:
        return {}
    row = plan.row(0, named=True)
    out: dict[str, Any] = {
        "campaign": c.code,
        "contact status": row["contact_status"],
        "channel": row["channel"] or "-",
        "preferred channel": row["preferred_channel"] or "none stated",
    }
    if row["on_preferred"] is not None:
        out["reached on preferred channel"] = "yes" if row["on_preferred"] else "no"
    if c.variants:
        out["variant"] = row["variant"] or "- (not selected)"
        out["variant because"] = row["variant_reason"] or "-"
    if c.journey is not None:
        out["journey step"] = row["journey_step"] if row["journey_step"] is not None else "-"
        out["journey state"] = row["journey_state"]
    return out
