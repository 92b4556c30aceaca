"""OMOP CDM v5.3 / v5.4 extracts: a folder of table files (CSV or Parquet, any case).

Tables read (absent ones are not read; empty ones are fine): PERSON with LOCATION and
DEATH -> patients; CONDITION_OCCURRENCE, PROCEDURE_OCCURRENCE, MEASUREMENT, OBSERVATION,
DRUG_EXPOSURE, VISIT_OCCURRENCE -> events; CONCEPT to resolve concept ids. Every other
table (CARE_SITE, PROVIDER, PAYER_PLAN_PERIOD, the eras, DEVICE_EXPOSURE, NOTE, the
vocabulary tables...) is neither read nor counted. File and column names may be upper or
lower case; Athena's tab-separated CONCEPT.csv is read as such.

Patients (``_record`` = ``person_id``):

- ``birth_date``: ``birth_datetime``, else ``year_of_birth``-``month_of_birth``-``day_of_birth``
  with the NAACCR mid-point for unknown parts: a missing day is the 15th, a missing month
  (and day) July 1;
- ``sex``: ``gender_concept_id`` 8507 -> M, 8532 -> F, else ``gender_source_value``;
- ``race``: the CDC Race & Ethnicity code for the five OMB race concepts (8527 -> 2106-3,
  8516 -> 2054-5, 8515 -> 2028-9, 8557 -> 2076-8, 8657 -> 1002-5), else ``race_source_value``;
  ``ethnicity``: 38003563 -> 2135-2, 38003564 -> 2186-5, else ``ethnicity_source_value``;
- the address from LOCATION by ``location_id`` (``zip`` cut to its 5 digits, 5.4
  ``latitude``/``longitude`` as source coordinates): a ``location_id`` LOCATION lacks is a
  field-level reject; ``deceased_date`` from DEATH (the earliest ``death_date``; DEATH rows
  of no PERSON are rejects, further rows of one person skipped).

Events (``_record`` = the table's own id, e.g. ``condition_occurrence_id``): conditions,
procedures, measurements and observations (both ``observation``), drugs (``medication``,
or ``immunization`` when coded in CVX) and visits (``encounter``), with start and end
dates, ``value_as_number``, the unit (the unit concept's code, else ``unit_source_value``),
``value_as_concept_id``'s concept code as ``value_code``, the visit's ``encounter_class``
and its ``discharged_to_concept_id`` (5.4) / ``discharge_to_concept_id`` (5.3) as
``vocabulary_id:concept_code``, else the source value. See :mod:`.events` for codes: the
standard concept's ``vocabulary_id`` and ``concept_code``, plus a second event for the
source code when it differs. Vocabulary ids pass through as OMOP spells them (``SNOMED``,
``ICD10CM``, ``Visit``); :mod:`segment.ingest.codesystems` reads them.

Without a CONCEPT table (or with an empty one) only the four main Visit concepts (9201,
9202, 9203, 262) resolve; other rows are rejects ("no CONCEPT table to resolve the
concept id"). ``vocabulary=`` names a CONCEPT file (or a folder holding one) to use
instead, e.g. an Athena download when the extract ships without vocabulary tables.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers import ReadResult
from segment.ingest.readers.omop.events import (
    EVENT_TABLES,
    SPECS,
    EventSpec,
    concept_columns,
    read_events,
)
from segment.ingest.readers.omop.person import read_person
from segment.ingest.readers.omop.tables import (
    SUFFIXES,
    Table,
    concept_id,
    concept_lookup,
    open_table,
    open_tables,
    table_files,
)

__all__ = ["is_omop_folder", "read_omop"]

PERSON_MARKERS = ("year_of_birth", "gender_concept_id", "birth_datetime")


def is_omop_folder(path: Path) -> bool:
    """True when ``path`` is a folder holding an OMOP PERSON table (by name and header)."""
    if not path.is_dir():
        return False
    person = next(
        (p for p in path.iterdir()
         if p.is_file() and p.name.lower() in {f"person.{s}" for s in SUFFIXES}),
        None,
    )
    if person is None:
        return False
    try:
        if person.suffix.lower() in {".parquet", ".pq"}:
            header = list(pl.read_parquet_schema(person))
        else:
            with open(person, "rb") as fh:
                first = fh.readline(1 << 16).decode("utf-8", errors="replace")
            header = first.split("\t" if "\t" in first and "," not in first else ",")
    except (pl.exceptions.PolarsError, OSError):
        return False
    lower = {h.lstrip("\ufeff").strip().strip('"').lower() for h in header}
    return "person_id" in lower and any(m in lower for m in PERSON_MARKERS)


def read_omop(folder: Path, *, source: str, vocabulary: Path | None = None) -> ReadResult:
    """Read an OMOP CDM folder into raw canonical patients and events (see the module doc).

    ``vocabulary``: a CONCEPT file, or a folder holding one, used instead of the
    extract's own CONCEPT table.
    """
    if not folder.is_dir():
        raise InputDataError("an OMOP extract is a folder of table files", path=folder)
    tables = open_tables(folder, ("person", "location", "death", "concept", *EVENT_TABLES))
    if "person" not in tables:
        raise InputDataError("not an OMOP CDM extract: no PERSON table", path=folder)
    concept = _concept_table(vocabulary) if vocabulary is not None else tables.get("concept")
    if concept is not None and concept.frame.head(1).collect().is_empty():
        concept = None  # an empty CONCEPT resolves nothing: say "no CONCEPT table"
    result = ReadResult()
    read_person(tables["person"], tables.get("location"), tables.get("death"), source=source, result=result)
    clinical = [(tables[spec.table], spec) for spec in SPECS if spec.table in tables]
    concepts = _used_concepts(concept, clinical)
    for table, spec in clinical:
        read_events(table, spec, concepts, has_concept_table=concept is not None, source=source, result=result)
    return result


def _concept_table(path: Path) -> Table:
    """The CONCEPT table named by ``vocabulary`` (a file, or a folder holding one)."""
    if path.is_dir():
        found = table_files(path).get("concept")
        if found is None:
            raise InputDataError("no CONCEPT table in the vocabulary folder", path=path)
        path = found
    if not path.is_file():
        raise InputDataError("vocabulary file not found", path=path)
    table = open_table("concept", path)
    if table is None:
        raise InputDataError("the CONCEPT file is empty", path=path)
    return table


def _used_concepts(concept: Table | None, clinical: list[tuple[Table, EventSpec]]) -> pl.LazyFrame:
    """The concepts the clinical tables refer to, read from CONCEPT once (a small table)."""
    lookup = concept_lookup(concept)
    if concept is None:
        return lookup
    used = [
        table.frame.select(concept_id(c).alias("concept_id"))
        for table, spec in clinical
        for c in concept_columns(table, spec)
    ]
    if not used:
        return lookup.head(0)
    ids = pl.concat(used).drop_nulls().unique()
    return lookup.join(ids, on="concept_id", how="semi").collect().lazy()
