"""Synthetic clinical events: screenings, vaccines, results, visits and diagnoses.

Each :class:`~segment.synth.vocab.EventKind` has an eligible population (sex, age,
a clinical flag), a yearly rate scaled by a per-person engagement factor (lower in
poorer tracts, so care gaps follow social need), and a set of alternative codes in
real code systems. Counts are Poisson draws per person, dates are uniform over the
eligible part of the person's time in the system (never after death), all vectorized.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segment.synth.vocab import EVENT_KINDS

#: raw event columns, in file order (canonical names, DESIGN.md)
EVENT_COLUMNS = ("patient_id", "event_type", "code_system", "code", "event_date", "value", "unit")

_YEAR = 365.2425
#: scales every kind's rate: about 20 events per person on average
RATE_SCALE = 0.7

# one flat code table over every kind
_EVENT_TYPE: list[str] = []
_SYSTEM: list[str] = []
_CODE: list[str] = []
_KIND_OFFSET: list[int] = []
_KIND_CDF: list[np.ndarray] = []
for _k in EVENT_KINDS:
    _KIND_OFFSET.append(len(_CODE))
    w = np.array([c[3] for c in _k.codes], dtype=float)
    _KIND_CDF.append(np.cumsum(w) / w.sum())
    for etype, system, code, _w in _k.codes:
        _EVENT_TYPE.append(etype)
        _SYSTEM.append(system)
        _CODE.append(code)
#: code system of each entry of the flat code table
CODE_TABLE_SYSTEMS: tuple[str, ...] = tuple(_SYSTEM)
_UNIT = ["%" if any(k.unit and c[2] == code for k in EVENT_KINDS for c in k.codes) else "" for code in _CODE]


def draw_events(people: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """True events for ``people`` (rows of :func:`~segment.synth.people.draw_people`).

    Returns ``row`` (index into ``people``), ``code`` (index into the code table),
    ``day`` (days since 1970-01-01) and ``value``, sorted by person and date.
    """
    n = people.height
    birth = people["birth_day"].to_numpy().astype(np.int64)
    enroll = people["enroll_day"].to_numpy().astype(np.int64)
    end = people["end_day"].to_numpy().astype(np.int64)
    sex = people["sex"].to_numpy()
    engagement = people["engagement"].to_numpy()
    flags = {f: people[f].to_numpy() for f in ("diabetes", "mastectomy", "crc", "colectomy", "hysterectomy", "hospice")}
    rows, codes, days, values = [], [], [], []
    for kind, offset, cdf in zip(EVENT_KINDS, _KIND_OFFSET, _KIND_CDF, strict=True):
        start = np.maximum(enroll, birth + int(np.ceil(kind.min_age * _YEAR)))
        stop = np.minimum(end, birth + int(min(kind.max_age, 150) * _YEAR))
        eligible = np.isin(sex, list(kind.sexes))
        if kind.needs:
            eligible &= flags[kind.needs]
            onset = start + (rng.random(n) * 0.6 * np.maximum(stop - start, 0)).astype(np.int64)
            if kind.needs == "hospice":
                onset = np.maximum(start, stop - 180)
            start = onset
        span = np.maximum(stop - start, 0)
        lam = kind.rate * RATE_SCALE * span / _YEAR
        if kind.engaged:
            lam = lam * engagement
        if kind.boost:
            lam = np.where(flags[kind.boost], lam * kind.boost_factor, lam)
        count = np.where(eligible, rng.poisson(lam), 0)
        r = np.repeat(np.arange(n), count)
        if not len(r):
            continue
        rows.append(r)
        days.append(start[r] + (rng.random(len(r)) * span[r]).astype(np.int64))
        codes.append(offset + np.searchsorted(cdf, rng.random(len(r)), side="right").clip(0, len(cdf) - 1))
        if kind.unit:
            diabetic = flags["diabetes"][r]
            val = np.where(
                diabetic, np.clip(rng.normal(7.4, 1.3, len(r)), 5.4, 14.5), np.clip(rng.normal(5.4, 0.35, len(r)), 4.2, 6.4)
            )
            values.append(np.round(val, 1))
        else:
            values.append(np.full(len(r), np.nan))
    if not rows:
        return pl.DataFrame(
            schema={"row": pl.Int64, "code": pl.Int32, "day": pl.Int32, "value": pl.Float64}
        )
    frame = pl.DataFrame(
        {
            "row": np.concatenate(rows).astype(np.int64),
            "code": np.concatenate(codes).astype(np.int32),
            "day": np.concatenate(days).astype(np.int32),
            "value": np.concatenate(values),
        }
    ).with_columns(pl.col("value").fill_nan(None))
    return frame.sort("row", "day", "code", maintain_order=True)


def render_events(
    events: pl.DataFrame,
    patient_ids: pl.Series,
    rng: np.random.Generator,
    *,
    us_dates: float = 0.05,
) -> pl.DataFrame:
    """Events as a source file holds them: record ids, mostly ISO dates, a little mess.

    ``patient_ids`` maps ``row`` to the source's record id. A share ``us_dates`` of
    dates is written MM/DD/YYYY; a few rows are exact duplicates, have no date, or
    point at a record id no patients file holds (orphans for ingest to reject).
    """
    n = events.height
    mess = rng.random(n)
    # format each distinct day once (a few thousand), then gather: far cheaper than
    # formatting millions of dates
    day = events["day"]
    day_np = day.to_numpy()
    first = int(day_np.min()) if n else 0
    last = int(day_np.max()) if n else 0
    span = pl.select(pl.int_range(first, last + 1).cast(pl.Int32).cast(pl.Date))
    calendar = span.to_series()
    offset = (day - first).cast(pl.UInt32)
    iso = calendar.dt.strftime("%Y-%m-%d").gather(offset)
    us = calendar.dt.strftime("%m/%d/%Y").gather(offset)
    date = (
        pl.when(pl.col("mess") < 0.0005).then(pl.lit(""))
        .when(pl.col("mess") < us_dates + 0.0005).then(pl.col("us"))
        .otherwise(pl.col("iso"))
    )
    pid = pl.when(pl.col("mess") > 0.9998).then(pl.format("X{}", pl.col("row"))).otherwise(pl.col("pid"))
    code = events["code"]
    out = events.with_columns(
        pid=patient_ids.gather(events["row"]),
        mess=pl.Series(mess),
        iso=iso,
        us=us,
        event_type=pl.Series(_EVENT_TYPE).gather(code),
        code_system=pl.Series(_SYSTEM).gather(code),
        code_text=pl.Series(_CODE).gather(code),
        unit=pl.Series(_UNIT).gather(code),
    ).select(
        pid.alias("patient_id"),
        "event_type",
        "code_system",
        pl.col("code_text").alias("code"),
        date.alias("event_date"),
        "value",
        pl.when(pl.col("value").is_null()).then(pl.lit("")).otherwise(pl.col("unit")).alias("unit"),
    )
    dup = np.flatnonzero(rng.random(n) < 0.005)
    if len(dup):
        # a duplicated row sits right after its original, as a double export does
        order = np.concatenate([np.arange(n), dup])
        key = np.concatenate([np.arange(n) * 2, dup * 2 + 1])
        out = out[order[np.argsort(key, kind="stable")]]
    return out
