from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.errors import ConfigError, InputDataError
from segment.ingest import ingest, load_mapping
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA

TODAY = dt.date(2025, 6, 1)
ROOT = Path(__file__).resolve().parents[2]

EHR = """patient_id,first_name,last_name,birth_date,sex,address_line1,city,state,zip5,email,phone_e164,email_consent,sms_consent,do_not_contact,updated_at
E1,MARY,O'BRIEN,03/04/1960,Female,1 Main St,Boston,Massachusetts,2115,Mary@Example.com,(617) 253-1000,Y,,,2024-01-01T00:00:00
E2,john,smith,1970-01-01,M,2 Elm St,Omaha,NE,68102,bad@,12345,N,Y,,2024-01-01T00:00:00
E3,No,Birth,,F,,,,,,,,,,
,No,Id,1980-01-01,F,,,,,,,,,,
E4,Bad,Date,02/30/1990,F,,,,,,,,,,
E4b,Old,Man,1850-01-01,M,,,,,,,,,,
E1,MARY,O'BRIEN,03/04/1960,Female,1 Main St,Boston,Massachusetts,2115,Mary@Example.com,(617) 253-1000,Y,,,2024-01-01T00:00:00
"""
CRM = """patient_id,first_name,last_name,birth_date,sex,address_line1,city,state,zip5,email,phone_e164,email_consent,sms_consent,do_not_contact,updated_at
C9,Mary,OBrien,1960-03-04,F,9 New Rd,Cambridge,MA,02139,,617-253-1000,N,Y,,2025-01-01T00:00:00
C8,Jon,Smyth,1970-01-01,M,,,,,,,,,yes,2023-01-01T00:00:00
C7,Bill,Jones,1990-05-05,M,,,,,,,,,,
"""
EVENTS = """patient_id,event_type,code_system,code,event_date,value,unit
E1,procedure,CPT,77067,2024-02-01,,
E1,observation,LOINC,4548-4,2024-02-01,6.1,%
E1,observation,LOINC,4548-4,2024-02-01,high,%
E2,immunization,CVX,140,10/01/2024,,
E3,procedure,CPT,77067,2024-02-01,,
E99,procedure,CPT,77067,2024-02-01,,
E1,procedure,XYZ,77067,2024-02-01,,
E1,procedure,CPT,,2024-02-01,,
E1,procedure,CPT,45378,2024-13-01,,
"""


@pytest.fixture
def extract(tmp_path: Path) -> list[Path]:
    paths = []
    for name, text in (("ehr-patients.csv", EHR), ("ehr-events.csv", EVENTS), ("crm-patients.csv", CRM)):
        p = tmp_path / "in" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


def test_broken_extract_reconciles(extract: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "work"
    result = ingest(extract, out, as_of=TODAY, allow_orphan_events=True)
    report = json.loads((out / "ingest-report.json").read_text())
    assert report["reconciled"] is True
    by_file = {Path(f["file"]).name: f for f in report["files"]}
    assert by_file["ehr-patients.csv"]["rows_read"] == 7
    assert by_file["ehr-patients.csv"]["rows_rejected"] == 4  # no birth, no id, impossible, >120y
    assert by_file["ehr-events.csv"]["rows_read"] == 9
    assert by_file["ehr-events.csv"]["rows_rejected"] == 5
    rejects = pl.read_csv(out / "rejects.csv", infer_schema=False)
    assert rejects.columns == ["file", "row", "record_id", "column", "value", "reason", "level"]
    # every reject names the source record (here the patient id of the row)
    # an events file without record ids: the row's patient id (MRN) names it
    assert {"E1", "E99", "E3"} <= set(rejects.filter(pl.col("file").str.ends_with("ehr-events.csv"))["record_id"])
    assert "E4" in set(rejects.filter(pl.col("file").str.ends_with("ehr-patients.csv"))["record_id"])
    row_level = rejects.filter(pl.col("level") == "row")
    assert sorted(row_level.filter(pl.col("file").str.ends_with("ehr-patients.csv"))["reason"].to_list()) == sorted(
        ["missing birth date", "missing patient id", "impossible date", "birth date more than 120 years ago"]
    )
    reasons = set(rejects["reason"])
    assert {"invalid email", "invalid phone number", "not a number", "unknown code system", "missing code"} <= reasons
    assert "unknown patient (no patient record with this id)" in reasons  # E99
    assert "patient record rejected (see that patient's row in rejects.csv)" in reasons  # E3: no birth date
    assert report["events"]["orphans"] == 1 and by_file["ehr-events.csv"]["orphans"] == 1
    # every input row is somewhere
    for f in report["files"]:
        assert f["rows_read"] == f["rows_kept"] + f["rows_rejected"] + f["rows_skipped"]
    assert result.patient_records == 3 + 3  # E1 twice (exact duplicate) + E2 + 3 CRM


def test_outputs_schema_dedupe_and_survivorship(extract: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "work"
    ingest(extract, out, as_of=TODAY, allow_orphan_events=True)
    patients = pl.read_parquet(out / "patients.parquet")
    assert list(patients.schema) == [*PATIENT_SCHEMA, "source_lat", "source_lon"]
    assert patients.height == 4  # Mary (E1+C9), John, Jon (name differs, no shared contact), Bill
    mary = patients.filter(pl.col("patient_id") == "ehr:E1").row(0, named=True)
    assert mary["source_ids"] == ["crm:C9", "ehr:E1"]
    assert mary["first_name"] == "Mary" and mary["last_name"] == "OBrien"  # newest record wins
    assert mary["address_line1"] == "9 New Rd" and mary["zip5"] == "02139"  # address block from newest
    assert mary["email"] == "mary@example.com"  # newest non-empty
    assert mary["phone_e164"] == "+16172531000"
    assert mary["email_consent"] is False  # most restrictive
    assert mary["sms_consent"] is True
    assert mary["do_not_contact"] is False
    events = pl.read_parquet(out / "events.parquet")
    assert events.schema == pl.Schema(EVENT_SCHEMA)
    assert set(events["patient_id"]) <= set(patients["patient_id"])
    assert events["patient_id"].is_sorted()  # written in patient order
    assert events.height == events.unique().height  # exact duplicates collapsed


def test_dedupe_rules(tmp_path: Path) -> None:
    a = tmp_path / "a-patients.csv"
    b = tmp_path / "b-patients.csv"
    a.write_text("patient_id,first_name,last_name,birth_date,email,phone_e164,do_not_contact\n"
                 "1,William,Jones,1990-05-05,,,\n2,Ann,Lee,1980-01-01,ann@x.org,,\n3,Tom,Twin,2000-01-01,,6172531000,\n",
                 encoding="utf-8")
    b.write_text("patient_id,first_name,last_name,birth_date,email,phone_e164,do_not_contact\n"
                 "x,Bill,Jones,1990-05-05,,,Y\ny,Ann,Lee-Kim,1980-01-01,ANN@x.org,,\nz,Jim,Twin,2000-01-01,,617 253 1000,\n",
                 encoding="utf-8")
    ingest([a, b], tmp_path / "w", as_of=TODAY)
    p = pl.read_parquet(tmp_path / "w" / "patients.parquet").sort("patient_id")
    ids = dict(zip(p["patient_id"], p["source_ids"].to_list(), strict=True))
    assert ids["a:1"] == ["a:1", "b:x"]  # nickname Bill = William
    assert ids["a:2"] == ["a:2", "b:y"]  # birth date + email
    assert "a:3" in ids and "b:z" in ids  # twins sharing a phone stay apart (different initial)
    assert p.filter(pl.col("patient_id") == "a:1")["do_not_contact"].item() is True


def test_same_input_same_ids(extract: list[Path], tmp_path: Path) -> None:
    ingest(extract, tmp_path / "a", as_of=TODAY, allow_orphan_events=True)
    ingest(extract, tmp_path / "b", as_of=TODAY, allow_orphan_events=True)
    a = pl.read_parquet(tmp_path / "a" / "patients.parquet")
    b = pl.read_parquet(tmp_path / "b" / "patients.parquet")
    assert a.equals(b)


def test_synthea_reference(reference_data: Path, tmp_path: Path) -> None:
    result = ingest([reference_data / "synthea" / "ma"], tmp_path / "w", as_of=TODAY)
    assert result.reconciled
    patients = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert patients.height == 27
    assert set(patients["state"]) == {"MA"}
    assert patients["source_lat"].null_count() == 0
    assert not patients["first_name"].str.contains(r"\d").any()
    events = pl.read_parquet(tmp_path / "w" / "events.parquet")
    systems = dict(events.group_by("event_type").agg(pl.col("code_system").unique().sort()).iter_rows())
    assert systems["immunization"] == ["CVX"] and systems["observation"] == ["LOINC"]
    assert systems["condition"] == ["SNOMED"]
    assert events.filter(pl.col("event_type") == "observation")["value"].null_count() < events.filter(
        pl.col("event_type") == "observation").height
    rejects = pl.read_csv(tmp_path / "w" / "rejects.csv", infer_schema=False)
    assert set(rejects["value"]) <= {"GBD"}


def test_synthea_ne_newer_layout(reference_data: Path, tmp_path: Path) -> None:
    result = ingest([reference_data / "synthea" / "ne"], tmp_path / "w", as_of=TODAY)
    assert result.reconciled and result.patients == 111


def test_fhir_ndjson(tmp_path: Path) -> None:
    race = {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [{"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                                  "code": "2106-3", "display": "White"}},
                          {"url": "text", "valueString": "White"}]}
    lines = [
        {"resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
         "name": [{"use": "old", "family": "X", "given": ["Y"]}, {"use": "official", "family": "DOE", "given": ["JANE"]}],
         "gender": "female", "birthDate": "1970-02-03", "extension": [race],
         "address": [{"use": "home", "line": ["1 Main St", "Apt 2"], "city": "Boston", "state": "MA", "postalCode": "02115"}],
         "telecom": [{"system": "phone", "value": "617-253-1000", "use": "old"},
                     {"system": "phone", "value": "(617) 253-1001", "use": "mobile"},
                     {"system": "email", "value": "jane@example.org"}],
         "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]}, "preferred": True}]},
        {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1950-01-01", "deceasedDateTime": "2020-05-01"},
        {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2020-01-01",
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}},
        {"resourceType": "Immunization", "patient": {"reference": "urn:uuid:p1"}, "status": "completed",
         "occurrenceDateTime": "2024-10-01T10:00:00-04:00", "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}},
        {"resourceType": "Observation", "subject": {"reference": "https://x.org/fhir/Patient/p1"}, "status": "final",
         "effectiveDateTime": "2024-03-01", "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
         "valueQuantity": {"value": 7.2, "unit": "%"}},
        {"resourceType": "Procedure", "subject": {"reference": "Patient/p1"}, "status": "entered-in-error",
         "performedDateTime": "2024-01-01", "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77067"}]}},
        {"resourceType": "Organization", "id": "o1"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n\n"
    folder = tmp_path / "fhir"
    folder.mkdir()
    (folder / "export.ndjson").write_text(text, encoding="utf-8")
    result = ingest([folder], tmp_path / "w", as_of=TODAY)
    assert result.reconciled
    p = pl.read_parquet(tmp_path / "w" / "patients.parquet").sort("patient_id").to_dicts()
    assert p[0]["first_name"] == "Jane" and p[0]["last_name"] == "Doe" and p[0]["sex"] == "F"
    assert p[0]["phone_e164"] == "+16172531001" and p[0]["phone_type"] == "mobile"
    assert p[0]["language"] == "es" and p[0]["race"] == "White" and p[0]["address_line2"] == "Apt 2"
    assert p[1]["deceased_date"] == dt.date(2020, 5, 1)
    e = pl.read_parquet(tmp_path / "w" / "events.parquet").sort("event_type")
    assert e.select("event_type", "code_system", "code").rows() == [
        ("condition", "ICD10CM", "E11.9"), ("immunization", "CVX", "140"), ("observation", "LOINC", "4548-4")]
    assert e["value"].to_list()[2] == 7.2
    rejects = pl.read_csv(tmp_path / "w" / "rejects.csv", infer_schema=False)
    assert dict(zip(rejects["row"], rejects["reason"], strict=True)) == {
        "6": "status entered-in-error", "8": "malformed JSON"}
    # a type nothing reads is a named skip, not a reject
    report = json.loads((tmp_path / "w" / "ingest-report.json").read_text())
    assert report["skipped_by_reason"] == {"skipped: type not used (Organization)": 1}


def test_mapping_file(tmp_path: Path) -> None:
    mapping = ROOT / "examples" / "mappings" / "epic-clarity.yaml"
    pat = tmp_path / "clarity_patients.csv"
    pat.write_text("PAT_MRN_ID,PAT_FIRST_NAME,PAT_LAST_NAME,BIRTH_DATE,SEX_C_NAME,ZIP,STATE_C_NAME,CELL_PHONE,EXTRA\n"
                   "M1,ANA,RUIZ,07/04/1985,Female,01970,MA,6172531000,zzz\nM2,LEE,PARK,1985-07-04,Male,,,,\n",
                   encoding="utf-8")
    dx = tmp_path / "clarity_dx.csv"
    dx.write_text("PAT_MRN_ID,DX_CODE,CONTACT_DATE\nM1,e11.9,01/15/2024\n", encoding="utf-8")
    result = ingest([pat, dx], tmp_path / "w", mapping=mapping, as_of=TODAY)
    p = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert p["patient_id"].to_list() == ["epic:M1"]  # M2's ISO date does not match the mapped format
    assert p["sex"].item() == "F" and p["phone_type"].item() == "mobile"
    e = pl.read_parquet(tmp_path / "w" / "events.parquet")
    assert e.select("code_system", "code", "event_date").row(0) == ("ICD10CM", "E11.9", dt.date(2024, 1, 15))
    assert result.reconciled


def test_bad_mapping_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npatients:\n  columns:\n    ID: patient_id\n  colour: red\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_mapping(bad)
    assert str(err.value) == (
        f"{bad}:5: unknown key `patients.colour`; valid keys are: columns, constants, date_formats, files, join, name, values"
    )
    bad.write_text("version: 1\npatients:\n  columns:\n    ID: patient_key\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: key `patients.columns.ID`: found 'patient_key'"):
        load_mapping(bad)


def test_missing_column_and_encoding_errors(tmp_path: Path) -> None:
    p = tmp_path / "x-patients.csv"
    p.write_text("patient_id,first_name\n1,A\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="missing required column `birth_date`"):
        ingest([p], tmp_path / "w")
    p.write_bytes("patient_id,first_name,birth_date\n1,Jos\u00e9,1990-01-01\n".encode("cp1252"))
    with pytest.raises(InputDataError, match="not UTF-8 \\(looks like Windows-1252"):
        ingest([p], tmp_path / "w")


def test_cli_exit_codes_and_one_line_errors(extract: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["ingest", str(tmp_path / "w"), *map(str, extract), "--log-format", "plain",
                             "--allow-orphan-events"])
    assert ok.exit_code == 0, ok.output
    assert "reconciled" in ok.stdout and "ehr-events.csv" in ok.stdout
    missing = runner.invoke(cli, ["ingest", str(tmp_path / "w"), str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1
    assert missing.stderr == f"Error: {tmp_path / 'nope.csv'}: file or folder not found\n"
    bad = tmp_path / "y-patients.csv"
    bad.write_text("patient_id,first_name\n1,A\n", encoding="utf-8")
    col = runner.invoke(cli, ["ingest", str(tmp_path / "w"), str(bad)])
    assert col.exit_code == 1 and col.stderr.count("\n") == 1
    assert "missing required column `birth_date`" in col.stderr
    enc = tmp_path / "z-patients.csv"
    enc.write_bytes("patient_id,birth_date\n1,1990-01-01\n\xff\xfe\n".encode("latin-1"))
    res = runner.invoke(cli, ["ingest", str(tmp_path / "w"), str(enc)])
    assert res.exit_code == 1 and "not UTF-8" in res.stderr and "Traceback" not in res.stderr
    usage = runner.invoke(cli, ["ingest", str(tmp_path / "w")])
    assert usage.exit_code == 2
    fmt = runner.invoke(cli, ["ingest", str(tmp_path / "w"), str(bad), "--format", "xml"])
    assert fmt.exit_code == 2


def test_installed_segment_ingest(extract: list[Path], tmp_path: Path) -> None:
    exe = shutil.which("segment") or str(Path(sys.executable).parent / "segment")
    proc = subprocess.run([exe, "ingest", str(tmp_path / "w"), *map(str, extract), "--allow-orphan-events"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "w" / "patients.parquet").stat().st_mode & 0o777 == 0o600
    assert "Mary" not in proc.stderr and "617" not in proc.stderr  # no patient values in messages


def test_one_count_per_file_when_a_file_holds_several_event_types(tmp_path: Path) -> None:
    lines = [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-02-03"},
        {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2020-01-01",
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}},
        {"resourceType": "Condition", "subject": {"reference": "Patient/p9"}, "onsetDateTime": "2020-01-01",
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}},
        {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}, "status": "final",
         "effectiveDateTime": "2024-03-01", "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
         "valueQuantity": {"value": 7.2, "unit": "%"}},
    ]
    folder = tmp_path / "fhir"
    folder.mkdir()
    (folder / "export.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    result = ingest([folder], tmp_path / "w", as_of=TODAY, allow_orphan_events=True)
    events = [f for f in result.files if f.kind == "events"]
    assert len(events) == 1
    assert (events[0].rows_read, events[0].rows_kept, events[0].rows_rejected) == (3, 2, 1)
