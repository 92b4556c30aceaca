"""Benchmark: writing a synthetic extract (and optionally the demo world).

``python scripts/bench.py synth --patients 1000000 [--out DIR] [--world] [--keep]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchlib import measure

from segment.synth import build_geography, write_extract, write_geography_sources


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py synth")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder to write into (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    args = parser.parse_args(argv)

    root = args.out or Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        with measure("build demo geography") as row:
            geo = build_geography(args.patients, args.seed)
            row["tracts"] = len(geo.tracts)
            row["segments"] = len(geo.streets)
        with measure("write geography sources"):
            write_geography_sources(geo, root / "source")
        with measure(f"write extract ({args.patients:,} people)") as row:
            files = write_extract(root / "extract", args.patients, args.seed, args.sources, world=geo)
        patient_rows = sum(v for p, v in files.rows.items() if p.name.endswith("-patients.csv"))
        event_rows = sum(v for p, v in files.rows.items() if p.name.endswith("-events.csv"))
        seconds = float(row["wall_s"])  # type: ignore[arg-type]
        size = sum(p.stat().st_size for p in files) / 1024**3
        print(
            f"patient rows {patient_rows:,}  event rows {event_rows:,}  "
            f"({(patient_rows + event_rows) / seconds:,.0f} rows/s, {size:.2f} GiB on disk)"
        )
        if args.keep:
            print(f"kept: {root}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0
