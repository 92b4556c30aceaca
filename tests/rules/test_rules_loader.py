"""Loading and checking rule folders: exact, located error messages (file:line: rule: key...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment.errors import RulesError
from segment.rules import check_rules, load_rules
from segment.rules.codes import (
    code_variants,
    is_code_valid,
    is_loinc_valid,
    is_verhoeff_valid,
    normalize_code,
)
from segment.rules.model import Kind, WindowKind, parse_window

from .helpers import MINI_RULE, mini_folder

RISK = MINI_RULE.replace("kind: screening", "kind: risk").replace(
    """due:
  label: screening
  unless:
    - valueset: colonoscopy
      within: 10 years
    - valueset: fit
      within: 1 year""",
    """condition:
  any:
    - column: svi_overall_rank
      op: ge
      value: 0.75""",
)


def _problems(tmp_path: Path, rule: str, **extra: str) -> list[str]:
    mini_folder(tmp_path, rule, **extra)
    _ruleset, problems = check_rules(tmp_path)
    return [str(p).replace(f"{tmp_path}/", "") for p in problems]


def test_valid_folder_loads(tmp_path: Path) -> None:
    ruleset = load_rules(mini_folder(tmp_path))
    (rule,) = ruleset.rules
    assert (rule.id, rule.version, rule.kind) == ("mini", 3, Kind.SCREENING)
    assert sorted(ruleset.valuesets) == ["colonoscopy", "fit"]
    assert ("SNOMED", "73761001") in ruleset.valuesets["colonoscopy"].codes


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("kind: screening", "kind: screening\nfrequency: 2",
         "mini.yaml:6: mini: unknown key `frequency`; valid keys are: condition, description, "
         "due, examples, exclude_deceased, exclusions, id, kind, notes, population, reads, "
         "source, title, version"),
        ("kind: screening", "kind: screen",
         "mini.yaml:5: mini: key `kind`: found 'screen'; valid options are: 'screening' or 'risk'"),
        ("within: 10 years", "within: 10 yrs",
         "mini.yaml:12: mini: key `due.unless[0].within`: found '10 yrs'; valid options are: "
         "ever; <n> days|weeks|months|years; measurement year; season from MM-DD; "
         "since last <value set>; measurement year and <n> years before; from MM-DD <n> years before "
         "measurement year"),
        ("valueset: fit", "valueset: fobt",
         "mini.yaml:13: mini: key `due.unless[1].valueset`: found 'fobt'; valid options are: "
         "colonoscopy, fit"),
        ("{min: 45, max: 75}", "{min: 75, max: 45}",
         "mini.yaml:7: mini: key `population.age.max`: found 45; at least the minimum age 75"),
        ("    - valueset: fit\n      within: 1 year", "    - code: fit",
         "mini.yaml:13: mini: key `due.unless[1]`: found a mapping; a criterion needs one of "
         "the keys valueset, column, age, any, all"),
        ("within: 10 years", "within: 10 years\n      op: eq",
         "mini.yaml:13: mini: unknown key `due.unless[0].op`; valid keys are: answer, "
         "episode, field, label, min_age_at_event, result, type, until, valueset, with_result, within"),
        ("  age: {min: 45, max: 75}", "  age: {min: 45, max: 75}\n  sex: [F, W]",
         "mini.yaml:8: mini: key `population.sex[1]`: found 'W'; valid options are: 'F', 'M', "
         "'X' or 'U'"),
        ("expect: due", "expect: overdue",
         "mini.yaml:19: mini: key `examples[0].expect`: found 'overdue'; valid options are: "
         "'due', 'not_due', 'excluded', 'not_in_population' or 'unknown'"),
        ("id: mini", "id: other",
         "mini.yaml:1: other: key `id`: found 'other'; a rule's id must match its file name "
         "('mini')"),
        ("title: Mini colorectal\n", "", "mini.yaml:1: mini: key `title` is required"),
        ("kind: screening", "kind: risk",
         "mini.yaml:5: mini: key `kind`: found 'risk'; a risk rule needs a `condition:`"),
    ],
    ids=["unknown key", "bad kind", "bad window", "unknown value set", "age bounds",
         "not a criterion", "key of another criterion", "bad sex", "bad expected status",
         "id vs file name", "missing key", "risk without condition"],
)
def test_malformed_rule_messages(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in MINI_RULE
    problems = _problems(tmp_path, MINI_RULE.replace(old, new, 1))
    assert problems[0] == expected


def test_unknown_answer_value_set_is_located(tmp_path: Path) -> None:
    rule = MINI_RULE.replace("    - valueset: fit\n      within: 1 year",
                             "    - valueset: fit\n      within: 1 year\n      answer: yes-answers", 1)
    problems = _problems(tmp_path, rule)
    assert problems[0] == (
        "mini.yaml:15: mini: key `due.unless[1].answer`: found 'yes-answers'; valid options are: colonoscopy, fit"
    )


def test_unknown_operation_lists_the_registry(tmp_path: Path) -> None:
    problems = _problems(tmp_path, RISK.replace("op: ge", "op: gte"))
    assert problems == [
        "mini.yaml:11: mini: key `condition.any[0].op`: found 'gte'; valid options are: eq, ne, "
        "gt, ge, lt, le, in, not_in, is_null, not_null, is_true, is_false"
    ]


def test_operation_aliases_resolve(tmp_path: Path) -> None:
    mini_folder(tmp_path, RISK.replace("op: ge", "op: '>='"))
    (rule,) = load_rules(tmp_path).rules
    assert rule.condition.any[0].op == "ge"  # type: ignore[union-attr]


def test_operation_value_type_is_checked(tmp_path: Path) -> None:
    problems = _problems(tmp_path, RISK.replace("value: 0.75", "value: high"))
    assert problems == ["mini.yaml:12: mini: key `condition.any[0].value`: found 'high'; "
                        "a number for `ge`"]


def test_a_category_column_value_it_cannot_hold_is_an_error(tmp_path: Path) -> None:
    rule = RISK.replace("column: svi_overall_rank", "column: phone_type").replace("op: ge", "op: in").replace(
        "value: 0.75", "value: [mobile, cell]")
    assert _problems(tmp_path, rule) == ["mini.yaml:12: mini: key `condition.any[0].value`: found 'cell'; "
                                         "phone_type values: landline, mobile, unknown"]
    assert _problems(tmp_path / "ok", rule.replace("cell", "unknown")) == []


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("title: Mini colorectal", "title: [Mini"))
    _rs, problems = check_rules(tmp_path)
    (err,) = problems
    assert err.line == 4
    assert err.context is not None and ">" in err.context


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    bad_vs = "name: fit\ntitle: FIT\ncodes:\n  CPT: ['8227', '82274']\n  LOINC: ['4548-3']\n"
    rule = MINI_RULE.replace("valueset: colonoscopy", "valueset: colonscopy")
    problems = _problems(tmp_path, rule, valuesets__fit_yaml=bad_vs)
    assert problems == [
        "valuesets/fit.yaml:4: key `codes.CPT[0]`: found '8227'; expected 5 characters: "
        "4 digits then a digit, F, T or U",
        "valuesets/fit.yaml:5: key `codes.LOINC[0]`: found '4548-3'; expected digits, a hyphen "
        "and a valid mod-10 check digit (4548-4)",
        "mini.yaml:11: mini: key `due.unless[0].valueset`: found 'colonscopy'; valid options "
        "are: colonoscopy, fit",
    ]


def test_broken_value_set_is_reported_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, MINI_RULE, valuesets__fit_yaml="name: fit\ncodes: {ICD: [x]}\n")
    assert problems == ["valuesets/fit.yaml:1: key `title` is required (and 1 more problem)"]


def test_load_rules_raises_the_first_problem_with_a_count(tmp_path: Path) -> None:
    rule = MINI_RULE.replace("kind: screening", "kind: screening\nfoo: 1").replace("id: mini", "id: x")
    mini_folder(tmp_path, rule, other_yaml=MINI_RULE.replace("kind: screening", "kind: nope"))
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    assert info.value.one_line().endswith("(and 1 more problem; run `segment rules check`)")


def test_csv_value_sets(tmp_path: Path) -> None:
    csv = "system,code,display\nCPT,82274,FIT\nloinc,57905-2,FIT\nICD10CM,C18*,colon\n"
    mini_folder(tmp_path, valuesets__fit_csv=csv)
    (tmp_path / "valuesets" / "fit.yaml").unlink()
    ruleset = load_rules(tmp_path)
    vs = ruleset.valuesets["fit"]
    assert vs.codes == {("CPT", "82274"), ("LOINC", "57905-2")}
    assert vs.prefixes == {("ICD10CM", "C18")}


def test_csv_value_set_bad_system(tmp_path: Path) -> None:
    mini_folder(tmp_path, valuesets__fit_csv="system,code\nCPTX,82274\n")
    (tmp_path / "valuesets" / "fit.yaml").unlink()
    _rs, problems = check_rules(tmp_path)
    assert str(problems[0]).endswith(
        "fit.csv:2: key `system`: found 'CPTX'; valid options are: ICD10CM, CPT, HCPCS, LOINC, "
        "SNOMED, CVX, RXNORM, ICD10PCS, VISIT, POS"
    )


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    _rs, problems = check_rules(tmp_path / "nope")
    assert [p.message for p in problems] == ["rules folder not found"]
    _rs, problems = check_rules(tmp_path)
    assert [p.message for p in problems] == ["no rule files (*.yaml) in the rules folder"]


# -- codes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "system,raw,norm",
    [("ICD10CM", "c18.9", "C189"), ("ICD10CM", "Z90.710", "Z90710"), ("CVX", "08", "8"),
     ("CVX", "140", "140"), ("CPT", " 45378 ", "45378"), ("HCPCS", "g0105", "G0105")],
)
def test_normalize_code(system: str, raw: str, norm: str) -> None:
    assert normalize_code(system, raw) == norm


def test_code_variants_cover_extract_spellings() -> None:
    assert code_variants("ICD10CM", "C189") == {"C189", "C18.9", "c189", "c18.9"}
    assert {"8", "08", "008"} <= code_variants("CVX", "8")


def test_check_digits() -> None:
    assert all(is_loinc_valid(c) for c in ["4548-4", "57905-2", "2335-8", "24606-6"])
    assert not is_loinc_valid("4548-3")
    assert all(is_verhoeff_valid(c) for c in ["73761001", "44054006", "90781000119102", "385763009"])
    assert not is_verhoeff_valid("73761002")
    assert is_code_valid("ICD10CM", "E11*") and not is_code_valid("CPT", "4537")


# -- windows -----------------------------------------------------------------------
def test_parse_window_forms() -> None:
    assert parse_window("10 years").kind is WindowKind.LOOKBACK
    assert parse_window("1 Year").describe() == "1 year"
    assert parse_window("Measurement  year").kind is WindowKind.MEASUREMENT_YEAR
    assert parse_window("season from 08-01").month == 8
    assert parse_window("since last ed-visit").valueset == "ed-visit"
    for bad in ["10 yrs", "0 days", "season from 02-30", "last year"]:
        with pytest.raises(ValueError):
            parse_window(bad)
