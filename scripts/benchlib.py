"""Helpers for benchmarks: wall time and peak memory of each step, printed as a table."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from segment.log import peak_rss_bytes


def peak_rss_gib() -> float:
    """Peak resident memory of this process and its finished children, in GiB."""
    peak = peak_rss_bytes(children=True)
    return 0.0 if peak is None else peak / 2**30


@dataclass
class Results:
    """Rows of (step, seconds, peak GiB, extra figures)."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def print(self) -> None:
        """Print one line per step."""
        for row in self.rows:
            extra = " ".join(f"{k}={v}" for k, v in row.items() if k not in {"step", "wall_s", "peak_gib"})
            print(
                f"{row['step']:<40} wall {row['wall_s']:>8.2f} s   peak {row['peak_gib']:>6.2f} GiB   {extra}",
                flush=True,
            )


RESULTS = Results()


@contextlib.contextmanager
def measure(step: str, **extra: object) -> Iterator[dict[str, object]]:
    """Time a step; the yielded dict can receive extra figures (rows/s, match rate)."""
    row: dict[str, object] = {"step": step, **extra}
    start = time.perf_counter()
    yield row
    row["wall_s"] = time.perf_counter() - start
    row["peak_gib"] = peak_rss_gib()
    RESULTS.rows.append(row)
    print(
        f"{step:<40} wall {row['wall_s']:>8.2f} s   peak {row['peak_gib']:>6.2f} GiB   "
        + " ".join(f"{k}={v}" for k, v in row.items() if k not in {"step", "wall_s", "peak_gib"}),
        file=sys.stdout,
        flush=True,
    )
