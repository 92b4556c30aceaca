"""The FHIR R4 reader: real bulk NDJSON and Bundles, plus small inline cases the samples lack."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segment.errors import InputDataError
from segment.ingest.readers import ReadResult, empty_rejects
from segment.ingest.readers.fhir import bundles as fhir_bundles
from segment.ingest.readers.fhir import documents as fhir_documents
from segment.ingest.readers.fhir import is_fhir_file, read_fhir
from segment.ingest.readers.fhir import reader as fhir_reader
from segment.ingest.readers.fhir import resources as fhir_resources
from segment.ingest.readers.fhir import sources as fhir_sources
from segment.ingest.readers.fhir.common import instant

TODAY = dt.date(2025, 6, 1)
SAMPLES = ("samples", "fhir_r4")
SMART = "bulk_ndjson_smart_10_patients"
SYNTHEA_NDJSON = "synthea_ndjson_ktmtwm_1_patient"
JIJONES = "synthea_bundles_jijones12_2024_ma"
SARABUZZI = "synthea_bundles_sarabuzzi_2025_ma"
FOLDERS = (SMART, SYNTHEA_NDJSON, JIJONES, SARABUZZI)
#: reasons that would mean the reader misread a valid resource
MISREAD = {fhir_reader.MALFORMED, fhir_reader.MISFIT, fhir_reader.NO_TYPE}


def _folder(reference_data: Path, name: str) -> Path:
    return reference_data.joinpath(*SAMPLES, name)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_fhir_file(p))


def _rejects(result: ReadResult) -> pl.DataFrame:
    return pl.concat(result.rejects) if result.rejects else empty_rejects()


def _frames(result: ReadResult, kind: str) -> pl.DataFrame:
    frames = [p.frame.collect() for p in result.parts if p.kind == kind]
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


def _read(tmp_path: Path, resources: list[Any], name: str = "export.ndjson", extra: str = "") -> ReadResult:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in resources) + "\n" + extra, encoding="utf-8")
    return read_fhir([path], as_of=TODAY)


def _records_read(path: Path) -> int:
    """Lines (NDJSON) or entries (Bundle) in a file, counted independently of the reader."""
    if path.name.endswith(".json"):
        return len(json.loads(path.read_text(encoding="utf-8")).get("entry", []))
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


# -- the real samples ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def samples(reference_data: Path) -> dict[str, tuple[list[Path], ReadResult]]:
    out = {}
    for name in FOLDERS:
        files = _files(_folder(reference_data, name))
        out[name] = (files, read_fhir(files, as_of=TODAY))
    return out


@pytest.mark.reference
@pytest.mark.parametrize("name", FOLDERS)
def test_every_record_is_accounted_for(samples: dict[str, tuple[list[Path], ReadResult]], name: str) -> None:
    files, result = samples[name]
    rejects = _rejects(result)
    assert files
    for path in files:
        rows: set[int] = set()
        for part in result.parts:
            if part.file == str(path):
                rows |= set(part.frame.select("_row").collect()["_row"].to_list())
        rejected = set(rejects.filter(pl.col("file") == str(path))["row"].to_list())
        skipped = sum(result.skipped.get(str(path), {}).values())
        assert not rows & rejected, path.name
        assert _records_read(path) == len(rows) + len(rejected) + skipped, path.name


@pytest.mark.reference
@pytest.mark.parametrize("name", FOLDERS)
def test_no_valid_resource_is_called_malformed(samples: dict[str, tuple[list[Path], ReadResult]], name: str) -> None:
    _, result = samples[name]
    rejects = _rejects(result)
    assert rejects.filter(pl.col("reason").is_in(MISREAD)).height == 0
    assert rejects.height == 0  # these exports hold no void statuses or foreign references
    reasons = {r for per_file in result.skipped.values() for r in per_file}
    assert all(r.startswith(("skipped: ", "joined")) for r in reasons)


@pytest.mark.reference
@pytest.mark.parametrize(("name", "patients"), [(SMART, 13), (SYNTHEA_NDJSON, 1), (JIJONES, 10), (SARABUZZI, 8)])
def test_patients(samples: dict[str, tuple[list[Path], ReadResult]], name: str, patients: int) -> None:
    _, result = samples[name]
    p = _frames(result, "patients")
    assert p.height == p["patient_id"].n_unique() == patients
    # every Synthea address carries the geolocation extension
    assert p.select(pl.col("source_lat", "source_lon").is_not_null().all()).row(0) == (True, True)
    lat = p["source_lat"].cast(pl.Float64)
    assert lat.is_between(36, 43).all()
    assert set(p["race"]) <= {"2106-3", "2054-5", "2028-9", "1002-5", "2076-8", "2131-1"}  # OMB codes
    assert set(p["ethnicity"]) <= {"2135-2", "2186-5"}
    assert p["birth_date"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    provided = set().union(*[part.provided or set() for part in result.parts if part.kind == "patients"])
    assert {"patient_id", "birth_date", "source_lat", "source_lon", "race", "language"} <= provided
    assert "email" not in provided  # Synthea writes no email


@pytest.mark.reference
def test_sarabuzzi_geolocation(samples: dict[str, tuple[list[Path], ReadResult]]) -> None:
    p = _frames(samples[SARABUZZI][1], "patients").sort("patient_id")
    row = p.filter(pl.col("patient_id") == "4eefab3e-334d-8a8a-2557-36db48d45fbe").row(0, named=True)
    assert (row["source_lat"], row["source_lon"]) == ("42.06951540439643", "-71.95755556400016")
    assert (row["city"], row["language"], row["_row"]) == ("Dudley", "es", 1)


EXPECTED_EVENTS = {
    # one row per resource, except Claim/ExplanationOfBenefit (one per coded item)
    SMART: {"allergy": 11, "condition": 555, "encounter": 1215, "immunization": 161, "medication": 1745, "procedure": 2056},
    SYNTHEA_NDJSON: {"condition": 68, "encounter": 75, "immunization": 15, "medication": 117,
                     "observation": 174 + 109, "procedure": 78 + 270 + 153},
    JIJONES: {"allergy": 9, "condition": 237, "encounter": 317, "immunization": 109, "medication": 107,
              "observation": 1919, "procedure": 2789},
    SARABUZZI: {"condition": 43, "encounter": 81, "immunization": 172, "medication": 6,
                "observation": 904, "procedure": 315},
}


@pytest.mark.reference
@pytest.mark.parametrize("name", FOLDERS)
def test_events_per_type(samples: dict[str, tuple[list[Path], ReadResult]], name: str) -> None:
    events = _frames(samples[name][1], "events")
    assert dict(events.group_by("event_type").len().iter_rows()) == EXPECTED_EVENTS[name]
    assert events.filter(pl.col("patient_id").is_null() | pl.col("code").is_null() | pl.col("event_date").is_null()).height == 0


@pytest.mark.reference
def test_events_per_resource_type(samples: dict[str, tuple[list[Path], ReadResult]]) -> None:
    _, result = samples[SYNTHEA_NDJSON]
    by_file = {Path(p.file).name: p.frame.collect() for p in result.parts if p.kind == "events"}
    assert by_file["DiagnosticReport.ndjson"]["event_type"].unique().to_list() == ["observation"]
    assert by_file["Condition.ndjson"]["event_end"].drop_nulls().len() > 0  # abatementDateTime
    obs = by_file["Observation.ndjson"]
    assert obs.filter(pl.col("value").is_not_null())["unit"].null_count() == 0
    assert obs["value_code"].drop_nulls().len() > 0  # valueCodeableConcept
    claims = by_file["Claim.ndjson"]
    assert claims["code_system"].unique().to_list() == ["http://snomed.info/sct"]
    assert claims.filter(pl.col("code") == "59621000").height == 0  # a diagnosis restated as an item
    assert claims["_row"].n_unique() == 192 < claims.height  # every claim gave events; several share a _row


@pytest.mark.reference
def test_encounter_class_and_discharge(samples: dict[str, tuple[list[Path], ReadResult]]) -> None:
    events = _frames(samples[SMART][1], "events").filter(pl.col("event_type") == "encounter")
    assert dict(events.group_by("encounter_class").len().iter_rows()) == {
        "AMB": 1133, "EMER": 23, "HH": 9, "IMP": 49, "VR": 1}
    assert sorted(events["discharge_disposition"].drop_nulls()) == ["01", "1", "1"]
    assert events.select((instant(pl.col("event_end")) >= instant(pl.col("event_date"))).all()).item()
    enc = next(p for p in samples[SMART][1].parts if p.file.endswith("Encounter.000.ndjson"))
    assert {"encounter_class", "discharge_disposition", "event_end"} <= (enc.provided or set())
    assert "value" not in (enc.provided or set())


@pytest.mark.reference
def test_skipped_types_and_export_log(samples: dict[str, tuple[list[Path], ReadResult]]) -> None:
    files, result = samples[SMART]
    folder = files[0].parent
    assert result.skipped[str(folder / "log.ndjson")] == {fhir_reader.SKIP_LOG: 4}
    assert result.skipped[str(folder / "Practitioner.000.ndjson")] == {"skipped: type not used (Practitioner)": 43}
    assert result.skipped[str(folder / "DocumentReference.000.ndjson")] == {
        "skipped: type not used (DocumentReference)": 1215}


@pytest.mark.reference
def test_gzip_gives_identical_frames(reference_data: Path, tmp_path: Path) -> None:
    plain = [_folder(reference_data, SMART) / "Encounter.000.ndjson", _folder(reference_data, SMART) / "Patient.000.ndjson",
             _files(_folder(reference_data, SARABUZZI))[0]]
    zipped = []
    for path in plain:
        target = tmp_path / (path.name + ".gz")
        with open(path, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        zipped.append(target)
    assert all(is_fhir_file(p) for p in zipped)
    a, b = read_fhir(plain, source="s", as_of=TODAY), read_fhir(zipped, source="s", as_of=TODAY)
    assert len(a.parts) == len(b.parts) == 4
    for x, y in zip(a.parts, b.parts, strict=True):
        assert (x.kind, x.provided) == (y.kind, y.provided)
        assert_frame_equal(x.frame.collect(), y.frame.collect())
    assert list(a.skipped.values()) == list(b.skipped.values())


@pytest.mark.reference
def test_small_chunks_give_identical_frames(reference_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines and Bundle entries cut across read chunks and batches are read the same."""
    files = [_folder(reference_data, SMART) / "Encounter.000.ndjson", *_files(_folder(reference_data, SARABUZZI))[:2]]
    whole = read_fhir(files, as_of=TODAY)
    monkeypatch.setattr(fhir_sources, "BATCH_BYTES", 4099)
    monkeypatch.setattr(fhir_documents, "DOCUMENT_CHUNK", 4099)
    monkeypatch.setattr(fhir_bundles, "ENTRY_BYTES", 20_000)
    monkeypatch.setattr(fhir_resources, "PENDING_BYTES", 50_000)
    pieces = read_fhir(files, as_of=TODAY)
    assert len(whole.parts) == len(pieces.parts)
    for x, y in zip(whole.parts, pieces.parts, strict=True):
        assert_frame_equal(x.frame.collect(), y.frame.collect())
    assert whole.skipped == pieces.skipped


# -- small inline cases -------------------------------------------------------------------------
def _patient(pid: str = "p1", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-02-03", **extra}


def _condition(cid: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": ref}, "onsetDateTime": "2020-01-01",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}, **extra}


def test_partial_birth_dates_take_the_mid_point(tmp_path: Path) -> None:
    result = _read(tmp_path, [_patient("a", birthDate="1950"), _patient("b", birthDate="1950-03"),
                              _patient("c", birthDate="1950-03-04")])
    assert _frames(result, "patients")["birth_date"].to_list() == ["1950-07-01", "1950-03-15", "1950-03-04"]


def test_patient_choices(tmp_path: Path) -> None:
    race = {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "text", "valueString": "Asian"}]}
    eth = {"url": "http://hl7.org/fhir/StructureDefinition/us-core-ethnicity",  # the 2017 draft URL
           "extension": [{"url": "ombCategory", "valueCoding": {"code": "2135-2"}}, {"url": "text", "valueString": "H"}]}
    p = _patient(
        extension=[race, eth],
        address=[{"use": "old", "line": ["9 Old Rd"], "city": "Was"},
                 {"use": "home", "line": ["1 Main St", "Apt 2"], "city": "Boston", "state": "MA", "postalCode": "02115",
                  "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/geolocation",
                                 "extension": [{"url": "latitude", "valueDecimal": 42.5},
                                               {"url": "longitude", "valueDecimal": -71.25}]}]}],
        telecom=[{"system": "phone", "value": "617-253-1000", "use": "old"},
                 {"system": "phone", "value": "617-253-1001", "use": "home"},
                 {"system": "sms", "value": "617-253-1002"}, {"system": "email", "value": "a@example.org"}],
        communication=[{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}},
                       {"language": {"coding": [{"code": "x"}, {"system": "urn:ietf:bcp:47", "code": "es"}]},
                        "preferred": True}],
        deceasedBoolean=True,
    )
    row = _frames(_read(tmp_path, [p]), "patients").row(0, named=True)
    assert row["race"] == "Asian" and row["ethnicity"] == "2135-2"
    assert (row["address_line1"], row["address_line2"], row["city"]) == ("1 Main St", "Apt 2", "Boston")
    assert (row["source_lat"], row["source_lon"]) == ("42.5", "-71.25")
    assert (row["phone_e164"], row["phone_type"], row["email"]) == ("617-253-1002", "mobile", "a@example.org")
    assert row["language"] == "es" and row["deceased_date"] == TODAY.isoformat()


def test_malformed_line_unknown_type_and_log_lines(tmp_path: Path) -> None:
    lines = [_patient(), {"resourceType": "Flag", "id": "f1"}, {"resourceType": "OperationOutcome", "issue": []},
             {"exportId": "e", "eventId": "kickoff"}, {"id": "no-type"}]
    # an unused type is never parsed: even a broken line of one is only counted
    extra = '\n  \n{"resourceType": "Condition", "id": "c9", "subject": \n[1, 2]\n{"resourceType":"Practitioner", "id": \n'
    result = _read(tmp_path, lines, extra=extra)
    rejects = _rejects(result).sort("row")
    assert rejects.select("row", "record_id", "reason").rows() == [
        (5, "no-type", fhir_reader.NO_TYPE), (8, "c9", fhir_reader.MALFORMED), (9, None, fhir_reader.ARRAY_LINE)]
    assert result.skipped[str(tmp_path / "export.ndjson")] == {
        "skipped: type not used (Flag)": 1, fhir_reader.SKIP_OUTCOME: 1, fhir_reader.SKIP_LOG: 1,
        "skipped: type not used (Practitioner)": 1}


def test_resource_of_the_wrong_shape_is_rejected_alone(tmp_path: Path) -> None:
    good = [_condition(f"c{i}", "Patient/p1") for i in range(6)]
    wrong = _condition("bad", "Patient/p1", code="E11.9")  # a string where R4 has a CodeableConcept
    extra_elements = _condition("rich", "Patient/p1", note=[{"text": "x", "authorString": "y"}],
                                evidence=[{"detail": [{"reference": "Observation/1"}]}], meta={"tag": [{"code": "t"}]})
    result = _read(tmp_path, [_patient(), *good[:3], wrong, *good[3:], extra_elements])
    rejects = _rejects(result)
    assert rejects.select("row", "record_id", "value", "reason").rows() == [(5, "bad", "Condition", fhir_reader.MISFIT)]
    assert sorted(_frames(result, "events")["_record"]) == sorted([*(f"c{i}" for i in range(6)), "rich"])


def test_a_type_whose_every_resource_misfits(tmp_path: Path) -> None:
    result = _read(tmp_path, [{"resourceType": "Patient", "id": "", "birthDate": "", "address": {}}])
    assert _rejects(result).select("row", "reason").rows() == [(1, fhir_reader.MISFIT)]
    assert result.parts == []


def test_void_statuses_and_foreign_subjects(tmp_path: Path) -> None:
    procedure = {"resourceType": "Procedure", "subject": {"reference": "Patient/p1"}, "performedDateTime": "2024-01-01",
                 "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77067"}]}}
    refuted = {"coding": [{"code": "refuted"}]}
    resources = [
        _patient(), {**procedure, "id": "x1", "status": "not-done"}, {**procedure, "id": "x2", "status": "completed"},
        _condition("c1", "Patient/p1", verificationStatus=refuted), _condition("c2", "Group/g1"),
        _condition("c3", "https://fhir.example.org/r4/Patient/p1/_history/3"),
        {"resourceType": "ServiceRequest", "id": "s1", "status": "revoked", "subject": {"reference": "Patient/p1"}},
    ]
    result = _read(tmp_path, resources)
    assert _rejects(result).sort("row").select("row", "record_id", "reason").rows() == [
        (2, "x1", "status not-done"), (4, "c1", "status refuted"), (5, "c2", fhir_reader.NOT_PATIENT),
        (7, "s1", "status revoked")]
    events = _frames(result, "events")
    assert events.select("_record", "patient_id").rows() == [("x2", "p1"), ("c3", "p1")]


def test_event_columns_of_each_type(tmp_path: Path) -> None:
    ref = {"reference": "Patient/p1"}
    snomed = {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}
    resources = [
        _patient(),
        {"resourceType": "Observation", "id": "o1", "subject": ref, "status": "final", "code": snomed,
         "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-02"}, "valueQuantity": {"value": 7.25, "code": "%"}},
        {"resourceType": "Observation", "id": "o2", "subject": ref, "code": snomed, "issued": "2024-02-01T00:00:00Z",
         "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]}},
        {"resourceType": "Encounter", "id": "e1", "subject": ref, "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
         "type": [{"coding": [{"system": "urn:local", "code": "ED"}]}, {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99283"}]}],
         "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-02T10:00:00Z"},
         "hospitalization": {"dischargeDisposition": {"coding": [{"system": "http://www.nubc.org/patient-discharge", "code": "51"}]}}},
        {"resourceType": "ServiceRequest", "id": "s1", "subject": ref, "status": "active", "code": snomed,
         "authoredOn": "2024-04-01", "occurrencePeriod": {"start": "2024-05-01", "end": "2024-05-02"}},
        {"resourceType": "MedicationDispense", "id": "d1", "subject": ref, "status": "completed",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]},
         "whenHandedOver": "2024-06-01"},
        {"resourceType": "Immunization", "id": "i1", "patient": {"reference": "urn:uuid:p1"}, "status": "completed",
         "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}, "occurrenceDateTime": "2024-10-01"},
    ]
    events = _frames(_read(tmp_path, resources), "events")
    cols = ["_record", "event_type", "code_system", "code", "event_date", "event_end", "value", "unit", "value_code",
            "encounter_class", "discharge_disposition"]
    assert events.select(cols).rows() == [
        ("o1", "observation", "http://snomed.info/sct", "1", "2024-01-01", "2024-01-02", "7.25", "%", None, None, None),
        ("o2", "observation", "http://snomed.info/sct", "1", "2024-02-01T00:00:00Z", None, None, None, "260385009", None, None),
        ("e1", "encounter", "http://www.ama-assn.org/go/cpt", "99283", "2024-03-01T10:00:00Z", "2024-03-02T10:00:00Z",
         None, None, None, "EMER", "51"),
        ("s1", "order", "http://snomed.info/sct", "1", "2024-04-01", "2024-05-02", None, None, None, None, None),
        ("d1", "medication", "http://www.nlm.nih.gov/research/umls/rxnorm", "860975", "2024-06-01", None, None, None, None, None, None),
        ("i1", "immunization", "http://hl7.org/fhir/sid/cvx", "140", "2024-10-01", None, None, None, None, None, None),
    ]


def test_claims(tmp_path: Path) -> None:
    def concept(system: str, code: str) -> dict[str, Any]:
        return {"coding": [{"system": system, "code": code}]}

    cpt, snomed = "http://www.ama-assn.org/go/cpt", "http://snomed.info/sct"
    claim = {
        "resourceType": "Claim", "id": "cl1", "status": "active", "use": "claim", "patient": {"reference": "Patient/p1"},
        "billablePeriod": {"start": "2024-01-01", "end": "2024-01-03"},
        "item": [
            {"sequence": 1, "productOrService": concept(cpt, "99213"), "servicedDate": "2024-01-02"},
            {"sequence": 2, "productOrService": concept(snomed, "44054006"), "diagnosisSequence": [1]},  # a diagnosis
            {"sequence": 3, "productOrService": concept("http://hl7.org/fhir/sid/cvx", "140")},
            {"sequence": 4, "productOrService": concept("https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "G0439"),
             "servicedPeriod": {"start": "2024-01-02", "end": "2024-01-02"}},
        ],
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": concept("http://hl7.org/fhir/sid/icd-10-cm", "E11.9")},
                      {"sequence": 2, "diagnosisReference": {"reference": "Condition/c1"}}],
        "procedure": [{"sequence": 1, "date": "2024-01-02", "procedureCodeableConcept": concept("http://www.cms.gov/Medicare/Coding/ICD10", "0DTJ4ZZ")}],
    }
    preauth = {**claim, "id": "cl2", "use": "preauthorization"}
    empty = {**claim, "id": "cl3", "item": [claim["item"][2]], "diagnosis": [], "procedure": []}
    eob = {**claim, "resourceType": "ExplanationOfBenefit", "id": "eob1", "status": "cancelled"}
    result = _read(tmp_path, [_patient(), claim, preauth, empty, eob])
    events = _frames(result, "events")
    assert events.select("_row", "_record", "event_type", "code", "event_date", "event_end").rows() == [
        (2, "cl1", "procedure", "99213", "2024-01-02", None),
        (2, "cl1", "procedure", "G0439", "2024-01-02", "2024-01-02"),
        (2, "cl1", "condition", "E11.9", "2024-01-01", None),
        (2, "cl1", "procedure", "0DTJ4ZZ", "2024-01-02", None),
    ]
    assert result.skipped[str(tmp_path / "export.ndjson")] == {
        "skipped: Claim use preauthorization": 1, "skipped: Claim with no procedure or diagnosis code": 1}
    assert _rejects(result).select("record_id", "reason").rows() == [("eob1", "status cancelled")]


def _consent(cid: str, provision: dict[str, Any], *, patient: str = "Patient/p1", status: str = "active",
             when: str | None = None, **extra: Any) -> dict[str, Any]:
    out = {"resourceType": "Consent", "id": cid, "status": status, "patient": {"reference": patient},
           "provision": provision, **extra}
    if when:
        out["dateTime"] = when
    return out


def test_consent_rule(tmp_path: Path) -> None:
    sms = {"coding": [{"system": "urn:local", "code": "sms", "display": "SMS"}]}
    resources = [
        _patient("p1"), _patient("p2"), _patient("p3"),
        # p1: an older permit for both channels, then a later deny for SMS only
        _consent("k1", {"type": "permit", "action": [{"text": "Contact by email or text message"}]}, when="2023-05-01"),
        _consent("k2", {"type": "deny", "code": [sms]}, when="2024-01-01T09:00:00+02:00"),
        # p2: permit contact, deny e-mail in a nested provision; a category naming SMS
        _consent("k3", {"type": "permit", "provision": [{"type": "deny", "purpose": [{"code": "e-mail"}]}]},
                 patient="urn:uuid:p2", category=[{"text": "SMS reminders"}]),
        _consent("k4", {"type": "permit", "action": [{"text": "email"}]}, patient="Patient/nobody"),
        _consent("k5", {"type": "permit", "action": [{"text": "email"}]}, status="entered-in-error"),
        _consent("k6", {"type": "permit", "action": [{"text": "email"}]}, status="inactive"),
        _consent("k7", {"type": "permit", "action": [{"text": "research"}]}),
    ]
    result = _read(tmp_path, resources)
    patients = _frames(result, "patients")
    assert patients.select("patient_id", "email_consent", "sms_consent").rows() == [
        ("p1", "true", "false"), ("p2", "false", "true"), ("p3", None, None)]
    assert _rejects(result).sort("row").select("row", "record_id", "value", "reason").rows() == [
        (7, "k4", "Patient/nobody", "consent for unknown patient"), (8, "k5", "entered-in-error", "status entered-in-error")]
    assert result.skipped[str(tmp_path / "export.ndjson")] == {
        fhir_reader.CONSENT_JOINED: 3, "skipped: Consent status inactive": 1, fhir_reader.SKIP_CONSENT: 1}
    part = next(p for p in result.parts if p.kind == "patients")
    assert {"email_consent", "sms_consent"} <= (part.provided or set())


def test_consent_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_text(json.dumps(_patient()) + "\n", encoding="utf-8")
    (tmp_path / "Consent.ndjson").write_text(
        json.dumps(_consent("k", {"type": "deny", "action": [{"text": "SMS"}]})) + "\n", encoding="utf-8")
    result = read_fhir([tmp_path / "Consent.ndjson", tmp_path / "Patient.ndjson"], as_of=TODAY)
    assert _frames(result, "patients").select("sms_consent", "email_consent").row(0) == ("false", None)


def _bundle(entries: list[dict[str, Any]], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def test_bundle_resolves_full_urls(tmp_path: Path) -> None:
    """Entries named by a fullUrl that is not their id; the Patient after its events; no id at all."""
    entries = [
        {"fullUrl": "urn:uuid:aaaa", "resource": _condition("c1", "urn:uuid:aaaa"), "request": {"method": "POST"}},
        {"request": {"method": "DELETE", "url": "Patient/old"}},
        {"fullUrl": "urn:uuid:aaaa", "resource": _patient("p-1")},
        {"fullUrl": "http://example.org/fhir/Patient/p-2", "resource": {k: v for k, v in _patient().items() if k != "id"}},
        {"fullUrl": "urn:uuid:med", "resource": {"resourceType": "Medication", "id": "m1",
                                                 "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "authoredOn": "2024-01-01",
                      "subject": {"reference": "http://example.org/fhir/Patient/p-2"}, "medicationReference": {"reference": "urn:uuid:med"}}},
        {"resource": {"id": "typeless"}},
        {"fullUrl": "urn:uuid:c2", "resource": _condition("c2", "urn:uuid:aaaa", code=[{"text": "a list"}])},
        {"resource": {"resourceType": "Organization", "id": "o", "name": "Hospital", "type": {"text": "not a list"}}},
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(entries), indent=2), encoding="utf-8")
    assert is_fhir_file(path)
    result = read_fhir([path], as_of=TODAY)
    assert _frames(result, "patients").select("_row", "patient_id").rows() == [(3, "p-1"), (4, "p-2")]
    events = _frames(result, "events")
    assert events.select("_row", "_record", "patient_id", "code").rows() == [(1, "c1", "p-1", "E11.9"), (6, "mr1", "p-2", "197361")]
    assert _rejects(result).sort("row").select("row", "record_id", "reason").rows() == [
        (7, "typeless", fhir_reader.NO_TYPE), (8, "c2", fhir_reader.MISFIT)]
    assert result.skipped[str(path)] == {fhir_reader.SKIP_NO_RESOURCE: 1, fhir_reader.SKIP_MEDICATION: 1,
                                         "skipped: type not used (Organization)": 1}


def test_single_resource_document_and_searchset(tmp_path: Path) -> None:
    one = tmp_path / "patient.json"
    one.write_text(json.dumps({"id": "solo", **_patient("solo")}, indent=1), encoding="utf-8")
    assert _frames(read_fhir([one]), "patients")["patient_id"].to_list() == ["solo"]
    # resourceType after the entries, and an OperationOutcome entry as servers send in searchsets
    search = {"type": "searchset", "entry": [{"resource": _patient("s1"), "search": {"mode": "match"}},
                                             {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}],
              "resourceType": "Bundle"}
    path = tmp_path / "search.json.gz"
    path.write_bytes(gzip.compress(json.dumps(search).encode()))
    assert is_fhir_file(path)
    result = read_fhir([path])
    assert _frames(result, "patients")["patient_id"].to_list() == ["s1"]
    assert result.skipped[str(path)] == {fhir_reader.SKIP_OUTCOME: 1}


def _result_rows(result: ReadResult) -> tuple[list[Any], list[Any], dict[str, dict[str, int]]]:
    parts = [(p.kind, p.provided, p.frame.collect().rows()) for p in result.parts]
    return parts, _rejects(result).drop("file").rows(), result.skipped


def test_bundle_read_the_same_however_written(tmp_path: Path) -> None:
    """Entries typed by their first keys, and entries written otherwise (parsed), give the same parts."""
    entries = [
        {"fullUrl": "urn:uuid:p", "resource": _patient("p", name=[{"family": 'O"Brien {}', "given": ["\\"]}])},
        {"fullUrl": "urn:uuid:c1", "resource": _condition("c1", "urn:uuid:p"), "request": {"method": "POST"}},
        {"resource": _condition("c2", "Patient/p")},
        {"fullUrl": "urn:uuid:d", "resource": {"resourceType": "Device", "id": "d", "note": [{"text": "}, {"}]}},
        {"fullUrl": "urn:uuid:x", "resource": {"id": "x"}},
        {"fullUrl": "urn:uuid:y", "resource": {"resourceType": "not a type", "id": "y"}},
        {"request": {"method": "GET"}},
    ]
    written = {
        "pretty.json": json.dumps(_bundle(entries), indent=2, ensure_ascii=False),
        "compact.json": json.dumps(_bundle(entries), separators=(",", ":")),
        # keys sorted: "request" before "resource", "id" before "resourceType": all parsed by json
        "sorted.json": json.dumps(_bundle(entries), indent=1, sort_keys=True),
        # fullUrl after the resource, and written with escapes
        "late.json": json.dumps(_bundle([{k: e[k] for k in sorted(e, reverse=True)} for e in entries])).replace("/", "\\/"),
        "crlf.json": json.dumps(_bundle(entries), indent="\t").replace("\n", "\r\n"),
    }
    results = {}
    for name, text in written.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        results[name] = _result_rows(read_fhir([tmp_path / name], source="s", as_of=TODAY))
    first, *others = results.values()
    for name, other in zip(list(results)[1:], others, strict=True):
        assert other[:2] == first[:2], name
        assert list(other[2].values()) == list(first[2].values()), name
    _, rejects, skipped = first
    assert [row[0] for row in rejects] == [5, 6]
    assert list(skipped.values()) == [{fhir_reader.SKIP_NO_RESOURCE: 1, "skipped: type not used (Device)": 1}]


@pytest.mark.parametrize("where", ["Condition", "Device"])
def test_bundle_entry_that_is_not_json(tmp_path: Path, where: str) -> None:
    """An entry that is not JSON stops the read at its line, whether or not its type is read."""
    good = json.dumps({"fullUrl": "urn:uuid:p", "resource": _patient("p")}, indent=2)
    bad = '{"fullUrl": "urn:uuid:b",\n "resource": {"resourceType": "' + where + '", "id": "b" "status": 1}}'
    path = tmp_path / "bundle.json"
    path.write_text('{"resourceType": "Bundle",\n"entry": [\n' + good + ",\n" + bad + "\n]}", encoding="utf-8")
    with pytest.raises(InputDataError) as err:
        read_fhir([path])
    line = 3 + good.count("\n") + 1
    assert str(err.value) == f"{path}:{line}: not valid JSON (Expecting ',' delimiter)"


_json_text = st.text(alphabet=st.sampled_from(list('{}[]",:\\ ab\n\té中\u2028')), max_size=12)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_json_text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(st.one_of(st.dictionaries(_json_text, _json_value, max_size=4), _json_value), max_size=8),
    indent=st.sampled_from([None, 0, 2, "\t"]),
    ascii_only=st.booleans(),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_entries_cut_from_any_bundle(entries: list[Any], indent: Any, ascii_only: bool, chunk: int) -> None:
    """The entry texts found by the scan are the entries json finds, for any JSON and any read size."""
    document = {"resourceType": "Bundle", "entry": entries, "signature": {"data": "{[\"x"}}
    raw = json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.json"
        path.write_bytes(raw)
        found: list[Any] = []
        members = {}
        for name, value in fhir_documents.stream_document(path, chunk=chunk):
            if name == "entry[]":
                found += [json.loads(text) for text in value["line"]]
                for at in value["_at"]:
                    assert fhir_documents.line_at(path, at) == 1 + raw.count(b"\n", 0, at)
            else:
                members[name] = value
    assert found == entries
    assert members == {"resourceType": "Bundle", "signature": {"data": "{[\"x"}}


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    latin = tmp_path / "Patient.ndjson"
    latin.write_bytes(json.dumps(_patient()).encode() + b"\n" + '{"resourceType":"Patient","id":"Jos\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(InputDataError) as err:
        read_fhir([latin])
    assert str(err.value) == f"{latin}:2: file is not UTF-8 (looks like Windows-1252 or Latin-1); re-save it as UTF-8"
    utf16 = tmp_path / "b.json"
    utf16.write_text(json.dumps(_bundle([])), encoding="utf-16")
    with pytest.raises(InputDataError, match="looks like UTF-16"):
        read_fhir([utf16])
    data = gzip.compress((json.dumps(_patient()) + "\n").encode() * 50)
    truncated = tmp_path / "t.ndjson.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"t.ndjson.gz: gzip data is corrupt or truncated"):
        read_fhir([truncated])
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}, {"resou', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"broken.json:1: not valid JSON"):
        read_fhir([broken])
    assert "\n" not in str(err.value)


def test_is_fhir_file(tmp_path: Path) -> None:
    names = {"a.ndjson": "x", "b.JSONL": "x", "c.ndjson.gz": "x", "d.csv": "a,b", "e.json": '{"a": 1}',
             "f.json": '\n{\n  "resourceType" : "Bundle"}'}
    for name, text in names.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert {n for n in names if is_fhir_file(tmp_path / n)} == {"a.ndjson", "b.JSONL", "c.ndjson.gz", "f.json"}
    assert not is_fhir_file(tmp_path / "missing.ndjson")


def test_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_patient("a")).encode() + b"\r\n\r\n" + json.dumps(_patient("b")).encode())
    result = read_fhir([path])
    assert _frames(result, "patients").select("_row", "patient_id").rows() == [(1, "a"), (3, "b")]
    assert not result.rejects


# -- throughput ----------------------------------------------------------------------------------
def write_benchmark_ndjson(reference_data: Path, path: Path, n: int) -> int:
    """``n`` resources: the Synthea NDJSON sample (all its types) repeated with new ids, gzip-compressed."""
    folder = _folder(reference_data, SYNTHEA_NDJSON)
    lines = [line for p in sorted(folder.glob("*.ndjson")) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    patient = "913e9363-b137-25f7-9585-ce7970dce7b2"
    first_id = re.compile(r'^(\{"resourceType":"\w+","id":")([^"]+)"')
    written = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as out:
        copy = 0
        while written < n:
            new = f"{copy:08d}-0000-4000-8000-{copy:012d}"
            for line in lines[: n - written]:
                out.write(first_id.sub(rf'\g<1>\g<2>-{copy}"', line.replace(patient, new), count=1) + "\n")
            written += min(len(lines), n - written)
            copy += 1
    return written


#: any UUID: the Synthea Bundles name their resources and each other by them
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{12}")


def write_benchmark_bundles(reference_data: Path, folder: Path, n: int, *, compress: bool) -> int:
    """At least ``n`` entries: the Synthea patient Bundles repeated, every UUID made new, one file per copy."""
    samples = [p for name in (JIJONES, SARABUZZI) for p in sorted(_folder(reference_data, name).glob("*.json"))
               if "Information" not in p.name]
    texts = [(p.name, p.read_text(encoding="utf-8")) for p in samples]
    sizes = [len(json.loads(text)["entry"]) for _, text in texts]
    folder.mkdir()
    written = copy = 0
    while written < n:
        name, text = texts[copy % len(texts)]
        renamed = _UUID.sub(rf"\g<1>{copy:012x}", text)
        target = folder / f"{copy:05d}_{name}"
        if compress:
            with gzip.open(target.with_name(target.name + ".gz"), "wt", encoding="utf-8", compresslevel=6) as out:
                out.write(renamed)
        else:
            target.write_text(renamed, encoding="utf-8")
        written += sizes[copy % len(texts)]
        copy += 1
    return written


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("layout", ["ndjson.gz", "bundles", "bundles.gz"])
def test_throughput(reference_data: Path, tmp_path: Path, layout: str) -> None:
    """Resources (or Bundle entries) per second, gzip included; SEGMENT_FHIR_BENCH_N of them (200,000 for the figures).

    Bulk NDJSON: the Synthea NDJSON sample repeated; Bundles: the Synthea per-patient
    Bundles repeated, one file each (about 350 entries, 3 KB an entry).
    """
    n = int(os.environ.get("SEGMENT_FHIR_BENCH_N", "40000"))
    if layout == "ndjson.gz":
        files = [tmp_path / "bench.ndjson.gz"]
        n = write_benchmark_ndjson(reference_data, files[0], n)
    else:
        n = write_benchmark_bundles(reference_data, tmp_path / "bench", n, compress=layout.endswith(".gz"))
        files = sorted((tmp_path / "bench").iterdir())
    started = time.perf_counter()
    result = read_fhir(files)
    rows = sum(p.frame.collect().height for p in result.parts)
    rate = n / (time.perf_counter() - started)
    print(f"\nFHIR reader, {layout}: {n} resources ({rows} rows) at {rate:,.0f} resources/s")
    assert not result.rejects and rows > n * 0.9
    assert rate > 5_000  # a loose floor: shared CI machines are noisy


def test_allergy_intolerance_is_an_allergy_event(tmp_path: Path) -> None:
    """AllergyIntolerance names its patient in ``patient``; a refuted one is rejected like a Condition."""
    flu = {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "141"}]}
    resources = [
        _patient(),
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p1"}, "code": flu,
         "onsetDateTime": "2019-10-02T10:00:00Z"},
        {"resourceType": "AllergyIntolerance", "id": "a2", "patient": {"reference": "Patient/p1"}, "code": flu,
         "recordedDate": "2020-01-05"},
        {"resourceType": "AllergyIntolerance", "id": "a3", "patient": {"reference": "Patient/p1"}, "code": flu,
         "recordedDate": "2020-01-05", "verificationStatus": {"coding": [{"code": "refuted"}]}},
    ]
    result = _read(tmp_path, resources)
    assert _rejects(result).select("record_id", "reason").rows() == [("a3", "status refuted")]
    events = _frames(result, "events").sort("_record")
    assert events.select("_record", "patient_id", "event_type", "code", "event_date").rows() == [
        ("a1", "p1", "allergy", "141", "2019-10-02T10:00:00Z"), ("a2", "p1", "allergy", "141", "2020-01-05")]


def test_observation_integer_and_text_results(tmp_path: Path) -> None:
    """``valueInteger`` is a value; ``valueString`` (a cytology reading) is kept as the result text."""
    pap = {"coding": [{"system": "http://loinc.org", "code": "10524-7"}]}
    phq = {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]}
    resources = [
        _patient(),
        {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
         "code": pap, "effectiveDateTime": "2024-03-01", "valueString": " NILM "},
        {"resourceType": "Observation", "id": "o2", "status": "final", "subject": {"reference": "Patient/p1"},
         "code": phq, "effectiveDateTime": "2024-03-01", "valueInteger": 12},
    ]
    events = _frames(_read(tmp_path, resources), "events").sort("_record")
    assert events.select("_record", "value", "value_code").rows() == [("o1", None, "NILM"), ("o2", "12", None)]
