"""Reference packs: tract polygons, address ranges, ZIP centroids and tract indicators.

Build one from local Census files (:func:`build_pack`), download and build one
(:func:`segment.reference.pull.pull_pack`), open it (:func:`open_pack`) and re-check its
checksums (:func:`verify_pack`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segment.reference.crosswalk import apply_crosswalk
from segment.reference.pack import (
    ADDRESS_RANGES,
    BLOCK_GROUP_INDICATORS,
    BLOCK_GROUPS,
    COUNTY_INDICATORS,
    INDICATORS,
    TRACTS,
    ZIP_CENTROIDS,
    FileEntry,
    Manifest,
    Pack,
    VerifyResult,
    find_packs,
    open_pack,
    sha256_file,
    verify_pack,
)

if TYPE_CHECKING:
    from segment.reference.build import build_pack

#: names whose modules import GeoPandas (building a pack reads TIGER shapefiles): imported
#: on first use, so opening a pack to geocode or enrich does not pay for them
_LAZY = {"build_pack": "segment.reference.build"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ADDRESS_RANGES",
    "BLOCK_GROUPS",
    "BLOCK_GROUP_INDICATORS",
    "COUNTY_INDICATORS",
    "INDICATORS",
    "TRACTS",
    "ZIP_CENTROIDS",
    "FileEntry",
    "Manifest",
    "Pack",
    "VerifyResult",
    "apply_crosswalk",
    "build_pack",
    "find_packs",
    "open_pack",
    "sha256_file",
    "verify_pack",
]
