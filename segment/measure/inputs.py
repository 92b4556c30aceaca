"""What a measurement reads: the campaign (with its holdout), its due rules, its ledger, the window.

Also the plan section of a contact plan's arms (:func:`arms_plan`), shown before anything
is sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment.audit.power import plan_section
from segment.campaign.model import Arm, RuleStatus
from segment.config import Settings
from segment.errors import CampaignError, ConfigError

if TYPE_CHECKING:
    from segment.campaign.ledger import ContactLedger
    from segment.campaign.model import Campaign

DEFAULT_WINDOW_DAYS = 90

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


def holdout_campaign(campaign: Campaign | str | Path) -> Campaign:
    """The campaign (loaded from its file when a path), refused when it has no ``holdout:``."""
    from segment.campaign import load_campaign

    c = load_campaign(campaign) if isinstance(campaign, str | Path) else campaign
    if c.holdout is None:
        raise CampaignError(
            "the campaign has no `holdout:`, so there is nothing to compare with; add "
            "`holdout: {percent: 10, seed: ...}` before the next send", path=c.path, key="holdout")
    return c


def open_ledger(c: Campaign, ledger: ContactLedger | str | Path | None,
                settings: Settings | None = None) -> ContactLedger:
    """The ledger the campaign's sends were recorded in (``ledger``, the campaign's, else the settings')."""
    from segment.campaign.ledger import ContactLedger

    led = ledger if isinstance(ledger, ContactLedger) else ContactLedger(
        ledger or c.ledger or (settings or Settings.from_env()).ledger_path)
    if not led.path.exists():
        raise CampaignError(f"no contact ledger at {led.path}: nothing was sent for {c.code} yet",
                            path=c.path, key="ledger")
    return led


def arms_plan(plan: pl.DataFrame, c: Campaign) -> dict[str, Any]:
    """The plan section from a contact plan's ``arm`` column."""
    counts = dict(plan.filter(pl.col("arm").is_not_null()).group_by("arm").len().rows())
    assert c.holdout is not None
    return plan_section(int(counts.get(str(Arm.CONTACT), 0)), int(counts.get(str(Arm.HOLDOUT), 0)),
                        c.holdout.baseline_rate, source="campaign holdout.baseline_rate")
