"""The composite need index: first principal component of standardized tract indicators.

Method (docs/need-index.md): take the inputs the pack has (poverty, unemployment, income,
no internet, uninsured, SNAP, no vehicle, rent burden), log-transform income, impute a
tract's missing input with its state's median (flagging the tract as not complete),
standardize each input over the pack's tracts, take the first principal component with
an SVD (the DeGAUSS deprivation-index method), orient it so that the loading on poverty
is positive (higher = more need), rescale to 0-1 over the pack's tracts, and rank within
each state into a percentile (0-100) and a quintile (1-5, 5 = most need).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from segment.reference.indicators import TRACT_GEOID
from segment.schema import NEED_INDEX, NEED_INDEX_QUINTILE, NEED_INDEX_STATE_PCTILE

NEED_INDEX_COMPLETE = "need_index_complete"


@dataclass(frozen=True)
class NeedInput:
    """A candidate input: its column, whether high values mean more need, and a log flag."""

    column: str
    direction: int  # +1: higher value = more need; -1: higher value = less need
    log: bool = False


#: candidate inputs, in order; the index uses those the pack has (see MIN_COVERAGE)
NEED_INPUTS: tuple[NeedInput, ...] = (
    NeedInput("econ_poverty_pct", +1),
    NeedInput("econ_unemployment_pct", +1),
    NeedInput("econ_per_capita_income", -1, log=True),
    NeedInput("econ_median_household_income", -1, log=True),
    NeedInput("internet_no_access_pct", +1),
    NeedInput("insurance_uninsured_pct", +1),
    NeedInput("food_snap_pct", +1),
    NeedInput("transport_no_vehicle_pct", +1),
    NeedInput("housing_rent_burden_pct", +1),
)

#: the input the orientation is anchored on (its loading is made positive)
ANCHOR = "econ_poverty_pct"
#: an input is used only when at least this share of the pack's tracts have it
MIN_COVERAGE = 0.5
#: a tract gets an index only when it has at least this share of the inputs observed
MIN_OBSERVED = 0.5

OUTPUT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    TRACT_GEOID: pl.String,
    NEED_INDEX: pl.Float64,
    NEED_INDEX_STATE_PCTILE: pl.Float64,
    NEED_INDEX_QUINTILE: pl.Int8,
    NEED_INDEX_COMPLETE: pl.Boolean,
}


@dataclass(frozen=True)
class NeedIndexSummary:
    """How the index was built: inputs, loadings, variance explained, tract counts."""

    inputs: list[str] = field(default_factory=list)
    loadings: dict[str, float] = field(default_factory=dict)
    variance_explained: float | None = None
    tracts: int = 0
    tracts_complete: int = 0
    tracts_imputed: int = 0
    tracts_without_index: int = 0
    skipped_inputs: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # why no index was computed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form for enrich-report.json."""
        return {
            "method": "first principal component of standardized tract indicators (SVD)",
            "inputs": self.inputs,
            "loadings": self.loadings,
            "variance_explained": self.variance_explained,
            "tracts": self.tracts,
            "tracts_complete": self.tracts_complete,
            "tracts_imputed": self.tracts_imputed,
            "tracts_without_index": self.tracts_without_index,
            "skipped_inputs": self.skipped_inputs,
            "reason": self.reason,
        }


def _empty(tracts: pl.DataFrame) -> pl.DataFrame:
    return tracts.select(
        pl.col(TRACT_GEOID),
        *[pl.lit(None, dtype=t).alias(n) for n, t in OUTPUT_SCHEMA.items() if n != TRACT_GEOID],
    )


def _choose_inputs(tracts: pl.DataFrame) -> tuple[list[NeedInput], dict[str, str]]:
    chosen: list[NeedInput] = []
    skipped: dict[str, str] = {}
    n = max(tracts.height, 1)
    for spec in NEED_INPUTS:
        if spec.column not in tracts.columns:
            continue
        values = tracts[spec.column].cast(pl.Float64)
        share = values.is_not_null().sum() / n
        if share < MIN_COVERAGE:
            skipped[spec.column] = f"only {share:.0%} of tracts have it"
        elif values.drop_nulls().n_unique() < 2:
            skipped[spec.column] = "constant over the pack's tracts"
        else:
            chosen.append(spec)
    return chosen, skipped


def state_rank(index: pl.Expr, state: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Within-state percentile (0-100) and quintile (1-5) expressions for ``index``.

    Percentile = 100 * (tracts in the state with a lower index) / (tracts with an index
    - 1); tied tracts share the lower rank, so ties always land in the same percentile and
    quintile. Quintile = floor(percentile / 20) + 1, capped at 5 (5 = most need). A state
    with one tract puts it at 100.
    """
    lower = index.rank("min").over(state) - 1
    n = index.count().over(state)
    pctile = (
        pl.when(index.is_null())
        .then(None)
        .when(n > 1)
        .then(100.0 * lower.cast(pl.Float64) / (n - 1).cast(pl.Float64))
        .otherwise(100.0)
    )
    quintile = (
        pl.when(pctile.is_not_null())
        .then(pl.min_horizontal((pctile / 20.0).floor() + 1, pl.lit(5.0)))
        .cast(pl.Int8)
    )
    return pctile, quintile


def compute_need_index(tracts: pl.DataFrame) -> tuple[pl.DataFrame, NeedIndexSummary]:
    """The need index for every tract of a pack's indicator table.

    Returns one row per tract with ``need_index`` (0-1), ``need_index_state_pctile``
    (0-100), ``need_index_quintile`` (1-5) and ``need_index_complete`` (all inputs
    observed), plus a summary. Tracts with fewer than half of the inputs get nulls.
    """
    chosen, skipped = _choose_inputs(tracts)
    if len(chosen) < 2:
        summary = NeedIndexSummary(
            inputs=[c.column for c in chosen], tracts=tracts.height,
            tracts_without_index=tracts.height, skipped_inputs=skipped,
            reason="the pack has fewer than two usable need-index inputs",
        )
        return _empty(tracts), summary
    state = pl.col(TRACT_GEOID).str.slice(0, 2)
    prepared = tracts.select(
        pl.col(TRACT_GEOID),
        state.alias("_state"),
        *[
            (pl.col(c.column).cast(pl.Float64).clip(lower_bound=1.0).log()
             if c.log else pl.col(c.column).cast(pl.Float64)).alias(c.column)
            for c in chosen
        ],
    )
    names = [c.column for c in chosen]
    observed = pl.sum_horizontal([pl.col(n).is_not_null().cast(pl.Int32) for n in names])
    imputed = prepared.with_columns(
        observed.alias("_observed"),
        *[
            pl.col(n).fill_null(pl.col(n).median().over("_state")).fill_null(pl.col(n).median())
            for n in names
        ],
    ).with_columns(
        (pl.col("_observed") >= int(np.ceil(MIN_OBSERVED * len(names)))).alias("_usable")
    )
    # a fixed row order: the same tracts give the same floating-point sums, so the same bytes
    usable = imputed.filter(pl.col("_usable")).sort(TRACT_GEOID)
    matrix = usable.select(names).to_numpy().astype(np.float64)
    mean = matrix.mean(axis=0)
    std = matrix.std(axis=0)
    std[std == 0] = 1.0
    z = (matrix - mean) / std
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    loading = vt[0]
    anchor = names.index(ANCHOR) if ANCHOR in names else 0
    sign = 1.0 if loading[anchor] * chosen[anchor].direction > 0 else -1.0
    loading = loading * sign
    scores = z @ loading
    lo, hi = float(scores.min()), float(scores.max())
    scaled = (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
    variance = singular**2
    explained = float(variance[0] / variance.sum()) if variance.sum() > 0 else None
    scored = usable.select(TRACT_GEOID).with_columns(pl.Series(NEED_INDEX, scaled))
    result = (
        imputed.select(TRACT_GEOID, "_state", "_observed", "_usable")
        .join(scored, on=TRACT_GEOID, how="left")
    )
    pctile, quintile = state_rank(pl.col(NEED_INDEX), pl.col("_state"))
    result = result.with_columns(
        pctile.alias(NEED_INDEX_STATE_PCTILE),
        quintile.alias(NEED_INDEX_QUINTILE),
        (pl.col("_observed") == len(names)).alias(NEED_INDEX_COMPLETE),
    ).select(list(OUTPUT_SCHEMA))
    complete = int(imputed.filter(pl.col("_observed") == len(names)).height)
    summary = NeedIndexSummary(
        inputs=names,
        loadings={n: round(float(v), 6) for n, v in zip(names, loading, strict=True)},
        variance_explained=round(explained, 6) if explained is not None else None,
        tracts=tracts.height,
        tracts_complete=complete,
        tracts_imputed=usable.height - complete,
        tracts_without_index=tracts.height - usable.height,
        skipped_inputs=skipped,
    )
    return result, summary
