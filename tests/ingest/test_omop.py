from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.errors import InputDataError
from segment.ingest.readers import REJECT_SCHEMA, ReadResult
from segment.ingest.readers.omop import is_omop_folder, read_omop
from segment.ingest.readers.omop.events import (
    NO_CODE,
    NO_CONCEPT_TABLE,
    NO_VOCABULARY,
    NOT_IN_CONCEPT,
)
from segment.ingest.readers.omop.person import DEATH_ORPHAN, DEATH_REPEATED

EUNOMIA = Path("samples/omop/eunomia_synthea27nj_cdm54/csv")
EVENT_FILES = {
    "CONDITION_OCCURRENCE.csv": 470, "PROCEDURE_OCCURRENCE.csv": 1649, "MEASUREMENT.csv": 10040,
    "OBSERVATION.csv": 8099, "DRUG_EXPOSURE.csv": 883, "VISIT_OCCURRENCE.csv": 1791,
}


def _parts(result: ReadResult) -> dict[str, pl.DataFrame]:
    return {Path(p.file).name: p.frame.collect() for p in result.parts}


def _rejects(result: ReadResult) -> pl.DataFrame:
    frames = [r.cast(REJECT_SCHEMA) for r in result.rejects]  # type: ignore[arg-type]
    rejects = pl.concat(frames) if frames else pl.DataFrame(schema=REJECT_SCHEMA)
    return rejects.with_columns(pl.col("file").map_elements(lambda f: Path(f).name, return_dtype=pl.String))


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


# -- the real Eunomia sample (OMOP CDM 5.4, Synthea 27 NJ) -----------------------------------
@pytest.fixture(scope="module")
def eunomia(reference_data: Path) -> tuple[Path, ReadResult]:
    folder = reference_data / EUNOMIA
    return folder, read_omop(folder, source="omop")


@pytest.mark.reference
def test_eunomia_is_detected_and_every_person_becomes_a_patient(eunomia: tuple[Path, ReadResult]) -> None:
    folder, result = eunomia
    assert is_omop_folder(folder)
    persons = _parts(result)["PERSON.csv"]
    # 28 PERSON rows, all with a birth date: 28 patient records, none rejected by the reader
    assert persons.height == 28 and persons["patient_id"].n_unique() == 28
    assert persons["birth_date"].null_count() == 0
    assert _rejects(result).filter(pl.col("file") == "PERSON.csv").is_empty()
    one = persons.filter(pl.col("patient_id") == "1").row(0, named=True)
    assert (one["_record"], one["birth_date"], one["sex"], one["race"], one["ethnicity"]) == (
        "1", "1998-04-09 00:00:00", "M", "2106-3", "2186-5")
    # race concept 0: the source value as written; LOCATION is empty: address columns present, empty
    assert persons.filter(pl.col("patient_id") == "10")["race"].item() == "hawaiian"
    assert persons["zip5"].null_count() == 28
    deaths = persons.filter(pl.col("deceased_date").is_not_null()).select("patient_id", "deceased_date")
    assert deaths.sort("patient_id").rows() == [("11", "2009-09-14"), ("23", "2001-07-13"), ("7", "2019-05-28")]


@pytest.mark.reference
def test_eunomia_event_counts_reconcile(eunomia: tuple[Path, ReadResult]) -> None:
    _, result = eunomia
    parts, rejects = _parts(result), _rejects(result)
    for name, rows in EVENT_FILES.items():
        emitted = parts[name]["_row"].n_unique()
        rejected = rejects.filter((pl.col("file") == name) & (pl.col("level") == "row")).height
        skipped = sum(result.skipped.get(str(name), {}).values())
        assert emitted + rejected + skipped == rows, name
        # every source concept of this sample is its standard concept: one event per row
        assert parts[name].height == rows, name
    assert rejects.is_empty() and result.skipped == {}


@pytest.mark.reference
def test_eunomia_codes_resolve_through_concept(eunomia: tuple[Path, ReadResult]) -> None:
    _, result = eunomia
    parts = _parts(result)
    conditions = parts["CONDITION_OCCURRENCE.csv"]
    # condition_concept_id 372328 is SNOMED 65363002 (Otitis media) in CONCEPT
    first = conditions.filter(pl.col("_record") == "1").row(0, named=True)
    assert (first["event_type"], first["code_system"], first["code"], first["event_date"], first["event_end"]) == (
        "condition", "SNOMED", "65363002", "2002-10-15", "2003-03-20")
    assert set(conditions["code_system"]) == {"SNOMED"}
    measured = parts["MEASUREMENT.csv"].filter(pl.col("_record") == "1").row(0, named=True)
    assert (measured["code_system"], measured["code"], measured["value"], measured["unit"]) == (
        "LOINC", "29463-7", "48.1", "kg")
    assert set(parts["DRUG_EXPOSURE.csv"]["code_system"]) == {"RxNorm"}


@pytest.mark.reference
def test_eunomia_visit_class(eunomia: tuple[Path, ReadResult]) -> None:
    _, result = eunomia
    visits = _parts(result)["VISIT_OCCURRENCE.csv"]
    by_class = dict(visits.group_by("code", "encounter_class").len().select(
        pl.concat_str("code", pl.lit("/"), "encounter_class"), "len").iter_rows())
    assert by_class == {"OP/ambulatory": 1722, "ER/emergency": 56, "IP/inpatient": 13}
    assert set(visits["code_system"]) == {"Visit"}
    assert visits["discharge_disposition"].null_count() == visits.height  # discharged_to_concept_id 0


@pytest.mark.reference
def test_eunomia_through_ingest(reference_data: Path, tmp_path: Path) -> None:
    from segment.ingest import ingest

    result = ingest([reference_data / EUNOMIA], tmp_path / "w", as_of=dt.date(2025, 6, 1))
    assert result.reconciled
    patients = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert patients.height == 28
    assert patients.filter(pl.col("deceased_date").is_not_null()).height == 3
    events = pl.read_parquet(tmp_path / "w" / "events.parquet")
    assert events.filter((pl.col("code_system") == "SNOMED") & (pl.col("code") == "65363002")).height > 0


# -- a tiny OMOP CDM 5.3 folder without a CONCEPT table ------------------------------------
@pytest.fixture
def cdm53(tmp_path: Path) -> Path:
    folder = tmp_path / "cdm53"
    _write(folder, "person.csv",  # upper-case column names in a lower-case file
           "PERSON_ID,GENDER_CONCEPT_ID,YEAR_OF_BIRTH,MONTH_OF_BIRTH,DAY_OF_BIRTH,BIRTH_DATETIME,"
           "RACE_CONCEPT_ID,ETHNICITY_CONCEPT_ID,LOCATION_ID,GENDER_SOURCE_VALUE,RACE_SOURCE_VALUE,"
           "ETHNICITY_SOURCE_VALUE\n"
           "1,8507,1980,5,,,8516,38003563,10,M,black,hispanic\n"
           "2,8532,1975,,,,0,0,,F,Asian Indian,Not Hispanic\n"
           "3,0,1990,2,3,,8657,38003564,99,female,,\n"
           "4,8507,,,,,8527,38003564,,M,,\n")
    _write(folder, "location.csv",
           "location_id,address_1,address_2,city,state,zip,county,location_source_value\n"
           "10,1 Broad St,Apt 2,Newark,NJ,07102-1234,Essex,\n"
           "10,9 Other St,,Trenton,NJ,08608,Mercer,\n")
    _write(folder, "death.csv", "person_id,death_date,death_datetime,death_type_concept_id\n"
                                "1,2020-01-02,,38003566\n1,2019-12-31,,38003566\n42,2018-01-01,,38003566\n")
    _write(folder, "condition_occurrence.csv",
           "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_end_date,"
           "condition_source_value,condition_source_concept_id\n"
           "101,1,201826,2019-01-01,,E11.9,0\n"
           "102,1,0,2019-01-02,,E11.9,0\n"
           "103,1,0,2019-01-03,,,0\n"
           "104,1,0,2019-01-04,,E11.9,44826462\n")
    _write(folder, "VISIT_OCCURRENCE.CSV",
           "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,"
           "visit_source_value,visit_source_concept_id,admitting_source_concept_id,discharge_to_concept_id,"
           "discharge_to_source_value\n"
           "201,1,9201,2019-02-01,2019-02-05,enc-a,0,0,8536,\n"
           "202,1,9203,2019-03-01,2019-03-01,enc-b,0,0,0,home\n"
           "203,2,262,2019-04-01,2019-04-03,enc-c,0,0,0,\n"
           "204,2,581477,2019-05-01,2019-05-01,enc-d,0,0,0,\n")
    _write(folder, "care_site.csv", "care_site_id,care_site_name\n1,Clinic\n")  # not read, not counted
    return folder


def test_cdm53_patients(cdm53: Path) -> None:
    result = read_omop(cdm53, source="ehr")
    persons = _parts(result)["person.csv"]
    expected = pl.DataFrame({
        "patient_id": ["1", "2", "3", "4"],
        "birth_date": ["1980-05-15", "1975-07-01", "1990-02-03", None],  # NAACCR mid-points
        "sex": ["M", "F", "female", "M"],
        "race": ["2054-5", "Asian Indian", "1002-5", "2106-3"],
        "ethnicity": ["2135-2", "Not Hispanic", "2186-5", "2186-5"],
        "address_line1": ["1 Broad St", None, None, None],
        "zip5": ["07102", None, None, None],
        "deceased_date": ["2019-12-31", None, None, None],
    })
    assert_frame_equal(persons.select(expected.columns), expected)
    assert "source_lat" not in persons.columns  # LOCATION 5.3 has no latitude
    patient_side = _rejects(result).filter(pl.col("file").is_in(["person.csv", "death.csv"])).sort("file", "row")
    assert patient_side.rows() == [
        ("death.csv", 3, "42", "person_id", "42", DEATH_ORPHAN, "row"),
        ("person.csv", 3, "3", "location_id", "99", "no row in location.csv with this key", "field"),
    ]
    assert result.skipped == {
        str(cdm53 / "location.csv"): {"repeated join key (its first row is used)": 1},
        str(cdm53 / "death.csv"): {DEATH_REPEATED: 1},
    }


def test_cdm53_without_concept_table(cdm53: Path) -> None:
    result = read_omop(cdm53, source="ehr")
    parts, rejects = _parts(result), _rejects(result)
    assert set(parts) == {"person.csv", "condition_occurrence.csv", "VISIT_OCCURRENCE.CSV"}
    assert parts["condition_occurrence.csv"].is_empty()
    conditions = rejects.filter(pl.col("file") == "condition_occurrence.csv").sort("row")
    assert conditions.select("row", "record_id", "column", "value", "reason").rows() == [
        (1, "101", "condition_concept_id", "201826", NO_CONCEPT_TABLE),
        (2, "102", "condition_source_value", "E11.9", NO_VOCABULARY),
        (3, "103", "condition_concept_id", "0", NO_CODE),
        (4, "104", "condition_source_concept_id", "44826462", NO_CONCEPT_TABLE),
    ]
    visits = parts["VISIT_OCCURRENCE.CSV"].sort("_row")
    # the main Visit concepts resolve without CONCEPT; 581477 (Office Visit) does not
    assert visits.select("_record", "code_system", "code", "encounter_class", "event_date", "event_end",
                         "discharge_disposition").rows() == [
        ("201", "Visit", "IP", "inpatient", "2019-02-01", "2019-02-05", None),
        ("202", "Visit", "ER", "emergency", "2019-03-01", "2019-03-01", "home"),
        ("203", "Visit", "ERIP", "inpatient", "2019-04-01", "2019-04-03", None),
    ]
    visit_rejects = rejects.filter(pl.col("file") == "VISIT_OCCURRENCE.CSV").sort("row")
    assert visit_rejects.select("row", "column", "value", "reason", "level").rows() == [
        (1, "discharge_to_concept_id", "8536", NO_CONCEPT_TABLE, "field"),
        (4, "visit_concept_id", "581477", NO_CONCEPT_TABLE, "row"),
    ]
    # reconciliation per file: every data row is an event, a row reject or skipped
    for name, rows in {"condition_occurrence.csv": 4, "VISIT_OCCURRENCE.CSV": 4}.items():
        row_rejects = rejects.filter((pl.col("file") == name) & (pl.col("level") == "row")).height
        assert parts[name]["_row"].n_unique() + row_rejects == rows


# -- a tiny OMOP CDM 5.4 folder with a (tab-separated, Athena-style) CONCEPT ---------------
CONCEPTS = [
    ("201826", "Type 2 diabetes mellitus", "Condition", "SNOMED", "44054006"),
    ("44826462", "Type 2 diabetes mellitus without complications", "Condition", "ICD10CM", "E11.9"),
    ("40213154", "influenza, injectable, quadrivalent", "Drug", "CVX", "150"),
    ("1125315", "acetaminophen", "Drug", "RxNorm", "161"),
    ("45000001", "acetaminophen 500 MG Oral Tablet", "Drug", "NDC", "00904198261"),
    ("3004410", "Hemoglobin A1c", "Measurement", "LOINC", "4548-4"),
    ("8554", "percent", "Unit", "UCUM", "%"),
    ("9189", "Negative", "Meas Value", "SNOMED", "260385009"),
    ("8536", "Home", "Visit", "CMS Place of Service", "12"),
    ("581477", "Office Visit", "Visit", "Visit", "OV"),
]


@pytest.fixture
def cdm54(tmp_path: Path) -> Path:
    folder = tmp_path / "cdm54"
    _write(folder, "PERSON.csv", "person_id,gender_concept_id,year_of_birth,birth_datetime\n1,8532,1960,1960-03-04T00:00:00\n")
    _write(folder, "CONCEPT.csv", "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_code\n"
           + "".join("\t".join(c) + "\n" for c in CONCEPTS))
    _write(folder, "CONDITION_OCCURRENCE.csv",
           "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,condition_source_value,"
           "condition_source_concept_id\n"
           "1,1,201826,2020-01-01,E11.9,44826462\n"  # standard SNOMED + ICD-10-CM source: two events
           "2,1,201826,2020-01-02,44054006,201826\n"  # source = standard: one event
           "3,1,0,2020-01-03,E119,44826462\n"  # unmapped: the source concept's code
           "4,1,777,2020-01-04,,0\n")  # an id CONCEPT lacks
    _write(folder, "DRUG_EXPOSURE.csv",
           "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_end_date,"
           "drug_source_value,drug_source_concept_id\n"
           "1,1,40213154,2020-10-01,2020-10-01,150,40213154\n2,1,1125315,2020-10-02,2020-10-12,00904198261,45000001\n")
    _write(folder, "MEASUREMENT.csv",
           "measurement_id,person_id,measurement_concept_id,measurement_date,value_as_number,value_as_concept_id,"
           "unit_concept_id,unit_source_value,measurement_source_value,measurement_source_concept_id\n"
           "1,1,3004410,2020-02-01,6.1,0,8554,pct,4548-4,3004410\n"
           "2,1,3004410,2020-02-02,,9189,0,,4548-4,3004410\n"
           "3,1,3004410,2020-02-03,,4242,0,mg,4548-4,3004410\n")
    _write(folder, "VISIT_OCCURRENCE.csv",
           "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date,"
           "discharged_to_concept_id,discharged_to_source_value\n"
           "1,1,581477,2020-03-01,2020-03-01,8536,01\n")
    _write(folder, "LOCATION.csv", "")  # a zero-byte table is no table
    return folder


def test_cdm54_codes_through_concept(cdm54: Path) -> None:
    result = read_omop(cdm54, source="omop")
    parts, rejects = _parts(result), _rejects(result)
    conditions = parts["CONDITION_OCCURRENCE.csv"].sort("_row", "code_system")
    assert conditions.select("_row", "_record", "code_system", "code").rows() == [
        (1, "1", "ICD10CM", "E11.9"), (1, "1", "SNOMED", "44054006"),
        (2, "2", "SNOMED", "44054006"),
        (3, "3", "ICD10CM", "E11.9"),
    ]
    assert rejects.filter(pl.col("file") == "CONDITION_OCCURRENCE.csv").select(
        "row", "column", "value", "reason").rows() == [(4, "condition_concept_id", "777", NOT_IN_CONCEPT)]
    drugs = parts["DRUG_EXPOSURE.csv"].sort("_row")  # the NDC source code: no second event
    assert drugs.select("event_type", "code_system", "code", "event_end").rows() == [
        ("immunization", "CVX", "150", "2020-10-01"), ("medication", "RxNorm", "161", "2020-10-12")]
    labs = parts["MEASUREMENT.csv"].sort("_row")
    assert labs.select("value", "unit", "value_code").rows() == [
        ("6.1", "%", None), (None, None, "260385009"), (None, "mg", None)]
    assert rejects.filter(pl.col("file") == "MEASUREMENT.csv").select("row", "column", "value", "level").rows() == [
        (3, "value_as_concept_id", "4242", "field")]
    visit = parts["VISIT_OCCURRENCE.csv"].row(0, named=True)
    assert (visit["code_system"], visit["code"], visit["encounter_class"], visit["discharge_disposition"]) == (
        "Visit", "OV", "ambulatory", "CMS Place of Service:12")
    person = parts["PERSON.csv"]
    assert "zip5" not in person.columns  # zero-byte LOCATION: no address columns
    assert "race" not in person.columns and "deceased_date" not in person.columns  # nor race, DEATH


def test_vocabulary_from_elsewhere(cdm53: Path, cdm54: Path) -> None:
    result = read_omop(cdm53, source="ehr", vocabulary=cdm54)
    conditions = _parts(result)["condition_occurrence.csv"].sort("_row")
    assert conditions.select("_record", "code_system", "code").rows() == [
        ("101", "SNOMED", "44054006"), ("104", "ICD10CM", "E11.9")]
    visits = _parts(result)["VISIT_OCCURRENCE.CSV"]
    assert visits.filter(pl.col("_record") == "201")["discharge_disposition"].item() == "CMS Place of Service:12"


def test_detection_and_errors(tmp_path: Path, cdm53: Path) -> None:
    assert is_omop_folder(cdm53)
    assert not is_omop_folder(cdm53 / "person.csv")
    other = tmp_path / "other"
    _write(other, "person.csv", "patient_id,birth_date\n1,1990-01-01\n")  # a canonical file called person
    assert not is_omop_folder(other)
    with pytest.raises(InputDataError, match="no PERSON table"):
        read_omop(tmp_path, source="x")
    _write(cdm53, "measurement.csv", "measurement_id,person_id,measurement_date\n1,1,2020-01-01\n")
    with pytest.raises(InputDataError, match="MEASUREMENT is missing required column `measurement_concept_id`"):
        read_omop(cdm53, source="ehr")
    (cdm53 / "measurement.csv").unlink()
    _write(cdm53, "Person.parquet", "")
    with pytest.raises(InputDataError, match="two files for the OMOP table PERSON"):
        read_omop(cdm53, source="ehr")
