"""segment: patient extracts to explainable, privacy-safe campaign segment lists."""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"

#: the environment variable Polars' allocator (jemalloc) reads its settings from, once, when
#: Polars is loaded (Polars puts its own settings first and this variable's after them, so
#: these win: polars/__init__.py)
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
#: segment's allocator settings: freed pages are kept 5 s for reuse (Polars' own: 0.5 s, then
#: handed back lazily within 1 s). Each page handed back and taken again costs the kernel a
#: page fault and zeroing the page; at 1M people ingest took 22.3-25.5 CPU-s with Polars'
#: settings and 18.9-23.9 with these, for a peak 0.1-0.5 GiB higher (docs/performance.md,
#: "Memory allocator"). An ``_RJEM_MALLOC_CONF`` already in the environment (even empty:
#: Polars' settings) is left as it is.
ALLOCATOR_CONF = "dirty_decay_ms:5000,muzzy_decay_ms:0"

if "polars" not in sys.modules:  # too late once Polars is loaded: its allocator has read them
    os.environ.setdefault(ALLOCATOR_ENV, ALLOCATOR_CONF)
