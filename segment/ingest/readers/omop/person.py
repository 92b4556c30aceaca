"""PERSON (with LOCATION and DEATH) -> raw canonical patients."""

from __future__ import annotations

import polars as pl

from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult
from segment.ingest.readers.canonical import join_lookup
from segment.ingest.readers.omop.tables import Table, concept_id

GENDER = {"8507": "M", "8532": "F"}
#: OMOP race concepts -> CDC Race & Ethnicity code system (PHIN VADS 2.16.840.1.113883.6.238)
RACE = {
    "8527": "2106-3",  # White
    "8516": "2054-5",  # Black or African American
    "8515": "2028-9",  # Asian
    "8557": "2076-8",  # Native Hawaiian or Other Pacific Islander
    "8657": "1002-5",  # American Indian or Alaska Native
}
ETHNICITY = {"38003563": "2135-2", "38003564": "2186-5"}  # Hispanic or Latino / Not Hispanic or Latino
#: LOCATION column -> canonical patient column
LOCATION = {
    "address_1": "address_line1", "address_2": "address_line2", "city": "city", "state": "state",
    "zip": "zip5", "latitude": "source_lat", "longitude": "source_lon",
}
DEATH_REPEATED = "another DEATH row for the same person (the earliest date is used)"
DEATH_ORPHAN = "person_id not in PERSON"


def _text(table: Table, column: str) -> pl.Expr:
    """A column as trimmed text, null when the table lacks it."""
    if column not in table.columns:
        return pl.lit(None, dtype=pl.String)
    return pl.col(column).str.strip_chars()


def _number(table: Table, column: str) -> pl.Expr:
    """An integer column as trimmed text (``12.0``, as some exports write integers, read as ``12``)."""
    return _text(table, column).str.replace(r"\.0+$", "")


def _coded(table: Table, concept: str, codes: dict[str, str], fallback: str) -> pl.Expr:
    """The code for a known concept id, else the source value as written."""
    key = concept_id(concept) if concept in table.columns else pl.lit(None, dtype=pl.String)
    return key.replace_strict(codes, default=_text(table, fallback), return_dtype=pl.String)


def birth_date(person: Table) -> pl.Expr:
    """``birth_datetime`` as written, else ``year_of_birth``-``month``-``day``.

    A missing day is the 15th and a missing month and day July 1 (the NAACCR convention
    for unknown parts of a date: the mid-point, so ages are off by at most half the span).
    Parts are passed as written (zero-padded), so a month of 13 is still an impossible date.
    """
    year, month, day = (_number(person, c) for c in ("year_of_birth", "month_of_birth", "day_of_birth"))
    parts = (
        pl.when(year.is_null()).then(None)
        .when(month.is_null()).then(pl.concat_str(year, pl.lit("-07-01")))
        .when(day.is_null()).then(pl.concat_str(year, pl.lit("-"), month.str.zfill(2), pl.lit("-15")))
        .otherwise(pl.concat_str(year, pl.lit("-"), month.str.zfill(2), pl.lit("-"), day.str.zfill(2)))
    )
    return pl.coalesce(_text(person, "birth_datetime"), parts)


def _zip5(column: pl.Expr) -> pl.Expr:
    """The 5-digit ZIP of a ZIP or ZIP+4 (``07030-1234``, ``070301234``), else the text as written."""
    return pl.coalesce(column.str.strip_chars().str.extract(r"^(\d{5})(?:-?\d{4})?$", 1), column)


def read_person(
    person: Table, location: Table | None, death: Table | None, *, source: str, result: ReadResult
) -> None:
    """Add the patients part of PERSON (joined to LOCATION and DEATH) to ``result``."""
    person.require("person_id")
    if not person.has("birth_datetime"):
        person.require("year_of_birth")
    frame = person.frame.with_columns(_number(person, "person_id").alias("_record"))
    columns = [pl.col("_row"), pl.col("_record"), pl.col("_record").alias("patient_id"),
               birth_date(person).alias("birth_date")]
    for target, prefix, codes in (("sex", "gender", GENDER), ("race", "race", RACE),
                                  ("ethnicity", "ethnicity", ETHNICITY)):
        concept, written = f"{prefix}_concept_id", f"{prefix}_source_value"
        if person.has(concept) or person.has(written):  # a column the source lacks is left out
            columns.append(_coded(person, concept, codes, written).alias(target))
    if location is not None and person.has("location_id"):
        location.require("location_id")
        wanted = [c for c in LOCATION if location.has(c)]
        lookup = location.frame.select("location_id", *[pl.col(c).alias(f"_loc_{c}") for c in wanted])
        frame = join_lookup(frame, lookup, ["location_id"], ["location_id"], file=str(person.path),
                            lookup_file=str(location.path), result=result)
        for c in wanted:
            value = pl.col(f"_loc_{c}").str.strip_chars()
            columns.append((_zip5(value) if c == "zip" else value).alias(LOCATION[c]))
    if death is not None:
        frame = frame.join(_deaths(death, person, result), left_on="_record", right_on="_person",
                           how="left", maintain_order="left")
        columns.append(pl.col("_death").alias("deceased_date"))
    elif person.has("death_datetime"):  # CDM v6 moved the death date into PERSON
        columns.append(_text(person, "death_datetime").alias("deceased_date"))
    result.parts.append(RawPart("patients", str(person.path), source, frame.select(columns)))


def _deaths(death: Table, person: Table, result: ReadResult) -> pl.LazyFrame:
    """``_person, _death``: the earliest death date of each person.

    Rows for a person not in PERSON are rejects; further rows for the same person are
    counted as skipped.
    """
    death.require("person_id")
    if death.first("death_date", "death_datetime") is None:
        death.require("death_date")
    date = pl.coalesce(_text(death, "death_date"), _text(death, "death_datetime"))
    rows = death.frame.select("_row", _number(death, "person_id").alias("_person"), date.alias("_death"))
    persons = person.frame.select(_number(person, "person_id").alias("_person")).unique()
    orphans = rows.join(persons, on="_person", how="anti").select(
        pl.lit(str(death.path)).alias("file"), pl.col("_row").alias("row"),
        pl.col("_person").alias("record_id"), pl.lit("person_id").alias("column"),
        pl.col("_person").alias("value"), pl.lit(DEATH_ORPHAN).alias("reason"), pl.lit("row").alias("level"),
    )
    kept = rows.join(persons, on="_person", how="semi")
    repeats = kept.select((pl.len() - pl.col("_person").n_unique()).alias("n"))
    orphaned, repeated = pl.collect_all([orphans, repeats])
    if orphaned.height:
        result.rejects.append(orphaned.cast(REJECT_SCHEMA))  # type: ignore[arg-type]
    result.skip(str(death.path), DEATH_REPEATED, int(repeated.item()))
    # ISO dates sort as text; a blank date sorts last
    return kept.group_by("_person").agg(pl.col("_death").sort(nulls_last=True).first())
