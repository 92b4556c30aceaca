"""The holdout's balance: is each audit group spread over the two arms alike?

With a randomized holdout the arms should look alike on every audit group. For each
group the audit shows its share of the contact arm and of the holdout and the
standardized difference of those shares (Austin 2009: ``(p1 - p2) / sqrt((p1(1-p1) +
p2(1-p2)) / 2)``); an absolute difference above 0.1 is the usual sign of imbalance, so a
broken draw (for example a seed or stratum change that moved people) is visible before
the effect is measured. Counts are suppressed like the rest of the audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from segment.audit.metrics import group_counts
from segment.audit.power import plan_section
from segment.audit.suppress import Status, TableRules, publish, suppressed_dimensions

#: an absolute standardized difference above this is flagged as imbalance
SMD_LIMIT = 0.1
_COLUMNS = ("contact", "holdout")


def smd(p1: float, p2: float) -> float:
    """Standardized difference of two proportions (0 when both are 0 or both are 1)."""
    var = (p1 * (1 - p1) + p2 * (1 - p2)) / 2
    return 0.0 if var <= 0 else (p1 - p2) / math.sqrt(var)


def _balance_row(values: Mapping[str, int], st: Status, totals: Mapping[str, int]) -> dict[str, Any]:
    """One group's published arm counts, shares of each arm and standardized difference."""
    shown = st["contact"] is None and st["holdout"] is None and totals["contact"] and totals["holdout"]
    p1 = values["contact"] / totals["contact"] if shown else None
    p2 = values["holdout"] / totals["holdout"] if shown else None
    d = smd(p1, p2) if p1 is not None and p2 is not None else None
    return {"contact": publish(values["contact"], st["contact"]), "holdout": publish(values["holdout"], st["holdout"]),
            "contact_share": p1, "holdout_share": p2, "std_difference": d,
            "imbalanced": d is not None and abs(d) > SMD_LIMIT}


def holdout_balance(flags: pl.LazyFrame, contacts: pl.LazyFrame, *, baseline_rate: float) -> dict[str, Any] | None:
    """The audit's ``holdout`` section: arm sizes, balance per group, and the plan (MDE).

    ``flags`` is :func:`segment.audit.metrics.patient_flags` (group columns); ``contacts``
    the contact plan with its ``arm`` column. None when nobody has an arm.
    """
    arms = contacts.select("patient_id", pl.col("arm").cast(pl.String)).filter(pl.col("arm").is_not_null())
    per = flags.select("patient_id", pl.col("^g:.*$")).join(arms, on="patient_id", how="inner").with_columns(
        (pl.col("arm") == "contact").alias("contact"), (pl.col("arm") == "holdout").alias("holdout"))
    counts = group_counts(per, _COLUMNS).collect()
    if counts.height == 0:
        return None
    dims: list[dict[str, Any]] = []
    imbalanced: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    for table in suppressed_dimensions(counts, _COLUMNS, TableRules()):
        totals = table.total
        rows = [{"group": g["group"], **_balance_row(v, st, totals)}
                for g, v, st in zip(table.groups, table.values, table.statuses, strict=True)]
        imbalanced.extend({"dimension": table.name, "group": r["group"], "std_difference": r["std_difference"]}
                          for r in rows if r["imbalanced"])
        dims.append({"name": table.name, "groups": rows})
    shown_d = [abs(r["std_difference"]) for d in dims for r in d["groups"] if r["std_difference"] is not None]
    return {
        "arms": totals,
        "limit": SMD_LIMIT,
        "max_abs_std_difference": max(shown_d) if shown_d else None,
        "imbalanced": imbalanced,
        "balance": dims,
        "plan": plan_section(totals.get("contact", 0), totals.get("holdout", 0), baseline_rate,
                             source="campaign holdout.baseline_rate"),
    }


def balance_rows(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (dimension, group, shares, difference) for tables."""
    return [{"dimension": d["name"], **r} for d in section.get("balance", []) for r in d["groups"]]
