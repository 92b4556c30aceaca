"""Event results and window ends: `result:` (most recent value vs a number), `with_result:`, `until:`,
and `min_age_at_event` in months - the lookups, the statuses and the located errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.rules import check_rules, load_rules
from segment.rules.compiler import bad_unit_column, last_column, no_result_column, value_column
from segment.rules.evaluate import last_event_dates
from segment.rules.model import Evidence, NoUnit, ResultTest
from segment.schema import EVENT_SCHEMA

from .helpers import D, patients, run, write_folder

A1C_VS = """
name: a1c
title: HbA1c
codes:
  LOINC: ["4548-4", "17856-6"]
"""
A1C_RULE = """
id: a1c-control
version: 1
title: HbA1c above 9 or missing
source: test 2026
kind: screening
population:
  age: {min: 18}
due:
  label: HbA1c at or below 9%
  unless:
    - valueset: a1c
      within: measurement year
      result:
        op: le
        value: 9
        unit: "%"
        units:
          mmol/mol: {scale: 0.09148, offset: 2.152}
examples:
  - name: none
    as_of: 2026-12-31
    patient: {birth_date: 1960-01-01}
    expect: due
"""


def _events(*rows: tuple[object, ...]) -> pl.DataFrame:
    """(patient, type, system, code, date, value, unit[, end, value_code]) rows."""
    full = [(*r, *[None] * (len(EVENT_SCHEMA) - len(r))) for r in rows]
    return pl.DataFrame(full, schema=EVENT_SCHEMA, orient="row")


def _folder(tmp_path: Path, rule: str = A1C_RULE) -> Path:
    return write_folder(tmp_path, {"a1c-control.yaml": rule, "valuesets/a1c.yaml": A1C_VS})


def test_the_lookup_keeps_the_lowest_result_of_the_last_day(tmp_path: Path) -> None:
    ruleset = load_rules(_folder(tmp_path))
    test = ruleset.rules[0].due.unless[0]  # type: ignore[union-attr]
    evidence = test.evidence  # type: ignore[union-attr]
    evs = _events(
        ("p1", "observation", "LOINC", "4548-4", D(2026, 3, 1), 12.0, "%"),
        ("p1", "observation", "LOINC", "4548-4", D(2026, 9, 1), 9.4, "%"),
        ("p1", "observation", "LOINC", "17856-6", D(2026, 9, 1), 8.8, " % "),
        ("p2", "observation", "LOINC", "4548-4", D(2026, 9, 1), 7.0, "%"),
        ("p2", "observation", "LOINC", "4548-4", D(2026, 9, 1), None, None),
        ("p3", "observation", "LOINC", "4548-4", D(2026, 9, 1), 75.0, "MMOL/MOL"),
        ("p4", "observation", "LOINC", "4548-4", D(2026, 9, 1), 160.0, "mg/dL"),
        ("p4", "observation", "LOINC", "4548-4", D(2027, 1, 5), 5.0, "%"),  # after the as-of date
        ("p5", "observation", "LOINC", "4548-4", D(2026, 9, 1), 6.0, None),
    )
    got = last_event_dates(evs.lazy(), ruleset.valuesets, [evidence], D(2026, 12, 31)).collect()
    key = evidence.key
    expected = pl.DataFrame({
        "patient_id": ["p1", "p2", "p3", "p4", "p5"],
        last_column(key): [D(2026, 9, 1)] * 5,
        value_column(key): [8.8, 7.0, 75 * 0.09148 + 2.152, None, None],
        no_result_column(key): [False, True, False, False, False],
        bad_unit_column(key): [None, None, None, "mg/dL", "no unit"],
    })
    assert_frame_equal(got.sort("patient_id").select(expected.columns), expected, check_exact=False)


def test_statuses_and_reasons(tmp_path: Path) -> None:
    ruleset = load_rules(_folder(tmp_path))
    pats = patients(*({"patient_id": p, "birth_date": D(1960, 1, 1)} for p in "abcdef"))
    evs = _events(
        ("a", "observation", "LOINC", "4548-4", D(2026, 5, 1), 9.0, "%"),
        ("b", "observation", "LOINC", "4548-4", D(2026, 5, 1), 9.1, "%"),
        ("c", "observation", "LOINC", "4548-4", D(2026, 5, 1), None, None),
        ("d", "observation", "LOINC", "4548-4", D(2026, 5, 1), 8.0, None),
        ("e", "observation", "LOINC", "4548-4", D(2025, 5, 1), 6.0, "%"),
    )
    out = run(ruleset, pats, evs, D(2026, 12, 31))
    got = dict(zip(out["patient_id"], zip(out["status"], out["reason"], strict=True), strict=True))
    assert got["a"] == ("not_due", "HbA1c on 2026-05-01 is in the measurement year (since 2026-01-01), "
                                   "result 9.0% (≤ 9%)")
    assert got["b"] == ("due", "no qualifying HbA1c at or below 9%: last HbA1c on 2026-05-01 is in the "
                               "measurement year (since 2026-01-01), result 9.1% (needs ≤ 9%)")
    assert got["c"] == ("due", "no qualifying HbA1c at or below 9%: last HbA1c on 2026-05-01 is in the "
                               "measurement year (since 2026-01-01) but has no result")
    # if_no_unit defaults to unknown: a confident status needs a unit
    assert got["d"] == ("unknown", "last HbA1c on 2026-05-01 is in the measurement year (since "
                                   "2026-01-01) but has a result in no unit, which cannot be compared with 9%")
    assert got["e"][0] == "due"
    assert got["f"] == ("due", "no qualifying HbA1c at or below 9% on record (HbA1c)")


def test_with_result_and_until_filter_the_lookup(tmp_path: Path) -> None:
    rule = A1C_RULE.replace("""      result:
        op: le
        value: 9
        unit: "%"
        units:
          mmol/mol: {scale: 0.09148, offset: 2.152}
""", """      with_result: true
      until: "03-31"
""")
    ruleset = load_rules(_folder(tmp_path, rule))
    pats = patients(*({"patient_id": p, "birth_date": D(1960, 1, 1)} for p in "abcd"))
    evs = _events(
        ("a", "observation", "LOINC", "4548-4", D(2026, 2, 1), None, None, None, "260385009"),
        ("b", "observation", "LOINC", "4548-4", D(2026, 2, 1), None, None),
        ("c", "observation", "LOINC", "4548-4", D(2026, 4, 1), 6.0, "%"),
        ("d", "observation", "LOINC", "4548-4", D(2026, 3, 31), 6.0, "%"),
        ("d", "observation", "LOINC", "4548-4", D(2026, 4, 1), None, None),
    )
    out = run(ruleset, pats, evs, D(2026, 12, 31))
    assert out["status"].to_list() == ["not_due", "due", "due", "not_due"]
    assert out["reason"][2] == "no qualifying HbA1c at or below 9% on record up to 2026-03-31 (HbA1c)"
    assert out["reason"][3] == (
        "HbA1c on 2026-03-31 is in the measurement year (since 2026-01-01) (counted up to 2026-03-31)")
    # run before the window's end, the as-of date ends it
    early = run(ruleset, pats, evs, D(2026, 3, 1))
    assert early["status"].to_list() == ["not_due", "due", "due", "due"]


def test_age_at_event_in_months(tmp_path: Path) -> None:
    rule = A1C_RULE.replace("""      result:
        op: le
        value: 9
        unit: "%"
        units:
          mmol/mol: {scale: 0.09148, offset: 2.152}
""", """      min_age_at_event: 6 months
""").replace("  age: {min: 18}", "  age: {min: 0}")
    ruleset = load_rules(_folder(tmp_path, rule))
    pats = patients({"patient_id": "six", "birth_date": D(2026, 1, 15)},
                    {"patient_id": "five", "birth_date": D(2026, 1, 16)})
    evs = _events(("six", "observation", "LOINC", "4548-4", D(2026, 7, 15), 6.0, "%"),
                  ("five", "observation", "LOINC", "4548-4", D(2026, 7, 15), 6.0, "%"))
    out = run(ruleset, pats, evs, D(2026, 12, 31))
    assert out["status"].to_list() == ["due", "not_due"]
    assert out["reason"][0].endswith("last HbA1c on 2026-07-15 was before age 6 months")


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("        op: le\n", "        op: in\n",
         "a1c-control.yaml:14: a1c-control: key `due.unless[0].result.op`: found 'in'; valid options are: "
         "gt, ge, lt, le"),
        ("      within: measurement year\n", "      within: measurement year\n      until: 02-30\n",
         "a1c-control.yaml:13: a1c-control: key `due.unless[0].until`: found '02-30'; valid options are: "
         "a month-day MM-DD of the measurement year, e.g. 03-31"),
        ("      within: measurement year\n", "      within: measurement year\n      min_age_at_event: 6 weeks\n",
         "a1c-control.yaml:13: a1c-control: key `due.unless[0].min_age_at_event`: found '6 weeks'; valid "
         "options are: a whole number of years (30), or '6 months' / '2 years'"),
        ("      within: measurement year\n", "      within: measurement year\n      episode: true\n",
         "a1c-control.yaml:14: a1c-control: key `due.unless[0].result`: found 'a result test on an "
         "episode'; `result:` reads the most recent event's value; drop `episode: true`"),
    ],
    ids=["not a numeric op", "bad month-day", "bad age unit", "result on an episode"],
)
def test_malformed_result_keys(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in A1C_RULE
    _ruleset, problems = check_rules(_folder(tmp_path, A1C_RULE.replace(old, new, 1)))
    assert [str(p).replace(f"{tmp_path}/", "") for p in problems][:1] == [expected]


def test_unit_table_is_normalized_and_hashable() -> None:
    test = ResultTest(op="<=", value=9, unit="%", units={"Percent ": {}, "mmol/mol": {"scale": 2}},
                      if_no_unit=NoUnit.ASSUME)
    units = test.conversions
    assert test.op == "le"
    assert units.conversions == (("%", 1.0, 0.0), ("mmol/mol", 2.0, 0.0), ("percent", 1.0, 0.0))
    assert Evidence("a1c", units=units).key == f"a1c~{units.digest}"
    assert hash(Evidence("a1c", units=units)) == hash(Evidence("a1c", units=test.conversions))
