"""The audit's personalization breakdowns: selected people by message variant, journey step and preference.

Each table counts, per dimension group, the people selected tonight with each variant
(variants partition the selected, so ``selected = sum of the variants`` is an equation
for complementary suppression), the people each journey step has reached (from the
ledger; a person may be in several steps), and the people with a stated preferred
channel and how many of them the plan reaches on it. Everything is published through
:func:`segment.audit.suppress.suppress_table`, like the funnel: small counts are hidden,
and so is whatever would reveal them.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import polars as pl

from segment.audit.metrics import group_counts
from segment.audit.page import group_rows, table
from segment.audit.suppress import (
    Derived,
    Equation,
    Status,
    TableRules,
    publish,
    publish_dimensions,
)


def _published(counts: pl.DataFrame, columns: Sequence[str], labels: Sequence[str], rules: TableRules
               ) -> dict[str, Any]:
    """``overall`` and ``dimensions[].groups[]`` with each column published under its label."""

    def row(values: dict[str, int], status: Status) -> dict[str, Any]:
        return {label: publish(values[c], status[c]) for c, label in zip(columns, labels, strict=True)}

    overall_doc, dimensions = publish_dimensions(counts, columns, rules, row)
    return {"overall": overall_doc or dict.fromkeys(labels, 0), "dimensions": dimensions}


def personalization(
    flags: pl.LazyFrame, contacts: pl.LazyFrame, *, variants: Sequence[str] = (),
    steps: pl.DataFrame | None = None, n_steps: int = 0,
) -> dict[str, Any]:
    """``variants``, ``journey_steps`` and ``preferred_channel`` sections (None when not used).

    ``flags``: :func:`segment.audit.metrics.patient_flags`; ``contacts``: the plan;
    ``steps``: ``patient_id``, ``step`` of the campaign's journey contacts in the ledger.
    """
    schema = contacts.collect_schema()
    out: dict[str, Any] = {"variants": None, "journey_steps": None, "preferred_channel": None}
    use_variants = bool(variants) and "variant" in schema
    # nobody with a preference: the section would be empty, so the join is not made
    use_preferred = "on_preferred" in schema and bool(
        contacts.select(pl.col("on_preferred").is_not_null().any()).collect().item())
    if not (use_variants or use_preferred or (n_steps and steps is not None)):
        return out
    plan_cols = [c for c, used in (("variant", use_variants), ("on_preferred", use_preferred)) if used]
    base = flags.join(contacts.select("patient_id", *plan_cols), on="patient_id", how="left")
    if plan_cols:
        base = base.collect().lazy()  # read by every section
    sel = pl.col("selected")
    if use_variants:
        cols = [f"v:{code}" for code in variants]
        frame = base.with_columns((sel & (pl.col("variant") == code).fill_null(False)).alias(f"v:{code}")
                                  for code in variants)
        counts = group_counts(frame, ["selected", *cols]).collect()
        rules = TableRules(equations=(Equation("selected", tuple(cols)),))
        out["variants"] = {"codes": list(variants),
                           **_published(counts, ["selected", *cols], ["selected", *variants], rules)}
    if n_steps and steps is not None:
        reached = steps.group_by("patient_id").agg(
            *[(pl.col("step") == k).any().alias(f"s:{k}") for k in range(1, n_steps + 1)])
        cols = [f"s:{k}" for k in range(1, n_steps + 1)]
        frame = base.join(reached.lazy(), on="patient_id", how="left").with_columns(
            (pl.col("eligible") & pl.col(c).fill_null(False)).alias(c) for c in cols)
        counts = group_counts(frame, ["eligible", *cols]).collect()
        out["journey_steps"] = _published(counts, ["eligible", *cols],
                                          ["eligible", *[f"step {k}" for k in range(1, n_steps + 1)]], TableRules())
    if use_preferred:
        frame = base.with_columns(
            (sel & pl.col("on_preferred").is_not_null()).alias("with_preference"),
            (sel & pl.col("on_preferred").fill_null(False)).alias("on_preferred_channel"),
        )
        counts = group_counts(frame, ["selected", "with_preference", "on_preferred_channel"]).collect()
        if int(counts.get_column("with_preference").sum()) > 0:
            rules = TableRules(derived=(Derived(("with_preference",), ("on_preferred_channel",)),))
            out["preferred_channel"] = _published(
                counts, ["selected", "with_preference", "on_preferred_channel"],
                ["selected", "with a preferred channel", "reached on it"], rules)
    return out


def personalization_html(document: dict[str, Any]) -> str:
    """The report's tables for the three sections."""
    parts: list[str] = []
    for key, title in (("variants", "Selected by message variant"), ("journey_steps", "Reached by journey step"),
                       ("preferred_channel", "Reached on their preferred channel")):
        section = document.get(key)
        if not section:
            continue
        headers = ["Group", *section["overall"].keys()]
        rows = [["All", *[_cell(v) for v in section["overall"].values()]],
                *group_rows(section["dimensions"], lambda g: [_cell(v) for k, v in g.items() if k != "group"])]
        parts.append(f'<h3 id="{key}">{escape(title)}</h3>' + table(title, headers, rows))
    return "".join(parts)


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else escape(str(value))
