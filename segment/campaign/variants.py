"""Message variants: exactly one neutral code per selected patient, and why.

A campaign's ``variants:`` are tried in ``priority`` order (lower first, file order on
ties); a patient gets the first whose ``when`` holds, else the default (the variant
without ``when``). A condition is a criterion of the rule language (column tests, age,
``any``/``all``) compiled by :mod:`segment.rules.compiler`, so it reads the same and
explains itself the same way; an unknown value (a missing column value) is not a match.
The vendor file carries only the code; the vendor maps it to a template.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from segment.campaign.model import Campaign, Variant
from segment.errors import CampaignError
from segment.rules.model import AgeTest, AllOf, AnyOf, ColumnTest, EventTest

#: the plan's variant columns
VARIANT_COLUMNS = ("variant", "variant_reason")


def criterion_columns(criterion: Any) -> list[str]:
    """The patient/enriched columns a criterion reads, in order (``birth_date`` for age)."""
    if isinstance(criterion, ColumnTest):
        return [criterion.column]
    if isinstance(criterion, AgeTest):
        return ["birth_date"]
    if isinstance(criterion, AnyOf):
        return list(dict.fromkeys(c for x in criterion.any for c in criterion_columns(x)))
    if isinstance(criterion, AllOf):
        return list(dict.fromkeys(c for x in criterion.all for c in criterion_columns(x)))
    return []


def has_event_test(criterion: Any) -> bool:
    """True when a criterion tests events (variants read patient and enriched columns only)."""
    if isinstance(criterion, EventTest):
        return True
    if isinstance(criterion, AnyOf):
        return any(has_event_test(x) for x in criterion.any)
    if isinstance(criterion, AllOf):
        return any(has_event_test(x) for x in criterion.all)
    return False


def ordered(campaign: Campaign) -> list[Variant]:
    """Conditional variants in the order they are tried (priority, then file order)."""
    conditional = [(v.priority, i, v) for i, v in enumerate(campaign.variants) if v.when is not None]
    return [v for _, _, v in sorted(conditional, key=lambda t: (t[0], t[1]))]


def default_variant(campaign: Campaign) -> Variant | None:
    """The variant without a condition (None when the campaign declares no variants)."""
    return next((v for v in campaign.variants if v.when is None), None)


def variant_line(campaign: Campaign, index: int) -> int | None:
    """The campaign-file line of ``variants[index].when`` (recorded by the loader)."""
    lines: dict[str, int] = getattr(campaign, "_lines", None) or {}
    return lines.get(f"variants[{index}].when") or lines.get(f"variants[{index}]")


def check_variant_columns(campaign: Campaign, schema: pl.Schema, source: str) -> None:
    """Refuse a variant condition over a column ``source`` (a patient file) lacks: before any row is read."""
    valid = sorted(c for c in schema if not c.startswith("_"))
    for i, v in enumerate(campaign.variants):
        for column in criterion_columns(v.when):
            if column not in schema:
                raise CampaignError(
                    f"key `variants[{i}].when` (variant {v.code}): column `{column}` is not in {source}; "
                    f"valid options are: {', '.join(valid)}",
                    path=campaign.path, line=variant_line(campaign, i), key=f"variants[{i}].when", column=column,
                )


def assign_variants(campaign: Campaign, frame: pl.LazyFrame, as_of: dt.date,
                    step_column: str | None = None) -> pl.LazyFrame:
    """``frame`` with ``variant`` (the code) and ``variant_reason`` for every row.

    With ``step_column`` (a journey), a variant is tried only on rows whose step lists it
    (steps without a ``variants:`` list allow every variant); the default applies otherwise.
    """
    from segment.rules.compiler import _Compiler

    if not campaign.variants:
        return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in VARIANT_COLUMNS)
    comp = _Compiler({}, as_of)
    default = default_variant(campaign)
    code_chain: Any = None
    reason_chain: Any = None
    for v in ordered(campaign):
        assert v.when is not None
        node = comp.criterion(v.when)
        test = node.test.fill_null(False)
        if step_column is not None and campaign.journey is not None:
            steps = [i + 1 for i, s in enumerate(campaign.journey.steps) if s.variants is None or v.code in s.variants]
            test = test & pl.col(step_column).is_in(steps).fill_null(False)
        reason = pl.concat_str([pl.lit(f"{v.code}: "), node.met])
        code_chain = (pl.when(test) if code_chain is None else code_chain.when(test)).then(pl.lit(v.code))
        reason_chain = (pl.when(test) if reason_chain is None else reason_chain.when(test)).then(reason)
    fallback_code = pl.lit(default.code if default is not None else None, pl.String)
    fallback_reason = pl.lit(
        f"{default.code}: the default (no other variant's condition holds)" if default is not None else None,
        pl.String,
    )
    code = code_chain.otherwise(fallback_code) if code_chain is not None else fallback_code
    why = reason_chain.otherwise(fallback_reason) if reason_chain is not None else fallback_reason
    return frame.with_columns(code.cast(pl.String).alias("variant"), why.cast(pl.String).alias("variant_reason"))
