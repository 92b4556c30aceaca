from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from segment.errors import ConfigError, InputDataError
from segment.ingest import ingest, load_mapping
from segment.ingest.readers.canonical import read_canonical

TODAY = dt.date(2025, 6, 1)
ROOT = Path(__file__).resolve().parents[2]

MAPPING = """\
version: 1
source: clinic
patients:
  columns: {MRN: patient_id, DOB: birth_date}
  join:
    file: addresses.csv
    on:
      ADDR_ID: ADDR_ID
    columns: {LINE1: address_line1, ZIP: zip5, CITY: city}
events:
  - name: diagnoses
    files: "*_dx.csv"
    columns: {MRN: patient_id, DX: code, DX_DATE: event_date}
    constants: {event_type: condition, code_system: ICD10CM}
  - name: labs
    files: ["*_labs.csv"]
    columns: {MRN: patient_id, RESULT_DATE: event_date, RESULT: value}
    constants: {event_type: observation, code_system: LOINC}
    join: {file: lab_tests.csv, on: {TEST_ID: TEST_ID}, columns: {LOINC: code, UNITS: unit}}
"""
FILES = {
    "clinic_patients.csv": "MRN,DOB,ADDR_ID\nM1,1980-01-01,A1\nM2,1990-02-02,A9\nM3,1970-03-03,\n",
    "addresses.csv": "ADDR_ID,LINE1,ZIP,CITY\nA1,1 Main St,02115,Boston\nA1,9 Other Rd,99999,Elsewhere\n",
    "clinic_dx.csv": "MRN,DX,DX_DATE\nM1,e11.9,2024-01-15\nM2,I10,2024-02-01\n",
    "clinic_labs.csv": "MRN,TEST_ID,RESULT_DATE,RESULT\nM1,T1,2024-01-20,6.1\nM2,T2,2024-01-21,99\nM1,T9,2024-01-22,1\n",
    "lab_tests.csv": "TEST_ID,LOINC,UNITS\nT1,4548-4,%\nT2,2345-7,mg/dL\n",
}


@pytest.fixture
def extract(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    mapping = tmp_path / "clinic.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return folder, mapping


def test_tables_and_labels(extract: tuple[Path, Path]) -> None:
    mapping = load_mapping(extract[1])
    assert [(kind, label) for kind, _, label in mapping.tables()] == [
        ("patients", "patients"), ("events", "events[0] (diagnoses)"), ("events", "events[1] (labs)")]
    patients = mapping.patients
    assert patients is not None and patients.join is not None and patients.join.on == {"ADDR_ID": "ADDR_ID"}
    assert mapping.events[0].files == ["*_dx.csv"]
    assert mapping.is_join_file(Path("x/ADDRESSES.csv")) and not mapping.is_join_file(Path("clinic_dx.csv"))


def test_each_file_reads_through_its_table(extract: tuple[Path, Path]) -> None:
    folder, path = extract
    mapping = load_mapping(path)
    patients = read_canonical(folder / "clinic_patients.csv", mapping=mapping)
    frame = patients.parts[0].frame.collect()
    assert frame.columns == ["_row", "patient_id", "birth_date", "address_line1", "zip5", "city"]
    # A1 appears twice in addresses.csv: its first row is used, the repeat counted as skipped
    assert frame.rows() == [
        (1, "M1", "1980-01-01", "1 Main St", "02115", "Boston"),
        (2, "M2", "1990-02-02", None, None, None),
        (3, "M3", "1970-03-03", None, None, None),
    ]
    assert patients.skipped == {str(folder / "addresses.csv"): {"repeated join key (its first row is used)": 1}}
    (missing,) = patients.rejects  # M2's A9 is in no row; M3 has no key (nothing to report)
    assert missing.select("row", "column", "value", "reason", "level").rows() == [
        (2, "ADDR_ID", "A9", "no row in addresses.csv with this key", "field")]

    labs = read_canonical(folder / "clinic_labs.csv", mapping=mapping)
    assert labs.parts[0].frame.collect().select("patient_id", "event_type", "code_system", "code", "unit",
                                                "value").rows() == [
        ("M1", "observation", "LOINC", "4548-4", "%", "6.1"),
        ("M2", "observation", "LOINC", "2345-7", "mg/dL", "99"),
        ("M1", "observation", "LOINC", None, None, "1"),
    ]
    dx = read_canonical(folder / "clinic_dx.csv", mapping=mapping).parts[0]
    assert dx.source == "clinic" and dx.frame.collect()["code"].to_list() == ["e11.9", "I10"]
    # a file named only by a join is a lookup: read through the join, not as data
    for lookup in ("addresses.csv", "lab_tests.csv"):
        result = read_canonical(folder / lookup, mapping=mapping)
        assert result.parts == [] and result.rejects == [] and result.skipped == {}


def test_ingest_with_two_event_tables_and_joins(extract: tuple[Path, Path], tmp_path: Path) -> None:
    folder, path = extract
    result = ingest([folder], tmp_path / "w", mapping=path, as_of=TODAY)
    assert result.reconciled
    patients = pl.read_parquet(tmp_path / "w" / "patients.parquet").sort("patient_id")
    assert patients.select("patient_id", "zip5", "city").rows() == [
        ("clinic:M1", "02115", "Boston"), ("clinic:M2", None, None), ("clinic:M3", None, None)]
    events = pl.read_parquet(tmp_path / "w" / "events.parquet").sort("event_date")
    assert events.select("event_type", "code_system", "code", "unit").rows() == [
        ("condition", "ICD10CM", "E11.9", None), ("observation", "LOINC", "4548-4", "%"),
        ("observation", "LOINC", "2345-7", "mg/dL"), ("condition", "ICD10CM", "I10", None)]
    rejects = pl.read_csv(tmp_path / "w" / "rejects.csv", infer_schema=False)
    assert {Path(f).name for f in rejects["file"]} >= {"clinic_patients.csv", "clinic_labs.csv"}


def test_legacy_mapping_is_unchanged() -> None:
    mapping = load_mapping(ROOT / "examples" / "mappings" / "epic-clarity.yaml")
    assert len(mapping.events) == 1 and mapping.events[0].name is None
    found = mapping.table_for(["PAT_MRN_ID", "DX_CODE", "CONTACT_DATE"])
    assert found is not None and found[0] == "events"
    found = mapping.table_for(["PAT_MRN_ID", "BIRTH_DATE", "ZIP"])
    assert found is not None and found[0] == "patients"


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    return str(err.value).replace(str(path), "m.yaml")


EVENT = "    columns: {{ID: patient_id, C: code, D: event_date{extra}}}\n    constants: {{event_type: {t}, code_system: {s}}}\n"


def test_validation_errors_point_at_the_line(tmp_path: Path) -> None:
    two = "version: 1\nevents:\n  - name: dx\n" + EVENT.format(extra="", t="condition", s="ICD10CM")
    same = two + "  - name: labs\n" + EVENT.format(extra="", t="observation", s="LOINC")
    assert _load(tmp_path, same) == (
        "m.yaml:6: key `events[1]`: found the same columns as `events[0]`, so no file can be told apart; "
        'give one of them `files:` patterns (e.g. files: ["*_labs.csv"])')
    assert _load(tmp_path, two + "  - name: dx\n    files: x*.csv\n" + EVENT.format(extra="", t="x", s="y")) == (
        "m.yaml:6: key `events[1].name`: found 'dx', already the name of `events[0]`; table names must be unique")
    no_system = "version: 1\nevents:\n  columns: {ID: patient_id, C: code, D: event_date}\n  constants: {event_type: lab}\n"
    assert _load(tmp_path, no_system).startswith(
        "m.yaml:2: key `events`: nothing provides `code_system` (found: code, event_date, event_type, patient_id)")
    bad_join = two + "    join:\n      file: t.csv\n      on: {A: A}\n      columns: {X: unit}\n      how: inner\n"
    assert _load(tmp_path, bad_join) == (
        "m.yaml:10: unknown key `events[0].join.how`; valid keys are: columns, file, on")
    no_columns = two + "    join:\n      file: t.csv\n      on: {A: A}\n"
    assert _load(tmp_path, no_columns) == "m.yaml:6: key `events[0].join.columns` is required"
    bad_target = two + "    join: {file: t.csv, on: {A: A}, columns: {X: units}}\n"
    assert _load(tmp_path, bad_target).startswith(
        "m.yaml:6: key `events[0].join.columns.X`: found 'units'; valid options are: 'patient_id'")
    clash = two + "    join: {file: t.csv, on: {A: A}, columns: {X: code}}\n"
    assert "column `C` and join column `X` both map to `code`" in _load(tmp_path, clash)


def test_file_matching_errors(tmp_path: Path) -> None:
    text = ("version: 1\nevents:\n  - name: a\n" + EVENT.format(extra=", X: value", t="condition", s="ICD10CM")
            + "  - name: b\n" + EVENT.format(extra=", Y: unit", t="condition", s="ICD10CM")
            + "  - name: c\n    files: '*_c.csv'\n" + EVENT.format(extra=", Z: unit", t="condition", s="ICD10CM"))
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    mapping = load_mapping(path)
    both = tmp_path / "both.csv"
    both.write_text("ID,C,D,X,Y\n1,c,2024-01-01,1,u\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"fits several tables of the mapping equally well \(`events\[0\] \(a\)`, "
                                             r"`events\[1\] \(b\)` in mapping m.yaml\); give them `files:` patterns"):
        read_canonical(both, mapping=mapping)
    named = tmp_path / "x_c.csv"
    named.write_text("ID,C\n1,c\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"matches table `events\[2\] \(c\)` of mapping m.yaml, but its header lacks `D`"):
        read_canonical(named, mapping=mapping)


def test_join_file_errors(extract: tuple[Path, Path]) -> None:
    folder, path = extract
    mapping = load_mapping(path)
    (folder / "lab_tests.csv").unlink()
    with pytest.raises(InputDataError, match=r"the file joined by table `events\[1\] \(labs\)` of mapping clinic.yaml is not there"):
        read_canonical(folder / "clinic_labs.csv", mapping=mapping)
    (folder / "lab_tests.csv").write_text("CODE,LOINC\nT1,4548-4\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"join key `TEST_ID` .* is not a column of the joined file"):
        read_canonical(folder / "clinic_labs.csv", mapping=mapping)
