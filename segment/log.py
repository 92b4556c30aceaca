"""Stage logging and progress hooks for library code.

Library modules log through :func:`get_logger` (standard ``logging`` with a stage name
and structured counts) and report progress through :func:`progress`. They never print:
how messages look (Rich, plain lines, JSON lines) is decided by ``segment.report``.
Messages carry counts, ids, file names, row numbers and column names, never patient
values.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

ProgressAdvance = Callable[[int], None]
ProgressFactory = Callable[[str, "int | None"], contextlib.AbstractContextManager[ProgressAdvance]]


class StageLogger:
    """A logger bound to one pipeline stage that accepts structured counts."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._logger = logging.getLogger(f"segment.{stage}")

    def _log(self, level: int, message: str, counts: Mapping[str, Any] | None) -> None:
        self._logger.log(level, message, extra={"stage": self.stage, "counts": dict(counts or {})})

    def debug(self, message: str, **counts: Any) -> None:
        """Log a detail shown only with --verbose."""
        self._log(logging.DEBUG, message, counts)

    def info(self, message: str, **counts: Any) -> None:
        """Log a step of the stage, with counts."""
        self._log(logging.INFO, message, counts)

    def warning(self, message: str, **counts: Any) -> None:
        """Log something the user should look at; the stage goes on."""
        self._log(logging.WARNING, message, counts)


def get_logger(stage: str) -> StageLogger:
    """The logger for ``stage`` (ingest, geocode, enrich, evaluate, export, audit, run...)."""
    return StageLogger(stage)


@contextlib.contextmanager
def _no_progress(description: str, total: int | None) -> Iterator[ProgressAdvance]:
    yield lambda n: None


_factory: ProgressFactory = _no_progress


def set_progress_factory(factory: ProgressFactory | None) -> None:
    """Install how progress is shown (``segment.report`` does this for terminals)."""
    global _factory
    _factory = factory or _no_progress


def progress(description: str, total: int | None = None) -> contextlib.AbstractContextManager[ProgressAdvance]:
    """A context manager yielding ``advance(n)``; shows a bar only on a terminal."""
    return _factory(description, total)


def peak_rss_bytes(*, children: bool = False) -> int | None:
    """The process's peak resident memory so far in bytes, or None where the OS does not say.

    Unix: ``getrusage`` (KiB on Linux, bytes on macOS); Windows: the peak working set from
    ``GetProcessMemoryInfo``. Anything else (or a failing call) gives None: memory figures
    are then left out, never made up. ``children``: the larger of this process and its
    finished child processes (Unix; benchmarks that run ``segment`` as a subprocess).
    """
    if sys.platform == "win32":
        return _windows_peak_bytes()
    try:
        import resource
    except ImportError:
        return None
    try:
        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        if children:
            peak = max(peak, int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    except (OSError, ValueError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024


def _windows_peak_bytes() -> int | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    class _Counters(ctypes.Structure):
        _fields_ = [  # the PROCESS_MEMORY_COUNTERS layout
            ("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t), ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t), ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t), ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    try:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        info = kernel32.K32GetProcessMemoryInfo
        info.argtypes = [wintypes.HANDLE, ctypes.POINTER(_Counters), wintypes.DWORD]
        info.restype = wintypes.BOOL
        counters = _Counters()
        counters.cb = ctypes.sizeof(_Counters)
        if not info(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
            return None
        return int(counters.PeakWorkingSetSize)
    except (OSError, AttributeError):
        return None


def peak_rss_gib() -> float:
    """The process's peak resident memory so far in GiB (0.0 where the OS does not say)."""
    peak = peak_rss_bytes()
    return 0.0 if peak is None else peak / 2**30
