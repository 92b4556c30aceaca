"""Ingest: load, validate, normalize and de-duplicate patient extracts.

``ingest(paths, workdir)`` reads canonical CSV/Parquet (directly or through a mapping file),
Synthea CSV exports, FHIR R4 bulk NDJSON and OMOP CDM extracts, and writes
``patients.parquet``, ``events.parquet``, ``rejects.csv`` and ``ingest-report.json`` into
``workdir``. The entry point and the stage object live in :mod:`segment.ingest.run`.
"""

from __future__ import annotations

from segment.ingest.mapping import Mapping, load_mapping
from segment.ingest.results import FileCounts, IngestResult
from segment.ingest.run import IngestStage, ingest, input_specs
from segment.schema import InputFormat

__all__ = [
    "FileCounts", "IngestResult", "IngestStage", "InputFormat", "Mapping", "ingest", "input_specs", "load_mapping",
]
