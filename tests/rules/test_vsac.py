"""Official (VSAC) value sets: FHIR JSON, SVS XML and xlsx files, references by OID/URL."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from segment.cli import cli
from segment.errors import RulesError
from segment.rules import check_rules, load_rules
from segment.rules.loader import ValueSetCount, valueset_counts
from segment.rules.model import ValueSet
from segment.rules.vsac import (
    Catalog,
    OfficialRef,
    ParsedFile,
    load_catalog,
    parse_reference,
    read_fhir_json,
    read_svs_xml,
    read_vsac_xlsx,
)

from .helpers import MINI_RULE, D, events, mini_folder, patients, run

ECQM = "vsac/ecqm_cms_2025"
CMS130 = "valuesets-CMS130FHIRColorectalCancerScreening-bundle.json"
COLONOSCOPY = "2.16.840.1.113883.3.464.1003.108.12.1020"  # CMS130 Colonoscopy, 20171219
FOBT = "2.16.840.1.113883.3.464.1003.198.12.1011"  # CMS130 FOBT, 20171219
COLON_CANCER = "2.16.840.1.113883.3.464.1003.108.12.1001"  # Malignant Neoplasm of Colon
FED_SEX = "2.16.840.1.113762.1.4.1021.121"  # no expansion in any bundle
VSAC_URL = "http://cts.nlm.nih.gov/fhir/ValueSet/"
SVS_NS = "urn:ihe:iti:svs:2008"

# -- synthetic files: one value set in the three formats --------------------------------
SYN_OID = "2.16.840.1.113883.3.464.1003.999.12.1"
SYN_VERSION = "20240101"
#: (FHIR system URI, SVS/xlsx code system OID, SVS/xlsx name, code)
CONCEPTS = [
    ("http://www.ama-assn.org/go/cpt", "2.16.840.1.113883.6.12", "CPT", "45378"),
    ("http://snomed.info/sct", "2.16.840.1.113883.6.96", "SNOMEDCT", "73761001"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "2.16.840.1.113883.6.90", "ICD10CM", "C18.0"),
    ("http://www.nlm.nih.gov/research/umls/hcpcs", "2.16.840.1.113883.6.285", "HCPCS", "G0105"),
    ("http://loinc.org", "2.16.840.1.113883.6.1", "LOINC", "57905-2"),
    ("http://hl7.org/fhir/sid/cvx", "2.16.840.1.113883.12.292", "CVX", "08"),
    ("https://www.cdc.gov/nhsn/cdaportal/terminology/codesystem/hsloc.html",
     "2.16.840.1.113883.6.259", "HSLOC", "1108-0"),
    ("urn:oid:2.16.840.1.113883.6.238", "2.16.840.1.113883.6.238", "CDCREC", "2106-3"),
]
EXPECTED_CODES = {("CPT", "45378"), ("SNOMED", "73761001"), ("ICD10CM", "C180"),
                  ("HCPCS", "G0105"), ("LOINC", "57905-2"), ("CVX", "8")}
EXPECTED_UNMATCHED = {("HSLOC", "1108-0"), ("CDCREC", "2106-3")}


def fhir_json(concepts: list[tuple[str, str, str, str]] = CONCEPTS, *, oid: str = SYN_OID,
              version: str = SYN_VERSION, bundle: bool = True) -> str:
    vs = {
        "resourceType": "ValueSet", "id": oid, "url": VSAC_URL + oid, "version": version,
        "title": "Synthetic Colonoscopy",
        "expansion": {"contains": [{"system": s, "code": c, "display": "x"}
                                   for s, _oid, _name, c in concepts]},
    }
    doc = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": vs}]}
    return json.dumps(doc if bundle else vs)


def svs_xml(concepts: list[tuple[str, str, str, str]] = CONCEPTS, *, oid: str = SYN_OID) -> str:
    rows = "\n".join(
        f'      <ns0:Concept code="{escape(c)}" codeSystem="{cs}" codeSystemName="{name}" '
        f'codeSystemVersion="2024" displayName="x"/>'
        for _uri, cs, name, c in concepts
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ns0:RetrieveMultipleValueSetsResponse xmlns:ns0="{SVS_NS}">
  <ns0:DescribedValueSet ID="{oid}" displayName="Synthetic Colonoscopy" version="{SYN_VERSION}">
    <ns0:ConceptList>
{rows}
    </ns0:ConceptList>
    <ns0:Source>Synthetic</ns0:Source>
  </ns0:DescribedValueSet>
</ns0:RetrieveMultipleValueSetsResponse>
"""


def _cell(ref: str, value: str | int, shared: list[str]) -> str:
    if isinstance(value, int):  # a code Excel stored as a number
        return f'<c r="{ref}"><v>{value}</v></c>'
    if len(shared) % 2:  # alternate shared and inline strings: both are read
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    shared.append(value)
    return f'<c r="{ref}" t="s"><v>{len(shared) - 1}</v></c>'


def _sheet(rows: list[list[str | int | None]], shared: list[str]) -> str:
    body = []
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell(f"{chr(65 + c)}{r}", v, shared) for c, v in enumerate(row)
                        if v is not None)
        body.append(f'<row r="{r}">{cells}</row>')
    return ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f'<sheetData>{"".join(body)}</sheetData></worksheet>')


def write_xlsx(path: Path, sheets: dict[str, list[list[str | int | None]]]) -> Path:
    """A minimal xlsx workbook (shared and inline strings, numeric cells), built with zipfile."""
    shared: list[str] = []
    parts = {f"xl/worksheets/sheet{i}.xml": _sheet(rows, shared)
             for i, rows in enumerate(sheets.values(), start=1)}
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts["xl/workbook.xml"] = (
        f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        + "".join(f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>'
                  for i, name in enumerate(sheets, start=1))
        + "</sheets></workbook>")
    parts["xl/_rels/workbook.xml.rels"] = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(f'<Relationship Id="rId{i}" Type="{rel}/worksheet" '
                  f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, len(sheets) + 1))
        + "</Relationships>")
    parts["xl/sharedStrings.xml"] = (
        f'<sst xmlns="{main}">' + "".join(f"<si><t>{escape(s)}</t></si>" for s in shared) + "</sst>")
    parts["[Content_Types].xml"] = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text)
    return path


def vsac_sheets(concepts: list[tuple[str, str, str, str]] = CONCEPTS,
                ) -> dict[str, list[list[str | int | None]]]:
    """The VSAC export layout: a header block sheet, then the code list under a table header."""
    info: list[list[str | int | None]] = [
        ["Value Set Name", "Synthetic Colonoscopy"], [None], ["OID", SYN_OID], [None],
        ["Version", SYN_VERSION], ["Steward", "Synthetic"],
    ]
    codes: list[list[str | int | None]] = [
        ["Expansion Version", "eCQM Update 2024-05-02"], [None],
        ["Code", "Description", "Code System", "Code System Version", "Code System OID"],
    ]
    codes += [[int(c) if c.isdigit() and not c.startswith("0") else c, "x", name, "2024", cs]
              for _uri, cs, name, c in concepts]
    return {"Value Set Info": info, "Code List": codes}


def _one(parsed: ParsedFile) -> ValueSet:
    (vs,), _unexpanded = parsed
    return vs


def _rel(problems: list[RulesError], root: Path) -> list[str]:
    return [str(p).replace(f"{root}/", "") for p in problems]


# -- the real eCQM bundles ---------------------------------------------------------------
@pytest.mark.reference
@pytest.mark.parametrize(
    "measure,n_sets,n_codes",
    [("CMS125FHIRBreastCancerScreening", 32, 2888),
     ("CMS130FHIRColorectalCancerScreening", 31, 3016),
     ("CMS124FHIRCervicalCancerScreening", 21, 416),
     ("CMS122FHIRDiabetesAssessGreaterThan9Percent", 26, 3176)],
)
def test_real_bundles_load_with_readme_counts(
    reference_data: Path, measure: str, n_sets: int, n_codes: int
) -> None:
    sets, unexpanded = read_fhir_json(reference_data / ECQM / f"valuesets-{measure}-bundle.json")
    assert len(sets) + len(unexpanded) == n_sets
    assert sum(vs.size for vs in sets) == n_codes
    # Federal Administrative Sex is defined (compose) but not expanded in every bundle
    assert [(u.key, u.title) for u in unexpanded] == [(FED_SEX, "Federal Administrative Sex")]
    unmatched: dict[str, int] = {}
    for vs in sets:
        for system, n in vs.unmatched_counts().items():
            unmatched[system] = unmatched.get(system, 0) + n
    # Payer Type (SOP) and Race (CDCREC) are the only systems ingest does not know
    assert unmatched == {"SOP": 167, "CDCREC": 8}
    hcpcs = sum(vs.system_counts().get("HCPCS", 0) for vs in sets)
    assert hcpcs > 0  # VSAC's HCPCS URI (umls/hcpcs) is mapped, not left unmatched


@pytest.mark.reference
def test_cms130_colonoscopy_counts(reference_data: Path) -> None:
    sets, _ = read_fhir_json(reference_data / ECQM / CMS130)
    vs = next(v for v in sets if v.oid == COLONOSCOPY)
    assert (vs.title, vs.version, vs.url) == ("Colonoscopy", "20171219", VSAC_URL + COLONOSCOPY)
    assert vs.system_counts() == {"CPT": 29, "HCPCS": 2, "SNOMED": 20}
    assert vs.unmatched == frozenset()
    cancer = next(v for v in sets if v.oid == COLON_CANCER)
    assert ("ICD10CM", "C180") in cancer.codes  # C18.0 in the file: stored without the dot


@pytest.fixture
def cms130_folder(tmp_path: Path, reference_data: Path) -> Path:
    """The mini rules folder with the CMS130 bundle linked into valuesets/vsac/."""
    mini_folder(tmp_path)
    (tmp_path / "valuesets" / "vsac").mkdir()
    (tmp_path / "valuesets" / "vsac" / CMS130).symlink_to(reference_data / ECQM / CMS130)
    return tmp_path


OFFICIAL_RULE = MINI_RULE.replace("valueset: colonoscopy", f"valueset: '{COLONOSCOPY}'").replace(
    "valueset: fit", f"valueset: '{VSAC_URL}{FOBT}|20171219'")


@pytest.mark.reference
def test_rule_naming_cms130_oids_passes_check_and_reports_counts(cms130_folder: Path) -> None:
    mini_folder(cms130_folder, OFFICIAL_RULE)
    ruleset, problems = check_rules(cms130_folder)
    assert problems == []
    assert ruleset is not None
    assert ruleset.valuesets[COLONOSCOPY].title == "Colonoscopy"
    source = f"VSAC {COLONOSCOPY} version 20171219 ({CMS130})"
    assert valueset_counts(ruleset) == [
        ValueSetCount(COLONOSCOPY, "Colonoscopy", "CPT", 29, source),
        ValueSetCount(COLONOSCOPY, "", "HCPCS", 2),
        ValueSetCount(COLONOSCOPY, "", "SNOMED", 20),
        ValueSetCount(f"{VSAC_URL}{FOBT}|20171219", "Fecal Occult Blood Test (FOBT)", "LOINC", 16,
                      f"VSAC {FOBT} version 20171219 ({CMS130})"),
    ]
    result = CliRunner().invoke(cli, ["--log-format", "plain", "rules", "check", str(cms130_folder)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"{COLONOSCOPY} Colonoscopy CPT 29 {source}" in lines
    assert f"{COLONOSCOPY} HCPCS 2" in lines


@pytest.mark.reference
def test_official_sets_evaluate_unchanged(cms130_folder: Path) -> None:
    rule = OFFICIAL_RULE.replace("  unless:", f"""  unless:
    - valueset: '{COLON_CANCER}'
      within: 1 year""")
    ruleset = load_rules(mini_folder(cms130_folder, rule))
    pats = patients(*({"patient_id": p, "birth_date": D(1960, 1, 1)} for p in "ABCDE"))
    evs = events(
        ("A", "procedure", "CPT", "45378", D(2020, 5, 1)),  # colonoscopy, 10-year window
        ("B", "observation", "LOINC", "12503-9", D(2025, 6, 1)),  # FOBT, 1-year window
        ("C", "observation", "LOINC", "12503-9", D(2024, 6, 1)),  # FOBT too old
        ("D", "condition", "ICD10CM", "C18.0", D(2025, 6, 1)),  # dotted spelling matches
        ("E", "condition", "ICD10CM", "C180", D(2025, 6, 1)),  # undotted too
    )
    out = run(ruleset, pats, evs, D(2026, 1, 1))
    assert out["status"].to_list() == ["not_due", "not_due", "due", "not_due", "not_due"]
    assert out["reason"][0] == "Colonoscopy on 2020-05-01 is within 10 years"


@pytest.mark.reference
def test_missing_oid_fails_naming_file_line_key(cms130_folder: Path) -> None:
    missing = "2.16.840.1.113883.3.464.1003.108.12.9999"
    mini_folder(cms130_folder, OFFICIAL_RULE.replace(COLONOSCOPY, missing))
    _rs, problems = check_rules(cms130_folder)
    assert _rel(problems, cms130_folder) == [
        f"mini.yaml:11: mini: key `due.unless[0].valueset`: found '{missing}'; an OID or URL of a "
        "value set in valuesets/vsac/ (31 loaded from 1 file; nearest: "
        "2.16.840.1.113883.3.464.1003.108.12.1001 (Malignant Neoplasm of Colon); "
        "2.16.840.1.113883.3.464.1003.108.12.1020 (Colonoscopy); "
        "2.16.840.1.113883.3.464.1003.108.12.1038 (CT Colonography))"
    ]
    result = CliRunner().invoke(cli, ["--log-format", "plain", "rules", "check", str(cms130_folder)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        f"Error: {cms130_folder}/mini.yaml:11: mini: key `due.unless[0].valueset`: found '{missing}'")


@pytest.mark.reference
@pytest.mark.parametrize(
    "ref,expected",
    [(f"{COLONOSCOPY}|2019", f"version '2019' of {COLONOSCOPY} is not loaded; loaded: 20171219 "
                             f"({CMS130})"),
     (FED_SEX, f"{FED_SEX} (Federal Administrative Sex) has no expansion in {CMS130}; download "
               "its expansion (expansion.contains) from VSAC")],
    ids=["unknown version", "no expansion"],
)
def test_unusable_reference_says_why(cms130_folder: Path, ref: str, expected: str) -> None:
    mini_folder(cms130_folder, OFFICIAL_RULE.replace(COLONOSCOPY, ref))
    _rs, problems = check_rules(cms130_folder)
    assert _rel(problems, cms130_folder) == [
        f"mini.yaml:11: mini: key `due.unless[0].valueset`: found '{ref}'; {expected}"]


def test_no_official_files_says_where_to_put_them(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("valueset: fit", f"valueset: 'urn:oid:{FOBT}'"))
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path) == [
        f"mini.yaml:13: mini: key `due.unless[1].valueset`: found 'urn:oid:{FOBT}'; no official "
        "value sets are loaded; put the VSAC files (FHIR ValueSet JSON, SVS XML or the "
        "spreadsheet export) in valuesets/vsac/"
    ]


# -- union: a local YAML set that includes official sets ------------------------------------
UNION_VS = f"""
name: colonoscopy
title: colonoscopy
source: CMS130 Colonoscopy plus a local code
include:
  - {COLONOSCOPY}|20171219
codes:
  CPT: ["45355"]        # a retired colonoscopy code old claims still carry
"""


@pytest.mark.reference
def test_local_set_includes_an_official_one(cms130_folder: Path) -> None:
    mini_folder(cms130_folder, valuesets__colonoscopy_yaml=UNION_VS)
    ruleset = load_rules(cms130_folder)
    vs = ruleset.valuesets["colonoscopy"]
    assert vs.includes == (f"{COLONOSCOPY}|20171219",)
    assert ("CPT", "45355") in vs.codes  # local
    assert ("CPT", "44388") in vs.codes  # from the official set
    assert vs.system_counts() == {"CPT": 30, "HCPCS": 2, "SNOMED": 20}
    counts = valueset_counts(ruleset)
    assert counts[0] == ValueSetCount("colonoscopy", "colonoscopy", "CPT", 30,
                                      f"local codes and {COLONOSCOPY}|20171219")
    pats = patients({"patient_id": "A", "birth_date": D(1960, 1, 1)},
                    {"patient_id": "B", "birth_date": D(1960, 1, 1)})
    evs = events(("A", "procedure", "CPT", "44388", D(2020, 5, 1)),
                 ("B", "procedure", "CPT", "45355", D(2020, 5, 1)))
    assert run(ruleset, pats, evs, D(2026, 1, 1))["status"].to_list() == ["not_due", "not_due"]


def test_include_of_a_missing_set_is_located(tmp_path: Path) -> None:
    vs = UNION_VS.replace("  - 2.16", "  - colonoscopy-local\n  - 2.16")
    mini_folder(tmp_path, valuesets__colonoscopy_yaml=vs)
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path) == [
        "valuesets/colonoscopy.yaml:5: key `include[0]`: found 'colonoscopy-local'; an official "
        "value set by OID or URL, with an optional |version "
        "(2.16.840.1.113883.3.464.1003.108.12.1020)",
        f"valuesets/colonoscopy.yaml:6: key `include[1]`: found '{COLONOSCOPY}|20171219'; no "
        "official value sets are loaded; put the VSAC files (FHIR ValueSet JSON, SVS XML or the "
        "spreadsheet export) in valuesets/vsac/",
    ]


def test_value_set_needs_codes_or_include(tmp_path: Path) -> None:
    mini_folder(tmp_path, valuesets__fit_yaml="name: fit\ntitle: FIT\n")
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path) == [
        "valuesets/fit.yaml:1: key `codes` is required (or `include:` official value sets)"]


def test_vsac_file_outside_vsac_folder_is_reported(tmp_path: Path) -> None:
    mini_folder(tmp_path)
    (tmp_path / "valuesets" / "x.json").write_text(fhir_json())
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path) == [
        "valuesets/x.json: official value set files go in valuesets/vsac/, not valuesets/ "
        "(they are named by OID, not file name)"]


# -- the three formats read the same codes ---------------------------------------------------
def test_fhir_svs_and_xlsx_load_the_same_set(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(fhir_json())
    (tmp_path / "b.json").write_text(fhir_json(bundle=False))
    (tmp_path / "c.xml").write_text(svs_xml())
    write_xlsx(tmp_path / "d.xlsx", vsac_sheets())
    loaded = [_one(read_fhir_json(tmp_path / "a.json")), _one(read_fhir_json(tmp_path / "b.json")),
              _one(read_svs_xml(tmp_path / "c.xml")), _one(read_vsac_xlsx(tmp_path / "d.xlsx"))]
    for vs in loaded:
        assert (vs.name, vs.oid, vs.version, vs.title) == (
            SYN_OID, SYN_OID, SYN_VERSION, "Synthetic Colonoscopy")
        assert vs.url == VSAC_URL + SYN_OID
        assert vs.codes == EXPECTED_CODES
        assert vs.unmatched == EXPECTED_UNMATCHED
        assert vs.prefixes == frozenset()


def test_xlsx_table_with_an_oid_column_holds_several_sets(tmp_path: Path) -> None:
    other = "2.16.840.1.113883.3.464.1003.999.12.2"
    rows: list[list[str | int | None]] = [
        ["Value Set Name", "OID", "Expansion Version", "Code", "Descriptor", "Code System",
         "Code System Version", "Code System OID"],
        ["A", SYN_OID, "v1", 45378, "x", "CPT", "2024", "2.16.840.1.113883.6.12"],
        ["B", other, "v2", "C18.0", "x", "ICD10CM", "2024", None],
        ["B", other, "v2", "1", "x", "SOP", "9.2", "2.16.840.1.113883.3.221.5"],
    ]
    sets, _ = read_vsac_xlsx(write_xlsx(tmp_path / "m.xlsx", {"Sheet1": rows}))
    assert [(v.oid, v.version, v.title, v.codes, v.unmatched) for v in sets] == [
        (SYN_OID, "v1", "A", {("CPT", "45378")}, frozenset()),
        (other, "v2", "B", {("ICD10CM", "C180")}, {("SOP", "1")}),
    ]


_POOL = [
    *CONCEPTS,
    ("http://www.ama-assn.org/go/cpt", "2.16.840.1.113883.6.12", "CPT", "0421T"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "2.16.840.1.113883.6.90", "ICD10CM", "Z12.11"),
    ("http://www.cms.gov/Medicare/Coding/ICD10", "2.16.840.1.113883.6.4", "ICD10PCS", "0DTN0ZZ"),
    ("http://www.nlm.nih.gov/research/umls/rxnorm", "2.16.840.1.113883.6.88", "RXNORM", "997223"),
    ("https://nahdo.org/sopt", "2.16.840.1.113883.3.221.5", "SOP", "349"),
    ("http://nucc.org/provider-taxonomy", "2.16.840.1.113883.6.101", "NUCC", "207Q00000X"),
]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(_POOL), min_size=1, max_size=12))
def test_formats_agree_on_any_concept_list(concepts: list[tuple[str, str, str, str]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a.json").write_text(fhir_json(concepts))
        (root / "b.xml").write_text(svs_xml(concepts))
        write_xlsx(root / "c.xlsx", vsac_sheets(concepts))
        a, b, c = (_one(read_fhir_json(root / "a.json")), _one(read_svs_xml(root / "b.xml")),
                   _one(read_vsac_xlsx(root / "c.xlsx")))
    assert a.codes == b.codes == c.codes
    assert a.unmatched == b.unmatched == c.unmatched
    assert a.size == len({(uri, code) for uri, _o, _n, code in concepts})


# -- malformed files name the file and the element ------------------------------------------
def _file_problem(tmp_path: Path, name: str, content: str | bytes) -> str:
    folder = tmp_path / "rules"
    mini_folder(folder)
    target = folder / "valuesets" / "vsac" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    problems: list[RulesError] = []
    load_catalog(folder, problems)
    (problem,) = problems
    return str(problem).replace(f"{folder}/valuesets/vsac/", "")


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("x.json", fhir_json(CONCEPTS[:2]).replace('"code": "73761001", ', ""),
         "x.json: entry[0].resource.expansion.contains[1]: missing `code`"),
        ("x.json", fhir_json(CONCEPTS[:2]).replace('"system": "http://snomed.info/sct", ', ""),
         "x.json: entry[0].resource.expansion.contains[1]: missing `system`"),
        ("x.json", fhir_json(CONCEPTS[:2]).replace("73761001", "73761002"),
         "x.json: entry[0].resource.expansion.contains[1]: code '73761002' is not a SNOMED code "
         "(expected 6 to 18 digits with a valid Verhoeff check digit)"),
        ("x.json", '{"resourceType": "Bundle",\n "entry": [}',
         "x.json:2: not valid JSON: Expecting value (column 12)"),
        ("x.json", '{"resourceType": "Patient"}',
         "x.json: resourceType: found 'Patient'; expected ValueSet or Bundle"),
        ("x.json", fhir_json().replace(f'"url": "{VSAC_URL}{SYN_OID}", ', "")
         .replace(f'"id": "{SYN_OID}", ', ""),
         "x.json: entry[0].resource: missing `url` (or an OID `identifier`)"),
        ("x.xml", svs_xml(CONCEPTS[:3]).replace('code="C18.0" ', ""),
         f"x.xml: DescribedValueSet[0] (ID {SYN_OID})/ConceptList/Concept[2]: missing `code`"),
        ("x.xml", svs_xml(CONCEPTS[:3]).replace('codeSystem="2.16.840.1.113883.6.96" '
                                                'codeSystemName="SNOMEDCT" ', ""),
         f"x.xml: DescribedValueSet[0] (ID {SYN_OID})/ConceptList/Concept[1]: missing `codeSystem`"),
        ("x.xml", svs_xml().replace(f'ID="{SYN_OID}" ', ""),
         "x.xml: DescribedValueSet[0]: missing `ID` (the value set's OID)"),
        ("x.xml", svs_xml().replace("</ns0:ConceptList>", ""),
         "x.xml:15: not well-formed XML (mismatched tag: line 15, column 4)"),
        ("x.xml", "<html><body>Login</body></html>",
         "x.xml: no DescribedValueSet element in namespace urn:ihe:iti:svs:2008 (root element 'html')"),
        ("x.xml", '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
         "x.xml: XML with a document type declaration is refused"),
        ("x.xlsx", b"PK\x03\x04 not really a zip",
         "x.xlsx: not an xlsx workbook (not a zip archive)"),
    ],
    ids=["json no code", "json no system", "json bad code", "json syntax", "json not a value set",
         "json no url", "svs no code", "svs no system", "svs no id", "svs syntax", "svs not svs",
         "svs dtd", "xlsx not zip"],
)
def test_malformed_file_names_file_and_element(
    tmp_path: Path, name: str, content: str | bytes, expected: str
) -> None:
    assert _file_problem(tmp_path, name, content) == expected


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda s: s["Code List"][4].__setitem__(2, None) or s["Code List"][4].__setitem__(4, None),
         "x.xlsx: sheet 'Code List' row 5: missing `Code System`"),
        (lambda s: s["Code List"][4].__setitem__(0, None),
         "x.xlsx: sheet 'Code List' row 5: missing `Code`"),
        (lambda s: s["Code List"][4].__setitem__(0, "7.3761E+7"),
         "x.xlsx: sheet 'Code List' row 5: code '7.3761E+7' was stored as a number in scientific "
         "notation (digits are lost); export the codes as text"),
        (lambda s: s["Value Set Info"].__setitem__(2, [None]),
         "x.xlsx: sheet 'Code List' row 4: no value set OID (expected an `OID` row in the header "
         "block, or an `OID` column)"),
        (lambda s: s["Code List"].__setitem__(2, ["Codes", "Description"]),
         "x.xlsx: no code table: expected a header row with `Code` and `Code System` (the VSAC "
         "spreadsheet export)"),
    ],
    ids=["no system", "no code", "scientific notation", "no oid", "no table"],
)
def test_malformed_xlsx_names_sheet_and_row(tmp_path: Path, edit: object, expected: str) -> None:
    sheets = vsac_sheets()
    edit(sheets)  # type: ignore[operator]
    write_xlsx(tmp_path / "x.xlsx", sheets)
    assert _file_problem(tmp_path, "x.xlsx", (tmp_path / "x.xlsx").read_bytes()) == expected


def test_xlsx_missing_part_is_named(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "x.xlsx", "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    assert _file_problem(tmp_path, "x.xlsx", (tmp_path / "x.xlsx").read_bytes()) == (
        "x.xlsx: not an xlsx workbook: xl/_rels/workbook.xml.rels is missing")


# -- references and versions -----------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [(COLONOSCOPY, OfficialRef(COLONOSCOPY, None, COLONOSCOPY)),
     (f"{COLONOSCOPY}|20171219", OfficialRef(COLONOSCOPY, "20171219", f"{COLONOSCOPY}|20171219")),
     (f"urn:oid:{COLONOSCOPY}", OfficialRef(COLONOSCOPY, None, f"urn:oid:{COLONOSCOPY}")),
     (f"{VSAC_URL}{COLONOSCOPY}|2017", OfficialRef(COLONOSCOPY, "2017", f"{VSAC_URL}{COLONOSCOPY}|2017")),
     ("https://example.org/fhir/ValueSet/local-thing",
      OfficialRef("https://example.org/fhir/ValueSet/local-thing", None,
                  "https://example.org/fhir/ValueSet/local-thing")),
     ("colonoscopy", None), ("2.16.x", None), ("fit-2024", None)],
)
def test_parse_reference(text: str, expected: OfficialRef | None) -> None:
    assert parse_reference(text) == expected


def test_versions_are_told_apart(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("valueset: fit", f"valueset: '{SYN_OID}'"))
    vsac = tmp_path / "valuesets" / "vsac"
    vsac.mkdir()
    (vsac / "v1.json").write_text(fhir_json(CONCEPTS[:1], version="1"))
    (vsac / "v2.xml").write_text(svs_xml(CONCEPTS[:2]))
    (vsac / "same.json").write_text(fhir_json(CONCEPTS[:2]))  # = v2.xml: kept once
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path) == [
        f"mini.yaml:13: mini: key `due.unless[1].valueset`: found '{SYN_OID}'; {SYN_OID} is "
        f"loaded in several versions: 1 (v1.json), {SYN_VERSION} (same.json); add |<version>"
    ]
    mini_folder(tmp_path, MINI_RULE.replace("valueset: fit", f"valueset: '{SYN_OID}|1'"))
    ruleset = load_rules(tmp_path)
    assert ruleset.valuesets[f"{SYN_OID}|1"].codes == {("CPT", "45378")}


def test_same_version_with_different_codes_is_refused(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("valueset: fit", f"valueset: '{SYN_OID}'"))
    vsac = tmp_path / "valuesets" / "vsac"
    vsac.mkdir()
    (vsac / "a.json").write_text(fhir_json(CONCEPTS[:1]))
    (vsac / "b.xml").write_text(svs_xml(CONCEPTS[:2]))
    _rs, problems = check_rules(tmp_path)
    assert _rel(problems, tmp_path)[0].endswith(
        f"{SYN_OID} version {SYN_VERSION} has different codes in a.json, b.xml; keep one of the files")


def test_catalog_counts_sets_not_keys() -> None:
    catalog = Catalog()
    vs = ValueSet(SYN_OID, "x", frozenset({("CPT", "45378")}), frozenset(), "a.json",
                  oid=SYN_OID, version="1", url=VSAC_URL + SYN_OID)
    catalog.add(vs)
    catalog.add(vs)
    assert len(catalog) == 1
    assert catalog.resolve(OfficialRef(VSAC_URL + SYN_OID, None, "")) is vs
