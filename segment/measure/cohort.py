"""The measured cohort: one row per patient assigned to an arm, with what happened to them.

:func:`assignments` joins the ledger's arms and contacts (and vendor feedback) to a later
extract's patients; :func:`cohort` adds the completions (the campaign's rules evaluated as
of each window's end, :mod:`segment.measure.completion`), all as LazyFrames:

- **identity**: an assigned id still in the extract is itself; an id merged into another
  patient by the linkage model is followed to the surviving id (it is one of that
  patient's ``source_ids``); when two assigned ids now are one person, the first assigned
  is kept and the other is reported as ``merged_duplicate``.
- **lost**: ids no longer in the extract (``not_in_extract``: moved away, left the health
  system, or removed) and patients who died before the end of their window without
  completing (``died``) are left out of the comparison and reported per arm.
- **start**: the day of the patient's first send of the campaign (contact arm, sent), else
  the planned send time of the run that assigned them (the holdout, and contact-arm
  patients a cap or a failure kept from being sent): both arms start the same day.
- **completed**: one of the campaign's ``due`` rules is ``not_due`` at the window's end
  through a qualifying event (the rule's ``evidence_date``) after the start day and no
  later than start + window (and the as-of date).
- **reached**: sent; delivered, when vendor feedback exists for the campaign.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from segment.audit.metrics import MISSING
from segment.campaign.model import Arm
from segment.dates import age_band_expr

#: why an assigned patient is not in the comparison
LOST_REASONS = ("not_in_extract", "died", "merged_duplicate")

COHORT_COLUMNS = (
    "patient_id", "assigned_id", "arm", "start", "reached", "completed", "completed_on", "days",
    "follow_up_complete", "lost", "merged",
)


def _date(col: str) -> pl.Expr:
    return pl.col(col).dt.date()


def assignments(
    arms: pl.DataFrame,
    contacts: pl.DataFrame,
    patients: pl.LazyFrame,
    *,
    window_days: int,
    as_of: dt.date,
    outcomes: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """One row per assigned id: who they are now, their arm, start, window end and whether reached.

    Columns: ``assigned_id``, ``patient_id`` (null: not in the extract), ``arm``, ``start``,
    ``window_end`` (start + window, or ``as_of`` when earlier: the day the campaign's rules
    are evaluated as of for this patient), ``reached``, ``merged`` and ``duplicate`` (a
    second assigned id of a person the linkage model made one).
    ``arms``/``contacts``/``outcomes`` come from the ledger (:meth:`ContactLedger.arms`,
    :meth:`ContactLedger.contacts`, :meth:`ContactLedger.delivery_outcomes`).
    """
    schema = patients.collect_schema()
    assigned = arms.lazy().select(
        pl.col("patient_id").alias("assigned_id"), "arm", _date("assigned_at").alias("_assigned_on"),
    )
    current = patients.select(pl.col("patient_id").cast(pl.String))
    ids = current.select(pl.col("patient_id").alias("assigned_id"), pl.col("patient_id"))
    if "source_ids" in schema:  # ids the linkage model merged into a surviving patient
        merged = (
            patients.select(pl.col("patient_id").cast(pl.String), pl.col("source_ids"))
            .explode("source_ids", empty_as_null=True)
            .select(pl.col("source_ids").cast(pl.String).alias("assigned_id"), "patient_id")
            .filter(pl.col("assigned_id").is_not_null() & (pl.col("assigned_id") != pl.col("patient_id")))
            .join(ids.select("assigned_id"), on="assigned_id", how="anti")
            .unique("assigned_id", keep="first")
        )
        ids = pl.concat([ids, merged])
    first_sent = contacts.lazy().group_by("patient_id").agg(_date("sent_at").min().alias("_sent_on"))
    base = (
        assigned.join(ids, on="assigned_id", how="left")
        .join(first_sent.rename({"patient_id": "assigned_id"}), on="assigned_id", how="left")
        .with_columns(
            (pl.col("patient_id").is_not_null() & (pl.col("patient_id") != pl.col("assigned_id"))).alias("merged"),
            pl.when(pl.col("arm") == str(Arm.CONTACT)).then(pl.col("_sent_on").is_not_null())
            .otherwise(pl.lit(False)).alias("_sent"),
        )
        .with_columns(
            pl.when(pl.col("_sent")).then(pl.col("_sent_on")).otherwise(pl.col("_assigned_on")).alias("start")
        )
    )
    if outcomes is not None:
        delivered = outcomes.lazy().select(pl.col("patient_id").alias("assigned_id"), pl.col("delivered"))
        base = base.join(delivered, on="assigned_id", how="left").with_columns(
            (pl.col("_sent") & pl.col("delivered").fill_null(False)).alias("reached")
        ).drop("delivered")
    else:
        base = base.with_columns(pl.col("_sent").alias("reached"))
    # the first assigned of two ids that are now one person stays; the other is a duplicate
    # (only a merge can make two assigned ids one person: the window runs over those rows alone)
    shared = base.filter(pl.col("merged")).select("patient_id").unique()
    dups = (
        base.join(shared, on="patient_id", how="semi")
        .sort("_assigned_on", "assigned_id")
        .filter(pl.int_range(pl.len()).over("patient_id") > 0)
        .select("assigned_id", pl.lit(True).alias("_dup"))
    )
    return base.join(dups, on="assigned_id", how="left").select(
        "assigned_id", "patient_id", "arm", "start",
        pl.min_horizontal(pl.col("start") + pl.duration(days=window_days), pl.lit(as_of)).alias("window_end"),
        "reached", "merged", pl.col("_dup").fill_null(False).alias("duplicate"),
    )


def cohort(
    assigned: pl.LazyFrame,
    patients: pl.LazyFrame,
    done: pl.LazyFrame,
    *,
    window_days: int,
    as_of: dt.date,
    dimensions: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """One row per assigned patient: :data:`COHORT_COLUMNS` plus ``g:NAME`` group columns.

    ``assigned`` is :func:`assignments`; ``done`` holds ``patient_id`` and ``evidence_date``
    of a completion rule that is ``not_due``, with ``window_end`` when it was evaluated per
    window (:func:`segment.measure.completion.completions`; only the rows of the patient's
    own window count). ``dimensions`` maps a group name to its patient column
    (``age_band`` from ``birth_date`` as of ``as_of``).
    """
    schema = patients.collect_schema()
    dims = dict(dimensions or {})
    current = patients.select(
        pl.col("patient_id").cast(pl.String),
        (pl.col("deceased_date").cast(pl.Date) if "deceased_date" in schema else pl.lit(None, pl.Date))
        .alias("_deceased"),
        *[
            (age_band_expr(col, as_of) if name == "age_band" else pl.col(col).cast(pl.String))
            .fill_null(MISSING).alias(f"g:{name}")
            for name, col in dims.items()
        ],
    )
    keys = ["patient_id", "window_end"] if "window_end" in done.collect_schema().names() else ["patient_id"]
    done = done.select(
        pl.col("patient_id").cast(pl.String), *[pl.col(k).cast(pl.Date) for k in keys[1:]],
        pl.col("evidence_date").cast(pl.Date),
    ).filter(pl.col("evidence_date").is_not_null())
    completion = (
        assigned.select("assigned_id", "patient_id", "start", "window_end")
        .join(done, on=keys, how="inner")
        .filter((pl.col("evidence_date") > pl.col("start")) & (pl.col("evidence_date") <= pl.col("window_end")))
        .group_by("assigned_id").agg(pl.col("evidence_date").min().alias("completed_on"))
    )
    out = (
        assigned.join(completion, on="assigned_id", how="left")
        .join(current, on="patient_id", how="left")
        .with_columns(
            pl.col("completed_on").is_not_null().alias("completed"),
            (pl.col("completed_on") - pl.col("start")).dt.total_days().alias("days"),
            (pl.lit(as_of) >= pl.col("start") + pl.duration(days=window_days)).alias("follow_up_complete"),
        )
        .with_columns(
            pl.when(pl.col("patient_id").is_null()).then(pl.lit("not_in_extract"))
            .when(pl.col("duplicate")).then(pl.lit("merged_duplicate"))
            .when(pl.col("_deceased").is_not_null() & ~pl.col("completed")
                  & (pl.col("_deceased") <= pl.col("start") + pl.duration(days=window_days)))
            .then(pl.lit("died"))
            .alias("lost")
        )
    )
    return out.select(*COHORT_COLUMNS, pl.col("^g:.*$"))


def completion_rows(eligibility: pl.LazyFrame, rules: Sequence[str]) -> pl.LazyFrame:
    """``patient_id``, ``evidence_date`` of the ``rules`` rows that are ``not_due`` in an eligibility frame."""
    return eligibility.filter(
        pl.col("rule_id").cast(pl.String).is_in([str(r) for r in rules]) & (pl.col("status") == "not_due")
    ).select(pl.col("patient_id").cast(pl.String), pl.col("evidence_date").cast(pl.Date))
