"""Randomized holdouts: which eligible, contactable patients a campaign never sends to.

A campaign with ``holdout: {percent, seed, stratify}`` splits its audience (after
eligibility and contact policy, before frequency caps) into a *contact* arm and a
*holdout* arm. The draw is a keyed hash (BLAKE2b keyed with the campaign code and seed)
of each patient id: reproducible from the campaign file alone, unpredictable without
the seed, and independent of the order or size of the extract.

Stratification keeps the percentage in every stratum: within a stratum the patients are
ranked by their hash and the lowest ones are held out, so the stratum holds
``percent`` of its patients (rounded; the rounding is spread over the strata by largest
remainder, so the whole audience also keeps the percentage).

Arms are recorded in the contact ledger (``arms`` table) when an export is delivered. A
patient keeps the arm recorded for the campaign on every later run; only patients new to
the campaign are drawn, and a stratum's new patients are drawn so that the stratum (old and
new together) comes back to the percentage without moving anyone already assigned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from segment.campaign.model import Arm, Campaign, Holdout
from segment.errors import CampaignError

#: stratum label of a missing value
MISSING = "(missing)"
#: names accepted for the need-index quintile (the issue's and the audit's)
ALIASES = {"need_quintile": "need_index_quintile"}
#: prior arms frame (from :meth:`ContactLedger.arms`)
ARMS_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {"patient_id": pl.String, "arm": pl.String}


def keyed_hash(ids: pl.Series, key: str) -> pl.Series:
    """64-bit BLAKE2b of each id keyed with ``key`` (UInt64; stable across versions and machines).

    Polars has no stable keyed hash (``Expr.hash`` may change between releases), so the
    ids are hashed with :mod:`hashlib` once each, in one pass over the column.
    """
    secret = hashlib.blake2b(key.encode("utf-8"), digest_size=32).digest()
    digests = b"".join(
        hashlib.blake2b(v.encode("utf-8"), key=secret, digest_size=8).digest()
        for v in ids.cast(pl.String).fill_null("").to_list()
    )
    values = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    return pl.Series(ids.name, values, dtype=pl.UInt64)


def _hash_key(campaign: Campaign, holdout: Holdout) -> str:
    return f"{campaign.code}\0{holdout.seed}"


def stratum_columns(holdout: Holdout) -> list[str]:
    """The stratification names, with aliases resolved."""
    return [ALIASES.get(s, s) for s in holdout.stratify]


def stratum_exprs(names: Sequence[str], schema: pl.Schema, as_of: dt.date, *,
                  campaign: Campaign | None = None) -> list[pl.Expr]:
    """One string expression per stratification name (``age_band`` from ``birth_date``)."""
    from segment.dates import age_band_expr

    exprs = []
    for name in names:
        if name == "age_band":
            if "birth_date" not in schema:
                raise CampaignError(
                    "key `holdout.stratify`: age_band needs the patients' `birth_date`, which the "
                    "patient file does not have",
                    path=campaign.path if campaign else None, key="holdout.stratify")
            value = age_band_expr("birth_date", as_of)
        elif name in schema:
            value = pl.col(name).cast(pl.String)
        else:
            raise CampaignError(
                f"key `holdout.stratify`: found {name!r}, which is not a patient column; valid "
                "options are: age_band or a column of the patient file (for example race, sex, "
                "need_index_quintile)",
                path=campaign.path if campaign else None, key="holdout.stratify")
        exprs.append(value.fill_null(MISSING).alias(f"s:{name}"))
    return exprs


def _stratum_key(names: Sequence[str]) -> pl.Expr:
    if not names:
        return pl.lit("all")
    return pl.concat_str([pl.col(f"s:{n}") for n in names], separator="|")


def assign_arms(
    candidates: pl.DataFrame,
    holdout: Holdout,
    key: str,
    prior: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``patient_id``, ``arm`` and ``stratum`` for every candidate (eligible and contactable).

    ``candidates`` has ``patient_id`` and one ``s:NAME`` column per stratification name;
    ``prior`` (``patient_id``, ``arm``) holds the arms already recorded for the campaign,
    which are kept. New patients are ranked by keyed hash within their stratum and the
    lowest are held out until the stratum holds ``percent`` (rounded by largest remainder
    over the strata).
    """
    names = [c.removeprefix("s:") for c in candidates.columns if c.startswith("s:")]
    p = holdout.percent / 100.0
    frame = candidates.select(
        pl.col("patient_id").cast(pl.String), _stratum_key(names).alias("stratum")
    ).unique("patient_id", keep="first")
    old = prior if prior is not None else pl.DataFrame(schema=ARMS_SCHEMA)
    frame = frame.join(old.select("patient_id", pl.col("arm").alias("_prior")), on="patient_id", how="left")
    frame = frame.with_columns(keyed_hash(frame.get_column("patient_id"), key).alias("_h"))
    strata = frame.group_by("stratum").agg(
        pl.len().alias("_n"),
        (pl.col("_prior") == str(Arm.HOLDOUT)).sum().alias("_held"),
        pl.col("_prior").is_null().sum().alias("_new"),
    )
    # largest remainder: floor(p*n) per stratum, then one more for the largest remainders
    exact = pl.col("_n").cast(pl.Float64) * p
    strata = strata.with_columns(exact.floor().cast(pl.Int64).alias("_base"), (exact - exact.floor()).alias("_rem"))
    total = round(p * int(strata.get_column("_n").sum())) if strata.height else 0
    extra = max(0, total - int(strata.get_column("_base").sum())) if strata.height else 0
    strata = (
        strata.with_columns(keyed_hash(strata.get_column("stratum"), key).alias("_sh"))
        .sort(["_rem", "_sh"], descending=[True, False])
        .with_columns((pl.int_range(pl.len()) < extra).cast(pl.Int64).alias("_plus"))
        .with_columns(
            (pl.col("_base") + pl.col("_plus") - pl.col("_held")).clip(0, None).alias("_need")
        )
        .with_columns(pl.min_horizontal("_need", "_new").alias("_need"))
    )
    new = frame.filter(pl.col("_prior").is_null()).sort("_h", "patient_id").with_columns(
        pl.int_range(pl.len()).over("stratum").alias("_rank")
    ).join(strata.select("stratum", "_need"), on="stratum", how="left").select(
        "patient_id",
        pl.when(pl.col("_rank") < pl.col("_need")).then(pl.lit(str(Arm.HOLDOUT)))
        .otherwise(pl.lit(str(Arm.CONTACT))).alias("_drawn"),
    )
    return frame.join(new, on="patient_id", how="left").select(
        "patient_id",
        pl.coalesce("_prior", "_drawn").alias("arm"),
        "stratum",
    ).sort("patient_id")


def holdout_key(campaign: Campaign) -> str:
    """The hash key of a campaign's holdout (its code and seed)."""
    if campaign.holdout is None:
        raise CampaignError("the campaign has no `holdout:`", path=campaign.path, key="holdout")
    return _hash_key(campaign, campaign.holdout)


def with_strata(campaign: Campaign, drawn: pl.DataFrame, patients: pl.LazyFrame, as_of: dt.date) -> pl.DataFrame:
    """``drawn`` (``patient_id``, ``arm``) with each patient's ``stratum`` label, for the ledger."""
    names = stratum_columns(campaign.holdout) if campaign.holdout is not None else []
    schema = patients.collect_schema()
    strata = (
        patients.select(pl.col("patient_id").cast(pl.String), *stratum_exprs(names, schema, as_of, campaign=campaign))
        .select("patient_id", _stratum_key(names).alias("stratum"))
        .join(drawn.lazy().select("patient_id"), on="patient_id", how="semi")
        .unique("patient_id", keep="first")
        .collect()
    )
    return drawn.join(strata, on="patient_id", how="left").with_columns(pl.col("stratum").fill_null(MISSING))


def holdout_manifest(campaign: Campaign, plan: pl.DataFrame, prior: pl.DataFrame | None) -> dict[str, object]:
    """The manifest's ``holdout`` record: the design and the arms' sizes (no patient data).

    The seed itself is not written (it would let anyone holding the manifest recompute the
    draw); its SHA-256 fingerprint shows which seed was used.
    """
    h = campaign.holdout
    assert h is not None
    arms = plan.filter(pl.col("arm").is_not_null())
    kept = (int(arms.get_column("patient_id").is_in(prior.get_column("patient_id").implode()).sum())
            if prior is not None and prior.height else 0)
    counts = dict(arms.group_by("arm").len().rows())
    return {
        "percent": h.percent,
        "stratify": stratum_columns(h),
        "seed_sha256": hashlib.sha256(h.seed.encode("utf-8")).hexdigest(),
        "method": "BLAKE2b keyed hash of patient id (key: campaign code and seed), ranked within strata; "
                  "largest-remainder rounding; arms kept across runs from the ledger",
        "assigned": {str(Arm.CONTACT): int(counts.get(str(Arm.CONTACT), 0)),
                     str(Arm.HOLDOUT): int(counts.get(str(Arm.HOLDOUT), 0))},
        "kept_from_earlier_runs": kept,
        "held_out_not_sent": int((plan.get_column("contact_status") == "holdout").sum()),
    }
