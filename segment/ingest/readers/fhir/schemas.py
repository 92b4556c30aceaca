"""The FHIR R4 elements the reader decodes, as Polars struct schemas, one per resource type.

Only the elements read are listed: Polars ignores every other key, so a valid resource
with elements we do not use decodes cleanly. Every leaf is text (numbers and booleans
arrive as their JSON spelling, e.g. ``"42.0695"``, ``"true"``).
"""

from __future__ import annotations

import polars as pl

DType = pl.DataType | type[pl.DataType]
S = pl.String
CODING = pl.Struct({"system": S, "code": S, "display": S})
CONCEPT = pl.Struct({"coding": pl.List(CODING), "text": S})
REFERENCE = pl.Struct({"reference": S})
PERIOD = pl.Struct({"start": S, "end": S})
SUB_EXTENSION = pl.Struct({
    "url": S, "valueString": S, "valueCode": S, "valueCoding": CODING, "valueDecimal": S,
})
EXTENSION = pl.Struct({
    "url": S, "valueString": S, "valueCode": S, "valueCoding": CODING, "valueDecimal": S,
    "extension": pl.List(SUB_EXTENSION),
})

PATIENT: dict[str, DType] = {
    "meta": pl.Struct({"lastUpdated": S}),
    "name": pl.List(pl.Struct({"use": S, "family": S, "given": pl.List(S), "text": S})),
    "gender": S, "birthDate": S, "deceasedBoolean": S, "deceasedDateTime": S,
    "address": pl.List(pl.Struct({
        "use": S, "line": pl.List(S), "city": S, "state": S, "postalCode": S, "period": PERIOD,
        "extension": pl.List(EXTENSION),
    })),
    "telecom": pl.List(pl.Struct({"system": S, "value": S, "use": S, "rank": S})),
    "communication": pl.List(pl.Struct({"language": CONCEPT, "preferred": S})),
    "extension": pl.List(EXTENSION),
    "identifier": pl.List(pl.Struct({"system": S, "value": S})),
}
CONDITION: dict[str, DType] = {
    "subject": REFERENCE, "code": CONCEPT, "verificationStatus": CONCEPT,
    "onsetDateTime": S, "onsetPeriod": PERIOD, "recordedDate": S,
    "abatementDateTime": S, "abatementPeriod": PERIOD,
}
ALLERGY: dict[str, DType] = {
    "patient": REFERENCE, "code": CONCEPT, "verificationStatus": CONCEPT,
    "onsetDateTime": S, "onsetPeriod": PERIOD, "recordedDate": S,
}
PROCEDURE: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "code": CONCEPT, "performedDateTime": S, "performedPeriod": PERIOD,
}
IMMUNIZATION: dict[str, DType] = {"patient": REFERENCE, "status": S, "vaccineCode": CONCEPT, "occurrenceDateTime": S}
OBSERVATION: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "code": CONCEPT, "effectiveDateTime": S, "effectivePeriod": PERIOD,
    "effectiveInstant": S, "issued": S, "valueQuantity": pl.Struct({"value": S, "unit": S, "code": S}),
    "valueCodeableConcept": CONCEPT, "valueInteger": S, "valueString": S,
}
DIAGNOSTIC_REPORT: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "code": CONCEPT, "effectiveDateTime": S, "effectivePeriod": PERIOD,
    "issued": S,
}
ENCOUNTER: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "class": pl.Struct({"system": S, "code": S}),
    "type": pl.List(CONCEPT), "period": PERIOD,
    "hospitalization": pl.Struct({"dischargeDisposition": CONCEPT}),
}
SERVICE_REQUEST: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "code": CONCEPT, "authoredOn": S, "occurrenceDateTime": S,
    "occurrencePeriod": PERIOD,
}
MEDICATION_REQUEST: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "medicationCodeableConcept": CONCEPT,
    "medicationReference": REFERENCE, "authoredOn": S,
}
MEDICATION_DISPENSE: dict[str, DType] = {
    "subject": REFERENCE, "status": S, "medicationCodeableConcept": CONCEPT,
    "medicationReference": REFERENCE, "whenHandedOver": S, "whenPrepared": S,
}
MEDICATION: dict[str, DType] = {"code": CONCEPT}
CLAIM: dict[str, DType] = {
    "patient": REFERENCE, "status": S, "use": S, "billablePeriod": PERIOD,
    "item": pl.List(pl.Struct({
        "productOrService": CONCEPT, "servicedDate": S, "servicedPeriod": PERIOD,
        "diagnosisSequence": pl.List(S), "procedureSequence": pl.List(S),
    })),
    "diagnosis": pl.List(pl.Struct({"diagnosisCodeableConcept": CONCEPT})),
    "procedure": pl.List(pl.Struct({"procedureCodeableConcept": CONCEPT, "date": S})),
}
_PROVISION: dict[str, DType] = {
    "type": S, "action": pl.List(CONCEPT), "purpose": pl.List(CODING), "code": pl.List(CONCEPT),
    "class": pl.List(CODING),
}
CONSENT: dict[str, DType] = {
    "patient": REFERENCE, "status": S, "dateTime": S, "scope": CONCEPT, "category": pl.List(CONCEPT),
    "provision": pl.Struct({**_PROVISION, "provision": pl.List(pl.Struct(_PROVISION))}),
}

#: resource type -> the elements decoded (besides ``resourceType`` and ``id``)
FIELDS: dict[str, dict[str, DType]] = {
    "Patient": PATIENT,
    "Condition": CONDITION,
    "AllergyIntolerance": ALLERGY,
    "Procedure": PROCEDURE,
    "Immunization": IMMUNIZATION,
    "Observation": OBSERVATION,
    "DiagnosticReport": DIAGNOSTIC_REPORT,
    "Encounter": ENCOUNTER,
    "ServiceRequest": SERVICE_REQUEST,
    "MedicationRequest": MEDICATION_REQUEST,
    "MedicationDispense": MEDICATION_DISPENSE,
    "Medication": MEDICATION,
    "Claim": CLAIM,
    "ExplanationOfBenefit": CLAIM,
    "Consent": CONSENT,
}


def schema_for(resource_type: str) -> pl.Struct:
    """The struct one resource of ``resource_type`` is decoded into."""
    return pl.Struct({"resourceType": S, "id": S, **FIELDS[resource_type]})
