"""Statistics against Newcombe (1998) Table II, statsmodels, and simulated campaigns."""

from __future__ import annotations

import numpy as np
import pytest

from segment.measure.stats import (
    _chi2_sf,
    heterogeneity,
    minimum_detectable_effect,
    newcombe_interval,
    nnt_interval,
    power,
)

# Newcombe RG. Interval estimation for the difference between independent proportions:
# comparison of eleven methods. Stat Med 1998;17:873-890. Table II, method 10 (score, no CC).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_worked_examples(counts: tuple[int, int, int, int], expected: tuple[float, float]) -> None:
    low, high = newcombe_interval(*counts)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == expected


def test_newcombe_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    rng = np.random.default_rng(19)
    for _ in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 3000, size=2))
        x1, x2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        ours = newcombe_interval(x1, n1, x2, n2)
        theirs = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
        assert ours is not None
        assert ours == pytest.approx((float(theirs[0]), float(theirs[1])), abs=1e-9)
    assert newcombe_interval(0, 0, 1, 2) is None


def test_power_and_mde_match_statsmodels() -> None:
    from statsmodels.stats.proportion import power_proportions_2indep

    for diff, base, n1, n2 in ((0.03, 0.2, 9000, 1000), (0.05, 0.1, 500, 500), (0.02, 0.4, 20000, 5000)):
        expected = power_proportions_2indep(diff, base, n1, ratio=n2 / n1).power
        assert power(diff, base, n1, n2) == pytest.approx(expected, rel=1e-9)
    mde = minimum_detectable_effect(0.2, 9000, 1000)
    assert mde is not None
    assert power_proportions_2indep(mde, 0.2, 9000, ratio=1 / 9).power == pytest.approx(0.8, abs=1e-6)
    assert minimum_detectable_effect(0.2, 90_000, 10_000) < 0.03  # type: ignore[operator]
    assert minimum_detectable_effect(0.2, 9, 1) is None


def test_nnt_inverts_the_difference_limits() -> None:
    assert nnt_interval(0.02, 0.05) == pytest.approx((20.0, 50.0))
    assert nnt_interval(-0.01, 0.05) is None


def test_heterogeneity_matches_a_hand_computed_q_and_scipy() -> None:
    from scipy.stats import chi2

    groups = [(60, 200, 20, 100), (30, 200, 25, 100), (90, 300, 10, 100)]
    diffs = [x1 / n1 - x2 / n2 for x1, n1, x2, n2 in groups]
    weights = [1 / (x1 / n1 * (1 - x1 / n1) / n1 + x2 / n2 * (1 - x2 / n2) / n2) for x1, n1, x2, n2 in groups]
    pooled = sum(w * d for w, d in zip(weights, diffs, strict=True)) / sum(weights)
    q = sum(w * (d - pooled) ** 2 for w, d in zip(weights, diffs, strict=True))
    het = heterogeneity(groups)
    assert het is not None and het.df == 2 and het.q == pytest.approx(q)
    assert het.p_value == pytest.approx(chi2.sf(q, 2), rel=1e-9)
    for x in (0.01, 0.5, 3.0, 12.0, 40.0):  # the chi-square tail itself, over both of its branches
        for df in (1, 2, 5, 17):
            assert _chi2_sf(x, df) == pytest.approx(chi2.sf(x, df), rel=1e-9, abs=1e-15)
    same = heterogeneity([(30, 100, 10, 100), (60, 200, 20, 200)])
    assert same is not None and same.q == pytest.approx(0.0, abs=1e-12) and same.p_value == pytest.approx(1.0)
    assert heterogeneity([(30, 100, 10, 100)]) is None


def test_interval_covers_the_true_effect_about_95_percent_of_the_time() -> None:
    """Simulated campaigns with a known effect: 10% held out, completion 20% vs 24%."""
    rng = np.random.default_rng(2024)
    p_holdout, effect, n_contact, n_holdout, runs = 0.20, 0.04, 1800, 200, 2000
    covered = 0
    for _ in range(runs):
        x1 = int(rng.binomial(n_contact, p_holdout + effect))
        x2 = int(rng.binomial(n_holdout, p_holdout))
        low, high = newcombe_interval(x1, n_contact, x2, n_holdout)  # type: ignore[misc]
        covered += low <= effect <= high
    # 2000 runs: the binomial standard error of a 95% coverage is 0.5 points
    assert 0.935 <= covered / runs <= 0.965
