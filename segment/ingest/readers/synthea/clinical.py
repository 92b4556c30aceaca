"""The clinical tables: conditions, procedures, encounters, immunizations, observations, medications, allergies."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segment.ingest.readers import RawPart, ReadResult
from segment.ingest.readers.synthea.table import Table, reject_rows

GBD_CODES = ("QALY", "DALY", "QOLS")
GBD_REASON = "skipped: Synthea quality-of-life row (QALY/DALY/QOLS)"
LOCAL_CODE_REASON = "observation code is neither LOINC nor SNOMED CT (a Synthea-local code)"
#: a LOINC code: up to 7 digits, a hyphen and the check digit
LOINC_SHAPE = r"^\d{1,7}-\d$"
#: a SNOMED CT concept id: 6 to 18 digits (no hyphen, so never a LOINC code)
SNOMED_SHAPE = r"^\d{6,18}$"
_NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"


@dataclass(frozen=True)
class Clinical:
    """How one clinical table becomes events."""

    file: str
    event_type: str
    #: the code system when the table has no SYSTEM column (canonical spelling)
    system: str
    #: event date column, the first the file has (2017/2.x files say DATE where 3.x says START)
    dates: tuple[str, ...]


CLINICAL = (
    Clinical("conditions.csv", "condition", "SNOMED", ("START", "DATE")),
    Clinical("procedures.csv", "procedure", "SNOMED", ("START", "DATE")),
    Clinical("encounters.csv", "encounter", "SNOMED", ("START", "DATE")),
    Clinical("immunizations.csv", "immunization", "CVX", ("DATE", "START")),
    Clinical("observations.csv", "observation", "LOINC", ("DATE", "START")),
    Clinical("medications.csv", "medication", "RXNORM", ("START", "DATE")),
    # 3.x writes SYSTEM (SNOMED-CT or RxNorm: a drug allergy is coded by its ingredient)
    Clinical("allergies.csv", "allergy", "SNOMED", ("START", "DATE")),
)


def _record(table: Table) -> pl.Expr:
    """The source record id: the row's Id where the table has one, else its encounter."""
    column = table.first("ID", "ENCOUNTER")
    return (pl.col(column) if column else pl.lit(None, dtype=pl.String)).alias("_record")


def read_clinical(spec: Clinical, table: Table, source: str, result: ReadResult) -> None:
    """Add one clinical table's events (and its skipped and rejected rows) to ``result``."""
    table.require("PATIENT", "CODE", spec.dates)
    date = table.first(*spec.dates)
    assert date is not None  # checked by require
    system: pl.Expr = pl.lit(spec.system)
    if table.has("SYSTEM"):  # 3.x: a label (SNOMED-CT) or a URI (http://snomed.info/sct), as written
        # Synthea writes "Unknown" where it has no system (allergies.csv): the table's own then
        written = pl.col("SYSTEM")
        system = pl.when(written.str.strip_chars().str.to_lowercase() == "unknown").then(None).otherwise(written)
        system = system.fill_null(pl.lit(spec.system))
    frame = table.frame
    extra: list[pl.Expr] = []
    if spec.file == "observations.csv":
        frame, shaped, extra = _observations(table, result)
        system = system if table.has("SYSTEM") else shaped
    columns = [
        pl.col("_row"),
        _record(table),
        pl.col("PATIENT").alias("patient_id"),
        pl.lit(spec.event_type).alias("event_type"),
        system.alias("code_system"),
        pl.col("CODE").alias("code"),
        pl.col(date).alias("event_date"),
        *extra,
    ]
    if table.has("STOP"):
        columns.append(pl.col("STOP").alias("event_end"))
    if spec.file == "encounters.csv" and table.has("ENCOUNTERCLASS"):
        columns.append(pl.col("ENCOUNTERCLASS").alias("encounter_class"))
    result.parts.append(RawPart("events", table.file, source, frame.select(columns)))


def _observations(table: Table, result: ReadResult) -> tuple[pl.LazyFrame, pl.Expr, list[pl.Expr]]:
    """Observation rows kept, their code system by code shape, and VALUE/UNITS.

    The GBD quality-of-life rows are skipped by name; a code that is neither LOINC- nor
    SNOMED-shaped (Synthea's ``X9999-1``) is rejected. Numeric values only: a TYPE
    ``text`` value is a display string (``Never smoked tobacco (finding)``, even the
    patient's street for LOINC 56799-0), never a code, so it is not carried.
    """
    code = pl.col("CODE").str.strip_chars()
    kind = (
        pl.when(code.is_in(GBD_CODES)).then(pl.lit("gbd"))
        .when(code.is_null() | code.str.contains(LOINC_SHAPE) | code.str.contains(SNOMED_SHAPE))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("local"))
    )
    frame = table.frame.with_columns(kind.alias("_kind"))
    odd = frame.filter(pl.col("_kind") != "ok").select("_row", _record(table), "CODE", "_kind").collect()
    result.skip(table.file, GBD_REASON, odd.filter(pl.col("_kind") == "gbd").height)
    local = odd.filter(pl.col("_kind") == "local")
    if local.height:
        result.rejects.append(reject_rows(local, table.file, "code", "CODE", LOCAL_CODE_REASON))
    system = pl.when(code.str.contains(SNOMED_SHAPE)).then(pl.lit("SNOMED")).otherwise(pl.lit("LOINC"))
    if table.has("TYPE"):
        value = pl.when(pl.col("TYPE").str.strip_chars().str.to_lowercase() == "numeric").then(pl.col("VALUE"))
    else:  # 2017: no TYPE column; a value that reads as a number is numeric
        value = pl.when(pl.col("VALUE").str.contains(_NUMBER)).then(pl.col("VALUE"))
    extra: list[pl.Expr] = []
    if table.has("VALUE"):
        extra.append(value.alias("value"))
        if table.has("UNITS"):
            extra.append(pl.when(value.is_not_null()).then(pl.col("UNITS")).alias("unit"))
    return frame.filter(pl.col("_kind") == "ok"), system, extra
