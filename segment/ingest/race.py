"""Race and ethnicity: raw extract values -> the OMB categories, as Polars expressions.

The equity audit groups patients by race and ethnicity, so ``white`` and ``White`` must be
one group and an ancestry (``polish``) must not pose as an ethnicity. Both normalizers
return a :class:`~segment.ingest.normalize.Normalized` pair and run once per distinct raw
value. The full policy, with every table, is in ``docs/race-ethnicity.md``.

Vocabulary (:class:`Race`, :class:`Ethnicity`): the five OMB minimum race categories
(OMB Statistical Policy Directive 15, 1997), plus ``Other race`` (CDC 2131-1, "some other
race") and ``Multiple races`` (two or more categories given); ``Hispanic or Latino`` and
``Not Hispanic or Latino``. Null means unknown, and is not a problem when the source said
so (``unknown``, ``declined``, ``ASKU``, ``UNK``...).

Inputs understood:

- **CDC Race & Ethnicity Code Set v1.0** (PHIN VADS, OID 2.16.840.1.113883.6.238; HL7 v2
  Table 0005 since v2.4, US Core): the category codes and every detailed code, rolled up
  by the numeric block the CDC gave each category (:data:`RACE_CODE_BLOCKS`) with the code's
  mod-10 check digit verified. A code with a wrong check digit, or outside every block,
  is a problem (``unknown CDC race code``).
- **HL7 v2 Table 0189** (ethnic group): ``H``, ``N``, ``U``.
- **Free text**: the tables below, compared case-, space- and punctuation-insensitively
  (``Non-Hispanic`` == ``non hispanic`` == ``NON_HISPANIC``).
- **Several values in one cell**, separated by ``; , | / + & ~``, `` - `` or ``and``:
  ``White; Asian`` -> ``Multiple races``; ``White/Caucasian`` -> ``White`` (one category).
  A whole-cell spelling is looked up first, so ``American Indian and Alaska Native`` and
  ``Asian/Pacific Islander`` are read as written.
- **Old Synthea** (2017-2018): race ``hispanic`` and an *ancestry* in ETHNICITY
  (``irish``, ``puerto_rican``...). Race ``hispanic`` becomes race null (OMB asks Hispanic
  origin as an ethnicity) and, through ``race_raw``, ethnicity ``Hispanic or Latino``; a
  Hispanic or Latino origin (:data:`HISPANIC_ORIGINS`) is ``Hispanic or Latino``, any other
  ancestry (:data:`NON_HISPANIC_ANCESTRIES`) is ``Not Hispanic or Latino``.

Letter codes for race (``W``, ``B``, ``A``...) are not read: they were site-defined before
HL7 v2.4 and mean different things in different systems (``A`` is Asian in one,
"Asian or Pacific Islander" in another; ``O`` is Other or Oriental). Map them per source.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl

from segment.ingest.normalize import Normalized, blank_to_null


class Race(StrEnum):
    """Normalized race: the OMB minimum categories, Other race, Multiple races."""

    AMERICAN_INDIAN_OR_ALASKA_NATIVE = "American Indian or Alaska Native"
    ASIAN = "Asian"
    BLACK_OR_AFRICAN_AMERICAN = "Black or African American"
    NATIVE_HAWAIIAN_OR_OTHER_PACIFIC_ISLANDER = "Native Hawaiian or Other Pacific Islander"
    WHITE = "White"
    OTHER = "Other race"
    MULTIPLE = "Multiple races"


class Ethnicity(StrEnum):
    """Normalized ethnicity: the two OMB categories."""

    HISPANIC_OR_LATINO = "Hispanic or Latino"
    NOT_HISPANIC_OR_LATINO = "Not Hispanic or Latino"


_AIAN = Race.AMERICAN_INDIAN_OR_ALASKA_NATIVE
_ASIAN = Race.ASIAN
_BLACK = Race.BLACK_OR_AFRICAN_AMERICAN
_NHPI = Race.NATIVE_HAWAIIAN_OR_OTHER_PACIFIC_ISLANDER
_WHITE = Race.WHITE
_HISP = Ethnicity.HISPANIC_OR_LATINO
_NOT_HISP = Ethnicity.NOT_HISPANIC_OR_LATINO

#: the five OMB minimum race categories (SPD 15, 1997), in the OMB's order
OMB_RACES: tuple[Race, ...] = (_AIAN, _ASIAN, _BLACK, _NHPI, _WHITE)
#: every value ``normalize_race`` can return (besides null)
RACES: tuple[Race, ...] = tuple(Race)
#: every value ``normalize_ethnicity`` can return (besides null)
ETHNICITIES: tuple[Ethnicity, ...] = tuple(Ethnicity)

RACE_PROBLEM = "unrecognized race (not an OMB category)"
RACE_CODE_PROBLEM = "unknown CDC race code"
RACE_AMBIGUOUS_PROBLEM = "ambiguous race ('Asian or Pacific Islander' spans two OMB categories)"
ETHNICITY_PROBLEM = "unrecognized ethnicity (not an OMB category)"
ETHNICITY_CODE_PROBLEM = "unknown CDC ethnicity code"
ETHNICITY_CONTRADICTION_PROBLEM = "contradictory ethnicity (both Hispanic and not Hispanic)"

# -- CDC Race & Ethnicity Code Set ----------------------------------------------------------
#: CDC code set blocks: (first, last) numeric part -> category. Source: the complete
#: hierarchy (966 concepts) of CDC Race & Ethnicity Code Set v1.0 as published in US Core
#: (CodeSystem ``cdcrec``, urn:oid:2.16.840.1.113883.6.238): every detailed race code lies
#: in its category's block, e.g. American Indian or Alaska Native 1002-5 .. 2026-3 (the
#: Aleut codes run past 2000), Asian 2028-9 .. 2052-9, Black 2054-5 .. 2075-0, NHPI
#: 2076-8 .. 2104-8, White 2106-3 .. 2129-5 (Middle Eastern or North African 2118-8 is
#: under White); the one exception is 2500-7 Other Pacific Islander (NHPI).
RACE_CODE_BLOCKS: tuple[tuple[int, int, Race], ...] = (
    (1002, 2027, _AIAN),
    (2028, 2053, _ASIAN),
    (2054, 2075, _BLACK),
    (2076, 2105, _NHPI),
    (2500, 2500, _NHPI),
    (2106, 2130, _WHITE),
    (2131, 2131, Race.OTHER),
)
#: Hispanic or Latino 2135-2 with its detailed codes 2137-8 .. 2184-0; 2186-5 Not Hispanic
ETHNICITY_CODE_BLOCKS: tuple[tuple[int, int, Ethnicity], ...] = (
    (2135, 2185, _HISP),
    (2186, 2186, _NOT_HISP),
)


def cdc_check_digit(number: int) -> int:
    """The mod-10 (Luhn, as in LOINC) check digit of a CDC race/ethnicity code: 2106 -> 3."""
    total = 0
    for position, char in enumerate(reversed(f"{number:04d}")):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10


def _codes(blocks: tuple[tuple[int, int, str], ...]) -> dict[str, str]:
    return {
        f"{n}-{cdc_check_digit(n)}": str(category)
        for first, last, category in blocks
        for n in range(first, last + 1)
    }


#: every valid CDC race code (with its check digit) -> its OMB category
CDC_RACE_CODES: dict[str, str] = _codes(RACE_CODE_BLOCKS)
#: every valid CDC ethnicity code -> Hispanic or Latino / Not Hispanic or Latino
CDC_ETHNICITY_CODES: dict[str, str] = _codes(ETHNICITY_CODE_BLOCKS)

# -- free text ------------------------------------------------------------------------------
#: answers that mean "not known": null without a problem (HL7 null flavors UNK, ASKU, NASK,
#: NI, MSK; HL7 v2 Table 0189 ``U``; the usual declined/refused wordings)
UNKNOWN_SPELLINGS: tuple[str, ...] = (
    "unknown", "unk", "u", "asku", "asked but unknown", "asked unknown", "nask", "not asked",
    "ni", "no information", "msk", "masked", "declined", "declined to answer",
    "declined to specify", "declined to state", "patient declined", "refused",
    "refused to answer", "patient refused", "prefer not to say", "prefer not to answer",
    "choose not to disclose", "not disclosed", "not reported", "not specified", "unspecified",
    "not provided", "not recorded", "not stated", "unavailable", "not available",
    "undetermined", "unknown declined",
)

#: Hispanic or Latino origins (CDC detailed ethnicity displays under 2135-2, plus common
#: spellings and old Synthea's ancestry values): as ethnicity -> Hispanic or Latino; as race
#: -> race null (OMB asks Hispanic origin separately) and, via ``race_raw``, Hispanic
HISPANIC_ORIGINS: tuple[str, ...] = (
    "mexican", "mexican american", "mexicano", "chicano", "chicana", "la raza", "puerto rican",
    "cuban", "dominican", "central american", "south american", "latin american", "spaniard",
    "spanish", "spanish basque", "andalusian", "asturian", "castillian", "catalonian",
    "gallego", "valencian", "canarian", "costa rican", "guatemalan", "honduran", "nicaraguan",
    "panamanian", "salvadoran", "salvadorean", "canal zone", "central american indian",
    "argentinean", "argentinian", "argentine", "bolivian", "chilean", "colombian",
    "ecuadorian", "paraguayan", "peruvian", "uruguayan", "venezuelan", "south american indian",
    "criollo",
)

#: ancestries that are not Hispanic or Latino origins (old Synthea's whole list, then common
#: ones): as ethnicity -> Not Hispanic or Latino. Portuguese and Brazilian are not Hispanic
#: origins under OMB's definition ("Cuban, Mexican, Puerto Rican, South or Central American,
#: or other Spanish culture or origin").
NON_HISPANIC_ANCESTRIES: tuple[str, ...] = (
    # old Synthea (Demographics.ethnicityFromRace): white, black, asian, native, other
    "irish", "italian", "english", "french", "german", "polish", "portuguese", "american",
    "french canadian", "scottish", "russian", "swedish", "greek", "african", "west indian",
    "chinese", "asian indian", "american indian", "arab",
    # other common ancestries
    "scotch irish", "welsh", "british", "dutch", "norwegian", "danish", "finnish", "icelandic",
    "hungarian", "czech", "slovak", "ukrainian", "lithuanian", "latvian", "estonian",
    "austrian", "swiss", "belgian", "canadian", "european", "armenian", "lebanese",
    "middle eastern", "iranian", "persian", "israeli", "turkish", "egyptian", "syrian",
    "assyrian", "iraqi", "palestinian", "afghan", "afghanistani", "moroccan", "algerian",
    "african american", "haitian", "jamaican", "cape verdean", "nigerian", "ethiopian",
    "somali", "ghanaian", "kenyan", "liberian", "brazilian", "japanese", "korean",
    "vietnamese", "filipino", "cambodian", "laotian", "hmong", "thai", "pakistani",
    "bangladeshi", "taiwanese", "native american", "alaska native", "native hawaiian",
    "samoan",
)

#: race spellings -> category (keys compared lower-case, punctuation as spaces). Sources:
#: OMB category names and Census 2020 wordings; CDC detailed race displays; EHR habits;
#: Synthea (``native`` is American Indian or Alaska Native, ``hawaiian`` is NHPI, as in
#: Synthea's own RaceAndEthnicity CDC lookup).
RACE_SPELLINGS: dict[str, Race] = {
    **dict.fromkeys([
        "american indian or alaska native", "american indian and alaska native",
        "american indian alaska native", "american indian or alaskan native",
        "american indian alaskan native", "american indian", "alaska native", "alaskan native",
        "native alaskan", "native american", "native", "amerindian", "aian", "alaska indian",
        "eskimo", "aleut", "canadian indian", "first nations", "central american indian",
        "south american indian", "mexican american indian",
    ], _AIAN),
    **dict.fromkeys([
        "asian", "asian american", "asian indian", "chinese", "filipino", "japanese",
        "korean", "vietnamese", "other asian", "bangladeshi", "bhutanese", "burmese",
        "cambodian", "hmong", "indonesian", "laotian", "malaysian", "nepalese", "okinawan",
        "pakistani", "singaporean", "sri lankan", "taiwanese", "thai", "maldivian",
    ], _ASIAN),
    **dict.fromkeys([
        "black or african american", "black african american", "black", "african american",
        "afro american", "african", "black african", "bahamian", "barbadian", "haitian",
        "jamaican", "tobagoan", "trinidadian", "west indian", "botswanan", "ethiopian",
        "liberian", "namibian", "nigerian", "zairean", "dominica islander",
    ], _BLACK),
    **dict.fromkeys([
        "native hawaiian or other pacific islander", "native hawaiian and other pacific islander",
        "native hawaiian other pacific islander", "native hawaiian pacific islander",
        "hawaiian pacific islander", "nhpi", "nhopi", "native hawaiian", "hawaiian",
        "pacific islander", "other pacific islander", "samoan", "guamanian or chamorro",
        "guamanian", "chamorro", "tongan", "tahitian", "fijian", "marshallese", "palauan",
        "chuukese", "micronesian", "polynesian", "melanesian", "papua new guinean",
    ], _NHPI),
    **dict.fromkeys([
        "white", "caucasian", "white or caucasian", "european", "european american",
        "middle eastern or north african", "middle eastern", "north african", "mena", "arab",
        "arab american", "armenian", "english", "french", "german", "irish", "italian",
        "polish", "scottish", "assyrian", "egyptian", "iranian", "iraqi", "lebanese",
        "palestinian", "syrian", "afghan", "afghanistani", "israeli",
    ], _WHITE),
    **dict.fromkeys(["other race", "other", "some other race", "oth"], Race.OTHER),
    **dict.fromkeys([
        "multiple races", "multiple", "multiracial", "multi racial", "multirace",
        "two or more races", "two or more", "2 or more races", "more than one race",
        "biracial", "bi racial", "mixed", "mixed race",
    ], Race.MULTIPLE),
}

#: race-column answers that are about ethnicity: race null (no problem), and the ethnicity
#: they state is used by ``normalize_ethnicity(..., race_raw=...)`` when ETHNICITY is silent
RACE_COLUMN_ETHNICITY: dict[str, Ethnicity] = {
    **dict.fromkeys([
        "hispanic", "hispanic or latino", "hispanic latino", "latino", "latina", "latinx",
        "latine", *HISPANIC_ORIGINS,
    ], _HISP),
    **dict.fromkeys([
        "non hispanic", "nonhispanic", "not hispanic", "not hispanic or latino",
        "non hispanic or latino",
    ], _NOT_HISP),
}

#: pre-1997 combined category: it spans Asian and NHPI, so it cannot be placed
AMBIGUOUS_RACE: tuple[str, ...] = (
    "asian or pacific islander", "asian pacific islander", "asian pacific american",
    "asian and pacific islander", "api", "aapi",
)

#: ethnicity spellings -> category. ``yes``/``no`` answer the OMB question "Are you of
#: Hispanic, Latino, or Spanish origin?"; ``H``/``N`` are HL7 v2 Table 0189.
ETHNICITY_SPELLINGS: dict[str, Ethnicity] = {
    **dict.fromkeys([
        "hispanic or latino", "hispanic", "hispanic latino", "hispanic or latina",
        "hispanic latina", "hispanic or latinx", "hispanic latinx", "latino", "latina",
        "latinx", "latine", "hispanic origin", "spanish origin",
        "hispanic latino or spanish origin", "of hispanic latino or spanish origin",
        "h", "yes", "y",
    ], _HISP),
    **dict.fromkeys([
        "not hispanic or latino", "nonhispanic", "non hispanic", "not hispanic",
        "non hispanic or latino", "not hispanic latino", "non hispanic latino",
        "not hispanic or latina", "non hispanic or latina", "not latino", "non latino",
        "not of hispanic origin", "not of hispanic latino or spanish origin", "n", "no",
    ], _NOT_HISP),
}

# internal tokens: a part of a cell is a category, or one of these (or null: not recognized)
_UNKNOWN = "~unknown"
_BAD_CODE = "~bad code"
_AMBIGUOUS = "~ambiguous"
_ETH_HISP = "~race says hispanic"
_ETH_NOT = "~race says not hispanic"
_ANCESTRY = "~non-hispanic ancestry"

_RACE_TOKENS: dict[str, str] = {
    **dict.fromkeys(("", *UNKNOWN_SPELLINGS), _UNKNOWN),
    **dict.fromkeys(AMBIGUOUS_RACE, _AMBIGUOUS),
    **{k: (_ETH_HISP if v == _HISP else _ETH_NOT) for k, v in RACE_COLUMN_ETHNICITY.items()},
    **{k: str(v) for k, v in RACE_SPELLINGS.items()},
    **{r.lower(): str(r) for r in RACES},
}
_ETHNICITY_TOKENS: dict[str, str] = {
    **dict.fromkeys(("", *UNKNOWN_SPELLINGS), _UNKNOWN),
    **dict.fromkeys(NON_HISPANIC_ANCESTRIES, _ANCESTRY),
    **dict.fromkeys(HISPANIC_ORIGINS, str(_HISP)),
    **{k: str(v) for k, v in ETHNICITY_SPELLINGS.items()},
}
_RACE_CODE_TOKENS: dict[str, str] = {
    **CDC_RACE_CODES,
    **{c: (_ETH_HISP if v == _HISP else _ETH_NOT) for c, v in CDC_ETHNICITY_CODES.items()},
}

#: a code-system prefix before a code (``urn:oid:2.16.840.1.113883.6.238|2106-3``)
_SYSTEM = (
    r"(?i)(?:urn:oid:2\.16\.840\.1\.113883\.6\.238|https?://terminology\.hl7\.org/CodeSystem/"
    r"(?:CDCREC|PHRaceAndEthnicityCDC|v3-Race|v3-Ethnicity|v2-0005)|cdcrec|hl70005)\s*[|#:]\s*"
)
#: separators between several answers in one cell (``~`` repeats a field in HL7 v2)
_SEPARATORS = r"(?i)\s*(?:[;,|/+&~\n\t]|\s-\s|\band\b)\s*"
_CODE = r"(?:^|[^0-9])([0-9]{4}-[0-9])(?:[^0-9]|$)"
_SPLIT = "\x1f"


def _key(expr: pl.Expr) -> pl.Expr:
    """Lower case, punctuation and underscores as single spaces: ``Non_Hispanic`` -> ``non hispanic``."""
    return expr.str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars()


def _token(part: pl.Expr, words: dict[str, str], codes: dict[str, str]) -> pl.Expr:
    """One answer -> its token: a CDC code when it holds one, else its spelling; null if neither."""
    code = part.str.extract(_CODE, 1)
    return (
        pl.when(code.is_not_null())
        .then(code.replace_strict(codes, default=_BAD_CODE, return_dtype=pl.String))
        .otherwise(_key(part).replace_strict(words, default=None, return_dtype=pl.String))
    )


def _tokens(raw: pl.Expr, words: dict[str, str], codes: dict[str, str]) -> pl.Expr:
    """The tokens of a cell: the whole cell's when it is one known spelling, else one per part.

    The whole cell is looked up as text only (``American Indian and Alaska Native`` is one
    answer); codes are read part by part, so ``2106-3~2054-5`` is two answers.
    """
    s = blank_to_null(raw).str.replace_all(_SYSTEM, "")
    whole = _key(s).replace_strict(words, default=None, return_dtype=pl.String)
    parts = (
        s.str.replace_all(_SEPARATORS, _SPLIT).str.split(_SPLIT)
        .list.eval(pl.element().filter(pl.element().str.strip_chars() != ""))
        .list.eval(_token(pl.element(), words, codes))
    )
    return pl.when(whole.is_not_null()).then(pl.concat_list(whole)).otherwise(parts)


def _has(tokens: pl.Expr, token: str) -> pl.Expr:
    return tokens.list.contains(pl.lit(token, dtype=pl.String)).fill_null(False)


def _has_unrecognized(tokens: pl.Expr) -> pl.Expr:
    return tokens.list.eval(pl.element().is_null()).list.any().fill_null(False)


def normalize_race(raw: pl.Expr) -> Normalized:
    """Race -> an OMB category, ``Other race`` or ``Multiple races``; unknown -> null.

    >>> import polars as pl
    >>> n = normalize_race(pl.col("r"))
    >>> df = pl.DataFrame({"r": ["white", "2054-5", "White; Asian", "declined", "martian"]})
    >>> df.select(n.value).to_series().to_list()
    ['White', 'Black or African American', 'Multiple races', None, None]
    """
    tokens = _tokens(raw, _RACE_TOKENS, _RACE_CODE_TOKENS)
    categories = tokens.list.eval(
        pl.element().filter(pl.element().is_not_null() & ~pl.element().str.starts_with("~"))
    ).list.unique()
    count = categories.list.len()
    problem = (
        pl.when(tokens.is_null()).then(None)
        .when(_has(tokens, _AMBIGUOUS)).then(pl.lit(RACE_AMBIGUOUS_PROBLEM))
        .when(_has(tokens, _BAD_CODE)).then(pl.lit(RACE_CODE_PROBLEM))
        .when(_has_unrecognized(tokens)).then(pl.lit(RACE_PROBLEM))
        .otherwise(None)
    )
    value = (
        pl.when(problem.is_not_null()).then(None)
        .when(count >= 2).then(pl.lit(str(Race.MULTIPLE)))
        .when(count == 1).then(categories.list.first())
        .otherwise(None)
    )
    return Normalized(value.cast(pl.String), problem.cast(pl.String))


def ethnicity_from_race(race_raw: pl.Expr) -> pl.Expr:
    """The ethnicity a race value states (old Synthea race ``hispanic``, ``2135-2``), or null."""
    tokens = _tokens(race_raw, _RACE_TOKENS, _RACE_CODE_TOKENS)
    return (
        pl.when(_has(tokens, _ETH_HISP)).then(pl.lit(str(_HISP)))
        .when(_has(tokens, _ETH_NOT)).then(pl.lit(str(_NOT_HISP)))
        .otherwise(None)
        .cast(pl.String)
    )


def normalize_ethnicity(raw: pl.Expr, race_raw: pl.Expr | None = None) -> Normalized:
    """Ethnicity -> ``Hispanic or Latino`` / ``Not Hispanic or Latino``; unknown -> null.

    An ancestry decides by origin (``puerto_rican`` -> Hispanic, ``irish`` -> Not Hispanic;
    any Hispanic origin among several makes the person Hispanic). When the ethnicity value
    does not decide (blank, unknown, or unrecognized: its problem is still reported) and
    ``race_raw`` states an ethnicity (old Synthea race ``hispanic``), that is used.
    """
    tokens = _tokens(raw, _ETHNICITY_TOKENS, CDC_ETHNICITY_CODES)
    hispanic = _has(tokens, str(_HISP))
    explicit_not = _has(tokens, str(_NOT_HISP))
    problem = (
        pl.when(tokens.is_null()).then(None)
        .when(_has(tokens, _BAD_CODE)).then(pl.lit(ETHNICITY_CODE_PROBLEM))
        .when(_has_unrecognized(tokens)).then(pl.lit(ETHNICITY_PROBLEM))
        .when(hispanic & explicit_not).then(pl.lit(ETHNICITY_CONTRADICTION_PROBLEM))
        .otherwise(None)
    )
    value = (
        pl.when(problem.is_not_null()).then(None)
        .when(hispanic).then(pl.lit(str(_HISP)))
        .when(explicit_not | _has(tokens, _ANCESTRY)).then(pl.lit(str(_NOT_HISP)))
        .otherwise(None)
        .cast(pl.String)
    )
    if race_raw is not None:
        value = pl.coalesce(value, ethnicity_from_race(race_raw))
    return Normalized(value, problem.cast(pl.String))
