"""measure.json from a cohort frame: the edge where every assigned patient was lost."""

from __future__ import annotations

import datetime as dt

import polars as pl

from segment.measure.document import build_document


def _cohort(n: int, lost: str | None) -> pl.DataFrame:
    return pl.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)],
        "arm": ["contact" if i % 5 else "holdout" for i in range(n)],
        "lost": [lost] * n,
        "reached": [True] * n,
        "completed": [i % 3 == 0 for i in range(n)],
        "merged": [False] * n,
        "follow_up_complete": [True] * n,
        "days": [10] * n,
        "g:race": ["White" if i % 2 else "Black" for i in range(n)],
    }, schema_overrides={"lost": pl.String})


def _document(frame: pl.DataFrame) -> dict:
    return build_document(frame, dimensions=["race"], campaign={"code": "X"}, as_of=dt.date(2025, 7, 1),
                          window_days=90, rules=["crc"], messages={"sms": 40}, costs={"sms": 0.01},
                          design={"baseline_rate": 0.2})


def test_everyone_lost_gives_an_empty_comparison_not_a_crash() -> None:
    doc = _document(_cohort(50, "not_in_extract"))
    assert doc["intention_to_treat"]["contact"]["assigned"] == 0
    assert doc["intention_to_treat"]["difference"]["value"] is None
    assert doc["lost"]["contact"]["not_in_extract"] == 40 and doc["lost"]["holdout"]["not_in_extract"] == "<11"
    assert doc["dimensions"] == []
    assert doc["plan"]["minimum_detectable_effect"] is None and doc["plan"]["warning"]


def test_the_overall_row_is_the_same_with_and_without_dimensions() -> None:
    frame = _cohort(200, None)
    with_dims = _document(frame)
    without = build_document(frame, dimensions=[], campaign={"code": "X"}, as_of=dt.date(2025, 7, 1),
                             window_days=90, rules=["crc"], messages={"sms": 160}, costs={"sms": 0.01},
                             design={"baseline_rate": 0.2})
    assert with_dims["intention_to_treat"] == without["intention_to_treat"]
    assert with_dims["intention_to_treat"]["contact"]["assigned"] == 160
    assert [g["group"] for g in with_dims["dimensions"][0]["groups"]] == ["Black", "White"]
    assert without["dimensions"] == []
