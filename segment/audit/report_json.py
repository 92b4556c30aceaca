"""The published audit document (``audit.json``): exact figures, suppressed for release.

:func:`build_document` turns the exact per-group figures of
:func:`segment.audit.metrics.selection_ratios` into the document written to
``audit.json`` and rendered by :mod:`segment.audit.html` and the terminal summary, so
that every output shows the same, suppressed, numbers. The key layout is documented in
``docs/audit.md`` (format 1); keys are only ever added, never renamed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from segment.audit.metrics import (
    BAND_HIGH,
    BAND_LOW,
    COUNT_COLUMNS,
    DELIVERY_COLUMNS,
    FUNNEL_STAGES,
    MIN_CELL,
    PRECISION_COLUMNS,
    REACH_COLUMNS,
)
from segment.audit.suppress import (
    SHOWN_AS,
    Derived,
    DimensionTable,
    Equation,
    Hidden,
    Status,
    TableRules,
    publish,
    publish_dimensions,
    suppressed_dimensions,
)
from segment.schema import PRECISE_GEO, GeoPrecision

FORMAT = 1

NEIGHBOURHOOD_NOTE = (
    "Area measures (need-index quintile, rurality and other census-tract figures) "
    "describe neighbourhoods, not the individuals who live in them."
)

_FUNNEL_REACH = (*FUNNEL_STAGES, *REACH_COLUMNS)
_PRECISE_COLS = tuple(f"geo_{p.value}" for p in PRECISE_GEO)
_MATCHED_COLS = tuple(c for c in PRECISION_COLUMNS if c != f"geo_{GeoPrecision.UNMATCHED.value}")

#: how the audit's count columns relate, for complementary suppression
RULES = TableRules(
    row_bases=(("patients", COUNT_COLUMNS), ("eligible", _FUNNEL_REACH)),
    equations=(
        Equation("patients", PRECISION_COLUMNS),
        Equation("geo_matched", _MATCHED_COLS),
        Equation("geo_precise", _PRECISE_COLS),
        Equation("no_digital", ("any_fallback", "no_channel")),
    ),
    derived=(
        Derived(("patients",), ("eligible",)),
        Derived(("geo_precise",), ("geocoded_precise",)),
        *(Derived(("eligible",), (stage,)) for stage in (*FUNNEL_STAGES[1:], "no_digital")),
        Derived(("contactable",), ("selected",)),
        Derived(("any_fallback",), ("mail_fallback",)),
        Derived(("any_fallback",), ("phone_fallback",)),
        Derived(("mail_fallback", "phone_fallback"), ("any_fallback",)),
    ),
    # hidden last: the bases, and `selected`, which every selection rate needs (so
    # "contactable - selected" small hides `contactable`, not `selected`)
    protected=("patients", "eligible", "selected"),
)


#: how the delivery table's columns relate: sent = delivered + failed + unknown
DELIVERY_RULES = TableRules(
    row_bases=(("sent", DELIVERY_COLUMNS),),
    equations=(Equation("sent", ("delivered", "failed", "unknown")),),
    protected=("sent",),
)


def _rate(
    values: Mapping[str, int], status: Status, num: str, den: str
) -> float | None:
    if status[num] is not None or status[den] is not None or values[den] == 0:
        return None
    return values[num] / values[den]


def _counts(values: Mapping[str, int], status: Status, columns: Sequence[str]) -> dict[str, Any]:
    return {c: publish(values[c], status[c]) for c in columns}


def _section(row: Mapping[str, Any], status: Status) -> dict[str, Any]:
    """The published figures of one row (a group or the overall row)."""
    values = {c: int(row[c]) for c in COUNT_COLUMNS}
    funnel = _counts(values, status, FUNNEL_STAGES)
    funnel_rates = {s: _rate(values, status, s, "eligible") for s in FUNNEL_STAGES[1:]}
    geocoding = {
        "patients": publish(values["patients"], status["patients"]),
        "matched": publish(values["geo_matched"], status["geo_matched"]),
        "precise": publish(values["geo_precise"], status["geo_precise"]),
        "match_rate": _rate(values, status, "geo_matched", "patients"),
        "precise_rate": _rate(values, status, "geo_precise", "patients"),
        "precision": {
            c.removeprefix("geo_"): publish(values[c], status[c]) for c in PRECISION_COLUMNS
        },
    }
    reach = {"eligible": funnel["eligible"], **_counts(values, status, REACH_COLUMNS)}
    reach["no_digital_rate"] = _rate(values, status, "no_digital", "eligible")
    rate_shown = status["selected"] is None and status["eligible"] is None and values["eligible"]
    selection = {
        "rate": row["selection_rate"] if rate_shown else None,
        "ci_low": row["rate_low"] if rate_shown else None,
        "ci_high": row["rate_high"] if rate_shown else None,
    }
    return {
        "suppressed": status["eligible"] is Hidden.PRIMARY,
        "funnel": funnel,
        "funnel_rates": funnel_rates,
        "selection": selection,
        "geocoding": geocoding,
        "reach": reach,
    }


def _flag_text(dimension: str, group: str, ref: str, sel: Mapping[str, Any]) -> str:
    direction = "below" if sel["flag"] == "below" else "above"
    bound = BAND_LOW if direction == "below" else BAND_HIGH
    text = (
        f"{dimension} = {group}: selected at a rate {direction} {bound:g} times "
        f"that of the reference group ({ref})"
    )
    if sel["ratio"] is not None:
        text += f": ratio {sel['ratio']:.2f}"
        if sel["ratio_ci_low"] is not None:
            text += f" (95% interval {sel['ratio_ci_low']:.2f} to {sel['ratio_ci_high']:.2f})"
        if not sel["flag_clear"]:
            text += "; the interval reaches into the 0.8-1.25 band, so the gap may be chance"
    else:
        text += "; exact figures are suppressed to protect small counts"
    return text + "."


def _published_group(g: Mapping[str, Any], status: Status, ref: str | None, ref_shown: bool) -> dict[str, Any]:
    """One group's published section, with its ratio (when the reference's figures are shown) and flag."""
    doc = _section(g, status)
    sel = doc["selection"]
    ratio_shown = ref_shown and sel["rate"] is not None
    sel["ratio"] = g["ratio"] if ratio_shown else None
    sel["ratio_ci_low"] = g["ratio_low"] if ratio_shown else None
    sel["ratio_ci_high"] = g["ratio_high"] if ratio_shown else None
    judged = not doc["suppressed"]
    sel["flag"] = g["flag"] if judged else None
    sel["flag_clear"] = g["flag_clear"] if judged and g["flag"] else None
    return {"group": g["group"], "is_reference": g["group"] == ref, **doc}


def _dimension(table: DimensionTable, ref: str | None, named: bool, column: str
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One dimension's published groups and the flags they raise."""
    ref_index = table.index_of(ref)
    ref_shown = ref_index is not None and (
        table.statuses[ref_index]["selected"] is None and table.statuses[ref_index]["eligible"] is None
    )
    published = [_published_group(g, st, ref, ref_shown) for g, st in zip(table.groups, table.statuses, strict=True)]
    flags = [
        {
            "dimension": table.name,
            "group": doc["group"],
            "direction": doc["selection"]["flag"],
            "ratio": doc["selection"]["ratio"],
            "clear": bool(doc["selection"]["flag_clear"]),
            "text": _flag_text(table.name, doc["group"], str(ref), doc["selection"]),
        }
        for doc in published
        if doc["selection"]["flag"]
    ]
    dimension = {
        "name": table.name,
        "column": column,
        "reference_group": ref,
        "reference_chosen": "named" if named else ("largest" if ref else None),
        "reference_rate": table.groups[ref_index]["selection_rate"] if ref_index is not None and ref_shown else None,
        "groups": published,
    }
    return dimension, flags


def _methods() -> dict[str, Any]:
    return {
        "rate_interval": "Wilson score interval",
        "ratio_interval": "Katz log interval (0.5 added to every cell when a cell is zero)",
        "suppression": {
            "primary": SHOWN_AS[Hidden.PRIMARY],
            "complementary": SHOWN_AS[Hidden.COMPLEMENTARY],
        },
    }


def build_document(
    ratios: pl.DataFrame,
    references: Mapping[str, str | None],
    *,
    named_references: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    campaign: Mapping[str, Any] | None = None,
    as_of: dt.date | None = None,
) -> dict[str, Any]:
    """The suppressed, publishable audit document (see ``docs/audit.md``)."""
    columns = dict(columns or {})
    overall_doc: dict[str, Any] | None = None
    dimensions: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for table in suppressed_dimensions(ratios, COUNT_COLUMNS, RULES, references=references):
        if overall_doc is None:
            overall_doc = _section(table.overall, table.total_status)
        dimension, raised = _dimension(table, references.get(table.name), table.name in named_references,
                                       columns.get(table.name, table.name))
        dimensions.append(dimension)
        flags.extend(raised)
    return {
        "format": FORMAT,
        "campaign": dict(campaign or {}),
        "as_of": as_of.isoformat() if as_of else None,
        "min_cell_size": MIN_CELL,
        "band": {"low": BAND_LOW, "high": BAND_HIGH},
        "confidence": 0.95,
        "methods": _methods(),
        "overall": overall_doc or {},
        "dimensions": dimensions,
        "flags": flags,
        "notes": notes(),
    }


def _delivery_row(values: Mapping[str, int], status: Status) -> dict[str, Any]:
    return {
        **_counts(values, status, DELIVERY_COLUMNS),
        "delivered_rate": _rate(values, status, "delivered", "sent"),
        "failed_rate": _rate(values, status, "failed", "sent"),
    }


def build_delivery(counts: pl.DataFrame) -> dict[str, Any]:
    """The published delivery section: sent, delivered, failed and unknown per group.

    ``counts`` comes from :func:`segment.audit.metrics.group_counts` over
    :func:`segment.audit.metrics.delivery_flags` (columns :data:`DELIVERY_COLUMNS`);
    suppressed like the funnel (small counts, and whatever would reveal them).
    """
    overall_doc, dimensions = publish_dimensions(counts, DELIVERY_COLUMNS, DELIVERY_RULES, _delivery_row)
    empty = dict.fromkeys(DELIVERY_COLUMNS, 0) | {"delivered_rate": None, "failed_rate": None}
    return {"overall": overall_doc or empty, "dimensions": dimensions}


def notes() -> list[str]:
    """The plain-words notes every report carries."""
    return [
        NEIGHBOURHOOD_NOTE,
        "Eligible means in the campaign's audience (in the rule population and due), "
        "excluding deceased patients. Every later stage is counted among the eligible: "
        "precise geocoding and tract enrichment do not gate contact, so only 'selected' "
        "is a subset of 'contactable'.",
        f"Counts from 1 to {MIN_CELL - 1} are shown as '<{MIN_CELL}'. Counts that would let "
        "a hidden count be recovered by subtraction (from a total or another published "
        "figure) are shown as 'suppressed'. Rates, intervals and ratios built on a hidden "
        f"count are not shown. Groups with fewer than {MIN_CELL} eligible people are never "
        "flagged.",
        f"A group is flagged when its selection rate is below {BAND_LOW:g} or above "
        f"{BAND_HIGH:g} times the reference group's (the four-fifths rule, both "
        "directions). Each rate carries a Wilson 95% interval; each ratio a Katz log 95% "
        "interval. A flag is 'clear' when that whole interval lies outside the band; "
        "otherwise the gap may be chance.",
        "Reach gaps count eligible people with no usable digital channel (no SMS and no "
        "email reachability: consent and a valid contact) and how many a mail or phone "
        "fallback would reach.",
    ]
