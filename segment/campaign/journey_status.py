"""``segment journey status``: where a journey campaign's patients stand tonight, in counts.

Decides as the next nightly run would (:func:`segment.campaign.select.plan_contacts` over
the ledger's journey history) and counts patients per step and per state; nothing is
written and no identifier leaves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.campaign.journey import JourneyState, journey_history
from segment.campaign.ledger import ContactLedger
from segment.campaign.loader import load_campaign
from segment.campaign.model import Campaign
from segment.campaign.select import plan_contacts
from segment.campaign.variants import check_variant_columns
from segment.config import Settings
from segment.errors import CampaignError


@dataclass(frozen=True)
class JourneyStatus:
    """Counts for ``segment journey status`` (no identifiers)."""

    campaign_code: str
    as_of: dt.date
    steps: list[str]
    #: patients sent each step (1-based), ever
    per_step: dict[int, int]
    #: where patients stand tonight: due, waiting, completed, and stops by reason (recorded ones kept)
    states: dict[str, int]
    #: patients whose step is due tonight, per step
    due_tonight: dict[int, int]

    def rows(self) -> list[dict[str, Any]]:
        """One row per step, then one per state, for a table."""
        out: list[dict[str, Any]] = [
            {"what": f"step {i} ({label})", "patients sent": self.per_step.get(i, 0),
             "due tonight": self.due_tonight.get(i, 0)}
            for i, label in enumerate(self.steps, start=1)
        ]
        return out


def journey_status(
    campaign: Campaign, patients: pl.LazyFrame, eligibility: pl.LazyFrame, ledger: Any, as_of: dt.date
) -> JourneyStatus:
    """Per step and per state counts for ``campaign`` on ``as_of``, from the ledger and the working folder."""
    if campaign.journey is None:
        raise CampaignError("the campaign declares no `journey:`; add steps to use journey status",
                            path=campaign.path, key="journey")
    contacts, exits, feedback = ledger.journey_inputs(campaign.code)
    history = journey_history(campaign, contacts, exits, feedback)
    blocked = ledger.blocked() if ledger.path.exists() else None
    plan = plan_contacts(campaign, patients, eligibility, ledger if ledger.path.exists() else None, as_of,
                         blocked=blocked, journey=history).select(
        "patient_id", "journey_step", "journey_state", "contact_status").collect()
    last_exit = exits.sort("exited_at").group_by("patient_id").agg(pl.col("reason").last().alias("_exit"))
    state = plan.join(last_exit, on="patient_id", how="left").select(
        pl.when(pl.col("journey_state") == str(JourneyState.NOT_IN_JOURNEY)).then(pl.col("_exit"))
        .otherwise(pl.col("journey_state")).alias("state"),
        "journey_step", "contact_status",
    ).filter(pl.col("state").is_not_null())
    per_step = contacts.group_by("step").agg(pl.col("patient_id").n_unique()).sort("step")
    due = state.filter(pl.col("state") == str(JourneyState.DUE)).group_by("journey_step").len().sort("journey_step")
    steps = [f"day {s.day}: {', '.join(str(c) for c in s.channels)}" for s in campaign.journey.steps]
    return JourneyStatus(
        campaign_code=campaign.code, as_of=as_of, steps=steps,
        per_step={int(k): int(n) for k, n in per_step.iter_rows()},
        states={str(k): int(n) for k, n in state.group_by("state").len().sort("state").iter_rows()},
        due_tonight={int(k): int(n) for k, n in due.iter_rows()},
    )


def journey_counts(
    campaign: Campaign | str | Path, workdir: str | Path, *, as_of: dt.date | None = None,
    ledger: str | Path | None = None, settings: Settings | None = None,
) -> JourneyStatus:
    """:func:`journey_status` for a campaign file and a working folder (``segment journey status``).

    The ledger: ``ledger``, else the campaign's ``ledger:``, else ``settings`` (default: from
    the environment).
    """
    c = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    if c.journey is None:
        raise CampaignError("the campaign declares no `journey:`; add steps to use journey status",
                            path=c.path, key="journey")
    work = Path(workdir)
    pfile = wd.patients_path(work)
    efile = wd.require(work, wd.ELIGIBILITY, produced_by="evaluate")
    if c.variants:
        check_variant_columns(c, pl.scan_parquet(pfile).collect_schema(), pfile.name)
    led = ContactLedger(Path(ledger) if ledger is not None else (c.ledger or (settings or Settings.from_env()).ledger_path))
    day = as_of or c.as_of or dt.date.today()
    return journey_status(c, pl.scan_parquet(pfile), pl.scan_parquet(efile), led, day)
