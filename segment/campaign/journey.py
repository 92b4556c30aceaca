"""Journeys: multi-touch campaigns decided each night from the contact ledger and the newest extract.

A campaign's ``journey:`` lists steps (``day`` after the first touch, ``channels`` in
order, an optional ``variants`` set) and stop conditions. Each run, per patient:

- **history** (from the ledger): the journey contacts of the patient's current episode
  (contacts carry their step; an episode ends at a recorded stop), the last step sent,
  the episode's day 0 (a contact's send date minus its step's ``day``), opt-outs and
  failed deliveries since day 0;
- **stop** (only for a patient in an episode whose last step is not the final one):
  ``left_audience`` (not in the audience in the newest extract: the rule is no longer
  due, or a filter no longer holds), ``opted_out`` (a vendor reported an opt-out, or
  ``do_not_contact``), ``failed_everywhere`` (every journey channel the patient can be
  reached on has a failed or bounced delivery). A stop is recorded in the ledger; a
  patient who is in the audience again later starts a new episode at step 1;
- **due step**: the first later step with a channel that can reach the patient
  (consent, contact and suppression: caps and quiet hours do not skip a step, they
  delay it), due on day 0 + its ``day``. A patient entering the audience gets the first
  step that can reach them, today. When no later step can reach the patient, the
  journey is ``completed``.

The due step's channels replace the campaign's channel order for that patient (the
preferred channel first when it is one of them), its variant set restricts the
variants, and the campaign's frequency caps and quiet hours apply as for any send. The
whole decision is a few expressions over one row per patient (no Python loop).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import polars as pl

from segment.campaign.model import Campaign, Channel, JourneyStep, StopCondition
from segment.campaign.problems import Where
from segment.errors import SegmentError
from segment.schema import enum_dtype


class JourneyState(StrEnum):
    """Where a patient stands in a journey after tonight's decision."""

    DUE = "due"
    WAITING = "waiting"
    COMPLETED = "completed"
    LEFT_AUDIENCE = "left_audience"
    OPTED_OUT = "opted_out"
    FAILED_EVERYWHERE = "failed_everywhere"
    NOT_IN_JOURNEY = "not_in_journey"


#: the Polars dtype of a plan's ``journey_state``
JOURNEY_STATE_DTYPE = enum_dtype(JourneyState)

STOP_STATES = (JourneyState.LEFT_AUDIENCE, JourneyState.OPTED_OUT, JourneyState.FAILED_EVERYWHERE)

HISTORY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "last_step": pl.Int32, "day0": pl.Date, "opted_out": pl.Boolean,
    **{f"failed_{ch}": pl.Boolean for ch in Channel},
    #: a final stop recorded earlier (opted_out, failed_everywhere): the patient is not sent again
    "stopped": pl.String,
}
CONTACTS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "channel": pl.String, "step": pl.Int32, "sent_at": pl.Datetime("us", "UTC"),
}
EXITS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "reason": pl.String, "step": pl.Int32, "exited_at": pl.Datetime("us", "UTC"),
}
FEEDBACK_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "channel": pl.String, "outcome": pl.String, "event_at": pl.Datetime("us", "UTC"),
}


def _step_problems(c: Campaign, at: Where, i: int, step: JourneyStep) -> Iterator[SegmentError]:
    """Step ``i``: after the previous step's day, channels of the campaign listed once, known variants."""
    where = ("journey", "steps", i)
    steps = c.journey.steps if c.journey is not None else []
    if i == 0 and step.day != 0:
        yield at.invalid("journey.steps[0].day", str(step.day), ["0 (the first touch)"], *where, "day")
    if i > 0 and step.day <= steps[i - 1].day:
        yield at.problem(f"key `journey.steps[{i}].day`: found {step.day}, not after step {i}'s day "
                         f"{steps[i - 1].day}; valid options are: days in increasing order",
                         *where, "day", key=f"journey.steps[{i}].day")
    for j, ch in enumerate(step.channels):
        if ch not in c.channels:
            yield at.invalid(f"journey.steps[{i}].channels[{j}]", str(ch), [str(x) for x in c.channels],
                             *where, "channels", j)
    if len(set(step.channels)) != len(step.channels):
        yield at.problem(f"key `journey.steps[{i}].channels`: a channel is listed twice", *where, "channels",
                         key=f"journey.steps[{i}].channels")
    codes = [v.code for v in c.variants]
    for j, code in enumerate(step.variants or ()):
        if code not in codes:
            yield at.invalid(f"journey.steps[{i}].variants[{j}]", code, codes or ["(declare `variants:` first)"],
                             *where, "variants", j)


def _cap_problems(c: Campaign, at: Where) -> Iterator[SegmentError]:
    """A frequency cap that would block a step on its own day: the gap is refused."""
    steps = c.journey.steps if c.journey is not None else []
    for k, cap in enumerate(c.frequency_caps):
        for ch in dict.fromkeys(cap.channels or c.channels):
            days = [s.day for s in steps if ch in s.channels]
            for j, day in enumerate(days):
                inside = [d for d in days[: j + 1] if day - d < cap.per_days]
                if len(inside) <= cap.max:
                    continue
                idx = next(i for i, s in enumerate(steps) if s.day == day)
                yield at.problem(
                    f"key `journey.steps[{idx}].day`: found {day}, {day - inside[0]} day(s) after an earlier "
                    f"{ch} step, but frequency_caps[{k}] allows {cap.max} {ch} contact(s) in {cap.per_days} "
                    f"days, so the step could never be sent on time; valid options are: a gap of at least "
                    f"{cap.per_days} days between {ch} steps, another channel, or a looser cap",
                    "journey", "steps", idx, "day", key=f"journey.steps[{idx}].day",
                )


def check_journey(c: Campaign, at: Where) -> Iterator[SegmentError]:
    """Steps in day order from day 0, channels and variants the campaign defines, caps the gaps allow."""
    if c.journey is None:
        return
    for i, step in enumerate(c.journey.steps):
        yield from _step_problems(c, at, i, step)
    yield from _cap_problems(c, at)


def local_date(expr: pl.Expr, zone: str) -> pl.Expr:
    """A UTC instant's date in the campaign's zone."""
    return expr.dt.convert_time_zone(zone).dt.date()


def journey_history(
    campaign: Campaign, contacts: pl.DataFrame, exits: pl.DataFrame, feedback: pl.DataFrame
) -> pl.DataFrame:
    """Per patient in a current episode: last step, day 0, opt-out and failed channels since (:data:`HISTORY_SCHEMA`).

    ``contacts``: the campaign's journey contacts (:data:`CONTACTS_SCHEMA`); ``exits``: recorded
    stops (:data:`EXITS_SCHEMA`); ``feedback``: opt-outs (any campaign) and failures (this one).
    """
    assert campaign.journey is not None
    zone = campaign.schedule.timezone
    offsets = pl.DataFrame({"step": list(range(1, len(campaign.journey.steps) + 1)),
                            "_offset": [s.day for s in campaign.journey.steps]},
                           schema={"step": pl.Int32, "_offset": pl.Int32})
    last_exit = exits.lazy().sort("exited_at").group_by("patient_id").agg(
        pl.col("exited_at").last().alias("_exit"), pl.col("reason").last().alias("_reason"))
    final = last_exit.filter(pl.col("_reason") != str(JourneyState.LEFT_AUDIENCE)).select(
        "patient_id", pl.col("_reason").alias("stopped"))
    episode = (
        contacts.lazy().join(last_exit, on="patient_id", how="left")
        .filter(pl.col("_exit").is_null() | (pl.col("sent_at") > pl.col("_exit")))
        .join(offsets.lazy(), on="step", how="left")
        .group_by("patient_id").agg(
            pl.col("step").max().alias("last_step"),
            (local_date(pl.col("sent_at"), zone) - pl.duration(days=pl.col("_offset"))).min().alias("day0"),
            pl.col("sent_at").min().alias("_since"),
        )
    )
    fb = feedback.lazy().join(episode.select("patient_id", "_since"), on="patient_id", how="inner").filter(
        pl.col("event_at") >= pl.col("_since")
    ).group_by("patient_id").agg(
        (pl.col("outcome") == "opted_out").any().alias("opted_out"),
        *[(pl.col("outcome").is_in(["failed", "bounced"]) & (pl.col("channel") == str(ch))).any()
          .alias(f"failed_{ch}") for ch in Channel],
    )
    out = episode.join(fb, on="patient_id", how="left").join(final, on="patient_id", how="full", coalesce=True).select(
        "patient_id", pl.col("last_step").cast(pl.Int32), pl.col("day0").cast(pl.Date),
        pl.col("stopped"),
        pl.col("opted_out").fill_null(False),
        *[pl.col(f"failed_{ch}").fill_null(False) for ch in Channel],
    )
    return out.collect().cast(HISTORY_SCHEMA)  # type: ignore[arg-type]


def decision_exprs(
    campaign: Campaign, as_of: dt.date, usable: dict[Channel, pl.Expr], in_audience: pl.Expr, dnc: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """(``journey_step``, ``journey_state``) over a frame holding :data:`HISTORY_SCHEMA` columns.

    ``usable[ch]``: the patient can be reached on ``ch`` (consent, contact, suppression).
    ``journey_step`` is the due step (1-based) for ``due`` rows, else the last step sent.
    """
    assert campaign.journey is not None
    steps = campaign.journey.steps
    stops = set(campaign.journey.stop)
    last = pl.col("last_step")
    in_episode = last.is_not_null()
    n = len(steps)
    reach = [pl.any_horizontal([usable[ch] for ch in s.channels]) for s in steps]
    # the first step after the last one sent that can reach the patient
    nxt: Any = None
    for i in range(n):
        cond = (last.fill_null(0) < i + 1) & reach[i]
        nxt = (pl.when(cond) if nxt is None else nxt.when(cond)).then(pl.lit(i + 1, pl.Int32))
    next_step = nxt.otherwise(pl.lit(None, pl.Int32))
    offset = pl.lit(None, pl.Int32)
    chain: Any = None
    for i, s in enumerate(steps):
        chain = (pl.when(next_step == i + 1) if chain is None else chain.when(next_step == i + 1)).then(
            pl.lit(s.day, pl.Int32))
    offset = chain.otherwise(pl.lit(None, pl.Int32))
    today = pl.lit(as_of, pl.Date)
    due_on = pl.col("day0") + pl.duration(days=offset)
    failed_all = (
        pl.any_horizontal([pl.col(f"failed_{ch}") for ch in Channel])
        & ~pl.any_horizontal([usable[ch] & ~pl.col(f"failed_{ch}") for ch in campaign.channels])
    )
    S = JourneyState
    state: Any = pl.when(pl.col("stopped").is_not_null()).then(pl.col("stopped"))
    state = state.when(in_episode & (last >= n)).then(pl.lit(str(S.COMPLETED)))
    if StopCondition.OPTED_OUT in stops:
        state = state.when(in_episode & (pl.col("opted_out") | dnc)).then(pl.lit(str(S.OPTED_OUT)))
    if StopCondition.LEFT_AUDIENCE in stops:
        state = state.when(in_episode & ~in_audience).then(pl.lit(str(S.LEFT_AUDIENCE)))
    if StopCondition.FAILED_EVERYWHERE in stops:
        state = state.when(in_episode & failed_all).then(pl.lit(str(S.FAILED_EVERYWHERE)))
    state = (
        state.when(~in_episode & ~in_audience).then(pl.lit(str(S.NOT_IN_JOURNEY)))
        .when(next_step.is_null() & in_episode).then(pl.lit(str(S.COMPLETED)))
        .when(next_step.is_null()).then(pl.lit(str(S.NOT_IN_JOURNEY)))
        .when(~in_episode).then(pl.lit(str(S.DUE)))
        .when(due_on <= today).then(pl.lit(str(S.DUE)))
        .otherwise(pl.lit(str(S.WAITING)))
    )
    step = pl.when(state == str(S.DUE)).then(next_step).otherwise(last)
    return step.cast(pl.Int32), state.cast(pl.String)


def is_step_channel(campaign: Campaign, ch: Channel) -> pl.Expr:
    """True on rows whose due step (``journey_step`` with state ``due``) lists ``ch``."""
    assert campaign.journey is not None
    steps = [i + 1 for i, s in enumerate(campaign.journey.steps) if ch in s.channels]
    return (pl.col("journey_state") == str(JourneyState.DUE)) & pl.col("journey_step").is_in(steps).fill_null(False)


def exits_today(plan: pl.DataFrame) -> pl.DataFrame:
    """Plan rows whose journey stopped tonight: ``patient_id``, ``reason``, ``step`` (to record in the ledger)."""
    return plan.filter(pl.col("journey_exit").fill_null(False)).select(
        "patient_id", pl.col("journey_state").alias("reason"), pl.col("journey_step").alias("step"))
