"""Did it work? Completion in the contacted arm against the randomized holdout.

``measure_campaign(campaign, workdir)`` (:mod:`.run`, with :class:`MeasureStage`) reads the
arms, contacts and vendor feedback the contact ledger recorded for a campaign with a
``holdout:``, and a later extract's patients and events; it evaluates the campaign's rules
again for the assigned patients, as of the end of each one's window (:mod:`.completion`),
counts who completed within the window (:mod:`.cohort`), compares the arms with Newcombe
intervals, by every audit group, with cost (:mod:`.document`, :mod:`.stats`), and writes
``measure.json`` and ``measure.html``. ``plan_campaign`` gives the minimum detectable effect
before anything is sent.
"""

from __future__ import annotations

from segment.measure.inputs import parse_window
from segment.measure.run import (
    MEASURE_HTML,
    MEASURE_JSON,
    MeasureResult,
    MeasureStage,
    measure_campaign,
    plan_campaign,
)

__all__ = [
    "MEASURE_HTML",
    "MEASURE_JSON",
    "MeasureResult",
    "MeasureStage",
    "measure_campaign",
    "parse_window",
    "plan_campaign",
]
