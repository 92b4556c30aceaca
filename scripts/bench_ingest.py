"""Benchmark: ingest a generated canonical extract (``scripts/bench.py ingest --patients N [--linkage L]``).

The extract is generated once with ``segment.synth.write_extract`` and cached outside
the repository (default /tmp/segment-bench/extract-<N>-<seed>/); the ingest output goes
to a fresh folder beside it. Prints wall time, rows per second and peak memory, the
per-step breakdown (ingest's debug-level step lines: seconds and peak memory so far) and
each file's reconciliation (rows read = kept + rejected + skipped). ``SEGMENT_MEMORY_GB`` sets
the memory budget (events that would not fit it are processed in chunks, same outputs).

The peer, in the same run: plain Polars copying the same CSV files to Parquet (all
columns as text, streaming), the least any CSV ingest must do; the issue's target is
ingest at most 3x that copy. Both are also given in CPU seconds (user + system, every
thread), which a machine busy with other work distorts less than wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
from pathlib import Path

from benchlib import RESULTS, measure


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".csv")


class _StepLines(logging.Handler):
    """Print ingest's debug lines (one per step, with seconds and peak memory)."""

    def emit(self, record: logging.LogRecord) -> None:
        counts = getattr(record, "counts", {}) or {}
        print(f"  {record.getMessage():<38} " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py ingest")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--linkage", choices=["auto", "deterministic", "probabilistic"], default="auto",
                        help="identity resolution (auto: probabilistic from 1,000 records; see docs/identity.md)")
    args = parser.parse_args(argv)

    extract = args.cache / f"extract-{args.patients}-{args.seed}"
    done = extract / ".complete"
    if not done.exists():
        from segment.synth import write_extract

        shutil.rmtree(extract, ignore_errors=True)
        extract.mkdir(parents=True)
        with measure("generate extract (cached for next runs)", patients=args.patients):
            write_extract(extract, args.patients, seed=args.seed)
        done.write_text("ok\n")
    if args.generate_only:
        return 0
    files = _files(extract)
    size = sum(p.stat().st_size for p in files) / 2**30
    print(f"extract: {extract} ({len(files)} files, {size:.2f} GiB)", flush=True)
    from segment.memory import ENV, memory_budget_bytes

    # events that would not fit the budget go through in chunks (docs/ingest.md, "Large extracts")
    print(f"memory budget: {memory_budget_bytes() / 2**30:.1f} GiB ({ENV} to change it)", flush=True)

    import polars as pl

    from segment.ingest import ingest
    from segment.ingest.identity import IdentityOptions, Linkage

    copy_dir = args.cache / f"copy-{args.patients}-{args.seed}"
    shutil.rmtree(copy_dir, ignore_errors=True)
    copy_dir.mkdir(parents=True)
    cpu = _cpu_seconds()
    with measure("peer: plain Polars CSV -> Parquet copy"):
        for f in files:
            pl.scan_csv(f, infer_schema=False).sink_parquet(copy_dir / f"{f.stem}.parquet")
    copy_s = float(RESULTS.rows[-1]["wall_s"])  # type: ignore[arg-type]
    copy_cpu = _cpu_seconds() - cpu
    shutil.rmtree(copy_dir, ignore_errors=True)

    logger = logging.getLogger("segment.ingest")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(_StepLines(logging.DEBUG))
    out = args.cache / f"work-{args.patients}-{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    cpu = _cpu_seconds()
    with measure(f"ingest (linkage {args.linkage})", patients=args.patients) as row:
        result = ingest(files, out, allow_orphan_events=True,
                        identity=IdentityOptions(linkage=Linkage(args.linkage)))
    ingest_cpu = _cpu_seconds() - cpu
    rows = sum(f.rows_read for f in result.files)
    row["rows_read"] = rows
    row["rows_per_s"] = int(rows / row.get("wall_s", 1)) if "wall_s" in row else None
    wall = RESULTS.rows[-1]["wall_s"]
    print(
        json.dumps(
            {
                "rows_read": rows,
                "rows_per_s": round(rows / float(wall)),  # type: ignore[arg-type]
                "patient_records": result.patient_records,
                "patients": result.patients,
                "events_written": result.events_written,
                "events_rejected": result.events_rejected,
                "reject_lines": result.reject_lines,
                "reconciled": result.reconciled,
                "orphan_events": result.orphan_events,
                "ingest_vs_plain_copy": round(float(wall) / copy_s, 2),  # type: ignore[arg-type]
                # CPU seconds (user + system, all threads): what a loaded machine distorts least
                "cpu_s": {"ingest": round(ingest_cpu, 1), "copy": round(copy_cpu, 1)},
                "cpu_ingest_vs_plain_copy": round(ingest_cpu / copy_cpu, 2),
            }
        ),
        flush=True,
    )
    for f in result.files:
        ok = "ok" if f.rows_read == f.rows_kept + f.rows_rejected + f.rows_skipped else "MISMATCH"
        print(f"  {Path(f.file).name:<24} read {f.rows_read:>11,} = kept {f.rows_kept:>11,} + rejected "
              f"{f.rows_rejected:>9,} + skipped {f.rows_skipped:>7,}  {ok}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
