"""Ingest: load, validate, normalize and de-duplicate patient extracts.

``ingest(paths, out)`` reads canonical CSV/Parquet (directly or through a mapping file),
Synthea CSV exports and FHIR R4 bulk NDJSON, and writes ``patients.parquet``,
``events.parquet``, ``rejects.csv`` and ``ingest-report.json`` into ``out``.
"""

from __future__ import annotations

from segment.ingest.mapping import Mapping, load_mapping
from segment.ingest.pipeline import FileCounts, IngestResult, InputFormat, ingest

__all__ = ["FileCounts", "IngestResult", "InputFormat", "Mapping", "ingest", "load_mapping"]
