"""What an export's manifest says about personalization: preferences, variants, journey steps (counts only)."""

from __future__ import annotations

from typing import Any

import polars as pl

from segment.campaign.model import Campaign, ContactStatus
from segment.campaign.preferences import Preferences


def personalization_manifest(c: Campaign, plan: pl.DataFrame, prefs: Preferences | None) -> dict[str, Any]:
    """``preferences``, ``variants`` and ``journey`` manifest sections (only those the campaign uses)."""
    out: dict[str, Any] = {}
    selected = plan.filter(pl.col("contact_status") == str(ContactStatus.SELECTED))
    with_pref = selected.filter(pl.col("on_preferred").is_not_null())
    reach = {
        "selected_with_preference": with_pref.height,
        "reached_on_preferred": int(with_pref.get_column("on_preferred").sum()),
    }
    if prefs is not None:
        out["preferences"] = {**prefs.counts(), **reach}
    elif with_pref.height:
        out["preferences"] = reach
    if c.variants:
        counts = selected.group_by("variant", "channel").len().sort("variant", "channel")
        out["variants"] = {
            code: {ch: n for v, ch, n in counts.iter_rows() if v == code} for code in [v.code for v in c.variants]
        }
    if c.journey is not None:
        states = plan.filter(pl.col("journey_state").is_not_null()).group_by("journey_state").len()
        steps = selected.group_by("journey_step").len().sort("journey_step")
        out["journey"] = {
            "states": dict(sorted(states.iter_rows())),
            "sent_per_step": {f"step {s}": n for s, n in steps.iter_rows()},
            "stopped_tonight": dict(sorted(plan.filter(pl.col("journey_exit").fill_null(False))
                                           .group_by("journey_state").len().iter_rows())),
        }
    return out
