"""Named points in the delivery protocol, where fault-injection tests stop the process.

Production code calls :func:`checkpoint` between the steps of a delivery. Unless a
test sets one of the two variables below, it does nothing. This is the only place
that reads them.

- ``SEGMENT_TEST_CRASH_AT=<point>``: the process kills itself with SIGKILL (``kill -9``:
  no cleanup, no ``finally``) the first time it reaches ``<point>``.
- ``SEGMENT_TEST_PAUSE_AT=<point>[:<seconds>]``: it sleeps there (default 2 s), so a
  test can make two processes overlap at a chosen step.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_ENV = "SEGMENT_TEST_CRASH_AT"
PAUSE_ENV = "SEGMENT_TEST_PAUSE_AT"

#: the points of one delivery, in order (see segment.export.delivery)
DELIVERY_POINTS = (
    "planned",          # caps checked inside the ledger's write transaction, nothing reserved yet
    "reserved",         # intent and reserved contacts committed; nothing at the destination
    "staging",          # one file uploaded under its temporary name
    "staged",           # every file staged and size-checked; journal says staged
    "committed",        # contacts committed to the ledger; no file visible yet
    "publishing",       # one file renamed to its final name
    "published",        # every file renamed; no manifest, no trigger
    "manifest",         # the manifest written; no trigger
    "trigger-staged",   # the trigger uploaded under its temporary name
    "triggered",        # the trigger renamed into place; journal not yet marked published
)
#: a point inside reconciliation (after its first change at the destination)
RECONCILE_POINTS = ("reconciling",)


def checkpoint(point: str) -> None:
    """Crash or pause here when a test asks for ``point``; otherwise do nothing."""
    crash = os.environ.get(CRASH_ENV)
    pause = os.environ.get(PAUSE_ENV)
    if not crash and not pause:
        return
    if crash == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if pause:
        name, _, seconds = pause.partition(":")
        if name == point:
            time.sleep(float(seconds or 2.0))
