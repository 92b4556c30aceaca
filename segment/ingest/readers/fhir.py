"""FHIR R4 bulk-export NDJSON: Patient, Condition, Procedure, Immunization, Observation, Encounter.

Lines are decoded by Polars against a fixed schema of the elements we use (no Python
``json.loads`` per line); a line that is not JSON, has no ``resourceType``, or does not
fit the R4 shapes is a row reject with its line number. Resources of other types, and
resources whose status says they did not happen (entered-in-error, refuted, not-done,
cancelled), are rejects with that reason, so every line is accounted for.

Choices: the official name (else the first); the home address without an end date
(else the first); the first phone that is not ``use=old``, preferring ``use=mobile``
(which sets ``phone_type`` mobile); the preferred language; US Core race and ethnicity
``text`` (else the first OMB category display); ``deceasedDateTime`` as the deceased
date, and ``deceasedBoolean: true`` without a date as deceased on the ingest date (an
upper bound, so campaigns exclude them). For events, the first coding in a known code
system (ICD-10-CM, SNOMED CT, CPT, HCPCS, LOINC, CVX, RxNorm) is used. References
``Patient/<id>``, absolute URLs and ``urn:uuid:<id>`` resolve to the Patient id.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult
from segment.ingest.readers.files import check_readable, check_utf8

S = pl.String
CODING = pl.Struct({"system": S, "code": S, "display": S})
CONCEPT = pl.Struct({"coding": pl.List(CODING), "text": S})
REFERENCE = pl.Struct({"reference": S})
PERIOD = pl.Struct({"start": S, "end": S})
SUB_EXT = pl.Struct({"url": S, "valueString": S, "valueCode": S, "valueCoding": CODING})
EXTENSION = pl.Struct({"url": S, "valueString": S, "valueCode": S, "valueCoding": CODING,
                       "extension": pl.List(SUB_EXT)})
RESOURCE = pl.Struct({
    "resourceType": S, "id": S, "meta": pl.Struct({"lastUpdated": S}),
    "name": pl.List(pl.Struct({"use": S, "family": S, "given": pl.List(S), "text": S})),
    "gender": S, "birthDate": S, "deceasedBoolean": S, "deceasedDateTime": S,
    "address": pl.List(pl.Struct({"use": S, "line": pl.List(S), "city": S, "state": S,
                                  "postalCode": S, "period": PERIOD})),
    "telecom": pl.List(pl.Struct({"system": S, "value": S, "use": S, "rank": S})),
    "communication": pl.List(pl.Struct({"language": CONCEPT, "preferred": S})),
    "extension": pl.List(EXTENSION),
    "subject": REFERENCE, "patient": REFERENCE, "code": CONCEPT, "vaccineCode": CONCEPT,
    "status": S, "verificationStatus": CONCEPT, "onsetDateTime": S, "onsetPeriod": PERIOD,
    "recordedDate": S, "performedDateTime": S, "performedPeriod": PERIOD,
    "occurrenceDateTime": S, "effectiveDateTime": S, "effectivePeriod": PERIOD, "issued": S,
    "valueQuantity": pl.Struct({"value": S, "unit": S, "code": S}),
    "period": PERIOD, "type": pl.List(CONCEPT),
})

SYSTEM_URIS: dict[str, str] = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "urn:oid:2.16.840.1.113883.6.12": "CPT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "urn:oid:2.16.840.1.113883.6.90": "ICD10CM",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "HCPCS",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "HCPCS",
    "urn:oid:2.16.840.1.113883.6.285": "HCPCS",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
}
EVENT_RESOURCES = {
    "Condition": "condition", "Procedure": "procedure", "Immunization": "immunization",
    "Observation": "observation", "Encounter": "encounter",
}
#: statuses meaning the event did not happen (or was recorded in error)
VOID_STATUSES = ("entered-in-error", "not-done", "cancelled", "planned", "refuted")
RACE_URLS = ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
             "http://hl7.org/fhir/StructureDefinition/us-core-race")
ETHNICITY_URLS = ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                  "http://hl7.org/fhir/StructureDefinition/us-core-ethnicity")


def is_ndjson(path: Path) -> bool:
    """An NDJSON file by its name."""
    return path.is_file() and path.name.lower().endswith((".ndjson", ".jsonl", ".ndjson.txt"))


def _lines(path: Path) -> pl.DataFrame:
    check_readable(path)
    check_utf8(path)
    data = path.read_bytes().decode("utf-8").split("\n")
    frame = pl.DataFrame({"line": data}).with_row_index("_row", offset=1)
    return frame.with_columns(pl.col("_row").cast(pl.Int64), pl.col("line").str.strip_chars()).filter(
        pl.col("line") != ""
    )


def _decode(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(decoded resources, lines that do not fit the R4 shapes)."""
    try:
        return lines.with_columns(pl.col("line").str.json_decode(RESOURCE).alias("r")), lines.clear()
    except pl.exceptions.PolarsError:
        pass
    # error path only: find the lines that do not fit, one at a time
    ok = []
    for line in lines["line"]:
        try:
            pl.Series([line]).str.json_decode(RESOURCE)
            ok.append(True)
        except pl.exceptions.PolarsError:
            ok.append(False)
    mask = pl.Series(ok)
    good = lines.filter(mask)
    return good.with_columns(pl.col("line").str.json_decode(RESOURCE).alias("r")), lines.filter(~mask)


def _rejects(frame: pl.DataFrame, file: str, column: str, value: pl.Expr, reason: str | pl.Expr) -> pl.DataFrame:
    return frame.select(
        pl.lit(file).alias("file"), pl.col("_row").alias("row"), pl.lit(column).alias("column"),
        value.cast(pl.String).alias("value"),
        (pl.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
        pl.lit("row").alias("level"),
    ).cast(REJECT_SCHEMA)  # type: ignore[arg-type]


def _pick(items: pl.Expr, prefer: pl.Expr, exclude: pl.Expr | None = None) -> pl.Expr:
    """The first list element matching ``prefer``, else the first not matching ``exclude``."""
    pool = items.list.eval(pl.element().filter(~exclude)) if exclude is not None else items
    return pl.coalesce(pool.list.eval(pl.element().filter(prefer)).list.first(), pool.list.first())


def _patient_frame(r: pl.DataFrame, today: dt.date) -> pl.LazyFrame:
    e = pl.element()
    name = _pick(pl.col("name"), e.struct.field("use") == "official")
    addr = _pick(pl.col("address"), (e.struct.field("use") == "home") & e.struct.field("period").struct.field("end").is_null())
    phones = pl.col("telecom").list.eval(e.filter(e.struct.field("system").is_in(["phone", "sms"]) & (e.struct.field("use").fill_null("") != "old")))
    phone = _pick(phones, (e.struct.field("use") == "mobile") | (e.struct.field("system") == "sms"))
    emails = pl.col("telecom").list.eval(e.filter((e.struct.field("system") == "email") & (e.struct.field("use").fill_null("") != "old")))
    comm = _pick(pl.col("communication"), e.struct.field("preferred") == "true")
    lang = comm.struct.field("language")

    def ext_text(urls: tuple[str, ...]) -> pl.Expr:
        ext = pl.col("extension").list.eval(e.filter(e.struct.field("url").is_in(urls))).list.first()
        subs = ext.struct.field("extension")
        text = subs.list.eval(e.filter(e.struct.field("url") == "text")).list.first().struct.field("valueString")
        omb = subs.list.eval(e.filter(e.struct.field("url") == "ombCategory")).list.first()
        return pl.coalesce(text, omb.struct.field("valueCoding").struct.field("display"))

    lines = addr.struct.field("line")
    deceased = pl.coalesce(
        pl.col("deceasedDateTime"),
        pl.when(pl.col("deceasedBoolean") == "true").then(pl.lit(today.isoformat())),
    )
    return r.lazy().unnest("r").select(
        "_row",
        pl.col("id").alias("patient_id"),
        name.struct.field("given").list.first().alias("first_name"),
        name.struct.field("family").alias("last_name"),
        pl.col("birthDate").alias("birth_date"),
        pl.col("gender").alias("sex"),
        lines.list.get(0, null_on_oob=True).alias("address_line1"),
        lines.list.get(1, null_on_oob=True).alias("address_line2"),
        addr.struct.field("city").alias("city"),
        addr.struct.field("state").alias("state"),
        addr.struct.field("postalCode").alias("zip5"),
        phone.struct.field("value").alias("phone_e164"),
        pl.when((phone.struct.field("use") == "mobile") | (phone.struct.field("system") == "sms"))
        .then(pl.lit("mobile")).alias("phone_type"),
        emails.list.first().struct.field("value").alias("email"),
        pl.coalesce(lang.struct.field("coding").list.first().struct.field("code"), lang.struct.field("text")).alias("language"),
        ext_text(RACE_URLS).alias("race"),
        ext_text(ETHNICITY_URLS).alias("ethnicity"),
        deceased.alias("deceased_date"),
        pl.col("meta").struct.field("lastUpdated").alias("updated_at"),
    )


def _reference_id(ref: pl.Expr) -> pl.Expr:
    return pl.coalesce(ref.str.extract(r"^urn:uuid:(.+)$", 1), ref.str.extract(r"(?:^|/)Patient/([^/]+)$", 1))


def _event_frame(r: pl.DataFrame, resource: str) -> pl.LazyFrame:
    e = pl.element()
    concept = {"Immunization": pl.col("vaccineCode"), "Encounter": pl.col("type").list.first()}.get(resource, pl.col("code"))
    known = concept.struct.field("coding").list.eval(
        e.filter(e.struct.field("system").is_in(list(SYSTEM_URIS)))
    ).list.first()
    date = {
        "Condition": pl.coalesce(pl.col("onsetDateTime"), pl.col("onsetPeriod").struct.field("start"), pl.col("recordedDate")),
        "Procedure": pl.coalesce(pl.col("performedDateTime"), pl.col("performedPeriod").struct.field("start")),
        "Immunization": pl.col("occurrenceDateTime"),
        "Observation": pl.coalesce(pl.col("effectiveDateTime"), pl.col("effectivePeriod").struct.field("start"), pl.col("issued")),
        "Encounter": pl.col("period").struct.field("start"),
    }[resource]
    ref = pl.col("patient") if resource == "Immunization" else pl.col("subject")
    first_coding = concept.struct.field("coding").list.first()
    return r.lazy().unnest("r").select(
        "_row",
        _reference_id(ref.struct.field("reference")).alias("patient_id"),
        pl.lit(EVENT_RESOURCES[resource]).alias("event_type"),
        pl.coalesce(
            known.struct.field("system").replace_strict(SYSTEM_URIS, default=None, return_dtype=pl.String),
            first_coding.struct.field("system"),
        ).alias("code_system"),
        pl.coalesce(known.struct.field("code"), first_coding.struct.field("code")).alias("code"),
        date.alias("event_date"),
        pl.col("valueQuantity").struct.field("value").alias("value"),
        pl.coalesce(pl.col("valueQuantity").struct.field("unit"), pl.col("valueQuantity").struct.field("code")).alias("unit"),
    )


def read_fhir(files: list[Path], *, source: str | None = None, today: dt.date | None = None) -> ReadResult:
    """Read FHIR R4 NDJSON files (one source system) into raw canonical patients and events."""
    today = today or dt.date.today()
    result = ReadResult()
    for path in files:
        src = source or path.resolve().parent.name
        file = str(path)
        lines = _lines(path).with_columns(pl.col("line").str.json_path_match("$.resourceType").alias("_type"))
        bad_json = lines.filter(pl.col("_type").is_null())
        if bad_json.height:
            result.rejects.append(_rejects(bad_json, file, "line", pl.lit(None), "malformed JSON or no resourceType"))
        decoded, misfit = _decode(lines.filter(pl.col("_type").is_not_null()))
        if misfit.height:
            result.rejects.append(_rejects(misfit, file, "line", pl.col("_type"), "resource does not fit the FHIR R4 shape"))
        types = decoded["_type"]
        other = decoded.filter(~types.is_in(["Patient", *EVENT_RESOURCES]))
        if other.height:
            result.rejects.append(_rejects(other, file, "resourceType", pl.col("_type"), "unsupported resource type"))
        status = pl.coalesce(
            pl.col("r").struct.field("verificationStatus").struct.field("coding").list.first().struct.field("code"),
            pl.col("r").struct.field("status"),
        )
        is_void = (types.is_in(list(EVENT_RESOURCES)) & status.is_in(VOID_STATUSES)).fill_null(False)
        void = decoded.filter(is_void)
        if void.height:
            result.rejects.append(_rejects(void, file, "status", status, pl.lit("status ") + status))
        decoded = decoded.filter(~is_void)
        patients = decoded.filter(pl.col("_type") == "Patient")
        if patients.height:
            result.parts.append(RawPart("patients", file, src, _patient_frame(patients.select("_row", "r"), today)))
        for resource in EVENT_RESOURCES:
            sub = decoded.filter(pl.col("_type") == resource)
            if sub.height:
                result.parts.append(RawPart("events", file, src, _event_frame(sub.select("_row", "r"), resource)))
    return result
