"""Probabilistic linkage trained on a synthetic extract with its ground truth (EM path)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from segment.ingest import ingest
from segment.ingest.identity import IdentityOptions, Linkage
from segment.synth import write_extract


def _pairs(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    g = frame.select(key, "id").unique()
    return g.join(g, on=key, suffix="_r").filter(pl.col("id") < pl.col("id_r")).select("id", "id_r").unique()


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    root = tmp_path_factory.mktemp("trained")
    truth_file = root / "truth.csv"
    write_extract(root / "extract", 3000, seed=11, sources=2, truth=truth_file)
    work = root / "work"
    ingest(sorted((root / "extract").glob("*-patients.csv")), work,
           identity=IdentityOptions(linkage=Linkage.PROBABILISTIC), allow_orphan_events=True)
    truth = pl.read_csv(truth_file, schema_overrides={"patient_id": pl.String}).select(
        (pl.col("source") + ":" + pl.col("patient_id")).alias("id"), "person", "twin_of", "namesake_of")
    return work, truth


def test_truth_file_names_twins_and_namesakes(linked: tuple[Path, pl.DataFrame]) -> None:
    _, truth = linked
    people = truth.select("person", "twin_of", "namesake_of").unique("person")
    assert people.filter(pl.col("twin_of") >= 0).height > 5
    assert people.filter(pl.col("namesake_of") >= 0).height > 3
    # every record id of both sources is in the truth once
    assert truth["id"].is_unique().all()


def test_trained_model_links_accurately_and_never_merges_twins(linked: tuple[Path, pl.DataFrame]) -> None:
    work, truth = linked
    report = json.loads((work / "ingest-report.json").read_text())["identity"]
    assert report["m_from"] == "em" and report["u_from"] == "random sampling"
    clusters = pl.read_parquet(work / "patients.parquet", columns=["patient_id", "source_ids"]).explode(
        "source_ids", empty_as_null=False).rename({"source_ids": "id"})
    truth = truth.join(clusters.select("id"), on="id", how="semi")
    predicted, actual = _pairs(clusters, "patient_id"), _pairs(truth, "person")
    tp = predicted.join(actual, on=["id", "id_r"], how="semi").height
    assert tp / predicted.height >= 0.995
    assert tp / actual.height >= 0.95
    placed = truth.join(clusters, on="id")
    for kind in ("twin_of", "namesake_of"):
        merged = placed.filter(pl.col(kind) >= 0).select("patient_id", pl.col(kind).alias("person")).join(
            placed.select("patient_id", "person"), on=["patient_id", "person"], how="semi")
        assert merged.height == 0, kind


def test_trained_model_and_clusters_are_the_same_on_a_second_run(linked: tuple[Path, pl.DataFrame]) -> None:
    work, _ = linked
    again = work.parent / "again"
    ingest(sorted((work.parent / "extract").glob("*-patients.csv")), again,
           identity=IdentityOptions(linkage=Linkage.PROBABILISTIC), allow_orphan_events=True)
    assert pl.read_parquet(again / "patients.parquet").equals(pl.read_parquet(work / "patients.parquet"))
    first, second = (json.loads((w / "identity-model.json").read_text()) for w in (work, again))
    first.pop("created")
    second.pop("created")
    assert first == second
    assert (work / "identity-review.csv").read_bytes() == (again / "identity-review.csv").read_bytes()

