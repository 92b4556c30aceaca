"""The canonical layout (CSV or Parquet), directly or through a mapping file.

A patients file has at least ``patient_id`` and ``birth_date``; an events file at least
``patient_id``, ``event_type``, ``code_system``, ``code`` and ``event_date``. Which one a
file is, is told by its columns. Columns the layout does not know are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.mapping import (
    EVENT_INPUT_COLUMNS,
    EVENT_REQUIRED,
    PATIENT_INPUT_COLUMNS,
    PATIENT_REQUIRED,
    Mapping,
    apply_table,
)
from segment.ingest.readers import RawPart, ReadResult
from segment.ingest.readers.files import (
    csv_header,
    parquet_header,
    scan_csv_text,
    scan_parquet_text,
)

_KIND_SUFFIX = re.compile(r"[-_. ]?(patients?|events?|persons?|people|members?)$", re.IGNORECASE)


def source_name(path: Path) -> str:
    """Source-system name from a file name: ``ehr-patients.csv`` -> ``ehr``.

    A bare ``patients.csv`` takes its folder's name.
    """
    stem = path.name.split(".")[0]
    name = _KIND_SUFFIX.sub("", stem)
    return name or path.resolve().parent.name or "source"


def _header_and_scan(path: Path) -> tuple[list[str], pl.LazyFrame]:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return parquet_header(path), scan_parquet_text(path)
    header = csv_header(path)
    return header, scan_csv_text(path, header)


def _kind_of(header: list[str], path: Path) -> str:
    cols = set(header)
    if {"event_type", "code"} & cols and "birth_date" not in cols:
        missing = [c for c in EVENT_REQUIRED if c not in cols]
        if missing:
            raise InputDataError(
                f"events file is missing required column `{missing[0]}`"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                path=path,
                column=missing[0],
            )
        return "events"
    missing = [c for c in PATIENT_REQUIRED if c not in cols]
    if missing:
        raise InputDataError(
            f"missing required column `{missing[0]}`"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; a patients file needs "
            + ", ".join(PATIENT_REQUIRED)
            + " and an events file "
            + ", ".join(EVENT_REQUIRED),
            path=path,
            column=missing[0],
        )
    return "patients"


def read_canonical(path: Path, *, source: str | None = None, mapping: Mapping | None = None) -> ReadResult:
    """Read one canonical (or mapped) patients or events file as raw text."""
    header, frame = _header_and_scan(path)
    src = source or (mapping.source if mapping and mapping.source else None) or source_name(path)
    date_formats: dict[str, str] = {}
    if mapping is not None:
        found = mapping.table_for(header)
        if found is None:
            wanted = []
            for table in (mapping.patients, mapping.events):
                if table is not None:
                    wanted += [s for s, t in table.columns.items() if t == "patient_id"]
            raise InputDataError(
                "columns do not match the mapping: missing "
                + " or ".join(f"`{w}`" for w in wanted or ["the id column"])
                + f" (mapping {mapping.path.name if mapping.path else ''})",
                path=path,
            )
        kind, table = found
        required = EVENT_REQUIRED if kind == "events" else PATIENT_REQUIRED
        provided = set(table.columns.values()) | set(table.constants)
        missing = [c for c in required if c not in provided]
        if missing:
            raise InputDataError(
                f"the mapping provides no `{missing[0]}` for this {kind} file", path=path, column=missing[0]
            )
        frame = apply_table(frame, table, header)
        date_formats = {str(k): v for k, v in table.date_formats.items()}
    else:
        kind = _kind_of(header, path)
        known = EVENT_INPUT_COLUMNS if kind == "events" else PATIENT_INPUT_COLUMNS
        frame = frame.select("_row", *[c for c in known if c in header])
    return ReadResult(parts=[RawPart(kind, str(path), src, frame, date_formats)])  # type: ignore[arg-type]
