"""patients.csv: every layout, from 2017's whole-string ADDRESS to 3.x's FIPS and INCOME."""

from __future__ import annotations

import polars as pl

from segment.ingest.readers import RawPart, ReadResult
from segment.ingest.readers.synthea.address import UNSPLIT_REASON, split_whole_addresses
from segment.ingest.readers.synthea.table import Table, reject_rows

#: Synthea column (upper case) -> canonical patient column
PATIENT_COLUMNS = {
    "ID": "patient_id",
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
    "SSN": "ssn_last4",  # only its last four digits are kept (for identity resolution)
}
#: read but with no canonical column: left out
NOT_CANONICAL = (
    "DRIVERS", "PASSPORT", "PREFIX", "MIDDLE", "SUFFIX", "MAIDEN", "MARITAL", "BIRTHPLACE",
    "COUNTY", "FIPS", "HEALTHCARE_EXPENSES", "HEALTHCARE_COVERAGE", "INCOME",
)
_NAMES = ("first_name", "last_name")


def whole_address_layout(table: Table) -> bool:
    """True for the 2017 layout: ADDRESS holds the whole address, no CITY/STATE/ZIP columns."""
    return table.has("ADDRESS") and not any(table.has(c) for c in ("CITY", "STATE", "ZIP"))


def read_patients(table: Table, source: str, result: ReadResult) -> None:
    """Add the patients part (and address-split problems) of ``table`` to ``result``."""
    table.require("ID", "BIRTHDATE")
    split = whole_address_layout(table)
    frame = table.frame
    if split:
        parsed = split_whole_addresses(frame)
        frame = frame.join(parsed.lazy(), on="ADDRESS", how="left").with_columns(
            pl.col("street").alias("ADDRESS"), pl.col("city").alias("CITY"),
            pl.col("state").alias("STATE"), pl.col("zip").alias("ZIP"),
        )
        failed = parsed.filter(pl.col("method").is_null()).select("ADDRESS")
        if failed.height:
            rows = table.frame.select("_row", "ID", "ADDRESS").join(failed.lazy(), on="ADDRESS").collect()
            result.rejects.append(
                reject_rows(rows, table.file, "address_line1", "ADDRESS", UNSPLIT_REASON, level="field",
                            record="ID")
            )
    columns = [pl.col("_row"), pl.col("ID").alias("_record")]
    for raw, target in PATIENT_COLUMNS.items():
        if not (table.has(raw) or (split and raw in {"CITY", "STATE", "ZIP"})):
            continue
        expr = pl.col(raw)
        if target in _NAMES:
            expr = expr.str.replace(r"\d+$", "")  # Synthea's uniqueness digits: Mauro926
        columns.append(expr.alias(target))
    result.parts.append(RawPart("patients", table.file, source, frame.select(columns)))
