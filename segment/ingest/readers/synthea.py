"""Synthea CSV exports: a folder with patients.csv and the clinical tables.

Columns are mapped by header name, so both the pre-3.x and 3.x layouts work. Code
systems: conditions, procedures and encounters are SNOMED CT, immunizations CVX,
observations LOINC (with numeric VALUE and UNITS; text values carry no number) and
medications RxNorm. Synthea's yearly quality-of-life rows (code system GBD, codes QALY,
DALY, QOLS) are not LOINC: they are rejected with that reason. Synthea adds digits to
names to keep them unique (``Mauro926``); the reader strips them. Timestamps keep their
UTC date.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers import RawPart, ReadResult
from segment.ingest.readers.files import csv_header, scan_csv_text

PATIENT_COLUMNS = {
    "Id": "patient_id",
    "BIRTHDATE": "birth_date",
    "DEATHDATE": "deceased_date",
    "FIRST": "first_name",
    "LAST": "last_name",
    "GENDER": "sex",
    "RACE": "race",
    "ETHNICITY": "ethnicity",
    "ADDRESS": "address_line1",
    "CITY": "city",
    "STATE": "state",
    "ZIP": "zip5",
    "LAT": "source_lat",
    "LON": "source_lon",
}
SYNTHEA_MARKERS = ("Id", "BIRTHDATE", "FIRST", "LAST", "GENDER")

#: table -> (event_type, date column, default code system)
EVENT_TABLES = {
    "conditions.csv": ("condition", "START", "SNOMED"),
    "procedures.csv": ("procedure", "START", "SNOMED"),
    "encounters.csv": ("encounter", "START", "SNOMED"),
    "immunizations.csv": ("immunization", "DATE", "CVX"),
    "observations.csv": ("observation", "DATE", "LOINC"),
    "medications.csv": ("medication", "START", "RXNORM"),
}
_SYSTEM_NAMES = {"SNOMED-CT": "SNOMED", "SNOMED": "SNOMED", "LOINC": "LOINC", "RXNORM": "RXNORM",
                 "CVX": "CVX", "ICD-10-CM": "ICD10CM", "ICD10CM": "ICD10CM"}


def is_synthea_folder(folder: Path) -> bool:
    """True when ``folder`` holds a Synthea patients.csv (by its header)."""
    p = folder / "patients.csv"
    if not p.is_file():
        return False
    try:
        header = pl.read_csv(p, n_rows=0, infer_schema=False).columns
    except (pl.exceptions.PolarsError, OSError):
        return False
    return all(m in header for m in SYNTHEA_MARKERS)


def _require(path: Path, header: list[str], columns: list[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputDataError(f"Synthea file is missing required column `{missing[0]}`", path=path,
                             column=missing[0])


def read_synthea(folder: Path, *, source: str | None = None) -> ReadResult:
    """Read a Synthea CSV folder into raw canonical patients and events."""
    src = source or folder.resolve().name
    result = ReadResult()
    pfile = folder / "patients.csv"
    header = csv_header(pfile)
    _require(pfile, header, ["Id", "BIRTHDATE"])
    cols = [pl.col("_row")]
    for raw, target in PATIENT_COLUMNS.items():
        if raw not in header:
            continue
        expr = pl.col(raw)
        if target in {"first_name", "last_name"}:
            expr = expr.str.replace(r"\d+$", "")
        cols.append(expr.alias(target))
    result.parts.append(RawPart("patients", str(pfile), src, scan_csv_text(pfile, header).select(cols)))
    for name, (event_type, date_col, system) in EVENT_TABLES.items():
        path = folder / name
        if not path.is_file():
            continue
        header = csv_header(path)
        _require(path, header, ["PATIENT", date_col, "CODE"])
        code_system: pl.Expr = pl.lit(system)
        if "SYSTEM" in header:
            code_system = pl.col("SYSTEM").str.to_uppercase().replace_strict(
                _SYSTEM_NAMES, default=pl.col("SYSTEM")
            ).fill_null(system)
        value = pl.lit(None, dtype=pl.String)
        unit = pl.lit(None, dtype=pl.String)
        if name == "observations.csv":
            code_system = pl.when(pl.col("CODE").is_in(["QALY", "DALY", "QOLS"])).then(pl.lit("GBD")).otherwise(
                code_system
            )
            is_text = pl.col("TYPE") == "text" if "TYPE" in header else pl.lit(False)
            value = pl.when(is_text).then(None).otherwise(pl.col("VALUE")) if "VALUE" in header else value
            unit = pl.when(is_text).then(None).otherwise(pl.col("UNITS")) if "UNITS" in header else unit
        frame = scan_csv_text(path, header).select(
            pl.col("_row"),
            pl.col("PATIENT").alias("patient_id"),
            pl.lit(event_type).alias("event_type"),
            code_system.alias("code_system"),
            pl.col("CODE").alias("code"),
            pl.col(date_col).alias("event_date"),
            value.alias("value"),
            unit.alias("unit"),
        )
        result.parts.append(RawPart("events", str(path), src, frame))
    return result
