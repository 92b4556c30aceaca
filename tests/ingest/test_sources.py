"""Source names: stable across dated and renamed drops, declared when needed; orphan events fail loudly."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.errors import InputDataError
from segment.ingest import ingest
from segment.ingest.detect import canonical_source_name

TODAY = dt.date(2026, 2, 1)
PATIENTS = "patient_id,first_name,last_name,birth_date,sex\nP1,Ann,Lee,1960-01-02,F\nP2,Bo,Park,1970-03-04,M\n"
EVENTS = "patient_id,event_type,code_system,code,event_date\n" + "".join(
    f"P{1 + i % 2},procedure,CPT,77067,2024-0{1 + i % 9}-01\n" for i in range(200)
)


def _write(folder: Path, files: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in files]


@pytest.mark.parametrize(("name", "source"), [
    ("ehr-patients.csv", "ehr"),
    ("ehr-patients-20260201.csv", "ehr"),
    ("ehr_events_2026-02-01.csv", "ehr"),
    ("EHR-Events-20260201T0300Z.csv", "ehr"),
    ("crm_members_v2_part3.parquet", "crm"),
    ("epic-clarity-patients.2026-02-01.csv", "epic-clarity"),
    ("patients.csv", "canonical"),
    ("events-20260201.csv", "canonical"),
])
def test_default_source_names_ignore_table_words_and_stamps(name: str, source: str) -> None:
    assert canonical_source_name(Path(name)) == source


def test_dated_drops_are_one_source_with_stable_ids(tmp_path: Path) -> None:
    first = _write(tmp_path / "feb", {"ehr-patients-20260201.csv": PATIENTS, "ehr-events-20260201.csv": EVENTS})
    second = _write(tmp_path / "mar", {"ehr-patients-20260301.csv": PATIENTS, "ehr-events-20260301.csv": EVENTS})
    a = ingest(first, tmp_path / "wa", as_of=TODAY)
    b = ingest(second, tmp_path / "wb", as_of=TODAY)
    assert a.orphan_events == b.orphan_events == 0
    assert a.events_rejected == 0 and a.events_written > 0
    ids_a = pl.read_parquet(tmp_path / "wa" / "patients.parquet")["patient_id"].to_list()
    ids_b = pl.read_parquet(tmp_path / "wb" / "patients.parquet")["patient_id"].to_list()
    assert ids_a == ids_b == ["ehr:P1", "ehr:P2"]


def test_events_read_as_another_source_fail_and_name_the_cause(tmp_path: Path) -> None:
    paths = _write(tmp_path / "in", {"clinic-patients.csv": PATIENTS, "lab-events.csv": EVENTS})
    out = tmp_path / "w"
    with pytest.raises(InputDataError) as err:
        ingest(paths, out, as_of=TODAY)
    text = str(err.value)
    assert "200 of 200 event rows (100.0%) point at no patient" in text
    assert "lab-events.csv" in text and "patient ids of another source" in text and "--source" in text
    # nothing a later stage could read; the evidence stays
    assert not (out / "patients.parquet").exists() and not (out / "events.parquet").exists()
    report = json.loads((out / "ingest-report.json").read_text())
    assert report["outcome"] == "failed" and report["events"]["orphans"] == 200
    assert pl.read_csv(out / "rejects.csv").height == 200
    # naming both the same source fixes it
    fixed = ingest(paths, tmp_path / "w2", as_of=TODAY, sources=["clinic", "clinic"])
    assert fixed.orphan_events == 0 and fixed.events_rejected == 0
    # or the user accepts the orphans explicitly
    kept = ingest(paths, tmp_path / "w3", as_of=TODAY, allow_orphan_events=True)
    assert kept.orphan_events == 200 and (tmp_path / "w3" / "patients.parquet").exists()


def test_orphans_under_the_ceiling_pass_and_are_counted(tmp_path: Path) -> None:
    events = EVENTS + "P9,procedure,CPT,77067,2024-01-01\n"  # 1 of 201 rows: 0.5%
    paths = _write(tmp_path / "in", {"ehr-patients.csv": PATIENTS, "ehr-events.csv": events})
    result = ingest(paths, tmp_path / "w", as_of=TODAY)
    assert result.orphan_events == 1
    assert json.loads((tmp_path / "w" / "ingest-report.json").read_text())["events"]["orphans"] == 1
    with pytest.raises(InputDataError, match="no patient record has these ids"):
        ingest(paths, tmp_path / "w2", as_of=TODAY, max_orphan_fraction=0.001)


def test_cli_source_names_and_orphan_flag(tmp_path: Path) -> None:
    paths = _write(tmp_path / "in", {"clinic-patients.csv": PATIENTS, "lab-events.csv": EVENTS})
    runner = CliRunner()
    failed = runner.invoke(cli, ["ingest", str(tmp_path / "w"), *map(str, paths)])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "\nError: 200 of 200 event rows" in failed.stderr
    once = runner.invoke(cli, ["ingest", str(tmp_path / "w1"), *map(str, paths), "--source", "clinic"])
    assert once.exit_code == 0, once.output
    pairs = runner.invoke(cli, ["ingest", str(tmp_path / "w2"), f"clinic={paths[0]}", f"clinic={paths[1]}"])
    assert pairs.exit_code == 0, pairs.output
    assert pl.read_parquet(tmp_path / "w2" / "patients.parquet")["patient_id"][0] == "clinic:P1"
    wrong = runner.invoke(cli, ["ingest", str(tmp_path / "w3"), *map(str, paths),
                                "--source", "a", "--source", "b", "--source", "c"])
    assert wrong.exit_code == 2 and "once per path" in wrong.output
    bad = runner.invoke(cli, ["ingest", str(tmp_path / "w4"), str(paths[0]), "--source", "no spaces!"])
    assert bad.exit_code == 1 and "source name" in bad.stderr
    allowed = runner.invoke(cli, ["ingest", str(tmp_path / "w5"), *map(str, paths), "--allow-orphan-events"])
    assert allowed.exit_code == 0 and "events with no patient" in allowed.stdout


def test_renamed_fhir_folder_keeps_patient_ids(tmp_path: Path) -> None:
    lines = [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-02-03"},
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
         "onsetDateTime": "2020-01-01",
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}},
    ]
    folder = tmp_path / "export-2026-02-01"
    folder.mkdir()
    (folder / "export.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    ingest([folder], tmp_path / "wa", as_of=TODAY)
    renamed = tmp_path / "bulk_march"
    shutil.copytree(folder, renamed)
    ingest([renamed], tmp_path / "wb", as_of=TODAY)
    a = pl.read_parquet(tmp_path / "wa" / "patients.parquet")["patient_id"].to_list()
    b = pl.read_parquet(tmp_path / "wb" / "patients.parquet")["patient_id"].to_list()
    assert a == b == ["fhir:p1"]


def test_gzip_csv_is_read_and_binary_files_are_named(tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "in"
    folder.mkdir()
    with gzip.open(folder / "ehr-patients-20260201.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(PATIENTS)
    with gzip.open(folder / "ehr-events-20260201.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(EVENTS)
    result = ingest([folder], tmp_path / "w", as_of=TODAY)
    assert result.patients == 2 and result.events_rejected == 0 and result.reconciled
    assert {Path(f.file).name for f in result.files} == {"ehr-patients-20260201.csv.gz", "ehr-events-20260201.csv.gz"}
    cases = {
        "gz-patients.csv": gzip.compress(PATIENTS.encode()),
        "xlsx-patients.csv": b"PK\x03\x04" + b"\x00" * 40,
        "pq-patients.csv": b"PAR1" + b"\x00" * 40,
        "utf16-patients.csv": PATIENTS.encode("utf-16"),
    }
    expected = {"gz": "gzip-compressed", "xlsx": "Excel .xlsx", "pq": "Parquet", "utf16": "UTF-16"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputDataError, match=expected[name.split("-")[0]]):
            ingest([path], tmp_path / "w2", as_of=TODAY)
    latin = tmp_path / "latin-patients.csv"
    latin.write_bytes((PATIENTS + "P3,José,Núñez,1980-01-01,M\n").encode("latin-1"))
    with pytest.raises(InputDataError, match=r"Latin-1") as err:
        ingest([latin], tmp_path / "w3", as_of=TODAY)
    assert err.value.line == 4


def test_campaign_sources_carry_name_format_and_mapping(tmp_path: Path) -> None:
    from segment.campaign.model import Source
    from segment.ingest.run import IngestStage

    paths = _write(tmp_path / "in", {"clinic-patients.csv": PATIENTS, "lab-events.csv": EVENTS})
    specs = IngestStage.of_sources([Source(path=paths[0], name="clinic"),
                                    Source(path=paths[1], name="clinic", format="canonical")]).specs
    assert [(s.source, s.input_format) for s in specs] == [("clinic", None), ("clinic", "canonical")]
    result = ingest(specs, tmp_path / "w", as_of=TODAY)
    assert result.orphan_events == 0 and result.events_rejected == 0
    with pytest.raises(ValueError, match="name"):
        Source(path=paths[0], name="no spaces!")


def test_fhir_json_arrays_are_named_for_what_they_are(tmp_path: Path) -> None:
    resource = {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}
    document = tmp_path / "patients.json"
    document.write_text(json.dumps([resource]), encoding="utf-8")
    with pytest.raises(InputDataError, match="a JSON array of resources, not a FHIR resource or Bundle"):
        ingest([document], tmp_path / "w", as_of=TODAY)
    lines = tmp_path / "patients.ndjson"
    lines.write_text(json.dumps([resource]) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"a JSON array on one line, not a resource"):
        ingest([lines], tmp_path / "w2", as_of=TODAY)
