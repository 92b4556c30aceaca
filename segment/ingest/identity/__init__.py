"""Identity resolution: which source records are the same person.

Two matchers behind one call, :func:`resolve`:

- ``probabilistic``: a Fellegi-Sunter model (Splink on DuckDB, :mod:`.model`) scores the
  candidate pairs; pairs fall into merge / review / no-match bands with guards against
  merging twins, same-name-same-birth-date strangers and same-source records
  (:mod:`.links`); merged records are the connected components of the merge pairs, split
  where two records of one conflict (twins joined through a record of one of them);
- ``deterministic``: the exact-key matcher of :mod:`segment.ingest.dedupe`.

``auto`` (the default) uses the deterministic matcher for extracts below
:data:`AUTO_MIN_RECORDS` source records (too few pairs for the model's estimates to mean
anything, and small files are better served by rules a person can check by eye) and the
probabilistic one otherwise; a pinned model (``--linkage-model``) always means
probabilistic.

Files written into the working folder (owner-only): ``identity-model.json`` (the model
used: trained now or the pinned one), ``identity-review.csv`` (pairs for a person to
decide; never merged), ``identity-links.parquet`` (every merge pair with its weight and
driving fields, for ``segment explain``) and ``identity-report.json`` (counts).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.ingest.identity import model as mdl
from segment.ingest.identity.features import IDENTIFIER_COLUMNS
from segment.ingest.identity.links import (
    CUT_REASON,
    REVIEW_COLUMNS,
    Thresholds,
    bands,
    components,
    conflicts_within,
    first_names_read,
    split_conflicts,
)
from segment.ingest.identity.store import LinkageData, linkage_data
from segment.ingest.timing import step
from segment.log import get_logger
from segment.memory import Spill

log = get_logger("identity")

IDENTITY_MODEL = "identity-model.json"
IDENTITY_REVIEW = "identity-review.csv"
IDENTITY_LINKS = "identity-links.parquet"
IDENTITY_REPORT = "identity-report.json"
#: ``auto`` links probabilistically from this many source records
AUTO_MIN_RECORDS = 1_000


class Linkage(StrEnum):
    """How source records are matched."""

    AUTO = "auto"
    PROBABILISTIC = "probabilistic"
    DETERMINISTIC = "deterministic"


@dataclass(frozen=True)
class IdentityOptions:
    """Identity-resolution settings for one ingest."""

    linkage: Linkage = Linkage.AUTO
    model: Path | None = None  # a pinned model file
    thresholds: Thresholds = field(default_factory=Thresholds)

    def checked(self) -> IdentityOptions:
        """Validate before any data is read (thresholds, the pinned model's file)."""
        self.thresholds.check()
        if self.model is not None:
            if self.linkage == Linkage.DETERMINISTIC:
                from segment.errors import ConfigError

                raise ConfigError("--linkage-model needs probabilistic linkage, not --linkage deterministic",
                                  key="--linkage-model")
            mdl.load(self.model)
        return self


@dataclass(frozen=True)
class IdentityResult:
    """The clusters (``_k_id`` -> ``_cluster``; None: the deterministic keys) and the counts."""

    linkage: str
    reason: str
    clusters: pl.DataFrame | None
    keep_ids: pl.Series | None
    counts: dict[str, Any]


def _previous_ids(workdir: Path) -> pl.Series | None:
    """The patient ids of the working folder's last ingest (kept when their cluster grows)."""
    path = workdir / wd.PATIENTS
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path, columns=["patient_id"])["patient_id"]
    except Exception:  # an unreadable old file is simply not used
        return None


def resolve(
    records: pl.DataFrame | Spill, options: IdentityOptions, workdir: Path, *, memory_budget: int | None = None,
) -> IdentityResult:
    """Decide which records of ``records`` (``MERGE_INPUT`` + ``_k_id``) are one person.

    ``records``: in memory, or spilled to disk chunk by chunk (their linkage frame is then
    built and read part by part: :mod:`.store`). ``memory_budget`` (bytes; default
    ``SEGMENT_MEMORY_GB``) bounds the scoring's DuckDB."""
    started = time.perf_counter()
    keep = _previous_ids(workdir)
    n = _distinct_records(records)
    linkage = options.linkage
    if options.model is not None:
        linkage, reason = Linkage.PROBABILISTIC, "pinned model"
    elif linkage == Linkage.AUTO:
        if n < AUTO_MIN_RECORDS:
            linkage, reason = Linkage.DETERMINISTIC, f"auto: fewer than {AUTO_MIN_RECORDS:,} source records"
        else:
            linkage, reason = Linkage.PROBABILISTIC, f"auto: {AUTO_MIN_RECORDS:,} source records or more"
    else:
        reason = "chosen"
    # last run's identity files never outlive it (the model is rewritten below)
    for name in (IDENTITY_REVIEW, IDENTITY_LINKS, IDENTITY_MODEL):
        (workdir / name).unlink(missing_ok=True)
    if linkage == Linkage.DETERMINISTIC:
        counts = {"linkage": "deterministic", "reason": reason, "source_records": n}
        wd.ensure_private_dir(workdir)
        wd.write_json(workdir / IDENTITY_REPORT, {**counts, "created": _now()})
        return IdentityResult("deterministic", reason, None, keep, counts)
    return _probabilistic(records, options, workdir, n, reason, keep, started, memory_budget)


def _distinct_records(records: pl.DataFrame | Spill) -> int:
    """How many distinct record ids (``_k_id``) ``records`` hold."""
    if isinstance(records, pl.DataFrame):
        return int(records.select(pl.col("_k_id").n_unique()).item())
    if not records.files:
        return 0
    return int(pl.scan_parquet(records.files).select(pl.col("_k_id").n_unique()).collect(engine="streaming").item())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def score(
    data: LinkageData, options: IdentityOptions, memory_budget: int | None = None,
) -> tuple[mdl.LinkageModel, pl.DataFrame]:
    """Train (or load) the model and score the candidate pairs of ``data`` (the linkage frame).

    Returns the model and the pairs at or above the review threshold, each with its band.
    """
    # DuckDB spills to disk past its memory limit: into an owner-only folder removed after
    spill = tempfile.mkdtemp(prefix="segment-identity-")
    # a frame in memory is DuckDB's table without a copy, but Polars holds it; parts on disk are not
    share = mdl.DUCKDB_SHARE if data.frame is not None else mdl.DUCKDB_SPILLED_SHARE
    con = mdl.connection(Path(spill), memory_budget, share)
    try:
        with step("identity: model"):
            if options.model is not None:
                model = mdl.load(options.model)
                linker = mdl.make_linker(con, data, "records", model.settings)
            else:
                model, linker = mdl.train(data, con)
        with step("identity: pairs scored") as counts:
            predictions = linker.inference.predict(threshold_match_probability=options.thresholds.review)
            gammas = [f"gamma_{c}" for c in model.comparisons]
            pairs = con.sql(
                f"SELECT {mdl.UID}_l, {mdl.UID}_r, source_l, source_r, match_weight, match_probability, "
                f"first_name_l, first_name_r, {', '.join(gammas)} FROM {predictions.physical_name}"
            ).pl()
            counts["pairs"] = pairs.height
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    ids = data.record_ids()  # record number n is the n-th id in sorted order
    pairs = pairs.select(
        *(ids.gather(pairs[f"{mdl.UID}_{s}"] - 1).alias(f"unique_id_{s}") for s in ("l", "r")),
        pl.exclude(f"{mdl.UID}_l", f"{mdl.UID}_r"),
    )
    pairs = first_names_read(pairs, data.lazy()).drop("first_name_l", "first_name_r")
    return model, bands(pairs, model.settings, options.thresholds)


def cluster(
    data: LinkageData, pairs: pl.DataFrame, settings: dict[str, Any],
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Clusters of the merge pairs, with clusters joined only through a third record split.

    ``data``: the linkage frame (each step collects the columns and records it needs).

    Returns the clusters (``_k_id`` -> ``_cluster``), ``pairs`` with each cut merge pair moved
    to review (held back because it :data:`~.links.CUT_REASON`), and the counts.
    """
    merge = pairs.filter(pl.col("band") == "merge")
    clusters = components(data.record_ids(), merge.select(a="unique_id_l", b="unique_id_r"))
    conflicts = conflicts_within(clusters, merge, data.lazy(), settings)
    hit = conflicts.join(clusters.rename({"_k_id": "a"}), on="a")["_cluster"].n_unique()
    clusters, cut = split_conflicts(clusters, merge, conflicts)
    if cut.height:
        was_cut = pl.col("_cut").fill_null(False)
        pairs = pairs.join(cut.with_columns(_cut=pl.lit(True)), on=["unique_id_l", "unique_id_r"], how="left",
                           maintain_order="left").with_columns(
            pl.when(was_cut).then(pl.lit("review")).otherwise(pl.col("band")).alias("band"),
            pl.when(was_cut).then(pl.lit(CUT_REASON)).otherwise(pl.col("held_back_because"))
            .alias("held_back_because"),
        ).drop("_cut")
    split = {"conflicting_record_pairs": conflicts.height, "clusters_split": hit, "links_cut": cut.height}
    return clusters, pairs, split


def _probabilistic(
    records: pl.DataFrame | Spill, options: IdentityOptions, workdir: Path, n: int, reason: str,
    keep: pl.Series | None, started: float, memory_budget: int | None,
) -> IdentityResult:
    with step("identity: linkage frame") as counts:
        data = linkage_data(records, workdir)
        counts.update(records=data.rows, on_disk=data.parts is not None)
    try:
        model, pairs = score(data, options, memory_budget)
        with step("identity: clusters"):
            clusters, pairs, split = cluster(data, pairs, model.settings)
    finally:
        data.remove()
    merge = pairs.filter(pl.col("band") == "merge")
    review = pairs.filter(pl.col("band") == "review")
    wd.ensure_private_dir(workdir)
    mdl.save(model, workdir / IDENTITY_MODEL)  # a pinned model is copied: the report reads it here
    _pair_columns = [
        pl.col("unique_id_l").alias("record_id_1"), pl.col("unique_id_r").alias("record_id_2"),
        pl.col("match_weight").round(2), pl.col("match_probability").round(6),
    ]
    wd.write_csv(
        review.sort("match_weight", "unique_id_l", "unique_id_r", descending=[True, False, False])
        .select(*_pair_columns, *REVIEW_COLUMNS[4:]),
        workdir / IDENTITY_REVIEW,
    )
    wd.write_parquet(
        merge.sort("unique_id_l", "unique_id_r").select(
            *_pair_columns, "agreeing_fields", "disagreeing_fields", "missing_fields"
        ),
        workdir / IDENTITY_LINKS,
    )
    held = pairs.filter(pl.col("held_back_because").is_not_null()).group_by("held_back_because").len()
    sizes = clusters.group_by("_cluster").len().group_by("len").len(name="clusters").sort("len")
    counts = {
        "linkage": "probabilistic", "reason": reason, "source_records": n,
        "model": model.source, "m_from": model.m_from, "u_from": model.u_from,
        "identifiers": [c for c in IDENTIFIER_COLUMNS
                        if c in (records.columns if isinstance(records, pl.DataFrame) else records.columns())],
        "thresholds": {"merge": options.thresholds.merge, "review": options.thresholds.review,
                       "same_source": options.thresholds.same_source},
        "pairs_scored_at_or_above_review": pairs.height,
        "merge_pairs": merge.height, "review_pairs": review.height,
        "held_back_to_review": dict(sorted(held.iter_rows())),
        "transitive_conflicts": split,
        "cluster_sizes": {str(k): v for k, v in sizes.iter_rows()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    wd.write_json(workdir / IDENTITY_REPORT, {**counts, "created": _now()})
    log.info("identities resolved", records=n, merge_pairs=merge.height, review_pairs=review.height,
             seconds=counts["seconds"])
    return IdentityResult("probabilistic", reason, clusters, keep, counts)


__all__ = [
    "AUTO_MIN_RECORDS", "IDENTITY_LINKS", "IDENTITY_MODEL", "IDENTITY_REPORT", "IDENTITY_REVIEW",
    "IdentityOptions", "IdentityResult", "Linkage", "Thresholds", "resolve", "score",
]
