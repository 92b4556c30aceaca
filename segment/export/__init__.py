"""Vendor exports: profiles, CSV writing, manifests, encryption and delivery.

Public entry point: :func:`export_campaign`.
"""

from __future__ import annotations

from segment.campaign.profiles import BUILTIN_PROFILES, resolve_profile
from segment.export.core import ExportedFile, ExportMode, ExportResult, export_campaign

__all__ = [
    "BUILTIN_PROFILES",
    "ExportMode",
    "ExportResult",
    "ExportedFile",
    "export_campaign",
    "resolve_profile",
]
