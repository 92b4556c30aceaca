"""The OMOP clinical tables -> raw canonical events, codes resolved through CONCEPT.

Each table row gives the event of its standard concept (``<domain>_concept_id``: its
``vocabulary_id`` and ``concept_code``) and, when it differs, a second event for its source
code: the vocabulary of ``<domain>_source_concept_id`` with that concept's code (else
``<domain>_source_value`` as written), e.g. the ICD-10-CM code a SNOMED condition was
mapped from, so rules written for either code system find the row. The second event is
kept only in a code system :mod:`segment.ingest.codesystems` reads (an NDC or ICD-9
source code beside a kept standard event would only be a reject). Both events carry the
row's ``_row`` and ``_record``. A source value whose source concept is 0 names no
vocabulary, so it is not kept as a second event (ETL-Synthea writes the encounter's UUID
there). An unmapped row (concept id 0, or an id CONCEPT lacks) gives its source code
only, whatever its code system; a row with neither is a row reject whose reason says which:

- :data:`NO_CONCEPT_TABLE` / :data:`NOT_IN_CONCEPT`: a non-zero concept id (value) that
  did not resolve (the column is the standard or the source concept column);
- :data:`NO_VOCABULARY`: concept id 0 and a source value (value) without a source concept;
- :data:`NO_CODE`: concept id 0 and no source value.

A ``value_as_concept_id``, ``unit_concept_id`` or discharge concept that does not resolve
(and has no source value to fall back on) is a field-level reject: the event is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segment.ingest.codesystems import normalize_system
from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult
from segment.ingest.readers.omop.tables import Table, resolve

NO_CONCEPT_TABLE = "no CONCEPT table to resolve the concept id"
NOT_IN_CONCEPT = "concept id not in the CONCEPT table"
NO_VOCABULARY = "unmapped (concept id 0) and the source value has no source concept naming its vocabulary"
NO_CODE = "unmapped (concept id 0) and no source value"

#: visit concept -> canonical encounter class (segment.ingest.context); others: the concept's name
VISIT_CLASSES = {
    "9201": "inpatient",  # Inpatient Visit
    "9202": "ambulatory",  # Outpatient Visit
    "9203": "emergency",  # Emergency Room Visit
    # Emergency Room and Inpatient Visit: an admission (the ER part stays in the code, ERIP);
    # counted with inpatient stays, as ED-visit measures leave out ED visits that end in one
    "262": "inpatient",
    "32037": "inpatient",  # Intensive Care
    "581476": "home",  # Home Visit
    "581477": "ambulatory",  # Office Visit
    "581478": "field",  # Ambulance Visit
    "32036": "ambulatory",  # Laboratory Visit
    "32693": "wellness",  # Health examination
    "5083": "virtual",  # Telehealth
    "8717": "inpatient",  # CMS Place of Service 21, Inpatient Hospital
    "8756": "ambulatory",  # 22, Outpatient Hospital
    "8870": "emergency",  # 23, Emergency Room - Hospital
    "8940": "ambulatory",  # 11, Office
    "8863": "skilled_nursing",  # 31, Skilled Nursing Facility
}


@dataclass(frozen=True)
class EventSpec:
    """How one OMOP clinical table reads: its domain prefix, event type and date columns."""

    table: str
    prefix: str
    event_type: str
    start: tuple[str, ...]
    end: tuple[str, ...] = ()
    measured: bool = False  # value_as_number, units and value_as_concept_id

    @property
    def concept(self) -> str:
        """The standard concept column."""
        return f"{self.prefix}_concept_id"

    @property
    def source_concept(self) -> str:
        """The source concept column."""
        return f"{self.prefix}_source_concept_id"

    @property
    def source_value(self) -> str:
        """The source code as written."""
        return f"{self.prefix}_source_value"


SPECS = (
    EventSpec("condition_occurrence", "condition", "condition",
              ("condition_start_date", "condition_start_datetime"),
              ("condition_end_date", "condition_end_datetime")),
    EventSpec("procedure_occurrence", "procedure", "procedure",
              ("procedure_date", "procedure_datetime"), ("procedure_end_date", "procedure_end_datetime")),
    EventSpec("measurement", "measurement", "observation",
              ("measurement_date", "measurement_datetime"), measured=True),
    EventSpec("observation", "observation", "observation",
              ("observation_date", "observation_datetime"), measured=True),
    EventSpec("drug_exposure", "drug", "medication",
              ("drug_exposure_start_date", "drug_exposure_start_datetime"),
              ("drug_exposure_end_date", "drug_exposure_end_datetime")),
    EventSpec("visit_occurrence", "visit", "encounter",
              ("visit_start_date", "visit_start_datetime"), ("visit_end_date", "visit_end_datetime")),
)
EVENT_TABLES = tuple(spec.table for spec in SPECS)
#: visit discharge columns: 5.4 name, then 5.3 name
DISCHARGE = (("discharged_to_concept_id", "discharged_to_source_value"),
             ("discharge_to_concept_id", "discharge_to_source_value"))


def concept_columns(table: Table, spec: EventSpec) -> list[str]:
    """The concept id columns of ``table`` that :func:`read_events` resolves."""
    wanted = [spec.concept, spec.source_concept]
    if spec.measured:
        wanted += ["unit_concept_id", "value_as_concept_id"]
    if spec.table == "visit_occurrence":
        wanted += [concept for concept, _ in DISCHARGE]
    return [c for c in wanted if table.has(c)]


def _text(table: Table, column: str | None) -> pl.Expr:
    if column is None or column not in table.columns:
        return pl.lit(None, dtype=pl.String)
    return pl.col(column).str.strip_chars()


def _first(table: Table, columns: tuple[str, ...]) -> pl.Expr:
    """The first non-blank of ``columns`` (a date, else its datetime)."""
    return pl.coalesce(*[_text(table, c) for c in columns if table.has(c)])


def read_events(
    table: Table, spec: EventSpec, concepts: pl.LazyFrame, *, has_concept_table: bool, source: str,
    result: ReadResult,
) -> None:
    """Add the events part of one clinical table, and its rejects, to ``result``."""
    table.require("person_id", spec.concept)
    if not any(table.has(c) for c in spec.start):
        table.require(spec.start[0])
    unresolved = NOT_IN_CONCEPT if has_concept_table else NO_CONCEPT_TABLE
    file = str(table.path)
    record_col = f"{spec.table}_id"
    frame = table.frame.with_columns(
        _text(table, record_col).str.replace(r"\.0+$", "").alias("_record"),
        _text(table, "person_id").str.replace(r"\.0+$", "").alias("patient_id"),
        _text(table, spec.source_value).alias("_sv"),
    )
    frame = resolve(frame, concepts, spec.concept, "_s")
    frame = resolve(frame, concepts, spec.source_concept if table.has(spec.source_concept) else None, "_r")
    std_ok = pl.col("_s_vocab").is_not_null() & pl.col("_s_code").is_not_null()
    src_code = pl.coalesce("_r_code", "_sv")
    src_ok = pl.col("_r_vocab").is_not_null() & src_code.is_not_null()
    differs = (pl.col("_r_vocab") != pl.col("_s_vocab")) | (src_code != pl.col("_s_code"))
    # a second event only in a code system segment reads (an NDC or ICD-9 source code would be
    # a reject beside a kept event); an unmapped row keeps its source code whatever its system
    second = ~std_ok | (differs & normalize_system(pl.col("_r_vocab")).is_not_null())

    event_type = pl.lit(spec.event_type)
    if spec.table == "drug_exposure":  # vaccines are drugs coded in CVX
        cvx = (pl.col("_s_vocab").str.to_uppercase() == "CVX") | (pl.col("_r_vocab").str.to_uppercase() == "CVX")
        event_type = pl.when(cvx.fill_null(False)).then(pl.lit("immunization")).otherwise(event_type)
    common = [pl.col("_row"), pl.col("_record"), pl.col("patient_id"), event_type.alias("event_type"),
              _first(table, spec.start).alias("event_date")]
    if any(table.has(c) for c in spec.end):
        common.append(_first(table, spec.end).alias("event_end"))
    fields: list[tuple[str, pl.Expr, pl.Expr]] = []  # (column, value, problem) of field rejects
    if spec.measured:
        frame, extra, fields = _measured(table, frame, concepts)
        common += extra
    if spec.table == "visit_occurrence":
        frame, extra, fields = _visit(table, frame, concepts)
        common += extra

    standard = frame.filter(std_ok).select(*common, pl.col("_s_vocab").alias("code_system"),
                                           pl.col("_s_code").alias("code"))
    source_rows = frame.filter(src_ok & second).select(*common, pl.col("_r_vocab").alias("code_system"),
                                                        src_code.alias("code"))
    result.parts.append(RawPart("events", file, source, pl.concat([standard, source_rows]),
                                one_event_per_row=False))

    has_id, has_source_id = pl.col("_s_id").is_not_null(), pl.col("_r_id").is_not_null()
    column = (
        pl.when(has_id).then(pl.lit(spec.concept))
        .when(has_source_id).then(pl.lit(spec.source_concept))
        .when(pl.col("_sv").is_not_null()).then(pl.lit(spec.source_value))
        .otherwise(pl.lit(spec.concept))
    )
    value = pl.coalesce("_s_id", "_r_id", "_sv", _text(table, spec.concept))
    reason = (
        pl.when(has_id | has_source_id).then(pl.lit(unresolved))
        .when(pl.col("_sv").is_not_null()).then(pl.lit(NO_VOCABULARY))
        .otherwise(pl.lit(NO_CODE))
    )
    rows = frame.filter(~std_ok & ~src_ok).select(
        pl.lit(file).alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
        column.alias("column"), value.alias("value"), reason.alias("reason"), pl.lit("row").alias("level"),
    )
    field_rejects = [
        frame.filter((std_ok | src_ok) & problem).select(
            pl.lit(file).alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
            pl.lit(name).alias("column"), value_expr.alias("value"), pl.lit(unresolved).alias("reason"),
            pl.lit("field").alias("level"),
        )
        for name, value_expr, problem in fields
    ]
    rejects = pl.concat([rows, *field_rejects]).collect()
    if rejects.height:
        result.rejects.append(rejects.cast(REJECT_SCHEMA))  # type: ignore[arg-type]


Extra = tuple[pl.LazyFrame, list[pl.Expr], list[tuple[str, pl.Expr, pl.Expr]]]


def _measured(table: Table, frame: pl.LazyFrame, concepts: pl.LazyFrame) -> Extra:
    """MEASUREMENT/OBSERVATION: value, unit (UCUM code of the unit concept, else as written), value_code."""
    extra: list[pl.Expr] = []
    fields: list[tuple[str, pl.Expr, pl.Expr]] = []
    if table.has("value_as_number"):
        extra.append(_text(table, "value_as_number").alias("value"))
    if table.has("unit_concept_id") or table.has("unit_source_value"):
        frame = resolve(frame, concepts, table.first("unit_concept_id"), "_u")
        extra.append(pl.coalesce("_u_code", _text(table, "unit_source_value")).alias("unit"))
        fields.append(("unit_concept_id", pl.col("_u_id"),
                       pl.col("_u_id").is_not_null() & pl.col("_u_code").is_null()
                       & _text(table, "unit_source_value").is_null()))
    if table.has("value_as_concept_id"):
        frame = resolve(frame, concepts, "value_as_concept_id", "_v")
        extra.append(pl.col("_v_code").alias("value_code"))
        fields.append(("value_as_concept_id", pl.col("_v_id"),
                       pl.col("_v_id").is_not_null() & pl.col("_v_code").is_null()))
    return frame, extra, fields


def _visit(table: Table, frame: pl.LazyFrame, concepts: pl.LazyFrame) -> Extra:
    """VISIT_OCCURRENCE: encounter class, and the discharge disposition as ``vocabulary:code``."""
    def known(column: str) -> pl.Expr:
        return pl.col(column).replace_strict(VISIT_CLASSES, default=None, return_dtype=pl.String)

    extra = [pl.coalesce(known("_s_id"), known("_r_id"), pl.col("_s_name").str.to_lowercase(),
                         pl.col("_r_name").str.to_lowercase()).alias("encounter_class")]
    fields: list[tuple[str, pl.Expr, pl.Expr]] = []
    found = next(((c, v) for c, v in DISCHARGE if table.has(c) or table.has(v)), None)
    if found is not None:
        concept, written = found
        frame = resolve(frame, concepts, concept if table.has(concept) else None, "_d")
        coded = pl.concat_str(pl.col("_d_vocab"), pl.lit(":"), pl.col("_d_code"))
        extra.append(pl.coalesce(coded, _text(table, written)).alias("discharge_disposition"))
        fields.append((concept, pl.col("_d_id"),
                       pl.col("_d_id").is_not_null() & pl.col("_d_code").is_null() & _text(table, written).is_null()))
    return frame, extra, fields
