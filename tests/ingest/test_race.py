from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment.ingest import race as rc
from segment.ingest.race import Ethnicity, Race
from segment.synth import vocab

AIAN = Race.AMERICAN_INDIAN_OR_ALASKA_NATIVE.value
ASIAN = Race.ASIAN.value
BLACK = Race.BLACK_OR_AFRICAN_AMERICAN.value
NHPI = Race.NATIVE_HAWAIIAN_OR_OTHER_PACIFIC_ISLANDER.value
WHITE = Race.WHITE.value
OTHER = Race.OTHER.value
MULTIPLE = Race.MULTIPLE.value
HISP = Ethnicity.HISPANIC_OR_LATINO.value
NOT_HISP = Ethnicity.NOT_HISPANIC_OR_LATINO.value


def _race(values: Sequence[str | None]) -> tuple[list[str | None], list[str | None]]:
    n = rc.normalize_race(pl.col("s"))
    out = pl.DataFrame({"s": values}, schema={"s": pl.String}).select(
        n.value.alias("v"), n.problem.alias("p")
    )
    return out["v"].to_list(), out["p"].to_list()


def _ethnicity(
    values: Sequence[str | None], races: Sequence[str | None] | None = None
) -> tuple[list[str | None], list[str | None]]:
    frame = pl.DataFrame(
        {"s": values, "r": races or [None] * len(values)}, schema={"s": pl.String, "r": pl.String}
    )
    n = rc.normalize_ethnicity(pl.col("s"), pl.col("r") if races is not None else None)
    out = frame.select(n.value.alias("v"), n.problem.alias("p"))
    return out["v"].to_list(), out["p"].to_list()


# -- vocabulary --------------------------------------------------------------------------------
def test_vocabulary() -> None:
    assert [r.value for r in rc.OMB_RACES] == [AIAN, ASIAN, BLACK, NHPI, WHITE]
    assert [r.value for r in rc.RACES] == [AIAN, ASIAN, BLACK, NHPI, WHITE, OTHER, MULTIPLE]
    assert [e.value for e in rc.ETHNICITIES] == [HISP, NOT_HISP]


def test_normalized_values_normalize_to_themselves() -> None:
    races = [r.value for r in Race]
    assert _race(races) == (races, [None] * len(races))
    eths = [e.value for e in Ethnicity]
    assert _ethnicity(eths) == (eths, [None, None])


def test_table_keys_are_in_lookup_form() -> None:
    """A key with capitals or punctuation could never match: lookups are on the key form."""
    tables = [
        *rc.RACE_SPELLINGS, *rc.RACE_COLUMN_ETHNICITY, *rc.ETHNICITY_SPELLINGS,
        *rc.UNKNOWN_SPELLINGS, *rc.AMBIGUOUS_RACE, *rc.HISPANIC_ORIGINS,
        *rc.NON_HISPANIC_ANCESTRIES,
    ]
    keys = pl.DataFrame({"k": tables}).select(rc._key(pl.col("k")))["k"].to_list()
    assert [k for k, key in zip(tables, keys, strict=True) if k != key] == []


def test_origin_tables_do_not_overlap() -> None:
    assert set(rc.HISPANIC_ORIGINS).isdisjoint(rc.NON_HISPANIC_ANCESTRIES)
    assert set(rc.UNKNOWN_SPELLINGS).isdisjoint(rc.RACE_SPELLINGS)
    assert set(rc.UNKNOWN_SPELLINGS).isdisjoint(rc.ETHNICITY_SPELLINGS)


# -- CDC codes -------------------------------------------------------------------------------
def test_cdc_category_codes() -> None:
    codes = ["1002-5", "2028-9", "2054-5", "2076-8", "2106-3", "2131-1"]
    assert _race(codes) == ([AIAN, ASIAN, BLACK, NHPI, WHITE, OTHER], [None] * 6)
    assert _ethnicity(["2135-2", "2186-5"]) == ([HISP, NOT_HISP], [None, None])


#: detailed codes and their categories, read from the CDC code set's hierarchy (US Core
#: CodeSystem cdcrec): the first and last of each block, and the ones outside the pattern
DETAILED_RACE = {
    "1004-1": AIAN,  # American Indian
    "1735-0": AIAN,  # Alaska Native
    "1840-8": AIAN,  # Eskimo
    "1966-1": AIAN,  # Aleut
    "2000-8": AIAN,  # Port Lions (Aleut codes run past 2000)
    "2026-3": AIAN,  # Unga, the last AIAN code
    "2029-7": ASIAN,  # Asian Indian
    "2034-7": ASIAN,  # Chinese
    "2052-9": ASIAN,  # Madagascar, the last Asian code
    "2056-0": BLACK,  # Black
    "2058-6": BLACK,  # African American
    "2061-0": BLACK,  # Botswanan
    "2075-0": BLACK,  # West Indian
    "2078-4": NHPI,  # Polynesian
    "2079-2": NHPI,  # Native Hawaiian
    "2104-8": NHPI,  # New Hebrides
    "2500-7": NHPI,  # Other Pacific Islander, outside the NHPI block
    "2108-9": WHITE,  # European
    "2118-8": WHITE,  # Middle Eastern or North African
    "2127-9": WHITE,  # Israeili
    "2129-5": WHITE,  # Arab
}
DETAILED_ETHNICITY = {
    "2137-8": HISP,  # Spaniard
    "2148-5": HISP,  # Mexican
    "2155-0": HISP,  # Central American
    "2165-9": HISP,  # South American
    "2176-6": HISP,  # Criollo
    "2180-8": HISP,  # Puerto Rican
    "2182-4": HISP,  # Cuban
    "2184-0": HISP,  # Dominican
}


def test_detailed_codes_roll_up() -> None:
    assert _race(list(DETAILED_RACE)) == (list(DETAILED_RACE.values()), [None] * len(DETAILED_RACE))
    assert _ethnicity(list(DETAILED_ETHNICITY)) == (
        list(DETAILED_ETHNICITY.values()), [None] * len(DETAILED_ETHNICITY)
    )


def test_check_digit_matches_the_published_codes() -> None:
    for code in [*DETAILED_RACE, *DETAILED_ETHNICITY, "1002-5", "2106-3", "2186-5"]:
        number, check = code.split("-")
        assert rc.cdc_check_digit(int(number)) == int(check), code


def test_bad_codes_are_problems() -> None:
    # wrong check digit, the abstract "Race" concept, outside every block
    v, p = _race(["2106-4", "1000-9", "3000-7", "2106-3; 2106-4"])
    assert v == [None] * 4
    assert p == [rc.RACE_CODE_PROBLEM] * 4
    v, p = _ethnicity(["2106-3", "2135-3"])
    assert v == [None, None] and p == [rc.ETHNICITY_CODE_PROBLEM] * 2


def test_codes_with_system_and_display() -> None:
    v, p = _race([
        "urn:oid:2.16.840.1.113883.6.238|2028-9",
        "http://terminology.hl7.org/CodeSystem/CDCREC#2054-5",
        "2106-3^White^CDCREC",
        "2106-3^White^CDCREC~2054-5^Black or African American^CDCREC",
        " 2076-8 ",
    ])
    assert v == [ASIAN, BLACK, WHITE, MULTIPLE, NHPI] and p == [None] * 5


def test_ethnicity_code_in_race_column_is_not_a_race() -> None:
    v, p = _race(["2135-2", "2186-5"])
    assert v == [None, None] and p == [None, None]
    assert _ethnicity([None, None], ["2135-2", "2186-5"]) == ([HISP, NOT_HISP], [None, None])


# -- free text -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("white", WHITE), ("White", WHITE), ("  WHITE ", WHITE), ("Caucasian", WHITE),
        ("White/Caucasian", WHITE), ("black", BLACK), ("African American", BLACK),
        ("African-American", BLACK), ("Black/African American", BLACK),  # a FHIR sample's text
        ("BLACK OR AFRICAN AMERICAN", BLACK), ("asian", ASIAN), ("Chinese", ASIAN),
        ("Asian Indian", ASIAN), ("native", AIAN), ("American Indian", AIAN),
        ("Alaska Native", AIAN), ("American Indian/Alaska Native", AIAN),
        ("American Indian and Alaska Native", AIAN), ("hawaiian", NHPI),
        ("Pacific Islander", NHPI), ("Native Hawaiian/Other Pacific Islander", NHPI),
        ("Native Hawaiian and Other Pacific Islander", NHPI), ("Samoan", NHPI),
        ("Middle Eastern or North African", WHITE), ("other", OTHER), ("Other Race", OTHER),
        ("Some other race", OTHER), ("Multiracial", MULTIPLE), ("Two or more races", MULTIPLE),
        ("mixed", MULTIPLE),
    ],
)
def test_race_free_text(raw: str, expected: str) -> None:
    assert _race([raw]) == ([expected], [None])


def test_multiple_races() -> None:
    v, p = _race([
        "White; Asian", "white,black", "Black and White", "Asian | Native Hawaiian",
        "White + Other", "white; Caucasian", "White, Unknown", "White, Hispanic", "Black - Hispanic",
    ])
    assert v == [MULTIPLE] * 5 + [WHITE, WHITE, WHITE, BLACK]
    assert p == [None] * 9


def test_unknowns_are_null_without_a_problem() -> None:
    unknowns = [
        "unknown", "Unknown", "UNK", "ASKU", "asked but unknown", "declined", "Declined",
        "Patient declined", "Refused", "prefer not to say", "Unknown/Declined", "", "   ", None,
        "N/A", "null", "-", "?",
    ]
    assert _race(unknowns) == ([None] * len(unknowns), [None] * len(unknowns))
    assert _ethnicity(unknowns) == ([None] * len(unknowns), [None] * len(unknowns))
    assert _ethnicity(["U"]) == ([None], [None])


def test_unrecognized_text_is_a_problem() -> None:
    v, p = _race(["martian", "polish", "White; martian", "indian", "W"])
    assert v == [None, WHITE, None, None, None]
    assert p == [rc.RACE_PROBLEM, None, rc.RACE_PROBLEM, rc.RACE_PROBLEM, rc.RACE_PROBLEM]
    v, p = _race(["Asian/Pacific Islander", "API"])
    assert v == [None, None] and p == [rc.RACE_AMBIGUOUS_PROBLEM] * 2
    v, p = _ethnicity(["martian", "white", "other"])
    assert v == [None] * 3 and p == [rc.ETHNICITY_PROBLEM] * 3


def test_hispanic_as_race_is_an_ethnicity() -> None:
    v, p = _race(["hispanic", "Hispanic or Latino", "Latino", "puerto_rican", "Non-Hispanic"])
    assert v == [None] * 5 and p == [None] * 5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hispanic", HISP), ("Hispanic or Latino", HISP), ("Hispanic/Latino", HISP),
        ("latina", HISP), ("Latinx", HISP), ("H", HISP), ("yes", HISP),
        ("nonhispanic", NOT_HISP), ("non-hispanic", NOT_HISP), ("Non Hispanic", NOT_HISP),
        ("NOT HISPANIC OR LATINO", NOT_HISP), ("not hispanic", NOT_HISP), ("N", NOT_HISP),
        ("No", NOT_HISP),
        # ancestries: Hispanic or Latino origins, then any other
        ("mexican", HISP), ("puerto_rican", HISP), ("Puerto Rican", HISP), ("cuban", HISP),
        ("dominican", HISP), ("central_american", HISP), ("south_american", HISP),
        ("Salvadoran", HISP), ("spanish", HISP), ("irish", NOT_HISP), ("polish", NOT_HISP),
        ("scottish", NOT_HISP), ("french_canadian", NOT_HISP), ("west_indian", NOT_HISP),
        ("portuguese", NOT_HISP), ("brazilian", NOT_HISP), ("chinese", NOT_HISP),
        ("asian_indian", NOT_HISP), ("american_indian", NOT_HISP), ("african", NOT_HISP),
        ("arab", NOT_HISP), ("Irish; Mexican", HISP), ("irish, italian", NOT_HISP),
    ],
)
def test_ethnicity_free_text_and_ancestry(raw: str, expected: str) -> None:
    assert _ethnicity([raw]) == ([expected], [None])


def test_contradictory_ethnicity() -> None:
    assert _ethnicity(["Hispanic; Not Hispanic"]) == (
        [None], [rc.ETHNICITY_CONTRADICTION_PROBLEM]
    )


def test_ethnicity_falls_back_on_race_only_when_it_does_not_decide() -> None:
    v, p = _ethnicity(
        [None, "unknown", "martian", "irish", "not hispanic", None, None, "hispanic"],
        ["hispanic", "Hispanic", "hispanic", "hispanic", "hispanic", "white", None, "white"],
    )
    assert v == [HISP, HISP, HISP, NOT_HISP, NOT_HISP, None, None, HISP]
    assert p == [None, None, rc.ETHNICITY_PROBLEM, None, None, None, None, None]


# -- every value the project's own data and the real samples hold -----------------------------
def test_synthetic_demo_vocabulary_maps() -> None:
    v, p = _race([*vocab.RACES, *vocab.RACE_UNKNOWN])
    assert v == [WHITE, BLACK, ASIAN, AIAN, NHPI, OTHER, None, None, None]
    assert p == [None] * 9
    v, p = _ethnicity([*vocab.ETHNICITIES, *vocab.ETHNICITY_UNKNOWN])
    assert v == [HISP, NOT_HISP, None, None, None] and p == [None] * 5


#: old Synthea's whole race and ancestry vocabulary (Demographics.ethnicityFromRace, 2017-18)
LEGACY_SYNTHEA = {
    "white": ["irish", "italian", "english", "french", "german", "polish", "portuguese",
              "american", "french_canadian", "scottish", "russian", "swedish", "greek"],
    "hispanic": ["puerto_rican", "mexican", "central_american", "south_american"],
    "black": ["african", "dominican", "west_indian"],
    "asian": ["chinese", "asian_indian"],
    "native": ["american_indian"],
    "other": ["arab"],
}


def test_legacy_synthea_vocabulary_maps() -> None:
    pairs = [(r, e) for r, ethnicities in LEGACY_SYNTHEA.items() for e in ethnicities]
    races = [r for r, _ in pairs]
    v, p = _race(races)
    assert p == [None] * len(pairs)
    assert [x for x, r in zip(v, races, strict=True) if x is None] == [None] * 4  # hispanic
    v, p = _ethnicity([e for _, e in pairs], races)
    assert p == [None] * len(pairs) and None not in v
    hispanic = {"puerto_rican", "mexican", "central_american", "south_american", "dominican"}
    assert [e for (_, e), x in zip(pairs, v, strict=True) if x == HISP] == [
        e for _, e in pairs if e in hispanic
    ]


#: every distinct RACE and ETHNICITY value in the real Synthea samples, and what it becomes
REAL_RACE = {
    "white": WHITE, "black": BLACK, "asian": ASIAN, "native": AIAN, "hawaiian": NHPI,
    "other": OTHER, "hispanic": None,
}
REAL_ETHNICITY = {
    "hispanic": HISP, "nonhispanic": NOT_HISP, "mexican": HISP, "puerto_rican": HISP,
    "central_american": HISP, "south_american": HISP, "dominican": HISP, "african": NOT_HISP,
    "american": NOT_HISP, "american_indian": NOT_HISP, "asian_indian": NOT_HISP,
    "chinese": NOT_HISP, "english": NOT_HISP, "french": NOT_HISP, "french_canadian": NOT_HISP,
    "german": NOT_HISP, "irish": NOT_HISP, "italian": NOT_HISP, "polish": NOT_HISP,
    "portuguese": NOT_HISP, "russian": NOT_HISP, "swedish": NOT_HISP, "west_indian": NOT_HISP,
}


def _real_patients(reference_data: Path) -> list[Path]:
    files = sorted(reference_data.glob("samples/synthea_csv/*/patients.csv"))
    files += sorted(reference_data.glob("synthea/*/patients.csv"))
    assert len(files) >= 10, files
    return files


def test_every_real_sample_value_maps(reference_data: Path) -> None:
    frames = [
        pl.read_csv(f, infer_schema=False, columns=["RACE", "ETHNICITY"])
        for f in _real_patients(reference_data)
    ]
    pairs = pl.concat(frames).unique().sort("RACE", "ETHNICITY")
    race = rc.normalize_race(pl.col("RACE"))
    eth = rc.normalize_ethnicity(pl.col("ETHNICITY"), pl.col("RACE"))
    out = pairs.with_columns(
        race.value.alias("race"), race.problem.alias("race_problem"),
        eth.value.alias("ethnicity"), eth.problem.alias("ethnicity_problem"),
    )
    # every distinct value is known: none is new to the tables, none is a problem
    assert set(pairs["RACE"]) == set(REAL_RACE)
    assert set(pairs["ETHNICITY"]) == set(REAL_ETHNICITY)
    assert out["race_problem"].null_count() == out.height
    assert out["ethnicity_problem"].null_count() == out.height
    assert dict(zip(out["RACE"], out["race"], strict=True)) == REAL_RACE
    assert out["ethnicity"].null_count() == 0  # every patient's ethnicity is decided
    for raw, value in zip(out["ETHNICITY"], out["ethnicity"], strict=True):
        assert value == REAL_ETHNICITY[raw], raw
    # old Synthea: race "hispanic" is never a race, and always an ethnicity
    assert set(out.filter(pl.col("RACE") == "hispanic")["ethnicity"]) == {HISP}


# -- properties ------------------------------------------------------------------------------
_SPELLING = st.sampled_from(sorted({**rc.RACE_SPELLINGS, **rc.RACE_COLUMN_ETHNICITY}))


def _scramble(text: str, upper: list[bool], sep: str) -> str:
    cased = "".join(c.upper() if u else c for c, u in zip(text, upper + [False] * len(text), strict=False))
    return cased.replace(" ", sep)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.text(alphabet=" ;,/|&+-~_.^#:0123456789aehinotwx", max_size=30),
            _SPELLING,
            st.sampled_from([*rc.CDC_RACE_CODES, *rc.CDC_ETHNICITY_CODES, "2106-4"]),
        ),
        min_size=1, max_size=25,
    )
)
def test_arbitrary_text_never_raises(values: list[str]) -> None:
    race_v, race_p = _race(values)
    eth_v, _ = _ethnicity(values, values)
    assert {v for v in race_v if v is not None} <= set(rc.RACES)
    assert {v for v in eth_v if v is not None} <= set(rc.ETHNICITIES)
    assert all(v is None for v, p in zip(race_v, race_p, strict=True) if p is not None)


@settings(max_examples=60, deadline=None)
@given(_SPELLING, st.lists(st.booleans(), max_size=40), st.sampled_from([" ", "_", "  ", "-"]))
def test_spellings_are_case_and_punctuation_insensitive(key: str, upper: list[bool], sep: str) -> None:
    expected = _race([key])
    assert _race([_scramble(key, upper, sep)]) == expected


def test_doc_lists_every_spelling() -> None:
    """docs/race-ethnicity.md is the documented table: it must show every spelling."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "race-ethnicity.md").read_text()
    tables = [
        *rc.RACE_SPELLINGS, *rc.RACE_COLUMN_ETHNICITY, *rc.ETHNICITY_SPELLINGS,
        *rc.UNKNOWN_SPELLINGS, *rc.AMBIGUOUS_RACE, *rc.HISPANIC_ORIGINS,
        *rc.NON_HISPANIC_ANCESTRIES,
    ]
    assert [k for k in tables if f"`{k}`" not in doc] == []
    for first, last, category in rc.RACE_CODE_BLOCKS:
        assert str(category) in doc and str(first) in doc and str(last) in doc
