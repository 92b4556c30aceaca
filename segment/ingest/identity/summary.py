"""What identity resolution did, for ``segment identity report`` and ``segment explain``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.errors import StageInputError
from segment.ingest.identity import IDENTITY_LINKS, IDENTITY_MODEL, IDENTITY_REPORT, IDENTITY_REVIEW
from segment.ingest.identity import model as mdl


@dataclass(frozen=True)
class IdentityReport:
    """The linkage used, cluster sizes, review count and the model's m/u per level."""

    summary: dict[str, Any]
    cluster_sizes: list[dict[str, Any]]
    parameters: list[dict[str, Any]]


def identity_report(workdir: str | Path) -> IdentityReport:
    """Read a working folder's identity files (written by ``segment ingest``)."""
    workdir = Path(workdir)
    patients = wd.require(workdir, wd.PATIENTS, produced_by="segment ingest")
    report_path = workdir / IDENTITY_REPORT
    if not report_path.is_file():
        raise StageInputError(f"{IDENTITY_REPORT} is missing: rerun `segment ingest` with this version",
                              path=report_path)
    counts = json.loads(report_path.read_text(encoding="utf-8"))
    sizes = (
        pl.scan_parquet(patients).select(pl.col("source_ids").list.len().alias("records"))
        .group_by("records").agg(pl.len().alias("patients")).sort("records").collect()
    )
    review = workdir / IDENTITY_REVIEW
    n_review = pl.scan_csv(review).select(pl.len()).collect().item() if review.is_file() else 0
    total = int(sizes["patients"].sum() or 0)
    summary: dict[str, Any] = {
        "linkage": counts.get("linkage"), "why": counts.get("reason"),
        "source records": counts.get("source_records"), "patients": total,
        "patients with more than one record": int(sizes.filter(pl.col("records") > 1)["patients"].sum() or 0),
        "review pairs (not merged)": n_review,
    }
    parameters: list[dict[str, Any]] = []
    if counts.get("linkage") == "probabilistic":
        model = mdl.load(workdir / IDENTITY_MODEL)
        thresholds = counts.get("thresholds", {})
        summary |= {
            "model": counts.get("model"), "m from": model.m_from, "u from": model.u_from,
            "trained on records": model.trained_on,
            "prior match probability": _g(model.settings.get("probability_two_random_records_match")),
            "merge threshold": _g(thresholds.get("merge")), "review threshold": _g(thresholds.get("review")),
            "same-source threshold": _g(thresholds.get("same_source")),
            "merge pairs": counts.get("merge_pairs"),
            **{f"held back: {k}": v for k, v in counts.get("held_back_to_review", {}).items()},
        }
        split = counts.get("transitive_conflicts")
        if isinstance(split, dict):  # absent from reports written before the guard existed
            summary |= {"clusters split (joined through a third record)": split.get("clusters_split"),
                        "links cut (to review)": split.get("links_cut")}
        # small probabilities keep their significant digits (a table would round them to 0)
        parameters = [{**row, "m": _g(row["m"]), "u": _g(row["u"])} for row in mdl.parameters(model)]
    return IdentityReport(summary, sizes.to_dicts(), parameters)


def _g(value: Any) -> Any:
    """A probability as text with 4 significant digits (``0.9999``, ``3.2e-06``)."""
    return f"{value:.4g}" if isinstance(value, float) else value


def patient_identity(workdir: str | Path, patient_id: str) -> list[dict[str, Any]]:
    """The source records merged into ``patient_id``, each with the links that joined it.

    One row per merge pair touching the patient (record, linked record, match weight,
    probability, agreeing and disagreeing fields); a patient of one record gives one row
    with that record alone; deterministic linkage gives the records without weights.
    """
    workdir = Path(workdir)
    patients = wd.require(workdir, wd.PATIENTS, produced_by="segment ingest")
    found = pl.scan_parquet(patients).filter(pl.col("patient_id") == patient_id).select("source_ids").collect()
    # a patients file written without source ids (an older working folder): nothing to list
    ids = found["source_ids"].explode(empty_as_null=False).drop_nulls()
    if ids.len() == 0:
        return []
    links_path = workdir / IDENTITY_LINKS
    if not links_path.is_file():  # deterministic linkage: exact keys, no weights
        how = "deterministic keys" if ids.len() > 1 else ""
        return [{"record": rid, "linked to": "", "match weight": None, "probability": None, "agreeing": how,
                 "disagreeing": ""} for rid in ids.to_list()]
    links = pl.scan_parquet(links_path).filter(
        pl.col("record_id_1").is_in(ids.implode()) | pl.col("record_id_2").is_in(ids.implode())
    ).sort("record_id_1", "record_id_2").collect()
    rows: list[dict[str, Any]] = [
        {"record": r["record_id_1"], "linked to": r["record_id_2"], "match weight": r["match_weight"],
         "probability": r["match_probability"], "agreeing": r["agreeing_fields"],
         "disagreeing": r["disagreeing_fields"]}
        for r in links.iter_rows(named=True)
    ]
    linked = {r["record"] for r in rows} | {r["linked to"] for r in rows}
    rows += [{"record": rid, "linked to": "", "match weight": None, "probability": None, "agreeing": "",
              "disagreeing": ""} for rid in ids.to_list() if rid not in linked]
    return rows
