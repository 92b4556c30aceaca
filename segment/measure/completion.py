"""Who completed in their window: the campaign's rules evaluated again, window by window.

A patient completed when one of the campaign's ``due`` rules is ``not_due`` through a
qualifying event after their start day and no later than the end of their window. The
rules' evidence is the most recent qualifying event on or before the date they are
evaluated as of, so evaluated as of the **window end** it falls inside (start, end]
exactly when the patient completed in the window: a second test after the window cannot
hide the first, and an event after the window cannot count. Patients sharing a window end
(those sent or assigned the same day) are one evaluation; a campaign has a handful.

The evaluation is the rule engine's own (:func:`segment.rules.evaluate.evaluate_frames`)
over the working folder's patients (``enriched.parquet`` when present, so risk rules see
their SDOH columns) and ``events.parquet``, restricted to the patients assigned to either
arm. Death is the measurement's own business (``lost: died``, only when the patient had
not completed first), so rules are evaluated without ``deceased_date``: a patient who was
screened and then died still completed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from segment import workdir as wd
from segment.errors import StageInputError
from segment.log import get_logger
from segment.rules.evaluate import absent_columns, evaluate_frames
from segment.rules.model import RuleSet

_log = get_logger("measure")

#: the frame :func:`completions` returns
DONE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String, "window_end": pl.Date, "evidence_date": pl.Date,
}


@dataclass(frozen=True)
class ExtractFrames:
    """A later extract as the rules read it: patients (enriched when present) and events."""

    patients: pl.LazyFrame
    events: pl.LazyFrame
    source: str
    enriched: bool
    absent: frozenset[str] = field(default_factory=frozenset)


def extract_frames(workdir: str | Path) -> ExtractFrames:
    """The working folder's patients and events, or one clear error naming what is missing."""
    folder = Path(workdir)
    missing = [name for name in (wd.PATIENTS, wd.EVENTS) if not (folder / name).exists()]
    if (folder / wd.ENRICHED).exists() and wd.PATIENTS in missing:
        missing.remove(wd.PATIENTS)  # enriched.parquet carries every patient column
    if missing:
        raise StageInputError(
            f"{' and '.join(missing)} not found: `segment measure` evaluates the campaign's rules on the "
            "later extract itself and needs its patients and events; run `segment ingest` (then "
            "`segment geocode` and `segment enrich` when rules or audit groups read SDOH columns) "
            "on the later extract into this folder first",
            path=folder,
        )
    enriched = (folder / wd.ENRICHED).exists()
    patients = pl.scan_parquet(folder / (wd.ENRICHED if enriched else wd.PATIENTS))
    return ExtractFrames(patients, pl.scan_parquet(folder / wd.EVENTS),
                         wd.ENRICHED if enriched else wd.PATIENTS, enriched, absent_columns(folder))


def completions(
    windows: pl.DataFrame,
    extract: ExtractFrames,
    ruleset: RuleSet,
    *,
    warnings: list[str] | None = None,
) -> pl.LazyFrame:
    """``patient_id``, ``window_end``, ``evidence_date`` of every rule of ``ruleset`` that is ``not_due``.

    ``windows`` has one row per patient to evaluate (``patient_id``, ``window_end``); each
    distinct ``window_end`` is one evaluation, as of that day, of those patients alone.
    """
    ends: list[dt.date] = sorted(windows.get_column("window_end").unique().drop_nulls().to_list())
    schema = extract.patients.collect_schema()
    patients = extract.patients.with_columns(pl.col("patient_id").cast(pl.String))
    if "deceased_date" in schema:
        patients = patients.with_columns(pl.lit(None, pl.Date).alias("deceased_date"))
    events = extract.events.with_columns(pl.col("patient_id").cast(pl.String))
    parts: list[pl.LazyFrame] = []
    for end in ends:
        ids = windows.lazy().filter(pl.col("window_end") == end).select(pl.col("patient_id").cast(pl.String)).unique()
        plan = evaluate_frames(
            patients.join(ids, on="patient_id", how="semi"), events.join(ids, on="patient_id", how="semi"),
            ruleset, end, source=extract.source, enriched=extract.enriched, warnings=warnings,
            absent=extract.absent,
        )
        parts.append(
            plan.filter((pl.col("status") == "not_due") & pl.col("evidence_date").is_not_null())
            .select("patient_id", pl.lit(end, pl.Date).alias("window_end"), "evidence_date")
        )
    _log.info("rules evaluated per window", windows=len(ends), rules=len(ruleset.rules), patients=windows.height)
    if not parts:
        return pl.LazyFrame(schema=DONE_SCHEMA)
    return pl.concat(parts, how="vertical")
