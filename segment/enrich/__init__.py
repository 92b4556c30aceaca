"""SDOH enrichment: tract indicators, a composite need index and Healthy People 2030 gaps.

``enrich(geocoded, pack)`` is the library entry point (lazy in, lazy out);
``enrich_workdir(workdir, reference_dir)`` reads ``geocoded.parquet`` and writes
``enriched.parquet`` and ``enrich-report.json`` (its stage object: :class:`EnrichStage`).
See docs/need-index.md for the index.
"""

from __future__ import annotations

from segment.enrich.core import (
    EnrichPack,
    EnrichReport,
    SdohSource,
    data_dictionary,
    enrich,
    open_enrich_pack,
)
from segment.enrich.hp2030 import hp2030_mapping_rows, hp2030_objectives_rows
from segment.enrich.need_index import NEED_INDEX_COMPLETE, compute_need_index
from segment.enrich.run import EnrichStage, enrich_workdir

__all__ = [
    "NEED_INDEX_COMPLETE",
    "EnrichPack",
    "EnrichReport",
    "EnrichStage",
    "SdohSource",
    "compute_need_index",
    "data_dictionary",
    "enrich",
    "enrich_workdir",
    "hp2030_mapping_rows",
    "hp2030_objectives_rows",
    "open_enrich_pack",
]
