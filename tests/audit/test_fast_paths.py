"""The audit's fast paths agree with the plain computations they replace.

patient_flags puts patients and plan side by side only when their ids pair up (same ids,
same strictly increasing order, no nulls), and joins otherwise; group_counts counts per
combination of groups and then per dimension, which must equal one group-by per dimension
straight over the patients.
"""

from __future__ import annotations

import random
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

from segment.audit.metrics import COUNT_COLUMNS, MISSING, group_counts, patient_flags

from .helpers import AS_OF, cohorts

GROUP_VALUES: dict[str, list[Any]] = {
    "race": ["White", "Black or African American", "Asian", None],
    "sex": ["F", "M", "X"],
    "language": ["en", "es", None],
    "need_index_quintile": [1, 2, 5, None],
}
STATUSES = ["selected", "suppressed", "do_not_contact", "deceased", "frequency_capped"]


def _people(n: int, seed: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    rng = random.Random(seed)
    specs = []
    for _ in range(n):
        over: dict[str, Any] = {k: rng.choice(v) for k, v in GROUP_VALUES.items()}
        over.update({f"reachable_{ch}": rng.random() < 0.5 for ch in ("sms", "email", "mail", "phone")})
        over.update(in_audience=rng.random() < 0.7, contact_status=rng.choice(STATUSES),
                    geo_precision=rng.choice(["address_point", "zip_centroid", "unmatched"]))
        specs.append((1, over))
    enriched, plan = cohorts(*specs)
    return enriched.with_columns(pl.col("need_index_quintile").cast(pl.Int8)), plan


def _flags(enriched: pl.LazyFrame, plan: pl.LazyFrame) -> pl.DataFrame:
    out = patient_flags(enriched, plan, channels=["sms", "email"], as_of=AS_OF).collect()
    return out.sort("patient_id")


def test_aligned_and_joined_plans_give_the_same_flags() -> None:
    enriched, plan = _people(400, seed=1)
    aligned = _flags(enriched, plan)
    shuffled = _flags(enriched, plan.collect().sample(fraction=1.0, shuffle=True, seed=2).lazy())
    both_shuffled = _flags(enriched.collect().sample(fraction=1.0, shuffle=True, seed=4).lazy(),
                           plan.collect().sample(fraction=1.0, shuffle=True, seed=5).lazy())
    assert aligned.height == 400
    assert aligned.get_column("selected").sum() > 0
    assert_frame_equal(aligned, shuffled)
    assert_frame_equal(aligned, both_shuffled)


def test_a_patient_missing_from_the_plan_gets_no_plan_flags() -> None:
    enriched, plan = _people(50, seed=6)
    partial = plan.filter(pl.col("patient_id") != "P00010")  # the ids no longer pair up
    full = _flags(enriched, plan)
    flags = _flags(enriched, partial)
    assert flags.height == 50
    row = flags.filter(pl.col("patient_id") == "P00010")
    assert row.select("eligible", "contactable", "selected").row(0) == (False, False, False)
    assert_frame_equal(flags.filter(pl.col("patient_id") != "P00010"),
                       full.filter(pl.col("patient_id") != "P00010"))


def _counts_by_dimension(flags: pl.DataFrame) -> pl.DataFrame:
    """The plain way: one group-by per dimension over every patient, plus the overall row."""
    parts = []
    for order, column in enumerate(c for c in flags.columns if c.startswith("g:")):
        counts = [pl.col(c).cast(pl.Int64).sum() for c in COUNT_COLUMNS]
        tag = [pl.lit(column.removeprefix("g:")).alias("dimension"), pl.lit(order).alias("_order")]
        parts.append(flags.group_by(pl.col(column).cast(pl.String).alias("group")).agg(counts).with_columns(tag))
        parts.append(flags.select(counts).with_columns(pl.lit(None, pl.String).alias("group"), *tag))
    return (pl.concat(parts, how="diagonal")
            .sort("_order", pl.col("group").is_null(), pl.col("group") == MISSING, "group")
            .select("dimension", "group", *COUNT_COLUMNS))


def test_counts_per_cell_equal_counts_per_dimension() -> None:
    enriched, plan = _people(600, seed=9)
    flags = _flags(enriched, plan)
    got = group_counts(flags.lazy()).collect()
    assert_frame_equal(got, _counts_by_dimension(flags))
    assert got.filter(pl.col("dimension") == "race").get_column("group").to_list()[-1] is None
    assert MISSING in got.get_column("group").to_list()


def test_counts_of_no_patients_are_empty() -> None:
    enriched, plan = _people(5, seed=3)
    flags = _flags(enriched, plan).head(0)
    got = group_counts(flags.lazy()).collect()
    assert got.height == 0
    assert got.columns == ["dimension", "group", *COUNT_COLUMNS]
