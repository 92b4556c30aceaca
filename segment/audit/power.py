"""Planning a holdout: the power of the completion comparison and the smallest detectable effect.

The audit shows, for a campaign with a holdout, what difference its arms can detect
(:func:`plan_section`), and ``segment measure`` shows it again for the arms it measured.

- :func:`power` / :func:`minimum_detectable_effect`: two-sided two-sample test of
  proportions, normal approximation (pooled variance under the null, unpooled under the
  alternative; Fleiss, Levin and Paik 2003, 4.2), as ``statsmodels``'
  ``power_proportions_2indep`` computes it.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

_NORMAL = NormalDist()

#: the difference a campaign should be able to detect (3 percentage points)
TARGET_DIFFERENCE = 0.03
POWER = 0.8


def power(diff: float, baseline: float, n_treated: int, n_control: int, alpha: float = 0.05) -> float:
    """Power of the two-sided test of ``p_treated - p_control = 0`` when the true difference is ``diff``."""
    p0 = baseline
    p1 = min(max(baseline + diff, 0.0), 1.0)
    if n_treated <= 0 or n_control <= 0:
        return 0.0
    pbar = (n_treated * p1 + n_control * p0) / (n_treated + n_control)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_treated + 1 / n_control))
    se1 = math.sqrt(p1 * (1 - p1) / n_treated + p0 * (1 - p0) / n_control)
    if se1 == 0:
        return 1.0 if abs(p1 - p0) > 0 else alpha
    crit = _NORMAL.inv_cdf(1 - alpha / 2) * se0
    d = abs(p1 - p0)
    return _NORMAL.cdf((d - crit) / se1) + _NORMAL.cdf((-d - crit) / se1)


def minimum_detectable_effect(
    baseline: float, n_treated: int, n_control: int, *, target: float = 0.8, alpha: float = 0.05
) -> float | None:
    """The smallest increase over ``baseline`` detected with ``target`` power; None if none is.

    Solved by bisection on :func:`power` (an increase in completion, up to 1 - baseline).
    """
    if n_treated <= 0 or n_control <= 0:
        return None
    top = 1.0 - baseline
    if top <= 0 or power(top, baseline, n_treated, n_control, alpha) < target:
        return None
    lo, hi = 0.0, top
    for _ in range(100):
        mid = (lo + hi) / 2
        if power(mid, baseline, n_treated, n_control, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def plan_section(n_contact: int, n_holdout: int, baseline: float, *, source: str) -> dict[str, Any]:
    """The minimum detectable effect at 80% power and whether 3 points can be detected."""
    mde = minimum_detectable_effect(baseline, n_contact, n_holdout, target=POWER)
    warning = None
    if mde is None or mde > TARGET_DIFFERENCE:
        warning = (
            f"the holdout ({n_holdout:,} of {n_contact + n_holdout:,}) is too small to detect a "
            f"{TARGET_DIFFERENCE * 100:.0f}-point difference in completion at {POWER:.0%} power "
            f"(baseline {baseline:.0%}); "
            + ("no difference is detectable" if mde is None else f"the smallest detectable is {mde * 100:.1f} points")
            + "; a larger holdout percentage or audience is needed"
        )
    return {"contact": n_contact, "holdout": n_holdout, "baseline_rate": baseline, "baseline_source": source,
            "power": POWER, "alpha": 0.05, "minimum_detectable_effect": mde,
            "detects_3_points": mde is not None and mde <= TARGET_DIFFERENCE, "warning": warning}
