"""Benchmark the whole pipeline: `python scripts/bench.py run --patients 1000000`.

Generates the demo world at N people (cached under --cache), writes a campaign, runs it
once cold and once again with unchanged inputs, and prints each stage's wall time and the
process's peak memory at the end of each stage.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchlib import measure, peak_rss_gib

from segment.demo import write_demo_campaigns
from segment.pipeline import RunResult, run_campaign
from segment.synth import write_demo_world
from segment.synth.extract import DEFAULT_REF_DATE


def _print(result: RunResult, label: str) -> None:
    print(f"-- {label}: run {result.run_id} outcome {result.outcome} total {result.seconds:.2f} s")
    for s in result.stages:
        peak = "n/a" if s.peak_rss_mib is None else f"{s.peak_rss_mib / 1024:.2f}"
        print(f"   {s.name:<10} {s.status:<8} {s.seconds:>8.2f} s   peak so far {peak:>6} GiB")
    for key in ("sent", "sent by sms", "sent by email"):
        if key in result.export:
            print(f"   {key}: {result.export[key]:,}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py run")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--journey", action="store_true",
                        help="after the cold run, time a nightly export with a three-step journey and five "
                             "variants against the plain campaign (scripts/journeybench.py)")
    args = parser.parse_args(argv)

    root = args.cache / f"run-{args.patients}-{args.seed}"
    world = root / "world"
    if not (world / "reference" / "manifest.json").exists():
        with measure("generate demo world (not timed below)", patients=args.patients):
            shutil.rmtree(world, ignore_errors=True)
            write_demo_world(world, args.patients, args.seed)
    for stale in ("work", "exports", "ledger.sqlite"):
        target = root / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    campaign = write_demo_campaigns(root, DEFAULT_REF_DATE)[0]

    start = time.perf_counter()
    first = run_campaign(campaign)
    _print(first, "cold run")
    if args.journey:
        from journeybench import run as journey_run

        journey_run(campaign, root, DEFAULT_REF_DATE)
    else:
        second = run_campaign(campaign)
        _print(second, "second run, unchanged inputs")
    print(f"total {time.perf_counter() - start:.2f} s; process peak {peak_rss_gib():.2f} GiB")
    return 0
