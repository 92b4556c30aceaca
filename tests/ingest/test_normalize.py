from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from segment.ingest import normalize as nz

TODAY = dt.date(2025, 6, 1)


def _apply(fn, values, **kw):
    df = pl.DataFrame({"s": values}, schema={"s": pl.String})
    n = fn(pl.col("s"), **kw)
    out = df.select(n.value.alias("v"), n.problem.alias("p"))
    return out["v"].to_list(), out["p"].to_list()


def test_names_case_and_spaces() -> None:
    v, p = _apply(nz.normalize_name, ["  o'BRIEN ", "MCDONALD", "mary-jane", "DeVito", "anne   marie", "", "123"])
    assert v == ["O'Brien", "McDonald", "Mary-Jane", "DeVito", "Anne Marie", None, None]
    assert p == [None, None, None, None, None, None, "name has no letters"]


def test_dates_formats_and_impossible() -> None:
    v, p = _apply(nz.parse_date, ["2020-02-29", "02/29/2020", "2/3/05", "1/2/30", "20200131",
                                  "2019-02-17T05:07:38Z", "02/30/2020", "yesterday", None], as_of=TODAY)
    assert v == [dt.date(2020, 2, 29), dt.date(2020, 2, 29), dt.date(2005, 2, 3), dt.date(1930, 1, 2),
                 dt.date(2020, 1, 31), dt.date(2019, 2, 17), None, None, None]
    assert p[6] == "impossible date" and p[7] == "unrecognized date format" and p[8] is None


def test_birth_date_bounds() -> None:
    df = pl.DataFrame({"s": ["2030-01-01", "1880-01-01", "1950-05-05"]})
    n = nz.check_birth_date(nz.parse_date(pl.col("s"), as_of=TODAY), as_of=TODAY)
    out = df.select(n.value.alias("s"), n.problem.alias("p"))
    assert out["p"].to_list() == ["birth date in the future", "birth date more than 120 years ago", None]
    assert out["s"].to_list() == [None, None, dt.date(1950, 5, 5)]


@settings(max_examples=60, deadline=None)
@given(st.dates(min_value=dt.date(1906, 1, 1), max_value=dt.date(2025, 5, 31)),
       st.sampled_from(["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%-m/%-d/%Y"]))
def test_dates_roundtrip(d: dt.date, fmt: str) -> None:
    v, p = _apply(nz.parse_date, [d.strftime(fmt)], as_of=TODAY)
    assert v == [d] and p == [None]


@settings(max_examples=60, deadline=None)
@given(st.dates(min_value=dt.date(1926, 6, 2), max_value=dt.date(2025, 5, 31)))
def test_two_digit_years_pivot(d: dt.date) -> None:
    v, _ = _apply(nz.parse_date, [f"{d.month}/{d.day}/{d.year % 100:02d}"], as_of=TODAY)
    assert v == [d]


def test_sex_spellings() -> None:
    v, p = _apply(nz.normalize_sex, ["Female", "m", "Non-binary", "unknown", None, "banana"])
    assert v == ["F", "M", "X", "U", "U", "U"]
    assert p[-1] == "unrecognized sex" and p[:5] == [None] * 5


def test_state_names_and_codes() -> None:
    v, _ = _apply(nz.normalize_state, ["Massachusetts", "ma", "N.Y.", "Mass.", "Atlantis"])
    assert v == ["MA", "MA", "NY", "MA", None]


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=501, max_value=99999), st.integers(min_value=0, max_value=9999), st.booleans())
def test_zip_plus4_and_leading_zeros(z: int, plus4: int, with4: bool) -> None:
    text = f"{z:05d}-{plus4:04d}" if with4 else f"{z:05d}"
    v, p = _apply(lambda e: nz.normalize_zip(e, pl.lit("MA")), [text])
    assert v == [f"{z:05d}"] and p == [None]
    if 1000 <= z < 10000:  # Excel dropped the zero
        v, _ = _apply(lambda e: nz.normalize_zip(e, pl.lit("MA")), [str(z)])
        assert v == [f"{z:05d}"]
        v, p = _apply(lambda e: nz.normalize_zip(e, pl.lit("TX")), [str(z)])
        assert v == [None] and p == ["ZIP too short for its state"]


def test_consent_unknown_is_not_consent() -> None:
    df = pl.DataFrame({"s": ["Y", "opted out", "", "unknown", "maybe"]})
    n = nz.normalize_consent(pl.col("s"))
    out = df.select(n.value.alias("v"), n.problem.alias("p"))
    assert_series_equal(out["v"], pl.Series("v", [True, False, None, None, None]))
    assert out["p"].to_list() == [None, None, None, None, "unrecognized consent value"]


def test_do_not_contact_unreadable_is_flagged() -> None:
    df = pl.DataFrame({"s": ["Y", "N", None, "see note"]})
    n = nz.normalize_do_not_contact(pl.col("s"))
    assert df.select(n.value.alias("v"))["v"].to_list() == [True, False, None, True]


def test_language() -> None:
    v, p = _apply(nz.normalize_language, ["Spanish", "spa", "zh-CN", "POR", "Portuguese (Brazil)", "Unknown", "Klingon"])
    assert v == ["es", "es", "zh", "pt", "pt", None, None]
    assert p[-1] == "unknown language"


def test_ssn_keeps_only_its_last_four_digits() -> None:
    raw = pl.Series(["123-45-6789", "XXX-XX-1234", "999 88 7777", "0000", "12", "", None, "abc"])
    out = pl.select(nz.ssn_last4(pl.lit(raw))).to_series()
    assert out.to_list() == ["6789", "1234", "7777", None, None, None, None, None]


def test_shared_identifiers_reach_linkage_but_not_patients_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssn_last4 and enterprise_id are read for identity resolution only (minimum necessary)."""
    import segment.ingest.steps as pipeline
    from segment.ingest import ingest

    src = tmp_path / "clinic-patients.csv"
    src.write_text(
        "patient_id,first_name,last_name,birth_date,sex,ssn_last4,enterprise_id\n"
        "P1,Ann,Lee,1960-01-02,F,123-45-6789, E-77 \n", encoding="utf-8")
    seen: dict[str, list[object]] = {}
    real = pipeline.resolve

    def spy(records: pl.DataFrame, *args: object, **kwargs: object) -> object:
        seen.update(records.select("ssn_last4", "enterprise_id").to_dict(as_series=False))
        return real(records, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "resolve", spy)
    ingest([src], tmp_path / "w", as_of=dt.date(2026, 2, 1))
    assert seen == {"ssn_last4": ["6789"], "enterprise_id": ["E-77"]}
    written = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert not {"ssn_last4", "enterprise_id"} & set(written.columns)
