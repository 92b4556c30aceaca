"""Benchmark start-up: `python scripts/bench.py startup [--runs N]`.

Runs `segment --version`, `segment --help` and a bash completion request (`segment e<TAB>`)
N times each as new processes and prints wall time (median and minimum) and CPU time
(user + system, median) per command, with `python -c "import polars"` for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py startup")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    exe = shutil.which("segment") or str(Path(sys.executable).parent / "segment")
    complete = {"_SEGMENT_COMPLETE": "bash_complete", "COMP_WORDS": "segment e", "COMP_CWORD": "1"}
    cases = {
        "segment --version": ([exe, "--version"], {}),
        "segment --help": ([exe, "--help"], {}),
        "segment e<TAB> (bash completion)": ([exe], complete),
        "python -c 'import polars' (reference)": ([sys.executable, "-c", "import polars"], {}),
    }
    for name, (command, env) in cases.items():
        walls, cpus = [], []
        for _ in range(args.runs):
            cpu, start = _cpu(), time.perf_counter()
            subprocess.run(command, env={**os.environ, **env}, capture_output=True, check=True)
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu() - cpu)
        print(f"{name:<40} wall median {statistics.median(walls):.3f} s  min {min(walls):.3f} s"
              f"   cpu median {statistics.median(cpus):.3f} s", flush=True)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0
