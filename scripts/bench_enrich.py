"""Benchmark: enrichment (tract join, need index, HP2030 gaps) on N synthetic geocoded patients.

``python scripts/bench.py enrich --patients 1000000``. Patients are spread over the real
Massachusetts 2010 tracts of the OEPS files (2% unmatched, 5% ZIP-centroid, 0.5% in tracts
the pack lacks); the pack is built from the OEPS files with the enrichment loader.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from benchlib import measure

from segment.enrich import enrich_workdir
from segment.reference.loading import load_indicator_files

OEPS = ("DS03_T", "EC03_T", "EC05_T", "BE01_T", "BE02_RUCA_T", "Access03_T", "Health03_T")


def _geocoded(tracts: list[str], n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    pick = np.asarray(tracts)[rng.integers(0, len(tracts), n)]
    roll = rng.random(n)
    precision = np.where(roll < 0.02, "unmatched",
                         np.where(roll < 0.07, "zip_centroid", "address_point"))
    tract = np.where(precision == "unmatched", None, pick)
    tract = np.where(roll > 0.995, "25999999999", tract)
    frame = pl.DataFrame({
        "patient_id": pl.int_range(0, n, eager=True).cast(pl.String),
        "first_name": pl.Series(["A"] * n),
        "birth_date": pl.Series(rng.integers(-20000, 15000, n)).cast(pl.Date),
        "zip5": pl.Series(rng.integers(1000, 2800, n)).cast(pl.String).str.zfill(5),
        "lat": rng.uniform(41.2, 42.9, n),
        "lon": rng.uniform(-73.5, -69.9, n),
        "geo_precision": precision,
        "geo_score": rng.random(n),
        "tract_geoid": tract,
    })
    return frame.with_columns(
        pl.col("tract_geoid").str.slice(0, 5).alias("county_fips"),
        (pl.col("tract_geoid") + "1").alias("block_group_geoid"),
        pl.when(pl.col("geo_precision") == "unmatched").then(pl.lit("no_street_match"))
        .alias("geo_reason"),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py enrich")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oeps", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/reference/oeps")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-enrich-") as tmp:
        root = Path(tmp)
        pack, work = root / "pack", root / "work"
        pack.mkdir()
        work.mkdir()
        with measure("setup: OEPS files -> MA pack (not timed)") as row:
            frame, entries = load_indicator_files([args.oeps / f"{n}.csv" for n in OEPS])
            ma = frame.filter(pl.col("tract_geoid").str.starts_with("25"))
            ma.write_parquet(pack / "indicators.parquet")
            files = {name: {"source": ["bench"], "vintage": "", "geography": "tract",
                            "rows": ma.height, "sha256": "0" * 64}
                     for name in ("tracts.parquet", "indicators.parquet")}
            (pack / "manifest.json").write_text(json.dumps({
                "format": 1, "name": "bench-ma", "synthetic": False, "created": "",
                "tract_vintage": 2010, "states": ["25"], "files": files, "columns": entries,
            }))
            row["tracts"] = ma.height
        with measure("setup: synthetic geocoded.parquet (not timed)", patients=args.patients):
            _geocoded(ma["tract_geoid"].to_list(), args.patients, args.seed).write_parquet(
                work / "geocoded.parquet")
        with measure("enrich: join + need index + HP2030 + write") as row:
            report = enrich_workdir(work, pack)
            row["patients"] = report.patients
            row["tract_share"] = round(report.sdoh_source.get("tract", 0) / report.patients, 4)
            row["variance_explained"] = report.need_index.variance_explained
        print(f"rows/s: {report.patients / float(row['wall_s']):,.0f}")
    return 0
