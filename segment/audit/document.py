"""The audit document from enriched patients and a contact plan (pure: no files).

:func:`audit_document` checks the requested groups, builds the patient-level flags
(:mod:`.metrics`), counts them per group, chooses the reference groups and publishes the
suppressed document (:mod:`.report_json`), with the holdout balance (:mod:`.balance`),
the personalization breakdowns (:mod:`.personal`) and the delivery section.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from segment.audit.balance import holdout_balance
from segment.audit.metrics import (
    DEFAULT_DIMENSIONS,
    DELIVERY_COLUMNS,
    available_dimensions,
    choose_references,
    delivery_flags,
    group_counts,
    patient_flags,
    selection_ratios,
)
from segment.audit.personal import personalization
from segment.audit.report_json import build_delivery, build_document
from segment.errors import ConfigError, PrivacyError
from segment.log import get_logger
from segment.schema import DIRECT_IDENTIFIERS

_log = get_logger("audit")


def parse_reference_groups(items: Sequence[str]) -> dict[str, str]:
    """``["race=White", "sex=F"]`` -> ``{"race": "White", "sex": "F"}``."""
    parsed: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip() or not value.strip():
            raise ConfigError(
                f"key `reference_group`: found {item!r}; expected COLUMN=VALUE", key="reference_group"
            )
        parsed[column.strip()] = value.strip()
    return parsed


def _as_categories(named: Mapping[str, str] | None, counts: pl.DataFrame) -> dict[str, str]:
    """Named race/ethnicity reference groups in the words ingest stores (``Black`` -> the OMB name).

    A name that is already a group of the data is kept as written.
    """
    from segment.ingest.race import normalize_ethnicity, normalize_race

    out = dict(named or {})
    present = set(zip(counts["dimension"], counts["group"], strict=True)) if counts.height else set()
    for dim, normalize in (("race", normalize_race), ("ethnicity", normalize_ethnicity)):
        if dim in out and (dim, out[dim]) not in present:
            value = pl.select(normalize(pl.lit(out[dim])).value).item()
            out[dim] = value if value is not None else out[dim]
    return out


def _check_groups(groups: Sequence[str]) -> list[str]:
    refused = [g for g in groups if g in DIRECT_IDENTIFIERS or g == "patient_id"]
    if refused:
        raise PrivacyError(
            f"audit group column(s) {', '.join(refused)} identify people; "
            "group by a category (for example county_fips or language)"
        )
    return [g for g in dict.fromkeys(groups) if g not in DEFAULT_DIMENSIONS]


def audit_document(
    enriched: pl.LazyFrame,
    contacts: pl.LazyFrame,
    *,
    channels: Sequence[str],
    as_of: dt.date,
    groups: Sequence[str] = (),
    reference_group: Mapping[str, str] | None = None,
    campaign_info: Mapping[str, Any] | None = None,
    delivery: pl.LazyFrame | pl.DataFrame | None = None,
    holdout: Mapping[str, Any] | None = None,
    variants: Sequence[str] = (),
    journey_steps: pl.DataFrame | None = None,
    n_steps: int = 0,
) -> dict[str, Any]:
    """The published audit document from enriched patients and their contact plan.

    Pure: no files are read or written. ``groups`` adds dimensions (enriched columns);
    ``reference_group`` names the reference group per dimension (default: largest).
    ``delivery``: per patient sent, ``delivered`` and ``failed`` from vendor feedback
    (:meth:`ContactLedger.delivery_outcomes`); the document's ``delivery`` key is null
    without it. ``holdout`` (``{"baseline_rate": ...}``, for a campaign with a holdout):
    the document's ``holdout`` key shows the arms' balance on every group and the plan.
    ``variants`` (codes), ``journey_steps`` (``patient_id``, ``step`` from the ledger) and
    ``n_steps``: the ``variants``, ``journey_steps`` and ``preferred_channel`` breakdowns
    (:mod:`segment.audit.personal`; null keys when the campaign does not use them).
    """
    extra = _check_groups(groups)
    dims, skipped = available_dimensions(enriched.collect_schema().names(), extra)
    for item in skipped:
        _log.warning(f"dimension {item['name']} skipped: {item['reason']}")
    # collected once: the counts, the holdout, personalization and delivery all read it
    flags = patient_flags(enriched, contacts, channels=channels, as_of=as_of, dimensions=dims).collect().lazy()
    counts = group_counts(flags).collect()
    references = choose_references(counts, _as_categories(reference_group, counts))
    document = build_document(
        selection_ratios(counts, references),
        references,
        named_references=list(reference_group or {}),
        columns=dims,
        campaign={"channels": list(channels), **dict(campaign_info or {})},
        as_of=as_of,
    )
    document["skipped_dimensions"] = skipped
    document["holdout"] = None
    if "arm" in contacts.collect_schema() and holdout is not None:
        document["holdout"] = holdout_balance(flags, contacts, baseline_rate=holdout["baseline_rate"])
    document.update(personalization(flags, contacts, variants=variants, steps=journey_steps, n_steps=n_steps))
    document["delivery"] = None
    if delivery is not None:
        sent = delivery_flags(flags, delivery.lazy())
        document["delivery"] = build_delivery(group_counts(sent, DELIVERY_COLUMNS).collect())
    return document


def identity_counts(workdir: Path) -> dict[str, Any] | None:
    """How ingest linked records (``identity-report.json``): the linkage, pairs merged and left for review."""
    path = workdir / "identity-report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return {"linkage": report.get("linkage"), "merge_pairs": report.get("merge_pairs"),
            "review_pairs": report.get("review_pairs", 0)}
