"""Which reader reads which path: ``--format`` or detection by content.

- a folder with a Synthea ``patients.csv`` (by its header) -> Synthea, source = folder name;
- ``.ndjson`` files (or a folder of them) -> FHIR bulk export, source = folder name;
- ``.csv``/``.parquet`` files (or a folder of them) -> the canonical layout, source from
  the file stem (``ehr-patients.csv`` -> ``ehr``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segment.errors import InputDataError
from segment.ingest.mapping import Mapping
from segment.ingest.readers import ReadResult
from segment.ingest.readers.canonical import read_canonical
from segment.ingest.readers.fhir import is_ndjson, read_fhir
from segment.ingest.readers.synthea import is_synthea_folder, read_synthea

if TYPE_CHECKING:
    from segment.ingest.pipeline import InputFormat

_TABULAR = (".csv", ".parquet", ".pq", ".txt", ".tsv")


def read_sources(paths: list[Path], fmt: InputFormat | None, mapping: Mapping | None) -> ReadResult:
    """Read every path with the right reader."""
    result = ReadResult()
    for path in paths:
        if not path.exists():
            raise InputDataError("file or folder not found", path=path)
        kind = fmt.value if fmt is not None else _detect(path)
        if kind == "synthea":
            folder = path if path.is_dir() else path.parent
            if not (folder / "patients.csv").is_file():
                raise InputDataError("not a Synthea export: missing patients.csv", path=folder)
            result.extend(read_synthea(folder))
        elif kind == "fhir":
            files = sorted(p for p in path.iterdir() if is_ndjson(p)) if path.is_dir() else [path]
            if not files:
                raise InputDataError("no .ndjson files in folder", path=path)
            source = path.resolve().name if path.is_dir() else None
            result.extend(read_fhir(files, source=source))
        else:
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _TABULAR) if path.is_dir() else [path]
            if not files:
                raise InputDataError("no .csv or .parquet files in folder", path=path)
            for f in files:
                result.extend(read_canonical(f, mapping=mapping))
    return result


def _detect(path: Path) -> str:
    if path.is_dir():
        if is_synthea_folder(path):
            return "synthea"
        if any(is_ndjson(p) for p in path.iterdir()):
            return "fhir"
        return "canonical"
    if is_ndjson(path):
        return "fhir"
    if path.name == "patients.csv" and is_synthea_folder(path.parent):
        return "synthea"
    return "canonical"
