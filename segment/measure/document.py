"""The published measurement (``measure.json``): arms, completion, effect, cost, by group.

Exact figures come from the cohort (:mod:`segment.measure.cohort`); everything published
goes through the audit's small-cell suppression (counts 1-10 as ``"<11"``, and whatever
would reveal them as ``"suppressed"``); a rate, difference or interval is published only
when every count it uses is. Key layout: ``docs/measure.md`` (format 1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from segment.audit.metrics import MIN_CELL, MISSING, group_counts
from segment.audit.power import plan_section
from segment.audit.suppress import (
    SHOWN_AS,
    Derived,
    DimensionTable,
    Hidden,
    Status,
    TableRules,
    publish,
    suppressed_dimensions,
)
from segment.measure.stats import (
    heterogeneity,
    newcombe_interval,
    nnt_interval,
    ratio_interval,
    wilson_interval,
)

FORMAT = 1

#: count columns per group: the contact arm (all, reached, completed, reached and completed), the holdout
COLUMNS = ("contact", "contact_reached", "contact_completed", "reached_completed", "holdout", "holdout_completed")

RULES = TableRules(
    row_bases=(("contact", ("contact_reached", "contact_completed", "reached_completed")),
               ("holdout", ("holdout_completed",))),
    derived=(
        Derived(("contact",), ("contact_completed",)),
        Derived(("holdout",), ("holdout_completed",)),
        Derived(("contact",), ("contact_reached",)),
        Derived(("contact_reached",), ("reached_completed",)),
        Derived(("contact_completed",), ("reached_completed",)),
    ),
    protected=("contact", "holdout"),
)


def flags(cohort: pl.LazyFrame) -> pl.LazyFrame:
    """Per analysed patient (not lost): the boolean columns of :data:`COLUMNS` and the groups."""
    contact = pl.col("arm") == "contact"
    holdout = pl.col("arm") == "holdout"
    return cohort.filter(pl.col("lost").is_null()).select(
        "patient_id",
        pl.col("^g:.*$"),
        contact.alias("contact"),
        (contact & pl.col("reached")).alias("contact_reached"),
        (contact & pl.col("completed")).alias("contact_completed"),
        (contact & pl.col("reached") & pl.col("completed")).alias("reached_completed"),
        holdout.alias("holdout"),
        (holdout & pl.col("completed")).alias("holdout_completed"),
    )


def _is_shown(status: Status, *cols: str) -> bool:
    return all(status[c] is None for c in cols)


def _arm(values: Mapping[str, int], status: Status, n: str, k: str) -> dict[str, Any]:
    shown = _is_shown(status, n, k) and values[n] > 0
    ci = wilson_interval(values[k], values[n]) if shown else None
    return {
        "assigned": publish(values[n], status[n]),
        "completed": publish(values[k], status[k]),
        "rate": values[k] / values[n] if shown else None,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
    }


def comparison(values: Mapping[str, int], status: Status, *, per_protocol: bool = False) -> dict[str, Any]:
    """One analysis (intention to treat, or per protocol: reached vs the holdout) of one row."""
    n1, k1 = ("contact_reached", "reached_completed") if per_protocol else ("contact", "contact_completed")
    treated = _arm(values, status, n1, k1)
    if not per_protocol:
        treated["reached"] = publish(values["contact_reached"], status["contact_reached"])
    control = _arm(values, status, "holdout", "holdout_completed")
    shown = treated["rate"] is not None and control["rate"] is not None
    diff = ci = lift = lift_ci = nnt = nnt_ci = None
    if shown:
        x1, m1, x2, m2 = values[k1], values[n1], values["holdout_completed"], values["holdout"]
        diff = x1 / m1 - x2 / m2
        ci = newcombe_interval(x1, m1, x2, m2)
        if x2 > 0:
            lift = (x1 / m1) / (x2 / m2) - 1
            r = ratio_interval(x1, m1, x2, m2)
            lift_ci = (r[0] - 1, r[1] - 1) if r else None
        if diff > 0:
            nnt = 1 / diff
        nnt_ci = nnt_interval(*ci) if ci else None
    return {
        "contact" if not per_protocol else "reached": treated,
        "holdout": control,
        "difference": {"value": diff, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None},
        "relative_lift": {"value": lift, "ci_low": lift_ci[0] if lift_ci else None,
                          "ci_high": lift_ci[1] if lift_ci else None},
        "number_needed_to_contact": {"value": nnt, "ci_low": nnt_ci[0] if nnt_ci else None,
                                     "ci_high": nnt_ci[1] if nnt_ci else None},
    }


def cost_section(values: Mapping[str, int], status: Status, messages: Mapping[str, int],
                 costs: Mapping[str, float]) -> dict[str, Any]:
    """What the contact arm's messages cost and what one additional completion cost (ITT)."""
    missing = sorted(ch for ch, n in messages.items() if n and ch not in costs)
    total = None if missing or not messages else sum(n * costs[ch] for ch, n in messages.items())
    out: dict[str, Any] = {
        "messages": dict(sorted(messages.items())),
        "cost_per_message": {ch: costs[ch] for ch in sorted(costs)},
        "total": total,
        "channels_without_cost": missing,
        "per_additional_completion": {"value": None, "ci_low": None, "ci_high": None},
        "additional_completions": None,
    }
    if total is None or not _is_shown(status, "contact", "contact_completed", "holdout", "holdout_completed"):
        return out
    n1, x1, n2, x2 = values["contact"], values["contact_completed"], values["holdout"], values["holdout_completed"]
    if n1 == 0 or n2 == 0:
        return out
    diff = x1 / n1 - x2 / n2
    ci = newcombe_interval(x1, n1, x2, n2)
    out["additional_completions"] = diff * n1
    per = out["per_additional_completion"]
    if diff > 0:
        per["value"] = total / (diff * n1)
    if ci and ci[0] > 0:  # the interval is bounded only when the effect is surely positive
        per["ci_low"], per["ci_high"] = total / (ci[1] * n1), total / (ci[0] * n1)
    return out


def curve(cohort: pl.DataFrame, window_days: int) -> dict[str, Any] | None:
    """Cumulative incidence of completion by day since the start, per arm (analysed patients).

    None when an arm has fewer than :data:`MIN_CELL` people (a curve would show small counts).
    """
    analysed = cohort.filter(pl.col("lost").is_null())
    sizes = dict(analysed.group_by("arm").len().rows())
    if any(sizes.get(a, 0) < MIN_CELL for a in ("contact", "holdout")):
        return None
    days = list(range(window_days + 1))
    out: dict[str, Any] = {"days": days}
    for arm in ("contact", "holdout"):
        per_day = (
            analysed.filter((pl.col("arm") == arm) & pl.col("completed"))
            .group_by("days").len()
        )
        counts = dict(per_day.rows())
        running, series = 0, []
        for d in days:
            running += int(counts.get(d, 0))
            series.append(running / sizes[arm])
        out[arm] = series
    return out


def _counts(cohort_frame: pl.DataFrame, dimensions: Sequence[str]) -> pl.DataFrame:
    """:data:`COLUMNS` per group of every dimension, or one overall row (``all``) without dimensions."""
    f = flags(cohort_frame.lazy())
    if dimensions:
        return group_counts(f, COLUMNS).collect()
    return f.select([pl.col(c).cast(pl.Int64).sum() for c in COLUMNS]).collect().with_columns(
        pl.lit("all").alias("dimension"), pl.lit(None, pl.String).alias("group"))


def _dimension(table: DimensionTable) -> dict[str, Any]:
    """One dimension's comparison per group and the test of whether the effect differs."""
    het = heterogeneity([
        (v["contact_completed"], v["contact"], v["holdout_completed"], v["holdout"])
        for g, v in zip(table.groups, table.values, strict=True)
        if g["group"] != MISSING and v["contact"] >= MIN_CELL and v["holdout"] >= MIN_CELL
    ])
    return {
        "name": table.name,
        "groups": [
            {"group": g["group"], "suppressed": st["contact"] is Hidden.PRIMARY or st["holdout"] is Hidden.PRIMARY,
             **comparison(v, st)}
            for g, v, st in zip(table.groups, table.values, table.statuses, strict=True)
        ],
        "heterogeneity": None if het is None else {
            "test": "Cochran's Q on the intention-to-treat differences (groups with 11 or more in each arm)",
            "q": het.q, "df": het.df, "p_value": het.p_value, "groups": het.groups,
        },
    }


def _small(n: int) -> int | str:
    """A single published count (primary suppression only)."""
    return publish(n, Hidden.PRIMARY if 0 < n < MIN_CELL else None)


def _lost(cohort_frame: pl.DataFrame) -> dict[str, Any]:
    """Patients lost per arm and reason, and those followed to the record they were merged into."""
    lost = cohort_frame.filter(pl.col("lost").is_not_null()).group_by("arm", "lost").len()
    counts = {arm: dict.fromkeys(("not_in_extract", "died", "merged_duplicate"), 0) for arm in ("contact", "holdout")}
    for arm, reason, n in lost.rows():
        counts[arm][reason] = int(n)
    merged = int(cohort_frame.filter(pl.col("merged") & pl.col("lost").is_null()).height)
    return {**{arm: {k: _small(v) for k, v in reasons.items()} for arm, reasons in counts.items()},
            "merged_followed": _small(merged)}


def _methods() -> dict[str, Any]:
    return {
        "difference_interval": "Newcombe hybrid score interval (Newcombe 1998, method 10)",
        "rate_interval": "Wilson score interval",
        "relative_lift_interval": "Katz log interval of the risk ratio, minus 1",
        "nnt_interval": "inverted difference limits (Altman 1998); none when the difference interval includes 0",
        "heterogeneity": "Cochran's Q, inverse-variance weights, chi-square with groups - 1 df",
        "suppression": {"primary": SHOWN_AS[Hidden.PRIMARY], "complementary": SHOWN_AS[Hidden.COMPLEMENTARY]},
    }


def build_document(
    cohort_frame: pl.DataFrame,
    *,
    dimensions: Sequence[str],
    campaign: Mapping[str, Any],
    as_of: dt.date,
    window_days: int,
    rules: Sequence[str],
    messages: Mapping[str, int],
    costs: Mapping[str, float],
    design: Mapping[str, Any],
    skipped_dimensions: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The suppressed, publishable ``measure.json`` document."""
    tables = list(suppressed_dimensions(_counts(cohort_frame, dimensions), COLUMNS, RULES))
    # the overall row (every dimension has the same); without dimensions, or when everyone
    # assigned was lost (no group rows), the one overall row
    overall = tables[0] if tables else next(suppressed_dimensions(_counts(cohort_frame, ()), COLUMNS, RULES))
    values, status = overall.total, overall.total_status
    incomplete_n = cohort_frame.filter(pl.col("lost").is_null() & ~pl.col("follow_up_complete")).height
    holdout_rate = values["holdout_completed"] / values["holdout"] if values["holdout"] else None
    baseline = holdout_rate if holdout_rate and 0 < holdout_rate < 1 else float(design.get("baseline_rate", 0.2))
    return {
        "format": FORMAT,
        "campaign": dict(campaign),
        "as_of": as_of.isoformat(),
        "window_days": window_days,
        "rules": list(rules),
        "confidence": 0.95,
        "min_cell_size": MIN_CELL,
        "methods": _methods(),
        "design": dict(design),
        "follow_up": {"incomplete": _small(incomplete_n), "complete": incomplete_n == 0},
        "lost": _lost(cohort_frame),
        "intention_to_treat": comparison(values, status),
        "per_protocol": comparison(values, status, per_protocol=True),
        "cost": cost_section(values, status, messages, costs),
        "plan": plan_section(values["contact"], values["holdout"], baseline,
                             source="observed holdout completion" if baseline == holdout_rate
                             else "campaign holdout.baseline_rate"),
        "curve": curve(cohort_frame, window_days),
        "dimensions": [_dimension(t) for t in tables] if dimensions else [],
        "skipped_dimensions": list(skipped_dimensions),
        "notes": notes(window_days),
    }


def notes(window_days: int) -> list[str]:
    """The plain-words notes of every measurement."""
    return [
        "Intention to treat compares everyone assigned to the contact arm with everyone held out, "
        "whether or not a message reached them: it is the unbiased effect of the campaign as run. "
        "Per protocol compares only the contacted people a message reached (delivered when vendor "
        "feedback exists, else sent) with the holdout; people who are reached may differ from those "
        "who are not, so read it as an upper bound, not as the effect.",
        f"Completed means a campaign rule moved from due to not due through a qualifying event dated "
        f"after the first send (the planned send for the holdout) and no more than {window_days} days later.",
        "Patients no longer in the extract, and patients who died within their window without completing, "
        "are left out of both arms and counted under 'lost'; patients merged into another record by the "
        "linkage model are followed to the surviving record.",
        f"Counts from 1 to {MIN_CELL - 1} are shown as '<{MIN_CELL}'; counts that would reveal them are "
        "'suppressed'; figures built on a hidden count are not shown.",
    ]
