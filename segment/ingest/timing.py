"""Ingest's step lines: each step's wall time and the process's peak memory so far (debug level)."""

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
    start = time.perf_counter()
    counts: dict[str, Any] = {}
    yield counts
    log.debug(f"step: {name}", seconds=round(time.perf_counter() - start, 2), **counts,
              peak_gib=round(peak_rss_gib(), 2))
