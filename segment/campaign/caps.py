"""Frequency caps across campaigns, counted from the contact ledger in one group-by.

A cap ``{per_days: 7, max: 1}`` means: at most one contact per patient per channel
in any window of 7 days. Every recorded contact counts, before or after this
campaign's planned send time: a contact sent strictly less than ``per_days`` days away
from it, on either side, is in a window with it (so a backdated run cannot ignore
contacts made later). With ``max`` above one this is conservative: two contacts on
opposite sides may count together though no single window holds both. Contacts
recorded by the same run id are ignored so a rerun of the same run reproduces its own
files.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from segment.campaign.model import Channel, FrequencyCap


def longest_window(caps: list[FrequencyCap]) -> int:
    """The longest cap window in days (0 without caps)."""
    return max((c.per_days for c in caps), default=0)


def capped_channels(
    history: pl.LazyFrame,
    caps: list[FrequencyCap],
    channels: list[Channel],
    planned_utc: dt.datetime,
    *,
    run_id: str | None = None,
) -> pl.LazyFrame:
    """``patient_id`` plus ``capped_<channel>`` (bool) for every patient with any history."""
    hist = history
    if run_id is not None:
        hist = hist.filter(pl.col("run_id") != run_id)
    if not caps:
        return hist.select("patient_id").unique().with_columns(
            [pl.lit(False).alias(f"capped_{ch}") for ch in channels]
        )
    aggs = []
    for i, cap in enumerate(caps):
        start = planned_utc - dt.timedelta(days=cap.per_days)
        end = planned_utc + dt.timedelta(days=cap.per_days)
        inside = (pl.col("sent_at") > pl.lit(start)) & (pl.col("sent_at") < pl.lit(end))
        aggs.append(inside.sum().alias(f"_n{i}"))
    counts = hist.group_by("patient_id", "channel").agg(aggs)
    hit = pl.lit(False)
    for i, cap in enumerate(caps):
        applies = (
            pl.col("channel").is_in([str(c) for c in cap.channels]) if cap.channels else pl.lit(True)
        )
        hit = hit | (applies & (pl.col(f"_n{i}") >= cap.max))
    flagged = counts.with_columns(hit.alias("_capped"))
    return flagged.group_by("patient_id").agg(
        [
            (pl.col("_capped") & (pl.col("channel") == str(ch))).any().alias(f"capped_{ch}")
            for ch in channels
        ]
    )
