"""Canonical columns and closed vocabularies shared by every stage (DESIGN.md).

These names are a contract: scripts, campaign files and vendor profiles refer to them.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


def enum_dtype(values: type[StrEnum], *, ranked: bool = False) -> pl.Enum:
    """A Polars Enum of a StrEnum's values.

    Sorted (so sorting by the column sorts its text), or in declaration order when the
    order is a ranking (``ranked``: geocode precision, best first).
    """
    names = [v.value for v in values]
    return pl.Enum(names if ranked else sorted(names))


class Sex(StrEnum):
    """Administrative sex as carried in extracts."""

    F = "F"
    M = "M"
    X = "X"
    U = "U"


class PhoneType(StrEnum):
    """What kind of line a phone number is."""

    MOBILE = "mobile"
    LANDLINE = "landline"
    UNKNOWN = "unknown"


#: the ``phone_type`` column's dtype in patients.parquet
PHONE_TYPE = enum_dtype(PhoneType)


class EventType(StrEnum):
    """Kinds of clinical events."""

    CONDITION = "condition"
    PROCEDURE = "procedure"
    IMMUNIZATION = "immunization"
    OBSERVATION = "observation"
    ENCOUNTER = "encounter"
    MEDICATION = "medication"
    ORDER = "order"  # an order or referral (FHIR ServiceRequest): planned, not yet done
    ALLERGY = "allergy"  # an allergy or intolerance (FHIR AllergyIntolerance, Synthea allergies.csv)


class CodeSystem(StrEnum):
    """Code systems events are coded in."""

    ICD10CM = "ICD10CM"
    CPT = "CPT"
    HCPCS = "HCPCS"
    LOINC = "LOINC"
    SNOMED = "SNOMED"
    CVX = "CVX"
    RXNORM = "RXNORM"
    ICD10PCS = "ICD10PCS"
    VISIT = "VISIT"  # OMOP's Visit vocabulary (OP, IP, ER...): an encounter's setting as a code
    POS = "POS"  # CMS Place of Service codes (two digits: 23 = emergency room - hospital)


class InputFormat(StrEnum):
    """Extract formats ``segment ingest`` reads (``--format``; detected when not given)."""

    CANONICAL = "canonical"
    SYNTHEA = "synthea"
    FHIR = "fhir"
    OMOP = "omop"


class GeoPrecision(StrEnum):
    """How precisely an address was placed, best first."""

    SOURCE_POINT = "source_point"
    ADDRESS_POINT = "address_point"
    RANGE_INTERPOLATED = "range_interpolated"
    STREET_CENTROID = "street_centroid"
    ZIP_CENTROID = "zip_centroid"
    UNMATCHED = "unmatched"


#: the ``geo_precision`` column's dtype in geocoded.parquet (categories best first)
GEO_PRECISION = enum_dtype(GeoPrecision, ranked=True)


#: precisions precise enough to trust a tract assignment
PRECISE_GEO = (
    GeoPrecision.SOURCE_POINT,
    GeoPrecision.ADDRESS_POINT,
    GeoPrecision.RANGE_INTERPOLATED,
)

PATIENT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String,
    "source_ids": pl.List(pl.String),
    "first_name": pl.String,
    "last_name": pl.String,
    "birth_date": pl.Date,
    "sex": pl.String,
    "address_line1": pl.String,
    "address_line2": pl.String,
    "city": pl.String,
    "state": pl.String,
    "zip5": pl.String,
    "email": pl.String,
    "phone_e164": pl.String,
    "phone_type": PHONE_TYPE,
    "language": pl.String,
    "preferred_channel": pl.String,  # sms, email, mail, phone; null when not stated
    "race": pl.String,  # OMB category (segment.ingest.race), null when unknown
    "ethnicity": pl.String,  # Hispanic or Latino / Not Hispanic or Latino, null when unknown
    "race_source": pl.String,  # the source's own value, trimmed
    "ethnicity_source": pl.String,
    "email_consent": pl.Boolean,
    "sms_consent": pl.Boolean,
    "do_not_contact": pl.Boolean,
    "deceased_date": pl.Date,
}

#: optional source coordinates some extracts carry (Synthea does)
SOURCE_POINT_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "source_lat": pl.Float64,
    "source_lon": pl.Float64,
}

EVENT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String,
    "event_type": pl.String,
    "code_system": pl.String,
    "code": pl.String,
    "event_date": pl.Date,
    "value": pl.Float64,
    "unit": pl.String,
    # time span and context, where the source has them (null otherwise)
    "event_end": pl.Date,  # abatement, period end, discharge, stop date
    "value_code": pl.String,  # a coded result (FHIR valueCodeableConcept, OMOP value_as_concept) or a text one
    "encounter_class": pl.String,  # ambulatory, emergency, inpatient, ... (see ingest.context)
    "discharge_disposition": pl.String,  # the source's code, trimmed (e.g. NUBC 51, SNOMED, `hosp`)
}

GEOCODE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "lat": pl.Float64,
    "lon": pl.Float64,
    "geo_precision": GEO_PRECISION,
    "geo_score": pl.Float64,
    "tract_geoid": pl.String,
    "block_group_geoid": pl.String,
    "county_fips": pl.String,
}

#: the canonical columns that hold only a StrEnum's values (Polars Enums in the stage files)
CATEGORY_COLUMNS: dict[str, pl.Enum] = {
    c: t for c, t in {**PATIENT_SCHEMA, **GEOCODE_SCHEMA}.items() if isinstance(t, pl.Enum)
}

# Enrichment columns other stages rely on by name (the full list is in the data dictionary).
NEED_INDEX = "need_index"  # 0..1, higher = more need
NEED_INDEX_STATE_PCTILE = "need_index_state_pctile"  # 0..100 within state
NEED_INDEX_QUINTILE = "need_index_quintile"  # 1..5 within state, 5 = most need
SVI_OVERALL = "svi_overall_rank"  # CDC/ATSDR SVI overall percentile rank 0..1
NO_INTERNET_PCT = "internet_no_access_pct"
RURALITY = "rurality"  # Urban / Suburban / Rural
SDOH_SOURCE = "sdoh_source"  # tract, or why there is no tract-level data

#: patient columns that identify a person; never written to logs or messages
DIRECT_IDENTIFIERS = (
    "first_name",
    "last_name",
    "birth_date",
    "address_line1",
    "address_line2",
    "email",
    "phone_e164",
)
