"""Vendor exports: profiles, CSV writing, manifests, encryption and delivery.

Public entry point: :func:`export_campaign` and its stage object :class:`ExportStage`
(:mod:`segment.export.run`); :func:`reconcile_before_run` and :func:`refuse_backdated`
are the checks ``segment run`` makes before its first stage.
"""

from __future__ import annotations

from segment.campaign.profiles import BUILTIN_PROFILES, resolve_profile
from segment.export.build import ExportedFile
from segment.export.core import ExportMode, ExportResult
from segment.export.preflight import reconcile_before_run, refuse_backdated
from segment.export.run import ExportStage, export_campaign

__all__ = [
    "BUILTIN_PROFILES",
    "ExportMode",
    "ExportResult",
    "ExportStage",
    "ExportedFile",
    "export_campaign",
    "reconcile_before_run",
    "refuse_backdated",
    "resolve_profile",
]
