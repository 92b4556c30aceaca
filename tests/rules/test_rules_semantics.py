"""What the compiled rules decide: ages, window edges, unknowns, code matching, reasons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from segment.dates import age_in_years
from segment.rules import default_rules_dir, load_rules
from segment.rules.model import STATUS_DTYPE, RuleSet, subtract_months
from segment.rules.registry import render

from .helpers import D, events, patients, run

SHIPPED = load_rules(default_rules_dir())


def only(*ids: str) -> RuleSet:
    rules = tuple(r for r in SHIPPED.rules if r.id in ids)
    return RuleSet(rules, SHIPPED.valuesets, {r.id: SHIPPED.paths[r.id] for r in rules})


CRC = only("colorectal-cancer-screening")


def _status(ruleset: RuleSet, pats: pl.DataFrame, evs: pl.DataFrame, as_of: dt.date) -> dict[str, str]:
    out = run(ruleset, pats, evs, as_of)
    return dict(zip(out["patient_id"], out["status"], strict=True))


# -- ages --------------------------------------------------------------------------
def test_age_boundaries_45_to_75_inclusive() -> None:
    as_of = D(2026, 11, 23)
    pats = patients(
        {"patient_id": "45th-birthday", "birth_date": D(1981, 11, 23), "sex": "F"},
        {"patient_id": "day-before-45", "birth_date": D(1981, 11, 24), "sex": "F"},
        {"patient_id": "day-after-75th", "birth_date": D(1951, 11, 22), "sex": "M"},
        {"patient_id": "day-before-76th", "birth_date": D(1950, 11, 24), "sex": "M"},
        {"patient_id": "76th-birthday", "birth_date": D(1950, 11, 23), "sex": "M"},
    )
    assert _status(CRC, pats, events(), as_of) == {
        "45th-birthday": "due",
        "day-before-45": "not_in_population",
        "day-after-75th": "due",
        "day-before-76th": "due",
        "76th-birthday": "not_in_population",
    }


def test_leap_day_birthday_is_reached_on_march_first() -> None:
    ages = pl.DataFrame({"b": [D(1980, 2, 29)] * 3, "on": [D(2025, 2, 28), D(2025, 3, 1), D(2024, 2, 29)]})
    out = ages.select(age=age_in_years(pl.col("b"), pl.col("on")))["age"].to_list()
    assert out == [44, 45, 44]


@given(
    st.dates(min_value=D(1900, 1, 1), max_value=D(2030, 12, 31)),
    st.dates(min_value=D(1900, 1, 1), max_value=D(2030, 12, 31)),
)
def test_age_matches_the_calendar_definition(birth: dt.date, on: dt.date) -> None:
    expected = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    got = pl.select(age_in_years(pl.lit(birth), pl.lit(on))).item()
    assert got == expected


def test_subtract_months_clamps_to_month_end() -> None:
    assert subtract_months(D(2024, 2, 29), 12) == D(2023, 2, 28)
    assert subtract_months(D(2026, 3, 31), 1) == D(2026, 2, 28)
    assert subtract_months(D(2026, 3, 2), 120) == D(2016, 3, 2)


# -- windows -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "test_date,status",
    [(D(2016, 3, 2), "not_due"), (D(2016, 3, 1), "due"), (D(2026, 3, 2), "not_due"),
     (D(2026, 3, 3), "due")],
    ids=["exactly 10 years", "10 years and a day", "on the as-of date", "after the as-of date"],
)
def test_colonoscopy_window_edges(test_date: dt.date, status: str) -> None:
    pats = patients({"patient_id": "p", "birth_date": D(1960, 1, 1), "sex": "F"})
    evs = events(("p", "procedure", "CPT", "45378", test_date))
    assert _status(CRC, pats, evs, D(2026, 3, 2)) == {"p": status}


def test_each_test_type_has_its_own_window() -> None:
    as_of = D(2026, 6, 15)
    pats = patients(*[{"patient_id": p, "birth_date": D(1960, 1, 1), "sex": "F"}
                      for p in ["fit-in", "fit-out", "dna-in", "dna-out", "ct-in", "ct-out"]])
    evs = events(
        ("fit-in", "procedure", "CPT", "82274", D(2025, 6, 15)),
        ("fit-out", "procedure", "CPT", "82274", D(2025, 6, 14)),
        ("dna-in", "procedure", "CPT", "81528", D(2023, 6, 15)),
        ("dna-out", "procedure", "CPT", "81528", D(2023, 6, 14)),
        ("ct-in", "procedure", "CPT", "74263", D(2021, 6, 15)),
        ("ct-out", "procedure", "CPT", "74263", D(2021, 6, 14)),
    )
    assert _status(CRC, pats, evs, as_of) == {
        "fit-in": "not_due", "fit-out": "due", "dna-in": "not_due", "dna-out": "due",
        "ct-in": "not_due", "ct-out": "due",
    }


def test_reasons_and_evidence_dates() -> None:
    as_of = D(2026, 11, 23)
    pats = patients(
        {"patient_id": "a", "birth_date": D(1960, 1, 1), "sex": "F"},
        {"patient_id": "b", "birth_date": D(1960, 1, 1), "sex": "F"},
        {"patient_id": "c", "birth_date": D(1984, 5, 5), "sex": "F"},
        {"patient_id": "d", "birth_date": None, "sex": "F"},
    )
    evs = events(
        ("a", "procedure", "SNOMED", "73761001", D(2019, 3, 2)),
        ("a", "procedure", "CPT", "82274", D(2020, 1, 1)),
        ("b", "observation", "LOINC", "57905-2", D(2023, 1, 5)),
        ("b", "procedure", "CPT", "45378", D(2010, 1, 5)),
    )
    expected = pl.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d"],
            "rule_id": ["colorectal-cancer-screening"] * 4,
            "status": ["not_due", "due", "not_in_population", "unknown"],
            "reason": [
                "colonoscopy on 2019-03-02 is within 10 years",
                "no qualifying colorectal cancer screening: last colonoscopy on 2010-01-05 is "
                "older than 10 years; last FIT/FOBT on 2023-01-05 is older than 1 year",
                "aged 42 on 2026-11-23, outside 45-75",
                "birth date missing; cannot check age 45-75",
            ],
            "evidence_date": [D(2019, 3, 2), D(2023, 1, 5), None, None],
        },
        schema_overrides={"status": STATUS_DTYPE},
    )
    assert_frame_equal(run(CRC, pats, evs, as_of), expected)


def test_hospice_only_counts_in_the_measurement_year() -> None:
    pats = patients(
        {"patient_id": "this-year", "birth_date": D(1955, 1, 1), "sex": "M"},
        {"patient_id": "last-year", "birth_date": D(1955, 1, 1), "sex": "M"},
    )
    evs = events(
        ("this-year", "procedure", "SNOMED", "385763009", D(2026, 1, 1)),
        ("last-year", "procedure", "SNOMED", "385763009", D(2025, 12, 31)),
    )
    assert _status(CRC, pats, evs, D(2026, 11, 23)) == {"this-year": "excluded", "last-year": "due"}


def test_death_after_the_as_of_date_is_not_an_exclusion() -> None:
    pats = patients(
        {"patient_id": "later", "birth_date": D(1960, 1, 1), "sex": "F", "deceased_date": D(2027, 1, 1)},
        {"patient_id": "same-day", "birth_date": D(1960, 1, 1), "sex": "F", "deceased_date": D(2026, 11, 23)},
    )
    assert _status(CRC, pats, events(), D(2026, 11, 23)) == {"later": "due", "same-day": "excluded"}


# -- codes -------------------------------------------------------------------------
def test_icd10_with_or_without_dot_and_prefixes_match() -> None:
    pats = patients(*[{"patient_id": p, "birth_date": D(1960, 1, 1), "sex": "F"}
                      for p in ["dot", "nodot", "prefix", "lower", "history", "other"]])
    evs = events(
        ("dot", "condition", "ICD10CM", "C21.8", D(2020, 1, 1)),
        ("nodot", "condition", "ICD10CM", "C218", D(2020, 1, 1)),
        ("prefix", "condition", "ICD10CM", "C18.9", D(2020, 1, 1)),
        ("lower", "condition", "ICD10CM", "c20", D(2020, 1, 1)),
        ("history", "condition", "ICD10CM", "Z85.038", D(2020, 1, 1)),
        ("other", "condition", "ICD10CM", "C21.0", D(2020, 1, 1)),
    )
    assert _status(CRC, pats, evs, D(2026, 1, 1)) == {
        "dot": "excluded", "nodot": "excluded", "prefix": "excluded", "lower": "excluded",
        "history": "excluded", "other": "due",
    }


def test_code_must_match_its_system() -> None:
    pats = patients({"patient_id": "p", "birth_date": D(1960, 1, 1), "sex": "F"})
    evs = events(("p", "procedure", "SNOMED", "45378", D(2020, 1, 1)))  # a CPT code as SNOMED
    assert _status(CRC, pats, evs, D(2026, 1, 1)) == {"p": "due"}


def test_events_without_a_date_are_ignored() -> None:
    pats = patients({"patient_id": "p", "birth_date": D(1960, 1, 1), "sex": "F"})
    evs = events(("p", "procedure", "CPT", "45378", None))  # type: ignore[arg-type]
    assert _status(CRC, pats, evs, D(2026, 1, 1)) == {"p": "due"}


# -- sex and unknowns ---------------------------------------------------------------
def test_sex_unknowns_are_unknown_never_not_due() -> None:
    pats = patients(*[{"patient_id": s or "null", "birth_date": D(1970, 1, 1), "sex": s}
                      for s in ["F", "M", "X", "U", None]])
    assert _status(only("breast-cancer-screening"), pats, events(), D(2026, 1, 1)) == {
        "F": "due", "M": "not_in_population", "X": "unknown", "U": "unknown", "null": "unknown",
    }


def test_a_known_failing_criterion_wins_over_an_unknown_one() -> None:
    pats = patients({"patient_id": "man-no-dob", "birth_date": None, "sex": "M"})
    out = run(only("breast-cancer-screening"), pats, events(), D(2026, 1, 1))
    assert out["status"].to_list() == ["not_in_population"]
    assert out["reason"].to_list() == ["sex M; rule is for F"]


def test_cervical_hpv_counts_only_from_age_30() -> None:
    pats = patients(
        {"patient_id": "hpv-at-29", "birth_date": D(1996, 6, 2), "sex": "F"},
        {"patient_id": "hpv-at-30", "birth_date": D(1996, 6, 1), "sex": "F"},
    )
    evs = events(
        ("hpv-at-29", "procedure", "CPT", "87624", D(2026, 6, 1)),
        ("hpv-at-30", "procedure", "CPT", "87624", D(2026, 6, 1)),
    )
    assert _status(only("cervical-cancer-screening"), pats, evs, D(2026, 11, 23)) == {
        "hpv-at-29": "due", "hpv-at-30": "not_due",
    }


def test_flu_season_start_is_the_latest_august_first() -> None:
    pats = patients({"patient_id": "p", "birth_date": D(1960, 1, 1), "sex": "F"})
    evs = events(("p", "immunization", "CVX", "140", D(2026, 7, 31)))
    flu = only("flu-vaccine")
    assert _status(flu, pats, evs, D(2026, 7, 31)) == {"p": "not_due"}  # season since 2025-08-01
    assert _status(flu, pats, evs, D(2026, 8, 1)) == {"p": "due"}  # a new season began


def test_ed_follow_up_uses_the_most_recent_ed_visit() -> None:
    pats = patients({"patient_id": "p", "birth_date": D(1960, 1, 1), "sex": "F"})
    evs = events(
        ("p", "encounter", "CPT", "99283", D(2026, 11, 1)),
        ("p", "encounter", "CPT", "99213", D(2026, 11, 5)),
        ("p", "encounter", "SNOMED", "50849002", D(2026, 11, 10)),
    )
    out = run(only("ed-follow-up"), pats, evs, D(2026, 11, 23))
    assert out.row(0)[2:] == (
        "due",
        "no qualifying follow-up visit: last outpatient visit on 2026-11-05 is before the last "
        "emergency department visit on 2026-11-10",
        D(2026, 11, 5),
    )


# -- risk rules: three-valued logic ---------------------------------------------------
def test_high_area_need_kleene_logic() -> None:
    extra = {"need_index_quintile": pl.Int8, "svi_overall_rank": pl.Float64}
    rows = [(5, None), (None, 0.75), (3, 0.74), (3, None), (None, None), (None, 0.2)]
    pats = patients(
        *[{"patient_id": f"p{i}", "birth_date": D(1980, 1, 1), "sex": "F",
           "need_index_quintile": q, "svi_overall_rank": s} for i, (q, s) in enumerate(rows)],
        extra=extra,
    )
    assert _status(only("high-area-need"), pats, events(), D(2026, 1, 1)) == {
        "p0": "due", "p1": "due", "p2": "not_due", "p3": "unknown", "p4": "unknown", "p5": "unknown",
    }


def test_render_mixes_text_and_expressions() -> None:
    frame = pl.DataFrame({"d": [D(2020, 1, 2), None]})
    out = frame.select(render("{label} on {date} ok", label="FIT", date=pl.col("d")))
    assert out.to_series().to_list() == ["FIT on 2020-01-02 ok", None]


def test_rules_never_loop_over_patients(tmp_path: Path) -> None:
    """1000 patients evaluate as one plan: statuses computed, one row per patient and rule."""
    n = 1000
    pats = patients(*[{"patient_id": str(i), "birth_date": D(1930 + i % 90, 1 + i % 12, 1),
                       "sex": "FMXU"[i % 4]} for i in range(n)])
    out = run(only("breast-cancer-screening", "colorectal-cancer-screening"), pats, events(),
              D(2026, 1, 1))
    assert out.height == 2 * n
    assert out["status"].null_count() == 0 and out["reason"].null_count() == 0


def test_birth_after_the_as_of_date() -> None:
    pats = patients({"patient_id": "p", "birth_date": D(2027, 1, 1), "sex": "F"})
    out = run(only("flu-vaccine"), pats, events(), D(2026, 11, 23))
    assert out.row(0)[2:4] == (
        "not_in_population", "birth date is after 2026-11-23; cannot be in age 6 months or older"
    )


def test_colorectal_matches_a_plain_python_oracle() -> None:
    """Random patients and events against the rule written out by hand in Python."""
    import random

    rng = random.Random(7)
    as_of = D(2026, 6, 30)
    tests = {"45378": ("colonoscopy", 10), "82274": ("fit", 1), "81528": ("sdna", 3),
             "74263": ("ct", 5), "45330": ("sig", 5)}
    pats_rows, ev_rows, expected = [], [], {}
    for i in range(400):
        pid = f"p{i}"
        birth = None if i % 50 == 0 else D(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 45))
        died = D(2020, 1, 1) + dt.timedelta(days=rng.randrange(0, 3650)) if i % 17 == 0 else None
        pats_rows.append({"patient_id": pid, "birth_date": birth, "sex": "F", "deceased_date": died})
        mine = []
        for _ in range(rng.randrange(0, 4)):
            code = rng.choice([*tests, "44150", "99213"])
            day = D(2012, 1, 1) + dt.timedelta(days=rng.randrange(0, 5500))
            ev_rows.append((pid, "procedure", "CPT", code, day))
            mine.append((code, day))
        past = [(c, d) for c, d in mine if d <= as_of]
        if birth is not None:
            age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
        if birth is not None and not 45 <= age <= 75:
            expected[pid] = "not_in_population"
        elif birth is None:
            expected[pid] = "unknown"
        elif (died is not None and died <= as_of) or any(c == "44150" for c, _ in past):
            expected[pid] = "excluded"
        elif any(c in tests and d >= subtract_months(as_of, 12 * tests[c][1]) for c, d in past):
            expected[pid] = "not_due"
        else:
            expected[pid] = "due"
    got = _status(CRC, patients(*pats_rows), events(*ev_rows), as_of)
    assert got == expected
    assert set(expected.values()) == {"due", "not_due", "excluded", "not_in_population", "unknown"}


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_list_tests_on_an_enum_column_accept_values_outside_its_categories(op: str) -> None:
    """`phone_type` is an Enum: a listed value it cannot hold (`cell`) matches nothing, no error."""
    from segment.rules.registry import OPERATIONS
    from segment.schema import PHONE_TYPE

    frame = pl.DataFrame({"phone_type": ["mobile", "landline", None]}).cast({"phone_type": PHONE_TYPE})
    got = frame.select(OPERATIONS[op].build(pl.col("phone_type"), ["mobile", "cell"])).to_series().to_list()
    assert got == ([True, False, None] if op == "in" else [False, True, None])
    numbers = pl.DataFrame({"n": [1, 2]}).select(OPERATIONS[op].build(pl.col("n"), [1, 3])).to_series()
    assert numbers.to_list() == ([True, False] if op == "in" else [False, True])
