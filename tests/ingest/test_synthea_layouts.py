"""The Synthea reader on every real layout, 2017 to 3.x, and on tiny inline folders."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from segment.addresses.pub28 import DIRECTIONALS, UNIT_DESIGNATORS
from segment.errors import InputDataError
from segment.ingest.codesystems import normalize_system
from segment.ingest.mapping import EVENT_INPUT_COLUMNS, PATIENT_INPUT_COLUMNS
from segment.ingest.readers import REJECT_SCHEMA, ReadResult
from segment.ingest.readers.synthea import is_synthea_folder, read_synthea
from segment.ingest.readers.synthea.address import UNSPLIT_REASON, split_whole_addresses
from segment.ingest.readers.synthea.claims import (
    CLAIM_EMPTY,
    CLAIM_REPEAT,
    LINE_BILLING,
    LINE_REPEAT,
    LINE_UNMATCHED,
)
from segment.ingest.readers.synthea.clinical import GBD_REASON, LOCAL_CODE_REASON

SAMPLES = (
    "samples/synthea_csv/synthea_2017_fusephir_ma_first100p",
    "samples/synthea_csv/synthea_2018_cogstack_ma_127p",
    "samples/synthea_csv/synthea_v2x_2020_invitae_ca_10p",
    "samples/synthea_csv/synthea_v2x_2020_mcode_ma_115p",
    "samples/synthea_csv/synthea_v3.0_preincome_dbt_synthea_ma_27p",
    "samples/synthea_csv/synthea_v3x_fips_income_jijones12_ma_10p",
    "samples/synthea_csv/synthea_v3x_system_label_krvenkat12_ma_10p",
    "samples/synthea_csv/synthea_v3x_system_uri_sarabuzzi_ma_112p",
    "synthea/ma",
    "synthea/ne",
)
OLD_2017 = SAMPLES[0]
SYSTEM_URI = SAMPLES[7]
ENCOUNTER_CLASSES = {"wellness", "ambulatory", "outpatient", "urgentcare", "emergency", "inpatient", "snf",
                     "home", "hospice", "virtual"}
_read_cache: dict[Path, ReadResult] = {}


def _read(folder: Path) -> ReadResult:
    if folder not in _read_cache:
        _read_cache[folder] = read_synthea(folder, source="synthea")
    return _read_cache[folder]


def _rows(path: Path) -> int:
    return int(pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item())


def _part(result: ReadResult, name: str) -> pl.DataFrame:
    frames = [p.frame.collect() for p in result.parts if Path(p.file).name == name]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _rejects(result: ReadResult) -> pl.DataFrame:
    return pl.concat(result.rejects) if result.rejects else pl.DataFrame(schema=REJECT_SCHEMA)


# -- the real exports -----------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_detected_and_every_patient_read(reference_data: Path, sample: str) -> None:
    folder = reference_data / sample
    assert is_synthea_folder(folder)
    patients = _part(_read(folder), "patients.csv")
    assert patients.height == _rows(folder / "patients.csv")
    assert patients["patient_id"].null_count() == 0
    assert patients["_record"].to_list() == patients["patient_id"].to_list()
    assert not patients["first_name"].str.contains(r"\d").any()
    assert not patients["last_name"].str.contains(r"\d").any()


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_row_reconciles_and_columns_are_canonical(reference_data: Path, sample: str) -> None:
    """Rows of each file read = rows in parts + rows rejected + rows skipped by name."""
    result = _read(reference_data / sample)
    rejects = _rejects(result).filter(pl.col("level") == "row")
    files = {p.file for p in result.parts} | set(result.skipped)
    for file in files:
        parts = [p for p in result.parts if p.file == file]
        in_parts = pl.concat([p.frame.select("_row").collect() for p in parts]) if parts else pl.DataFrame(
            {"_row": []}, schema={"_row": pl.Int64})
        rejected = rejects.filter(pl.col("file") == file)["row"]
        skipped = sum(result.skipped.get(file, {}).values())
        assert _rows(Path(file)) == in_parts["_row"].n_unique() + rejected.n_unique() + skipped, file
        assert not set(in_parts["_row"]) & set(rejected)
    for part in result.parts:
        allowed = set(PATIENT_INPUT_COLUMNS if part.kind == "patients" else EVENT_INPUT_COLUMNS)
        names = set(part.frame.collect_schema().names()) - {"_row", "_record"}
        assert names <= allowed, (part.file, names - allowed)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_code_system_is_known(reference_data: Path, sample: str) -> None:
    for part in _read(reference_data / sample).parts:
        if part.kind == "events":
            systems = part.frame.select(normalize_system(pl.col("code_system")).alias("s")).collect()["s"]
            assert systems.null_count() == 0, part.file


def test_system_uris_normalize_to_snomed(reference_data: Path) -> None:
    folder = reference_data / SYSTEM_URI
    result = _read(folder)
    for name in ("conditions.csv", "procedures.csv"):
        events = _part(result, name)
        assert events.height == _rows(folder / name)
        assert set(events["code_system"]) == {"http://snomed.info/sct"}
        assert set(events.select(normalize_system(pl.col("code_system")))["code_system"]) == {"SNOMED"}


def test_2017_whole_address_is_split(reference_data: Path) -> None:
    """Measured: all 100 addresses of the 2017 sample split (street, city, state, ZIP)."""
    folder = reference_data / OLD_2017
    result = _read(folder)
    patients = _part(result, "patients.csv")
    split = patients.filter(pl.col("city").is_not_null() & pl.col("state").is_not_null()
                            & pl.col("zip5").is_not_null())
    assert split.height / patients.height >= 0.99
    assert set(patients["state"]) == {"MA"}
    assert patients["zip5"].str.contains(r"^\d{5}$").all()
    raw = pl.read_csv(folder / "patients.csv", infer_schema=False)["ADDRESS"]
    rebuilt = patients.select(pl.concat_str(["address_line1", "city", "state", "zip5"], separator=" ") + " US")
    assert rebuilt.to_series().to_list() == raw.to_list()
    row = patients.filter(pl.col("patient_id") == "7ae34cf3-b987-485b-b69a-495bde51be3f").row(0, named=True)
    assert (row["address_line1"], row["city"], row["zip5"]) == ("786 Ena Rest Apt. 656", "Ashland", "01721")
    assert _rejects(result).filter(pl.col("reason") == UNSPLIT_REASON).height == 0


def test_whole_address_split_recovers_the_3x_columns(reference_data: Path) -> None:
    """Rebuilt ``ADDRESS CITY ST ZIP US`` strings of every later layout split back exactly."""
    states = {"Massachusetts": "MA", "California": "CA", "Nebraska": "NE"}
    frames = []
    for sample in SAMPLES[1:]:
        raw = pl.read_csv(reference_data / sample / "patients.csv", infer_schema=False)
        frames.append(raw.select(
            pl.col("ADDRESS").alias("a"), pl.col("CITY").alias("c"),
            pl.col("STATE").replace(states).alias("s"), pl.col("ZIP").fill_null("").str.zfill(5).alias("z"),
        ))
    truth = pl.concat(frames).unique().with_columns(
        pl.concat_str(["a", "c", "s", "z"], separator=" ").add(" US").alias("ADDRESS"))
    out = split_whole_addresses(truth.lazy()).join(truth, on="ADDRESS")
    exact = out.filter((pl.col("street") == pl.col("a")) & (pl.col("city") == pl.col("c"))
                       & (pl.col("state") == pl.col("s")) & (pl.col("zip") == pl.col("z")))
    assert out.height > 500
    assert exact.height / out.height >= 0.99  # measured: every one of 524


@pytest.mark.parametrize("sample", SAMPLES)
def test_encounters_class_and_end(reference_data: Path, sample: str) -> None:
    folder = reference_data / sample
    encounters = _part(_read(folder), "encounters.csv")
    header = pl.read_csv(folder / "encounters.csv", n_rows=0).columns
    if "ENCOUNTERCLASS" in header:
        assert encounters["encounter_class"].null_count() == 0
        assert set(encounters["encounter_class"]) <= ENCOUNTER_CLASSES
    else:  # 2017-2018: no class in the export, so no column (never a column of nulls)
        assert "encounter_class" not in encounters.columns
    assert ("event_end" in encounters.columns) == ("STOP" in header)


@pytest.mark.parametrize("sample", SAMPLES)
def test_stop_is_event_end(reference_data: Path, sample: str) -> None:
    folder = reference_data / sample
    result = _read(folder)
    for name in ("conditions.csv", "medications.csv"):
        raw = pl.read_csv(folder / name, infer_schema=False)
        events = _part(result, name)
        assert events["event_end"].to_list() == raw["STOP"].to_list()


@pytest.mark.parametrize("sample", [s for s in SAMPLES if "mcode" not in s and "sarabuzzi" not in s
                                    and s != "synthea/ne"])
def test_observations(reference_data: Path, sample: str) -> None:
    folder = reference_data / sample
    result = _read(folder)
    raw = pl.read_csv(folder / "observations.csv", infer_schema=False)
    gbd = raw.filter(pl.col("CODE").is_in(["QALY", "DALY", "QOLS"])).height
    assert result.skipped.get(str(folder / "observations.csv"), {}).get(GBD_REASON, 0) == gbd
    events = _part(result, "observations.csv")
    assert not events["code"].is_in(["QALY", "DALY", "QOLS"]).any()
    assert "value_code" not in events.columns
    values = events.filter(pl.col("value").is_not_null())
    assert values["value"].cast(pl.Float64, strict=False).null_count() == 0
    assert events.filter(pl.col("value").is_null())["unit"].null_count() == events["value"].null_count()
    if "TYPE" in raw.columns:
        assert values.height == raw.filter(pl.col("TYPE") == "numeric").height - gbd


def test_claims_repeat_the_clinical_rows(reference_data: Path) -> None:
    """On the 3.x samples every claim diagnosis and CHARGE line repeats a clinical row."""
    for sample in SAMPLES[4:9]:
        folder = reference_data / sample
        result = _read(folder)
        claims = str(folder / "claims.csv")
        assert result.skipped[claims] == {CLAIM_REPEAT: _rows(folder / "claims.csv")}
        assert not [p for p in result.parts if p.file == claims]
        lines = folder / "claims_transactions.csv"
        if lines.is_file():
            raw = pl.read_csv(lines, infer_schema=False)
            charges = raw.filter(pl.col("TYPE") == "CHARGE").height
            assert result.skipped[str(lines)] == {LINE_REPEAT: charges, LINE_BILLING: raw.height - charges}


def test_old_header_case_was_the_allergies_error(reference_data: Path) -> None:
    """2017-2018 headers say ``ID``: detection by header ignores case (it required ``Id``)."""
    header = pl.read_csv(reference_data / OLD_2017 / "patients.csv", n_rows=0).columns
    assert "ID" in header and "Id" not in header
    assert is_synthea_folder(reference_data / OLD_2017)


# -- tiny inline folders ------------------------------------------------------------------------

PATIENTS = (
    "id,Birthdate,DEATHDATE,SSN,First,Last,Gender,Race,Ethnicity,Address\n"
    "p1,1980-01-02,,999-1,Ann12,Lee34,F,white,irish,12 Oak Street Apt. 3 Salem MA 01970 US\n"
    "p2,1990-03-04,,999-2,Bo5,Ng6,M,hispanic,mexican,General Delivery\n"
    "p3,1991-03-04,,999-3,Cy,Ro,M,black,african,\n"
)


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_any_header_case_and_an_unsplit_address(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"patients.csv": PATIENTS})
    assert is_synthea_folder(folder)
    result = read_synthea(folder, source="s")
    patients = _part(result, "patients.csv")
    assert patients.select("patient_id", "first_name", "last_name", "address_line1", "city", "state",
                           "zip5").rows() == [
        ("p1", "Ann", "Lee", "12 Oak Street Apt. 3", "Salem", "MA", "01970"),
        ("p2", "Bo", "Ng", "General Delivery", None, None, None),
        ("p3", "Cy", "Ro", None, None, None, None),
    ]
    assert patients.select("race", "ethnicity").row(1) == ("hispanic", "mexican")  # read by ingest.race
    rejects = _rejects(result)
    assert rejects.select("row", "record_id", "column", "reason", "level").rows() == [
        (2, "p2", "address_line1", UNSPLIT_REASON, "field")]
    assert result.parts[0].source == "s"


def test_not_synthea(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"patients.csv": "patient_id,birth_date,first,last,gender\n1,2000-01-01,A,B,F\n"})
    assert not is_synthea_folder(folder)
    assert not is_synthea_folder(tmp_path / "nowhere")
    (tmp_path / "bare").mkdir()
    bare = _folder(tmp_path / "bare", {"patients.csv": "ID,BIRTHDATE,FIRST,LAST,GENDER\n1,2000-01-01,A,B,F\n"})
    assert not is_synthea_folder(bare)  # no SSN, DRIVERS, PASSPORT, BIRTHPLACE or MAIDEN


def test_missing_required_column_names_the_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"patients.csv": PATIENTS, "conditions.csv": "START,PATIENT,ENCOUNTER\n"})
    with pytest.raises(InputDataError, match="CODE") as err:
        read_synthea(folder)
    assert err.value.path == folder / "conditions.csv"


def test_observation_values_and_codes(tmp_path: Path) -> None:
    observations = (
        "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
        "2020-01-01T10:00:00Z,p1,e1,vital-signs,8302-2,Body Height,170.2,cm,numeric\n"
        "2020-01-01T10:00:00Z,p1,e1,social-history,72166-2,Tobacco smoking status,Never smoked,,text\n"
        "2020-01-01T10:00:00Z,p1,e1,exam,413078003,LogMAR right eye,0.3,{logmar},numeric\n"
        "2020-01-01T10:00:00Z,p1,e1,survey,X9999-1,Operative Status Value,elective,{score},text\n"
        "2020-01-01T10:00:00Z,p1,,,QALY,QALY,7.0,a,numeric\n"
    )
    folder = _folder(tmp_path, {"patients.csv": PATIENTS, "observations.csv": observations})
    result = read_synthea(folder)
    events = _part(result, "observations.csv")
    assert events.select("_row", "_record", "code_system", "code", "value", "unit").rows() == [
        (1, "e1", "LOINC", "8302-2", "170.2", "cm"),
        (2, "e1", "LOINC", "72166-2", None, None),
        (3, "e1", "SNOMED", "413078003", "0.3", "{logmar}"),
    ]
    assert result.skipped == {str(folder / "observations.csv"): {GBD_REASON: 1}}
    rejects = _rejects(result).filter(pl.col("file") == str(folder / "observations.csv"))
    assert rejects.select("row", "record_id", "column", "value", "reason", "level").rows() == [
        (4, "e1", "code", "X9999-1", LOCAL_CODE_REASON, "row")]


def test_2017_layouts_dates_and_values(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {
        "patients.csv": PATIENTS,
        "encounters.csv": "ID,DATE,PATIENT,CODE,DESCRIPTION\ne1,2012-10-20,p1,170258001,Outpatient\n",
        "procedures.csv": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION\n2012-10-20,p1,e1,288086009,Suture\n",
        "observations.csv": ("DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,VALUE,UNITS\n"
                             "2012-10-20,p1,e1,8302-2,Body Height,130.61,cm\n"
                             "2012-10-20,p1,e1,76690-7,Sexual orientation,heterosexual,{nominal}\n"),
    })
    result = read_synthea(folder)
    encounters = _part(result, "encounters.csv")
    assert encounters.row(0, named=True) == {
        "_row": 1, "_record": "e1", "patient_id": "p1", "event_type": "encounter", "code_system": "SNOMED",
        "code": "170258001", "event_date": "2012-10-20"}
    assert _part(result, "procedures.csv")["event_date"].to_list() == ["2012-10-20"]
    assert _part(result, "observations.csv")["value"].to_list() == ["130.61", None]


def test_claims_read_only_what_no_clinical_row_has(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {
        "patients.csv": PATIENTS,
        "encounters.csv": ("Id,START,STOP,PATIENT,ENCOUNTERCLASS,CODE,REASONCODE\n"
                           "e1,2020-01-01T10:00:00Z,2020-01-01T10:15:00Z,p1,emergency,50849002,\n"),
        "conditions.csv": "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE\n2020-01-01,,p1,e1,SNOMED-CT,44054006\n",
        "procedures.csv": "START,STOP,PATIENT,ENCOUNTER,CODE\n2020-01-01T10:05:00Z,,p1,e1,430193006\n",
        "claims.csv": ("Id,PATIENTID,DIAGNOSIS1,DIAGNOSIS2,APPOINTMENTID,SERVICEDATE\n"
                       "c1,p1,44054006,50849002,e1,2020-01-01T10:00:00Z\n"
                       "c2,p1,44054006,59621000,e1,2020-01-01T10:00:00Z\n"
                       "c3,p1,,,e1,2020-01-01T10:00:00Z\n"),
        "claims_transactions.csv": ("ID,CLAIMID,PATIENTID,TYPE,FROMDATE,PROCEDURECODE,APPOINTMENTID\n"
                                    "t1,c1,p1,CHARGE,2020-01-01T10:00:00Z,50849002,e1\n"
                                    "t2,c1,p1,CHARGE,2020-01-01T10:00:00Z,430193006,e1\n"
                                    "t3,c1,p1,PAYMENT,2020-01-01T10:00:00Z,430193006,e1\n"
                                    "t4,c1,p1,CHARGE,2020-01-01T10:00:00Z,140,e1\n"),
    })
    result = read_synthea(folder)
    claims = _part(result, "claims.csv")
    assert claims.select("_row", "_record", "event_type", "code_system", "code", "event_date").rows() == [
        (2, "c2", "condition", "SNOMED", "59621000", "2020-01-01T10:00:00Z")]
    assert result.skipped[str(folder / "claims.csv")] == {CLAIM_REPEAT: 1, CLAIM_EMPTY: 1}
    assert result.skipped[str(folder / "claims_transactions.csv")] == {
        LINE_REPEAT: 2, LINE_BILLING: 1, LINE_UNMATCHED: 1}
    assert _part(result, "conditions.csv")["code_system"].to_list() == ["SNOMED-CT"]
    assert _part(result, "encounters.csv")["encounter_class"].to_list() == ["emergency"]


# -- the address splitter, as a property ----------------------------------------------------------

_WORD = st.from_regex(r"[A-Z][a-z]{2,9}", fullmatch=True).filter(
    lambda w: w.upper() not in DIRECTIONALS and w.upper() not in UNIT_DESIGNATORS)
_SUFFIX = st.sampled_from(["Street", "Points", "Rest", "Isle", "Divide", "Lodge", "Crossing", "Court",
                           "Wynd", "Vale", "Parade", "Frontage road", "Bay", "Quay"])
_UNIT = st.one_of(st.just(""), st.from_regex(r" (Apt\.|Suite|Unit) [1-9][0-9]{0,2}", fullmatch=True))
_CITY = st.lists(_WORD, min_size=1, max_size=3).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 99999), _WORD, _SUFFIX, _UNIT, _CITY, st.sampled_from(["MA", "CA", "NE", "TX"]),
       st.from_regex(r"[0-9]{5}", fullmatch=True))
@example(1, "Aaa", "Street", "", "Stea", "MA", "00000")  # a city starting "Ste" is not a suite
def test_synthea_shaped_addresses_split_exactly(
    number: int, name: str, suffix: str, unit: str, city: str, state: str, zip5: str
) -> None:
    street = f"{number} {name} {suffix}{unit}"
    text = f"{street} {city} {state} {zip5} US"
    out = split_whole_addresses(pl.LazyFrame({"ADDRESS": [text]}))
    assert out.select("street", "city", "state", "zip").row(0) == (street, city, state, zip5)


def test_addresses_off_the_synthea_shape_go_to_usaddress() -> None:
    texts = ["PO Box 12 Boston MA 02115 US", "12 N Park St Boston MA 02115 US", "General Delivery", "unknown"]
    out = split_whole_addresses(pl.LazyFrame({"ADDRESS": texts}))
    got = {r[0]: r[1:] for r in out.select("ADDRESS", "street", "city", "state", "zip", "method").rows()}
    assert got[texts[0]] == ("PO Box 12", "Boston", "MA", "02115", "usaddress")
    assert got[texts[1]] == ("12 N Park St", "Boston", "MA", "02115", "usaddress")
    assert got["General Delivery"] == ("General Delivery", None, None, None, None)
    assert got["unknown"] == ("unknown", None, None, None, None)
