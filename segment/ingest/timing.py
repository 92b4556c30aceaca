"""Ingest's step lines: each step's wall time, the process's CPU seconds meanwhile (every thread)
and its peak memory so far (debug level)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from segment import progress
from segment.log import get_logger, peak_rss_gib

log = get_logger("ingest")


@contextlib.contextmanager
def step(name: str, *, show: bool = False) -> Iterator[dict[str, Any]]:
    """Time the block; log ``step: <name>`` with the counts the block put in the yielded dict.

    ``show``: also name the step on the progress line (steps of the main thread only).
    """
    if show:
        progress.step("ingest", name)
    start, cpu = time.perf_counter(), _cpu_seconds()
    counts: dict[str, Any] = {}
    yield counts
    log.debug(f"step: {name}", seconds=round(time.perf_counter() - start, 2), **counts,
              cpu_s=round(_cpu_seconds() - cpu, 2), peak_gib=round(peak_rss_gib(), 2))


def _cpu_seconds() -> float:
    """User + system CPU seconds of the whole process (every thread) so far (portable: no
    ``resource`` module, which Windows lacks)."""
    return time.process_time()
