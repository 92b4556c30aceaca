"""FHIR clinical resources -> raw canonical event rows (text), one row per resource.

| resource | event_type | code | event_date (first present) | event_end |
| --- | --- | --- | --- | --- |
| Condition | condition | code | onsetDateTime, onsetPeriod.start, recordedDate | abatementDateTime, abatementPeriod.end |
| AllergyIntolerance | allergy | code (the substance, or an allergy finding) | onsetDateTime, onsetPeriod.start, recordedDate | onsetPeriod.end |
| Procedure | procedure | code | performedDateTime, performedPeriod.start | performedPeriod.end |
| Immunization | immunization | vaccineCode | occurrenceDateTime | |
| Observation | observation | code | effectiveDateTime, effectivePeriod.start, effectiveInstant, issued | effectivePeriod.end |
| DiagnosticReport | observation | code | effectiveDateTime, effectivePeriod.start, issued | effectivePeriod.end |
| Encounter | encounter | the first type with a known-system coding | period.start | period.end |
| ServiceRequest | order | code | authoredOn, occurrenceDateTime, occurrencePeriod.start | occurrencePeriod.end |
| MedicationRequest | medication | medicationCodeableConcept | authoredOn | |
| MedicationDispense | medication | medicationCodeableConcept | whenHandedOver, whenPrepared | |

The code is the first coding in a known code system (:mod:`segment.ingest.codesystems`),
else the first coding; its ``system`` passes through as written. An Observation gives
``value``/``unit`` from ``valueQuantity`` (unit, else UCUM code) or ``valueInteger``, and
``value_code`` from ``valueCodeableConcept``'s first coding, else the ``valueString`` text. An Encounter gives ``encounter_class`` from
``class.code`` (``AMB``, ``EMER``, ``IMP``...) and ``discharge_disposition`` from
``hospitalization.dischargeDisposition``'s first coding. A medication named by
``medicationReference`` takes the code of that Medication resource when the same read
has it (``_med``, resolved by the reader). Every row keeps the raw patient reference in
``_ref`` until the reader resolves it.

Statuses meaning the event did not happen are listed in :data:`VOID_STATUSES` and
rejected as ``status <x>``: recorded in error, not done, refuted, cancelled, revoked or
declined, and also an Encounter still ``planned`` and a request or claim still a
``draft`` (never issued). A request that was ``stopped`` or ``completed`` did happen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from segment.ingest.readers.fhir.common import concept_codings, first_code, pick_coding

#: resource type -> statuses meaning it did not happen (or was recorded in error)
VOID_STATUSES: dict[str, tuple[str, ...]] = {
    "Condition": ("refuted", "entered-in-error"),  # verificationStatus
    "AllergyIntolerance": ("refuted", "entered-in-error"),  # verificationStatus
    "Procedure": ("not-done", "entered-in-error"),
    "Immunization": ("not-done", "entered-in-error"),
    "Observation": ("cancelled", "entered-in-error"),
    "DiagnosticReport": ("cancelled", "entered-in-error"),
    "Encounter": ("planned", "cancelled", "entered-in-error"),
    "ServiceRequest": ("draft", "revoked", "entered-in-error"),
    "MedicationRequest": ("draft", "cancelled", "entered-in-error"),
    "MedicationDispense": ("declined", "cancelled", "entered-in-error"),
    "Claim": ("draft", "cancelled", "entered-in-error"),
    "ExplanationOfBenefit": ("draft", "cancelled", "entered-in-error"),
}
EVENT_TYPES = {
    "Condition": "condition", "AllergyIntolerance": "allergy", "Procedure": "procedure", "Immunization": "immunization",
    "Observation": "observation", "DiagnosticReport": "observation", "Encounter": "encounter",
    "ServiceRequest": "order", "MedicationRequest": "medication", "MedicationDispense": "medication",
}


def status_of(resource_type: str) -> pl.Expr:
    """The status the void rule reads (Condition, AllergyIntolerance: the verification status)."""
    if resource_type in {"Condition", "AllergyIntolerance"}:
        return first_code(pl.col("verificationStatus"))
    return pl.col("status")


def _start(period: str) -> pl.Expr:
    return pl.col(period).struct.field("start")


def _end(period: str) -> pl.Expr:
    return pl.col(period).struct.field("end")


def _concept(name: str) -> pl.Expr:
    return concept_codings(pl.col(name))


def _encounter_codings() -> pl.Expr:
    """The codings of the first ``type`` with one in a known code system, else of the first ``type``."""
    known = pick_coding(concept_codings(pl.element()), fallback=False).is_not_null()
    types = pl.col("type")
    return concept_codings(pl.coalesce(types.list.eval(pl.element().filter(known)).list.first(), types.list.first()))


def _quantity(name: str) -> pl.Expr:
    return pl.col("valueQuantity").struct.field(name)


#: resource type -> (the codings the code is picked from, the other columns)
_BUILDERS: dict[str, tuple[Callable[[], pl.Expr], Callable[[], list[pl.Expr]]]] = {
    "Condition": (lambda: _concept("code"), lambda: [
        pl.coalesce("onsetDateTime", _start("onsetPeriod"), "recordedDate").alias("event_date"),
        pl.coalesce("abatementDateTime", _end("abatementPeriod")).alias("event_end"),
    ]),
    "AllergyIntolerance": (lambda: _concept("code"), lambda: [
        pl.coalesce("onsetDateTime", _start("onsetPeriod"), "recordedDate").alias("event_date"),
        _end("onsetPeriod").alias("event_end"),
    ]),
    "Procedure": (lambda: _concept("code"), lambda: [
        pl.coalesce("performedDateTime", _start("performedPeriod")).alias("event_date"),
        _end("performedPeriod").alias("event_end"),
    ]),
    "Immunization": (lambda: _concept("vaccineCode"), lambda: [
        pl.col("occurrenceDateTime").alias("event_date"),
    ]),
    "Observation": (lambda: _concept("code"), lambda: [
        pl.coalesce("effectiveDateTime", _start("effectivePeriod"), "effectiveInstant", "issued").alias("event_date"),
        _end("effectivePeriod").alias("event_end"),
        pl.coalesce(_quantity("value"), "valueInteger").alias("value"),
        pl.coalesce(_quantity("unit"), _quantity("code")).alias("unit"),
        # a coded answer, else a text result (a cytology reading such as "NILM"): either is a result
        pl.coalesce(first_code(pl.col("valueCodeableConcept")), pl.col("valueString").str.strip_chars())
        .alias("value_code"),
    ]),
    "DiagnosticReport": (lambda: _concept("code"), lambda: [
        pl.coalesce("effectiveDateTime", _start("effectivePeriod"), "issued").alias("event_date"),
        _end("effectivePeriod").alias("event_end"),
    ]),
    "Encounter": (_encounter_codings, lambda: [
        _start("period").alias("event_date"),
        _end("period").alias("event_end"),
        pl.col("class").struct.field("code").alias("encounter_class"),
        first_code(pl.col("hospitalization").struct.field("dischargeDisposition")).alias("discharge_disposition"),
    ]),
    "ServiceRequest": (lambda: _concept("code"), lambda: [
        pl.coalesce("authoredOn", "occurrenceDateTime", _start("occurrencePeriod")).alias("event_date"),
        _end("occurrencePeriod").alias("event_end"),
    ]),
    "MedicationRequest": (lambda: _concept("medicationCodeableConcept"), lambda: [
        pl.col("authoredOn").alias("event_date"),
        pl.col("medicationReference").struct.field("reference").alias("_med"),
    ]),
    "MedicationDispense": (lambda: _concept("medicationCodeableConcept"), lambda: [
        pl.coalesce("whenHandedOver", "whenPrepared").alias("event_date"),
        pl.col("medicationReference").struct.field("reference").alias("_med"),
    ]),
}


def subject(resource_type: str) -> pl.Expr:
    """The raw reference to the patient (Immunization, AllergyIntolerance, Claim, Consent: ``patient``; else ``subject``)."""
    name = "patient" if resource_type in {
        "Immunization", "AllergyIntolerance", "Claim", "ExplanationOfBenefit", "Consent"} else "subject"
    return pl.col(name).struct.field("reference")


def event_frame(frame: pl.LazyFrame, resource_type: str, keep: Sequence[str] = ()) -> pl.LazyFrame:
    """``_row``, ``_record``, the ``keep`` columns, ``_ref`` and raw canonical event columns of one type."""
    codings, columns = _BUILDERS[resource_type]
    coding = pl.col("_coding")
    return frame.with_columns(pick_coding(codings()).alias("_coding")).select(
        "_row",
        "_record",
        *keep,
        subject(resource_type).alias("_ref"),
        pl.lit(EVENT_TYPES[resource_type]).alias("event_type"),
        coding.struct.field("system").alias("code_system"),
        coding.struct.field("code").alias("code"),
        *columns(),
    )
