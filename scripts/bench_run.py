"""Benchmark the whole pipeline: `python scripts/bench.py run --patients 1000000`.

Generates the demo world at N people (cached under --cache), writes a campaign, runs it
once cold and once again with unchanged inputs, and prints each stage's wall time, the
stage's own peak memory (Linux: the high-water mark is reset when a stage starts) and the
process's peak so far, with the memory budget in force (``--memory-gb`` or
``SEGMENT_MEMORY_GB``, default half the machine) and each stage's batch count.
``--alone`` runs each stage by itself in a new process over the folder an earlier run left,
so its peak is its own rather than the process's carry-over. ``--linkage deterministic`` pins the campaign's ``linkage:`` (the default, ``auto``, links
probabilistically when the extract has no shared identifier, which is slow at millions).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from benchlib import measure

from segment.demo import write_demo_campaigns
from segment.memory import ENV, GIB, machine_memory_bytes, memory_budget_bytes, process_peak_bytes
from segment.pipeline import RunResult, run_campaign
from segment.synth import write_demo_world
from segment.synth.extract import DEFAULT_REF_DATE


def _gib(mib: float | None) -> str:
    return "n/a" if mib is None else f"{mib / 1024:.2f}"


def _print(result: RunResult, label: str) -> None:
    print(f"-- {label}: run {result.run_id} outcome {result.outcome} total {result.seconds:.2f} s")
    for s in result.stages:
        batches = s.counts.get("batches", "-")
        print(f"   {s.name:<10} {s.status:<8} {s.seconds:>8.2f} s   stage peak {_gib(s.stage_peak_rss_mib):>6} GiB"
              f"   peak so far {_gib(s.peak_rss_mib):>6} GiB   batches {batches}")
    for key in ("sent", "sent by sms", "sent by email"):
        if key in result.export:
            print(f"   {key}: {result.export[key]:,}")


#: stages ``--alone`` runs, in order
ALONE = ("geocode", "enrich", "evaluate", "audit", "export")


def _alone(argv: list[str]) -> int:
    """Each stage in its own new process (``--stage``), so its peak is its own."""
    for stage in ALONE:
        done = subprocess.run([sys.executable, str(Path(__file__).with_name("bench.py")), "run", *argv,
                               "--stage", stage], check=False)
        if done.returncode:
            return done.returncode
    return 0


def _stage_alone(root: Path, stage: str) -> int:
    """One stage's entry function over ``root``'s working folder: wall, CPU, its peak, its batches."""
    import datetime as dt

    from segment.config import Settings
    from segment.memory import stage_peak_bytes, start_stage_peak

    work, ref = root / "work", root / "world" / "reference"
    campaign = root / "campaigns" / "colorectal-sms-email.yaml"
    settings = Settings(reference_dir=ref, ledger_path=root / "ledger.sqlite")
    calls: dict[str, Callable[[], Any]] = {
        "geocode": lambda: import_module("segment.geocode.run").geocode(work, settings=settings),
        "enrich": lambda: import_module("segment.enrich.run").enrich_workdir(work, ref),
        "evaluate": lambda: import_module("segment.rules.run").evaluate(
            work, Path(__file__).resolve().parents[1] / "rules", dt.date(2026, 1, 1)),
        "audit": lambda: import_module("segment.audit.run").audit_campaign(
            campaign, work, root / "alone" / "audit.html"),
        "export": lambda: import_module("segment.export.run").export_campaign(
            campaign, work, root / "alone" / "exports", dry_run=True),
    }
    reset = start_stage_peak()  # False where the high-water mark cannot be reset (not Linux)
    wall, cpu = time.perf_counter(), time.process_time()
    result = calls[stage]()
    # without the reset the mark would include the imports and set-up: say so rather than print it
    peak = f"{(stage_peak_bytes() or 0) / GIB:5.2f} GiB" if reset else "  n/a (no peak reset here)"
    print(f"{stage:<9} alone: wall {time.perf_counter() - wall:7.2f} s   cpu {time.process_time() - cpu:7.2f} s   "
          f"peak {peak}   batches {getattr(result, 'batches', '?')}   "
          f"budget {memory_budget_bytes() / GIB:.2f} GiB", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py run")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--journey", action="store_true",
                        help="after the cold run, time a nightly export with a three-step journey and five "
                             "variants against the plain campaign (scripts/journeybench.py)")
    parser.add_argument("--memory-gb", type=float, default=None,
                        help="the memory budget (sets SEGMENT_MEMORY_GB; default: the variable, else half the machine)")
    parser.add_argument("--linkage", choices=("auto", "deterministic", "probabilistic"), default=None,
                        help="the campaign's `linkage:` (default: the campaign's own, auto)")
    parser.add_argument("--alone", action="store_true",
                        help="instead of a run: each stage alone in a new process over the folder an earlier run "
                             "of this size left (warm geocode cache; a dry-run export), with its peak and batches")
    parser.add_argument("--stage", choices=ALONE, help=argparse.SUPPRESS)  # one stage, in the new process
    args = parser.parse_args(argv)
    if args.memory_gb is not None:
        os.environ[ENV] = str(args.memory_gb)
    root = args.cache / f"run-{args.patients}-{args.seed}"
    if args.stage:
        return _stage_alone(root, args.stage)
    if args.alone:
        return _alone(argv)
    budget = memory_budget_bytes()
    print(f"memory budget {budget / GIB:.2f} GiB ({ENV}={os.environ.get(ENV, '(unset: half the machine)')}); "
          f"machine {(machine_memory_bytes() or 0) / GIB:.1f} GiB")

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
    if args.linkage is not None:
        campaign.write_text(campaign.read_text() + f"linkage: {args.linkage}\n")

    start = time.perf_counter()
    first = run_campaign(campaign)
    _print(first, "cold run")
    if args.journey:
        from journeybench import run as journey_run

        journey_run(campaign, root, DEFAULT_REF_DATE)
    else:
        second = run_campaign(campaign)
        _print(second, "second run, unchanged inputs")
    print(f"total {time.perf_counter() - start:.2f} s; process peak {(process_peak_bytes() or 0) / GIB:.2f} GiB")
    return 0
