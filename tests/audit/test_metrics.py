"""The audit arithmetic: Wilson intervals, ratios, flags, zero-eligible groups, age bands."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segment.audit.metrics import (
    MISSING,
    choose_references,
    group_counts,
    patient_flags,
    ratio_interval,
    selection_ratios,
    wilson_exprs,
    wilson_interval,
)
from segment.dates import age_band_expr
from segment.errors import ConfigError

from .helpers import AS_OF, cohorts


# -- Wilson --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775328),
        (5, 10, 0.2365931, 0.7634069),
        (10, 10, 0.7224672, 1.0),
        (1, 1, 0.2065493, 1.0),
        (50, 100, 0.4038315, 0.5961685),
    ],
)
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)  # type: ignore[misc]
    assert lo == pytest.approx(low, abs=1e-7)
    assert hi == pytest.approx(high, abs=1e-7)
    frame = pl.DataFrame({"k": [k], "n": [n]})
    e_lo, e_hi = wilson_exprs(pl.col("k"), pl.col("n"))
    row = frame.select(e_lo.alias("lo"), e_hi.alias("hi")).row(0)
    assert row[0] == pytest.approx(low, abs=1e-7)
    assert row[1] == pytest.approx(high, abs=1e-7)


def test_wilson_zero_n_is_undefined() -> None:
    assert wilson_interval(0, 0) is None
    e_lo, e_hi = wilson_exprs(pl.col("k"), pl.col("n"))
    row = pl.DataFrame({"k": [0], "n": [0]}).select(e_lo.alias("lo"), e_hi.alias("hi")).row(0)
    assert row == (None, None)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_ratio_interval_katz() -> None:
    lo, hi = ratio_interval(5, 10, 10, 20)  # type: ignore[misc]
    se = math.sqrt(1 / 5 - 1 / 10 + 1 / 10 - 1 / 20)
    assert lo == pytest.approx(math.exp(-1.959963984540054 * se))
    assert hi == pytest.approx(math.exp(1.959963984540054 * se))
    assert (lo, hi) == pytest.approx((0.468092, 2.136333), abs=1e-6)
    # zero selected in one group: Haldane-Anscombe correction, finite interval
    lo0, hi0 = ratio_interval(0, 20, 10, 20)  # type: ignore[misc]
    assert 0 < lo0 < hi0 < 1
    assert ratio_interval(0, 20, 0, 20) is None
    assert ratio_interval(3, 0, 3, 20) is None


# -- age bands -------------------------------------------------------------------------
def test_age_band_as_of_date() -> None:
    births = [
        dt.date(2007, 6, 2),  # 17 (birthday tomorrow)
        dt.date(2007, 6, 1),  # 18 today
        dt.date(1990, 6, 1),  # 35
        dt.date(1975, 6, 2),  # 49
        dt.date(1960, 6, 1),  # 65
        dt.date(1950, 1, 1),  # 75
        None,
        dt.date(2030, 1, 1),  # born after the as-of date
    ]
    out = pl.DataFrame({"b": births}, schema={"b": pl.Date}).select(
        age_band_expr("b", dt.date(2025, 6, 1)).alias("band")
    )
    assert out["band"].to_list() == ["0-17", "18-34", "35-49", "35-49", "65-74", "75+", None, None]


# -- funnel counts ---------------------------------------------------------------------
def test_group_counts_funnel_exact() -> None:
    enriched, contacts = cohorts(
        (20, {"race": "White"}),
        (5, {"race": "White", "geo_precision": "zip_centroid", "sdoh_source": "zip_centroid_no_tract"}),
        (4, {"race": "White", "contact_status": "suppressed"}),
        (12, {"race": "Black", "reachable_sms": False, "reachable_email": False,
              "contact_status": "no_consent_or_contact"}),
        (3, {"race": None, "in_audience": False, "contact_status": "not_in_audience"}),
        (2, {"race": "Black", "contact_status": "deceased"}),
    )
    flags = patient_flags(enriched, contacts, channels=["sms", "email"], as_of=AS_OF)
    counts = group_counts(flags).filter(pl.col("dimension") == "race").collect()
    got = counts.select(
        "group", "patients", "geo_matched", "geo_precise", "geo_zip_centroid", "eligible",
        "geocoded_precise", "enriched", "contactable", "selected", "no_digital",
        "mail_fallback", "phone_fallback", "any_fallback", "no_channel",
    )
    expected = pl.DataFrame(
        {
            "group": ["Black", "White", MISSING, None],
            "patients": [14, 29, 3, 46],
            "geo_matched": [14, 29, 3, 46],
            "geo_precise": [14, 24, 3, 41],
            "geo_zip_centroid": [0, 5, 0, 5],
            "eligible": [12, 29, 0, 41],
            "geocoded_precise": [12, 24, 0, 36],
            "enriched": [12, 24, 0, 36],
            "contactable": [0, 29, 0, 29],
            "selected": [0, 25, 0, 25],
            "no_digital": [12, 0, 0, 12],
            "mail_fallback": [12, 0, 0, 12],
            "phone_fallback": [0, 0, 0, 0],
            "any_fallback": [12, 0, 0, 12],
            "no_channel": [0, 0, 0, 0],
        },
        schema_overrides={"group": pl.String},
    )
    assert_frame_equal(got, expected, check_dtypes=False)


def test_contactable_uses_only_the_campaigns_channels() -> None:
    enriched, contacts = cohorts(
        (15, {"reachable_sms": False, "reachable_email": False, "reachable_mail": True,
              "contact_status": "no_consent_or_contact"}),
    )
    for channels, expected in ((["sms", "email"], 0), (["sms", "mail"], 15)):
        flags = patient_flags(enriched, contacts, channels=channels, as_of=AS_OF)
        assert flags.select(pl.col("contactable").sum()).collect().item() == expected
    with pytest.raises(ConfigError, match="unknown channel"):
        patient_flags(enriched, contacts, channels=["fax"], as_of=AS_OF)


def test_missing_enriched_column_is_a_clear_error() -> None:
    enriched, contacts = cohorts((3, {}))
    with pytest.raises(ConfigError, match=r"lacks column.*rurality"):
        patient_flags(enriched.drop("rurality"), contacts, channels=["sms"], as_of=AS_OF)


# -- ratios and flags ------------------------------------------------------------------
def _race_ratios(
    *specs: tuple[int, dict[str, object]], reference: dict[str, str] | None = None
) -> tuple[pl.DataFrame, dict[str, str | None]]:
    enriched, contacts = cohorts(*specs)
    flags = patient_flags(enriched, contacts, channels=["sms", "email"], as_of=AS_OF)
    counts = group_counts(flags).collect()
    refs = choose_references(counts, reference)
    return selection_ratios(counts, refs).filter(pl.col("dimension") == "race"), refs


def _sel(n_selected: int, n_not: int, race: str) -> list[tuple[int, dict[str, object]]]:
    return [
        (n_selected, {"race": race}),
        (n_not, {"race": race, "contact_status": "suppressed"}),
    ]


def test_ratios_and_flags_in_both_directions() -> None:
    ratios, refs = _race_ratios(
        *_sel(50, 50, "White"),  # 100 eligible, rate 0.5: reference (largest)
        *_sel(12, 28, "Black"),  # 40, rate 0.3 -> ratio 0.6 below
        *_sel(28, 12, "Asian"),  # 40, rate 0.7 -> ratio 1.4 above
        *_sel(20, 20, "Other"),  # 40, rate 0.5 -> ratio 1.0
        *_sel(8, 12, "Pacific"),  # 20, rate 0.4 -> ratio exactly 0.8: not flagged
    )
    assert refs["race"] == "White"
    rows = {r["group"]: r for r in ratios.to_dicts()}
    assert rows["Black"]["ratio"] == pytest.approx(0.6)
    assert rows["Black"]["flag"] == "below"
    assert rows["Asian"]["ratio"] == pytest.approx(1.4)
    assert rows["Asian"]["flag"] == "above"
    assert rows["Other"]["flag"] is None and rows["Other"]["ratio"] == pytest.approx(1.0)
    assert rows["Pacific"]["ratio"] == pytest.approx(0.8) and rows["Pacific"]["flag"] is None
    assert rows["White"]["ratio"] == 1.0 and rows["White"]["flag"] is None
    assert rows["White"]["ratio_low"] is None
    lo, hi = ratio_interval(12, 40, 50, 100)  # type: ignore[misc]
    assert rows["Black"]["ratio_low"] == pytest.approx(lo)
    assert rows["Black"]["ratio_high"] == pytest.approx(hi)
    assert rows["Black"]["flag_clear"] is (hi < 0.8)
    w = wilson_interval(12, 40)
    assert (rows["Black"]["rate_low"], rows["Black"]["rate_high"]) == pytest.approx(w)


def test_named_reference_group() -> None:
    ratios, refs = _race_ratios(
        *_sel(50, 50, "White"), *_sel(12, 28, "Black"), reference={"race": "Black"}
    )
    assert refs["race"] == "Black"
    rows = {r["group"]: r for r in ratios.to_dicts()}
    assert rows["White"]["ratio"] == pytest.approx(0.5 / 0.3)
    assert rows["White"]["flag"] == "above"
    assert rows["Black"]["flag"] is None


def test_named_reference_errors() -> None:
    with pytest.raises(ConfigError, match="not found in race"):
        _race_ratios(*_sel(50, 50, "White"), reference={"race": "Nobody"})
    with pytest.raises(ConfigError, match="fewer than 11"):
        _race_ratios(*_sel(50, 50, "White"), *_sel(2, 3, "Black"), reference={"race": "Black"})
    with pytest.raises(ConfigError, match="valid options are"):
        _race_ratios(*_sel(50, 50, "White"), reference={"shoe_size": "9"})


def test_zero_eligible_group_has_null_rate_and_no_flag() -> None:
    ratios, _ = _race_ratios(
        *_sel(50, 50, "White"),
        (30, {"race": "Black", "in_audience": False, "contact_status": "not_in_audience"}),
    )
    black = ratios.filter(pl.col("group") == "Black").to_dicts()[0]
    assert black["eligible"] == 0
    assert black["selection_rate"] is None
    assert black["rate_low"] is None and black["rate_high"] is None
    assert black["ratio"] is None and black["flag"] is None


def test_reference_rate_zero_gives_no_ratios() -> None:
    ratios, refs = _race_ratios(*_sel(0, 60, "White"), *_sel(10, 20, "Black"))
    assert refs["race"] == "White"
    black = ratios.filter(pl.col("group") == "Black").to_dicts()[0]
    assert black["ratio"] is None and black["flag"] is None


def test_small_groups_are_not_flagged_and_not_default_reference() -> None:
    ratios, refs = _race_ratios(*_sel(50, 50, "White"), *_sel(0, 10, "Black"),
                                (200, {"race": None}))
    assert refs["race"] == "White"  # (missing) is larger but never the default reference
    black = ratios.filter(pl.col("group") == "Black").to_dicts()[0]
    assert black["ratio"] == 0.0 and black["flag"] is None
    missing = ratios.filter(pl.col("group") == MISSING).to_dicts()[0]
    assert missing["ratio"] == pytest.approx(2.0) and missing["flag"] == "above"


def test_ratio_interval_when_everybody_is_selected() -> None:
    # 12/12 vs 45/45: without the correction the Katz interval would be [1, 1]
    lo, hi = ratio_interval(12, 12, 45, 45)  # type: ignore[misc]
    a, n1, c, n2 = 12.5, 13.0, 45.5, 46.0
    centre = math.log((a / n1) / (c / n2))
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    assert lo == pytest.approx(math.exp(centre - 1.959963984540054 * se))
    assert hi == pytest.approx(math.exp(centre + 1.959963984540054 * se))
    assert lo < 1 < hi


def test_do_not_contact_is_eligible_but_not_contactable() -> None:
    enriched, contacts = cohorts(
        (12, {"contact_status": "do_not_contact"}),
        (20, {}),
    )
    flags = patient_flags(enriched, contacts, channels=["sms"], as_of=AS_OF)
    got = flags.select(pl.col("eligible", "contactable", "selected").sum()).collect().row(0)
    assert got == (32, 20, 20)


def _unpivot_counts(flags: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The counts the obvious way, one dimension and group at a time (the reference for group_counts)."""
    rows: list[dict[str, Any]] = []
    for dim in [c for c in flags.columns if c.startswith("g:")]:
        if flags.height == 0:
            continue
        values = sorted(set(flags[dim].to_list()), key=lambda v: (v == MISSING, v))
        for value in [*values, None]:
            part = flags if value is None else flags.filter(pl.col(dim) == value)
            rows.append({"dimension": dim.removeprefix("g:"), "group": value,
                         **{c: int(part[c].sum()) for c in columns}})
    return pl.DataFrame(rows, schema={"dimension": pl.String, "group": pl.String,
                                      **dict.fromkeys(columns, pl.Int64)})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["White", "Black", MISSING, "Asian"]), st.sampled_from(["F", "M"]),
                          st.booleans(), st.booleans()), max_size=40))
def test_group_counts_equal_counting_each_group(people: list[tuple[str, str, bool, bool]]) -> None:
    """One group_by per dimension and a shared overall row give every (dimension, group) count, in order."""
    flags = pl.DataFrame(people, schema={"g:race": pl.String, "g:sex": pl.String, "eligible": pl.Boolean,
                                         "selected": pl.Boolean}, orient="row")
    got = group_counts(flags.lazy(), ["eligible", "selected"]).collect()
    assert_frame_equal(got, _unpivot_counts(flags, ["eligible", "selected"]))
