"""Vendor exports: profiles, CSV writing, manifests, encryption and delivery.

Public entry point: :func:`export_campaign`.
"""

from __future__ import annotations

from segment.export.core import ExportedFile, ExportMode, ExportResult, export_campaign
from segment.export.profiles import BUILTIN_PROFILES, resolve_profile

__all__ = [
    "BUILTIN_PROFILES",
    "ExportMode",
    "ExportResult",
    "ExportedFile",
    "export_campaign",
    "resolve_profile",
]
