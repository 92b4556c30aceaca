"""The statistics of a holdout comparison: pure functions of counts.

- :func:`newcombe_interval`: the difference of two independent proportions with
  Newcombe's hybrid score interval (Newcombe 1998, method 10: Wilson score limits of each
  proportion combined; no continuity correction). It stays inside [-1, 1], behaves at 0
  and at n, and its coverage is close to nominal for small samples.
- :func:`ratio_interval` (Katz log, from the audit) gives the relative lift's interval.
- :func:`nnt_interval`: the number needed to contact, 1 / difference, with Altman's
  limits (the inverted difference limits; unbounded when the difference interval
  includes 0).
- :func:`heterogeneity`: Cochran's Q test of whether the difference varies between groups
  (inverse-variance weights), the usual test of effect modification across strata.
- :func:`power` / :func:`minimum_detectable_effect` (from :mod:`segment.audit.power`, which
  the audit's holdout plan uses too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from segment.audit.metrics import Z95, ratio_interval, wilson_interval
from segment.audit.power import minimum_detectable_effect, power

__all__ = [
    "Z95",
    "Heterogeneity",
    "heterogeneity",
    "minimum_detectable_effect",
    "newcombe_interval",
    "nnt_interval",
    "power",
    "ratio_interval",
    "wilson_interval",
]


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p1 - p2 (x1/n1 - x2/n2); None when n1 or n2 is 0.

    >>> tuple(round(v, 4) for v in newcombe_interval(56, 70, 48, 80))
    (0.0524, 0.3339)
    """
    w1 = wilson_interval(x1, n1, z)
    w2 = wilson_interval(x2, n2, z)
    if w1 is None or w2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = w1, w2
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def nnt_interval(low: float, high: float) -> tuple[float, float] | None:
    """Number needed to contact from a difference interval (Altman 1998); None when it spans 0.

    A difference interval of (0.02, 0.05) gives (20, 50): between 20 and 50 patients
    contacted for one more completion. An interval that includes 0 (no effect) has no
    bounded NNT.
    """
    if low <= 0 <= high:
        return None
    a, b = sorted((1 / low, 1 / high))
    return a, b


@dataclass(frozen=True)
class Heterogeneity:
    """Cochran's Q over the groups of one dimension."""

    q: float
    df: int
    p_value: float
    groups: int


def _chi2_sf(x: float, df: int) -> float:
    """Upper tail of the chi-square distribution (regularized incomplete gamma, series/fraction)."""
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1:  # series for the lower tail
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1
            term *= half / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        lower = total * math.exp(-half + a * math.log(half) - math.lgamma(a))
        return max(0.0, 1.0 - lower)
    # continued fraction for the upper tail (Lentz)
    tiny = 1e-300
    b = half + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, h * math.exp(-half + a * math.log(half) - math.lgamma(a)))


def heterogeneity(groups: Sequence[tuple[int, int, int, int]]) -> Heterogeneity | None:
    """Cochran's Q for differences ``x1/n1 - x2/n2`` across groups; None with fewer than 2 usable.

    A group is usable when both arms have people and the difference has a positive
    variance (``p(1-p)/n`` summed over the arms).
    """
    diffs, weights = [], []
    for x1, n1, x2, n2 in groups:
        if n1 <= 0 or n2 <= 0:
            continue
        p1, p2 = x1 / n1, x2 / n2
        var = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        if var <= 0:
            continue
        diffs.append(p1 - p2)
        weights.append(1 / var)
    if len(diffs) < 2:
        return None
    pooled = sum(w * d for w, d in zip(weights, diffs, strict=True)) / sum(weights)
    q = sum(w * (d - pooled) ** 2 for w, d in zip(weights, diffs, strict=True))
    df = len(diffs) - 1
    return Heterogeneity(q=q, df=df, p_value=_chi2_sf(q, df), groups=len(diffs))
