"""The need index on small tables checked by hand: sign, range, ties, missing inputs."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.enrich.need_index import NEED_INDEX_COMPLETE, compute_need_index, state_rank
from segment.schema import NEED_INDEX, NEED_INDEX_QUINTILE, NEED_INDEX_STATE_PCTILE


def test_hand_checked_index_with_ties() -> None:
    # poverty and unemployment move together: PC1 explains everything and the index is
    # (poverty - 10) / 30; the last two tracts tie.
    tracts = pl.DataFrame({
        "tract_geoid": ["25000000001", "25000000002", "25000000003", "25000000004",
                        "25000000005"],
        "econ_poverty_pct": [10.0, 20.0, 30.0, 40.0, 40.0],
        "econ_unemployment_pct": [2.0, 4.0, 6.0, 8.0, 8.0],
    })
    out, summary = compute_need_index(tracts)
    expected = pl.DataFrame({
        "tract_geoid": tracts["tract_geoid"],
        NEED_INDEX: [0.0, 1 / 3, 2 / 3, 1.0, 1.0],
        NEED_INDEX_STATE_PCTILE: [0.0, 25.0, 50.0, 75.0, 75.0],
        NEED_INDEX_QUINTILE: pl.Series([1, 2, 3, 4, 4], dtype=pl.Int8),
        NEED_INDEX_COMPLETE: [True] * 5,
    })
    assert_frame_equal(out, expected, abs_tol=1e-9)
    assert summary.variance_explained == pytest.approx(1.0)
    assert summary.inputs == ["econ_poverty_pct", "econ_unemployment_pct"]
    assert summary.loadings["econ_poverty_pct"] > 0


def test_sign_follows_poverty_and_income_loads_negative() -> None:
    tracts = pl.DataFrame({
        "tract_geoid": [f"2500000000{i}" for i in range(6)],
        "econ_poverty_pct": [5.0, 8.0, 12.0, 20.0, 30.0, 45.0],
        "econ_per_capita_income": [90000.0, 70000.0, 50000.0, 35000.0, 25000.0, 15000.0],
    })
    out, summary = compute_need_index(tracts)
    assert summary.loadings["econ_poverty_pct"] > 0
    assert summary.loadings["econ_per_capita_income"] < 0
    values = out[NEED_INDEX].to_list()
    assert values == sorted(values)  # more poverty, less income -> more need
    assert min(values) == 0.0 and max(values) == pytest.approx(1.0)
    # six distinct tracts: percentiles 0, 20, ..., 100 -> quintiles 1..5, top two share 5
    assert out[NEED_INDEX_STATE_PCTILE].to_list() == pytest.approx([0, 20, 40, 60, 80, 100])
    assert out[NEED_INDEX_QUINTILE].to_list() == [1, 2, 3, 4, 5, 5]


def test_percentiles_are_within_state() -> None:
    tracts = pl.DataFrame({
        "tract_geoid": ["25000000001", "25000000002", "09000000001", "09000000002"],
        "econ_poverty_pct": [10.0, 50.0, 5.0, 8.0],
        "econ_unemployment_pct": [3.0, 12.0, 2.0, 3.0],
    })
    out, _ = compute_need_index(tracts)
    # each state ranks its own tracts: the lower tract of each state is 0, the higher 100
    assert out[NEED_INDEX_STATE_PCTILE].to_list() == [0.0, 100.0, 0.0, 100.0]
    assert out[NEED_INDEX_QUINTILE].to_list() == [1, 5, 1, 5]
    # but the 0-1 index is over the whole pack: Connecticut's tracts are low
    ct = out.filter(pl.col("tract_geoid").str.starts_with("09"))[NEED_INDEX].to_list()
    assert max(ct) < 0.2


def test_missing_inputs_imputed_and_flagged_or_left_null() -> None:
    tracts = pl.DataFrame({
        "tract_geoid": [f"2500000000{i}" for i in range(6)],
        "econ_poverty_pct": [10.0, 20.0, 30.0, 40.0, None, None],
        "econ_unemployment_pct": [2.0, 4.0, 7.0, 8.0, 5.0, None],
    })
    out, summary = compute_need_index(tracts)
    rows = {r["tract_geoid"]: r for r in out.iter_rows(named=True)}
    imputed = rows["25000000004"]
    assert imputed[NEED_INDEX] is not None and imputed[NEED_INDEX_COMPLETE] is False
    empty = rows["25000000005"]
    assert empty[NEED_INDEX] is None and empty[NEED_INDEX_STATE_PCTILE] is None
    assert empty[NEED_INDEX_QUINTILE] is None and empty[NEED_INDEX_COMPLETE] is False
    assert (summary.tracts_complete, summary.tracts_imputed, summary.tracts_without_index) == (
        4, 1, 1)


def test_too_few_inputs_gives_null_columns_and_a_reason() -> None:
    tracts = pl.DataFrame({"tract_geoid": ["25000000001"], "econ_poverty_pct": [10.0]})
    out, summary = compute_need_index(tracts)
    assert out[NEED_INDEX].null_count() == 1
    assert out.schema[NEED_INDEX_QUINTILE] == pl.Int8
    assert summary.reason is not None and summary.variance_explained is None


def test_state_rank_single_tract_and_nulls() -> None:
    frame = pl.DataFrame({"s": ["a", "b", "b", "b"], "x": [0.3, 0.1, None, 0.1]})
    pct, q = state_rank(pl.col("x"), pl.col("s"))
    out = frame.select(pct.alias("p"), q.alias("q"))
    assert out["p"].to_list() == [100.0, 0.0, None, 0.0]
    assert out["q"].to_list() == [5, 1, None, 1]
