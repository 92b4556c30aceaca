"""The eCQM rules (rules/ecqm) with the real eCQM 2025/2026 value sets, and the external VSAC folder.

The value sets are not shipped (CPT, SNOMED CT licences): the tests read the bundles in the
reference data (``vsac/ecqm_cms_2025``) the way a user gives them, with ``--vsac DIR`` or
``SEGMENT_VSAC_DIR``. Hand-checked patients run through :func:`evaluate_frames` next to the
USPSTF rules, so every difference the docs list between the two variants is exercised.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.rules import RuleSet, check_rules, default_rules_dir, evaluate_frames, load_rules
from segment.rules.loader import check_rules_report, using_vsac
from segment.schema import EVENT_SCHEMA

from .helpers import D, patients

ECQM_DIR = default_rules_dir() / "ecqm"
AS_OF = D(2026, 12, 31)  # the end of the 2026 measurement period
pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def vsac(reference_data: Path) -> Path:
    return reference_data / "vsac" / "ecqm_cms_2025"


@pytest.fixture(scope="module")
def ecqm(vsac: Path) -> RuleSet:
    return load_rules(ECQM_DIR, vsac=vsac)


@pytest.fixture(scope="module")
def uspstf() -> RuleSet:
    return load_rules(default_rules_dir())


@pytest.fixture(autouse=True)
def _no_vsac_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_VSAC_DIR", raising=False)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--log-format", "plain", *args])
    return result.exit_code, result.stdout, result.stderr


# -- rules check / rules test with the VSAC files outside the rules folder -----------------
def test_rules_check_with_the_vsac_option(vsac: Path) -> None:
    code, out, err = _invoke("rules", "check", str(ECQM_DIR), "--vsac", str(vsac))
    assert (code, err) == (0, "")
    lines = [" ".join(x.split()) for x in out.splitlines()]
    assert "rules 5" in lines
    assert any(x.startswith("2.16.840.1.113883.3.464.1003.108.12.1018 Mammography LOINC 97 VSAC")
               for x in lines)
    assert any(x.startswith("2.16.840.1.113883.3.464.1003.198.12.1019 ICD10PCS 4") for x in lines)


def test_rules_test_with_the_environment_variable(vsac: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_VSAC_DIR", str(vsac))
    code, out, err = _invoke("rules", "test", str(ECQM_DIR))
    assert (code, err) == (0, "")
    assert not [x for x in out.splitlines() if x.startswith("FAIL")]
    assert " ".join(out.splitlines()[-1].split()) == "failed 0"
    assert sum(x.startswith("ok ") for x in out.splitlines()) >= 100


def test_rules_list_and_the_option_wins_over_the_environment(vsac: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_VSAC_DIR", str(tmp_path))  # an empty folder
    code, out, _err = _invoke("rules", "list", str(ECQM_DIR), "--vsac", str(vsac))
    assert code == 0
    ids = [x.split()[0] for x in out.splitlines()[2:]]
    assert ids == ["breast-cancer-screening-cms125", "cervical-cancer-screening-cms124",
                   "colorectal-cancer-screening-cms130", "diabetes-a1c-cms122",
                   "influenza-immunization-cms147"]


def test_vsac_files_inside_the_rules_folder_work_too(vsac: Path, tmp_path: Path) -> None:
    rules = tmp_path / "ecqm"
    shutil.copytree(ECQM_DIR, rules)
    (rules / "valuesets" / "vsac").mkdir()
    for bundle in vsac.glob("valuesets-*.json"):
        (rules / "valuesets" / "vsac" / bundle.name).symlink_to(bundle)
    for single in (vsac / "influenza_cms147_related").glob("*.json"):  # one ValueSet a file
        (rules / "valuesets" / "vsac" / single.name).symlink_to(single)
    ruleset, problems = check_rules(rules)
    assert problems == []
    assert ruleset is not None and len(ruleset.rules) == 5


def test_the_same_folder_named_twice_is_read_once(vsac: Path, tmp_path: Path) -> None:
    rules = tmp_path / "ecqm"
    shutil.copytree(ECQM_DIR, rules)
    (rules / "valuesets" / "vsac").symlink_to(vsac, target_is_directory=True)
    assert check_rules(rules, vsac=vsac)[1] == []


# -- without the VSAC files: one clear message, never a traceback --------------------------
def _no_vsac_message(root: Path, looked: str = "") -> str:
    return (
        f"Error: {root}: the rules name official value sets (94 references by VSAC OID or URL; "
        f"first: {root}/valuesets/adult-outpatient-encounters.yaml:8 include[0]) and no VSAC "
        f"file is loaded (looked in {root}/valuesets/vsac/{looked}). These rules need the value "
        "set expansions of the measures they follow (the eCQM value sets), downloaded from VSAC "
        "(https://vsac.nlm.nih.gov) as FHIR ValueSet/Bundle JSON, SVS XML or the spreadsheet "
        "export; they are not shipped (CPT and SNOMED CT licences). Put the files in "
        f"{root}/valuesets/vsac/, or give their folder with --vsac DIR or the SEGMENT_VSAC_DIR "
        "environment variable"
    )


def test_rules_check_without_vsac_files_says_what_is_needed_and_how() -> None:
    code, out, err = _invoke("rules", "check", str(ECQM_DIR))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [_no_vsac_message(ECQM_DIR), f"Error: 1 problem in {ECQM_DIR}"]


@pytest.mark.parametrize("command", [["rules", "test"], ["rules", "list"]])
def test_rules_test_and_list_without_vsac_files_fail_the_same_way(command: list[str]) -> None:
    code, _out, err = _invoke(*command, str(ECQM_DIR))
    assert code == 1
    assert err.splitlines() == [_no_vsac_message(ECQM_DIR)]


def test_the_per_reference_problems_are_kept_for_python_callers() -> None:
    report = check_rules_report(ECQM_DIR)
    assert report.no_vsac is not None
    assert len(report.unloaded) == 94
    assert report.shown() == [report.no_vsac]
    assert "no official value sets are loaded" in str(report.problems[0])


def test_an_empty_vsac_folder_is_named_in_the_message(tmp_path: Path) -> None:
    code, _out, err = _invoke("rules", "check", str(ECQM_DIR), "--vsac", str(tmp_path))
    assert code == 1
    assert err.splitlines()[0] == _no_vsac_message(ECQM_DIR, f" and {tmp_path}")


def test_a_missing_vsac_folder_from_the_environment_is_a_located_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("SEGMENT_VSAC_DIR", str(missing))
    _rs, problems = check_rules(ECQM_DIR)
    assert f"{missing}: VSAC folder not found (named by --vsac or SEGMENT_VSAC_DIR)" in [
        str(p) for p in problems]


def test_the_option_must_name_an_existing_folder(tmp_path: Path) -> None:
    code, _out, _err = _invoke("rules", "check", str(ECQM_DIR), "--vsac", str(tmp_path / "x"))
    assert code == 2


def test_using_vsac_reaches_library_calls_that_load_rules(vsac: Path) -> None:
    with using_vsac(vsac):
        assert len(load_rules(ECQM_DIR).rules) == 5
    assert check_rules_report(ECQM_DIR).no_vsac is not None


# -- hand-checked patients, eCQM next to USPSTF --------------------------------------------
VISIT = ("encounter", "CPT", "99213", D(2026, 3, 10))


def _events(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """(patient, type, system, code, date[, {end, answer, discharge, value, unit}]) rows."""
    out = []
    for row in rows:
        pid, etype, system, code, date, *rest = row
        extra: dict[str, Any] = rest[0] if rest else {}
        out.append({
            "patient_id": pid, "event_type": etype, "code_system": system, "code": code,
            "event_date": date, "value": extra.get("value"), "unit": extra.get("unit"),
            "event_end": extra.get("end"), "value_code": extra.get("answer"),
            "encounter_class": None, "discharge_disposition": extra.get("discharge"),
        })
    return pl.DataFrame(out, schema=EVENT_SCHEMA, orient="row")


def _statuses(ruleset: RuleSet, pats: pl.DataFrame, evs: pl.DataFrame, rule_id: str,
              as_of: dt.date = AS_OF) -> dict[str, tuple[str, str]]:
    out = evaluate_frames(pats.lazy(), evs.lazy(), ruleset, as_of, enriched=True).collect()
    rows = out.filter(pl.col("rule_id") == rule_id).sort("patient_id")
    return {r["patient_id"]: (r["status"], r["reason"]) for r in rows.iter_rows(named=True)}


def _side_by_side(uspstf: RuleSet, ecqm: RuleSet, pats: pl.DataFrame, evs: pl.DataFrame,
                  uspstf_id: str, ecqm_id: str) -> dict[str, tuple[str, str]]:
    """patient -> (USPSTF status, eCQM status)."""
    a = _statuses(uspstf, pats, evs, uspstf_id)
    b = _statuses(ecqm, pats, evs, ecqm_id)
    return {p: (a[p][0], b[p][0]) for p in sorted(a)}


def test_cms125_hand_checked(uspstf: RuleSet, ecqm: RuleSet) -> None:
    pats = patients(
        {"patient_id": "a41", "birth_date": D(1985, 6, 15), "sex": "F"},
        {"patient_id": "b27m", "birth_date": D(1970, 1, 1), "sex": "F"},
        {"patient_id": "c_lr", "birth_date": D(1960, 2, 2), "sex": "F"},
        {"patient_id": "d_novisit", "birth_date": D(1960, 2, 2), "sex": "F"},
        {"patient_id": "e_hospice", "birth_date": D(1958, 2, 2), "sex": "F"},
        {"patient_id": "f_died", "birth_date": D(1958, 2, 2), "sex": "F",
         "deceased_date": D(2026, 3, 1)},
        {"patient_id": "g_x", "birth_date": D(1970, 1, 1), "sex": "X"},
    )
    evs = _events([
        ("a41", *VISIT),
        ("b27m", *VISIT), ("b27m", "observation", "LOINC", "24606-6", D(2024, 10, 15)),
        ("c_lr", *VISIT), ("c_lr", "procedure", "SNOMED", "726429001", D(2010, 4, 4)),
        ("c_lr", "condition", "ICD10CM", "Z90.11", D(2022, 9, 9)),
        ("d_novisit", "encounter", "CPT", "99213", D(2025, 12, 30)),
        ("e_hospice", *VISIT), ("e_hospice", "encounter", "SNOMED", "305336008", D(2025, 11, 1)),
        ("f_died", "encounter", "CPT", "99213", D(2026, 2, 1)),
        ("g_x", *VISIT),
    ])
    assert _side_by_side(uspstf, ecqm, pats, evs, "breast-cancer-screening",
                         "breast-cancer-screening-cms125") == {
        "a41": ("due", "not_in_population"),  # 41 on Dec 31: USPSTF starts at 40, CMS125 at 42
        "b27m": ("due", "not_due"),  # 26.5 months: older than 2 years, after Oct 1 2024
        "c_lr": ("due", "excluded"),  # a left procedure and a right Z90.11: CMS125 sets only
        "d_novisit": ("due", "not_in_population"),  # no qualifying visit in 2026
        "e_hospice": ("due", "excluded"),  # hospice since Nov 2025, ongoing: overlaps 2026
        "f_died": ("excluded", "due"),  # death is not a CMS125 exclusion
        "g_x": ("unknown", "not_in_population"),  # Patient.sex = Female only
    }
    reasons = _statuses(ecqm, pats, evs, "breast-cancer-screening-cms125")
    assert reasons["c_lr"][1] == (
        "bilateral mastectomy: left on 2010-04-04 and right (status post) on 2022-09-09")
    assert reasons["e_hospice"][1] == (
        "hospice: hospice encounter from 2025-11-01, still ongoing, overlaps measurement year")


def test_cms130_hand_checked(uspstf: RuleSet, ecqm: RuleSet) -> None:
    pats = patients(
        {"patient_id": "a_fit", "birth_date": D(1960, 5, 5), "sex": "M"},
        {"patient_id": "b_colo", "birth_date": D(1960, 5, 5), "sex": "M"},
        {"patient_id": "c45", "birth_date": D(1981, 3, 1), "sex": "F"},
        {"patient_id": "d_pcs", "birth_date": D(1960, 5, 5), "sex": "F"},
        {"patient_id": "e_frail", "birth_date": D(1956, 1, 1), "sex": "M"},
        {"patient_id": "f_dnafit", "birth_date": D(1960, 5, 5), "sex": "F"},
        {"patient_id": "g_fit_noresult", "birth_date": D(1960, 5, 5), "sex": "F"},
    )
    evs = _events([
        ("a_fit", *VISIT), ("a_fit", "observation", "LOINC", "2335-8", D(2025, 12, 31), {"value": 0.0}),
        ("b_colo", *VISIT), ("b_colo", "procedure", "CPT", "45378", D(2017, 1, 1)),
        ("c45", *VISIT),
        ("d_pcs", *VISIT), ("d_pcs", "procedure", "ICD10PCS", "0DTE4ZZ", D(2019, 9, 9)),
        ("e_frail", *VISIT), ("e_frail", "condition", "ICD10CM", "W19.XXXA", D(2026, 5, 1)),
        ("e_frail", "condition", "ICD10CM", "C71.9", D(2025, 6, 1)),
        ("f_dnafit", *VISIT), ("f_dnafit", "observation", "LOINC", "77353-1", D(2023, 12, 31)),
        ("g_fit_noresult", *VISIT), ("g_fit_noresult", "observation", "LOINC", "2335-8", D(2026, 5, 5)),
    ])
    assert _side_by_side(uspstf, ecqm, pats, evs, "colorectal-cancer-screening",
                         "colorectal-cancer-screening-cms130") == {
        "a_fit": ("not_due", "due"),  # FIT on Dec 31 2025: within 1 year, not in the period
        "b_colo": ("not_due", "not_due"),  # colonoscopy in the period or the 9 years before
        "c45": ("due", "not_in_population"),  # 45 on Dec 31: CMS130 starts at 46
        "d_pcs": ("due", "excluded"),  # total colectomy coded in ICD-10-PCS
        "e_frail": ("due", "excluded"),  # 70, frailty (a fall) and advanced illness
        "f_dnafit": ("not_due", "due"),  # stool DNA on Dec 31 2023: 3 years, before 2024-01-01
        "g_fit_noresult": ("not_due", "due"),  # CMS130 counts an FOBT only with a result
    }
    reasons = _statuses(ecqm, pats, evs, "colorectal-cancer-screening-cms130")
    assert reasons["d_pcs"][1] == "total colectomy on 2019-09-09"
    assert reasons["a_fit"][1] == (
        "no qualifying colorectal cancer screening: last FOBT on 2025-12-31 is before the "
        "measurement year (since 2026-01-01)")


def test_cms124_hand_checked(uspstf: RuleSet, ecqm: RuleSet) -> None:
    pats = patients(
        {"patient_id": "a22", "birth_date": D(2004, 5, 5), "sex": "F"},
        {"patient_id": "b_hpv", "birth_date": D(1980, 1, 1), "sex": "F"},
        {"patient_id": "c65", "birth_date": D(1961, 6, 6), "sex": "F"},
        {"patient_id": "d_pcs", "birth_date": D(1975, 1, 1), "sex": "F"},
        {"patient_id": "e_hpv29", "birth_date": D(1992, 6, 1), "sex": "F"},
        {"patient_id": "f_awv", "birth_date": D(1980, 1, 1), "sex": "F"},
    )
    evs = _events([
        ("a22", *VISIT),
        ("b_hpv", *VISIT), ("b_hpv", "observation", "LOINC", "59420-0", D(2021, 12, 31)),
        ("c65", *VISIT),
        ("d_pcs", *VISIT), ("d_pcs", "procedure", "ICD10PCS", "0UTC4ZZ", D(2012, 2, 2)),
        ("e_hpv29", *VISIT), ("e_hpv29", "observation", "LOINC", "59420-0", D(2022, 5, 31)),
        ("f_awv", "encounter", "HCPCS", "G0438", D(2026, 3, 3)),
    ])
    assert _side_by_side(uspstf, ecqm, pats, evs, "cervical-cancer-screening",
                         "cervical-cancer-screening-cms124") == {
        "a22": ("due", "not_in_population"),  # 22: USPSTF from 21, CMS124 from 24
        "b_hpv": ("not_due", "due"),  # hrHPV on Dec 31 2021: 5 years ago, before 2022-01-01
        "c65": ("due", "not_in_population"),  # 65: USPSTF to 65, CMS124 to 64
        "d_pcs": ("due", "excluded"),  # resection of cervix coded in ICD-10-PCS
        "e_hpv29": ("due", "due"),  # hrHPV the day before her 30th birthday counts in neither
        "f_awv": ("due", "not_in_population"),  # an annual wellness visit is no CMS124 visit
    }


def test_cms122_hand_checked(uspstf: RuleSet, ecqm: RuleSet) -> None:
    pats = patients(
        {"patient_id": "a_lastyear", "birth_date": D(1962, 2, 2), "sex": "M"},
        {"patient_id": "b_resolved", "birth_date": D(1962, 2, 2), "sex": "M"},
        {"patient_id": "c_high", "birth_date": D(1962, 2, 2), "sex": "F"},
        {"patient_id": "d_ltc", "birth_date": D(1955, 2, 2), "sex": "F"},
        {"patient_id": "e_ok", "birth_date": D(1962, 2, 2), "sex": "F"},
        {"patient_id": "f_noresult", "birth_date": D(1962, 2, 2), "sex": "M"},
        {"patient_id": "g_ifcc", "birth_date": D(1962, 2, 2), "sex": "M"},
        {"patient_id": "h_glucose", "birth_date": D(1962, 2, 2), "sex": "M"},
    )
    evs = _events([
        ("a_lastyear", *VISIT), ("a_lastyear", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("a_lastyear", "observation", "LOINC", "4548-4", D(2025, 12, 31), {"value": 7.0}),
        ("b_resolved", *VISIT),
        ("b_resolved", "condition", "ICD10CM", "E11.9", D(2020, 1, 1), {"end": D(2025, 6, 30)}),
        ("c_high", *VISIT), ("c_high", "condition", "ICD10CM", "E11.65", D(2015, 1, 1)),
        ("c_high", "observation", "LOINC", "4548-4", D(2026, 6, 1), {"value": 10.2}),
        ("d_ltc", *VISIT), ("d_ltc", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("d_ltc", "observation", "LOINC", "71802-3", D(2026, 1, 5), {"answer": "160734000"}),
        ("e_ok", *VISIT), ("e_ok", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("e_ok", "observation", "LOINC", "4548-4", D(2026, 2, 1), {"value": 9.8, "unit": "%"}),
        ("e_ok", "observation", "LOINC", "4548-4", D(2026, 11, 1), {"value": 9.0, "unit": "%"}),
        ("f_noresult", *VISIT), ("f_noresult", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("f_noresult", "observation", "LOINC", "4548-4", D(2026, 11, 1)),
        ("g_ifcc", *VISIT), ("g_ifcc", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("g_ifcc", "observation", "LOINC", "4548-4", D(2026, 11, 1), {"value": 80.0, "unit": "mmol/mol"}),
        ("h_glucose", *VISIT), ("h_glucose", "condition", "ICD10CM", "E11.9", D(2015, 1, 1)),
        ("h_glucose", "observation", "LOINC", "4548-4", D(2026, 11, 1), {"value": 180.0, "unit": "mg/dL"}),
    ])
    assert _side_by_side(uspstf, ecqm, pats, evs, "diabetes-a1c", "diabetes-a1c-cms122") == {
        "a_lastyear": ("not_due", "due"),  # A1c on Dec 31 2025: within 12 months, not in 2026
        "b_resolved": ("due", "not_in_population"),  # diabetes ended before the period
        "c_high": ("not_due", "due"),  # 10.2%: poor control, the measure's numerator
        "d_ltc": ("due", "excluded"),  # 71, last housing status: lives in a nursing home
        "e_ok": ("not_due", "not_due"),  # 9.8% in February, then exactly 9.0%: the last decides
        "f_noresult": ("not_due", "due"),  # an HbA1c without a result is poor control
        "g_ifcc": ("not_due", "due"),  # 80 mmol/mol = 9.47% NGSP
        "h_glucose": ("not_due", "unknown"),  # mg/dL is no HbA1c unit: never a confident status
    }
    reasons = _statuses(ecqm, pats, evs, "diabetes-a1c-cms122")
    assert reasons["g_ifcc"][1] == (
        "no qualifying glycemic status assessment at or below 9%: last glycemic status assessment "
        "on 2026-11-01 is in the measurement year (since 2026-01-01), result 9.47% (needs ≤ 9%)")
    assert reasons["h_glucose"][1] == (
        "last glycemic status assessment on 2026-11-01 is in the measurement year (since "
        "2026-01-01) but has a result in mg/dL, which cannot be compared with 9%")


def test_evaluate_and_explain_take_the_vsac_option(vsac: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    patients(
        {"patient_id": "p1", "birth_date": D(1970, 1, 1), "sex": "F"},
        {"patient_id": "p2", "birth_date": D(1960, 1, 1), "sex": "M"},
    ).write_parquet(work / "patients.parquet")
    _events([
        ("p1", *VISIT), ("p1", "observation", "LOINC", "24606-6", D(2025, 2, 2)),
        ("p2", *VISIT),
    ]).write_parquet(work / "events.parquet")
    code, _out, err = _invoke("evaluate", str(work), "--rules", str(ECQM_DIR), "--as-of",
                              "2026-12-31")
    assert code == 1
    assert err.splitlines() == [_no_vsac_message(ECQM_DIR)]
    code, out, err = _invoke("evaluate", str(work), "--rules", str(ECQM_DIR), "--as-of",
                             "2026-12-31", "--vsac", str(vsac))
    assert code == 0
    lines = [" ".join(x.split()) for x in out.splitlines()]
    assert "breast-cancer-screening-cms125 2 1 1 0 1 0 0" in lines
    assert "colorectal-cancer-screening-cms130 2 2 2 2 0 0 0" in lines
    code, out, err = _invoke("explain", str(work), "p1", "--rules", str(ECQM_DIR), "--as-of",
                             "2026-12-31", "--vsac", str(vsac))
    assert code == 0, err
    assert ("breast-cancer-screening-cms125 not_due 2025-02-02 mammogram on 2025-02-02 is on or "
            "after 2024-10-01") in [" ".join(x.split()) for x in out.splitlines()]
