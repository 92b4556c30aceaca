"""The memory budget: how much RAM a stage may use, so peak memory does not grow with the extract.

``SEGMENT_MEMORY_GB`` (a positive number of GiB) sets the budget; by default it is half the
machine's physical memory (cgroup limits included where the kernel exposes them), at least
1 GiB. Stages that hold per-patient data split their patients into batches sized from the
budget with :func:`batch_count` and process one batch at a time; results are the same for
any budget (tested with a tiny one).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from segment.errors import ConfigError

ENV = "SEGMENT_MEMORY_GB"
GIB = 1024**3
#: the default budget's share of the machine's memory
DEFAULT_SHARE = 0.5
#: no budget below this is honoured as such: Python, Polars and the reference pack need it
FLOOR_BYTES = 256 * 1024**2


def machine_memory_bytes() -> int | None:
    """Physical memory, or the cgroup's limit when lower; None where neither is known."""
    total: int | None = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = int(text)
            if limit > 0 and (total is None or limit < total):
                total = limit
    return total


def memory_budget_bytes(value: str | float | None = None) -> int:
    """The budget in bytes: ``value`` (GiB) if given, else ``SEGMENT_MEMORY_GB``, else the default.

    A value that is not a positive number is a :class:`ConfigError` naming the variable,
    the value found and what is valid.
    """
    raw = os.environ.get(ENV, "").strip() if value is None else value
    if raw in ("", None):
        total = machine_memory_bytes()
        return max(int((total or 8 * GIB) * DEFAULT_SHARE), 1 * GIB)
    try:
        gib = float(raw)
    except (TypeError, ValueError):
        gib = math.nan
    if not math.isfinite(gib) or gib <= 0:
        raise ConfigError(
            f"{ENV}: {raw!r} is not a memory budget; valid: a positive number of GiB (e.g. 8 or 0.5)"
        )
    return max(int(gib * GIB), FLOOR_BYTES)


def batch_count(rows: int, bytes_per_row: float, budget_bytes: int, *, share: float = 0.5) -> int:
    """How many batches ``rows`` need so one batch's working set (``bytes_per_row`` each)
    fits in ``share`` of the budget (the rest is left to the process and the output)."""
    if rows <= 0:
        return 1
    per_batch = max(int(budget_bytes * share / max(bytes_per_row, 1.0)), 1)
    return max(math.ceil(rows / per_batch), 1)
