#!/usr/bin/env python3
"""Benchmarks: ``python scripts/bench.py STAGE [options]`` prints wall time and peak memory.

Each stage lives in ``scripts/bench_<stage>.py`` with a ``main(argv) -> int`` that uses
:func:`benchlib.measure` around each step it times. Benchmarks, not timed tests: the
figures go into closing notes, never into assertions.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stages() -> list[str]:
    """Stages with a benchmark module."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    """Dispatch to ``scripts/bench_<stage>.py``."""
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: scripts/bench.py STAGE [options]\nstages: " + ", ".join(stages()))
        return 0 if argv else 2
    stage = argv[0]
    if stage not in stages():
        print(f"unknown stage {stage!r}; stages: {', '.join(stages())}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"bench_{stage}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
