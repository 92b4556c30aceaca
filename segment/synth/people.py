"""Synthetic people and how each source system writes them down, messily.

:func:`draw_people` draws the true population of one chunk (NumPy, vectorized) as a
Polars frame; :func:`render_patients` writes it the way one source system would:
mixed date formats, phone formats, ZIP+4 or ZIPs that lost their leading zero, state
spellings, consent flags as Y/N/yes/true/blank, nicknames and typos in the second
system, exact duplicate rows, and a few rows broken on purpose (no id, no birth date,
impossible dates) so that ingest has rejects to report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from segment.synth import vocab
from segment.synth.world import STATE, DemoGeography

#: raw patient columns, in file order (canonical names, DESIGN.md)
PATIENT_COLUMNS = (
    "patient_id",
    "first_name",
    "last_name",
    "birth_date",
    "sex",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip5",
    "email",
    "phone_e164",
    "phone_type",
    "language",
    "race",
    "ethnicity",
    "email_consent",
    "sms_consent",
    "do_not_contact",
    "deceased_date",
    "updated_at",
)

#: source system name -> record id prefix
SOURCE_PREFIX = {"ehr": "E", "crm": "C", "claims": "M"}
SOURCES = tuple(SOURCE_PREFIX)

_EPOCH = np.datetime64("1970-01-01", "D")
#: share of people who are the twin of the person before them (same birth date, family phone)
TWIN_SHARE = 0.006
#: share of people with the same name, sex and birth date as the person before them
NAMESAKE_SHARE = 0.004


def _days(d: dt.date) -> int:
    return (np.datetime64(d, "D") - _EPOCH).astype(int)


def _pick(rng: np.random.Generator, values: Sequence[str], n: int, p: Sequence[float] | None = None) -> pl.Series:
    """``n`` values drawn from ``values`` (with weights ``p``), as a String series."""
    w = None if p is None else np.asarray(p, dtype=float) / np.sum(p)
    idx = rng.choice(len(values), size=n, p=w)
    return pl.Series(values, dtype=pl.String).gather(idx)


def _zipf(k: int, s: float = 1.0, q: float = 6.0) -> np.ndarray:
    w = 1.0 / (np.arange(k) + q) ** s
    return np.asarray(w / w.sum())


_HISPANIC_LAST = [n for n in vocab.LAST if n.endswith("ez") or n in {
    "Garcia", "Rivera", "Flores", "Torres", "Gomez", "Diaz", "Cruz", "Reyes", "Morales",
    "Ortiz", "Ramos", "Chavez", "Mendoza", "Ruiz", "Castillo", "Jimenez"}]
_ASIAN_LAST = ["Nguyen", "Tran", "Pham", "Le", "Hoang", "Vu", "Chen", "Wang", "Li", "Zhang",
               "Liu", "Huang", "Wong", "Chan", "Kim", "Lee", "Patel"]
_HAITIAN_LAST = ["Pierre", "Jean-Baptiste", "Joseph", "Charles", "Louis", "Desir"]


def draw_people(
    rng: np.random.Generator,
    n: int,
    first_person: int,
    geo: DemoGeography,
    ref_date: dt.date,
    sources: int,
) -> pl.DataFrame:
    """The true people of one chunk: demographics, a home on the world's streets,
    contact details, consent, clinical flags and which source systems know them."""
    ref = _days(ref_date)
    # -- age and sex: a health-system panel, mostly adults ---------------------------
    bins = np.array([[0, 18], [18, 45], [45, 65], [65, 80], [80, 96]], dtype=float)
    b = rng.choice(len(bins), n, p=[0.14, 0.30, 0.31, 0.18, 0.07])
    age = rng.uniform(bins[b, 0], bins[b, 1])
    birth = ref - np.round(age * 365.2425).astype(np.int64) - 1
    sex = rng.choice(4, n, p=[0.528, 0.468, 0.002, 0.002])  # F M X U

    # -- home: a house on a street side, weighted by tract population ----------------
    slots = geo.slots
    side = np.searchsorted(slots.cdf, rng.random(n))
    lo, hi = slots.low[side], slots.high[side]
    hn = lo + 2 * rng.integers(0, (hi - lo) // 2 + 1)
    street_row = slots.street[side]
    streets = geo.streets
    tract = streets["tract_index"].to_numpy()[street_row]
    urban = geo.tracts["urbanicity"].to_numpy()[tract]
    pov = geo.indicators["povP"].to_numpy()[tract]
    pov_z = (pov - pov.mean()) / max(pov.std(), 1e-9)

    # -- ethnicity, race, language (more diverse and more Spanish in poorer tracts) ---
    hisp_p = np.clip(0.10 + 0.06 * pov_z + 0.05 * urban, 0.03, 0.45)
    hispanic = rng.random(n) < hisp_p
    race = rng.choice(len(vocab.RACES), n, p=[0.74, 0.09, 0.07, 0.004, 0.002, 0.094])
    race = np.where(hispanic & (rng.random(n) < 0.45), 5, race)
    lang = np.zeros(n, dtype=np.int8)  # index into _LANGS
    u = rng.random(n)
    lang = np.where(hispanic & (u < 0.5), 1, lang)
    lang = np.where((race == 2) & (u < 0.35), np.where(u < 0.2, 4, 5), lang)  # zh / vi
    lang = np.where((race == 1) & (u < 0.14), 3, lang)  # Haitian Creole
    lang = np.where((race == 0) & ~hispanic & (u < 0.05), 2, lang)  # Portuguese
    lang = np.where((race == 0) & ~hispanic & (u > 0.99), 6, lang)  # Russian
    lang = np.where((race == 5) & ~hispanic & (u < 0.1), 7, lang)  # Arabic

    # -- names --------------------------------------------------------------------------
    female_names, male_names = np.asarray(vocab.FEMALE_FIRST), np.asarray(vocab.MALE_FIRST)
    fem = female_names[rng.choice(len(female_names), n, p=_zipf(len(female_names)))]
    mal = male_names[rng.choice(len(male_names), n, p=_zipf(len(male_names)))]
    anyf = np.where(rng.random(n) < 0.5, fem, mal)
    first = np.where(sex == 0, fem, np.where(sex == 1, mal, anyf))
    last = pl.Series(vocab.LAST).gather(rng.choice(len(vocab.LAST), n, p=_zipf(len(vocab.LAST), 0.8, 10))).to_numpy()
    group_last = np.select(
        [hispanic, race == 2, lang == 3],
        [
            np.asarray(_HISPANIC_LAST)[rng.integers(0, len(_HISPANIC_LAST), n)],
            np.asarray(_ASIAN_LAST)[rng.integers(0, len(_ASIAN_LAST), n)],
            np.asarray(_HAITIAN_LAST)[rng.integers(0, len(_HAITIAN_LAST), n)],
        ],
        last,
    )
    last = np.where(rng.random(n) < 0.75, group_last, last)
    last2 = np.asarray(vocab.LAST)[rng.integers(0, len(vocab.LAST), n)]  # a married name

    # -- contact ------------------------------------------------------------------------
    area = rng.choice(len(vocab.AREA_CODES), n, p=[0.25, 0.22, 0.12, 0.1, 0.05, 0.1, 0.08, 0.05, 0.03])
    line = rng.integers(0, 10_000, n)
    mobile_p = np.clip(0.9 - 0.004 * np.maximum(age - 50, 0), 0.45, 0.92)
    has_phone = rng.random(n) < 0.93
    phone_type = np.where(rng.random(n) < mobile_p, 0, np.where(rng.random(n) < 0.85, 1, 2))
    has_email = (rng.random(n) < np.where(age < 13, 0.15, np.clip(0.92 - 0.005 * np.maximum(age - 55, 0), 0.5, 0.92)))
    email_style = rng.integers(0, 4, n)
    email_num = rng.integers(1, 99, n)
    domain = rng.choice(len(vocab.EMAIL_DOMAINS), n, p=[0.5, 0.25, 0.15, 0.1])

    # consent: True / False / unknown (null), and do-not-contact
    email_consent = np.where(has_email, rng.choice(3, n, p=[0.55, 0.15, 0.30]), 2)
    sms_consent = np.where(has_phone & (phone_type == 0), rng.choice(3, n, p=[0.40, 0.15, 0.45]), 2)
    dnc = rng.random(n) < 0.02

    # -- clinical flags and lifetime ------------------------------------------------------
    female = sex == 0
    diabetes = rng.random(n) < np.where(age < 18, 0.002, np.clip(0.01 + 0.0032 * (age - 18), 0, 0.26)) * (1 + 0.25 * np.clip(pov_z, -1, 2))
    mastectomy = female & (age >= 40) & (rng.random(n) < 0.007)
    crc = (age >= 45) & (rng.random(n) < 0.005)
    colectomy = (crc & (rng.random(n) < 0.5)) | ((age >= 45) & (rng.random(n) < 0.001))
    hysterectomy = female & (age >= 35) & (rng.random(n) < 0.09)
    hospice = (age >= 70) & (rng.random(n) < 0.012)
    death_p = np.where(age >= 80, 0.045, np.where(age >= 65, 0.011, 0.0015)) + 0.4 * hospice
    deceased = rng.random(n) < death_p
    deceased_day = np.where(deceased, ref - rng.integers(1, 3 * 365, n), np.iinfo(np.int64).min)
    deceased_day = np.where(deceased & hospice, ref - rng.integers(1, 120, n), deceased_day)
    end = np.where(deceased, deceased_day, ref)
    window = ref - int(12 * 365.2425)
    enroll = np.where(rng.random(n) < 0.6, window, window + rng.integers(0, ref - window, n))
    enroll = np.minimum(np.maximum(enroll, birth), end - 1)
    engagement = rng.gamma(1.6, 1 / 1.6, n) * np.exp(-0.25 * np.clip(pov_z, -2, 3))

    # -- which source systems know this person ------------------------------------------
    r = rng.random(n)
    if sources == 1:
        in_ehr, in_crm = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    else:
        in_ehr = r < 0.85  # 50% EHR only, 35% both, 15% CRM only
        in_crm = r >= 0.50
    in_claims = (rng.random(n) < 0.6) & in_ehr if sources >= 3 else np.zeros(n, dtype=bool)

    # -- a second address (moved) and units ------------------------------------------------
    moved = rng.random(n) < 0.15
    side2 = np.searchsorted(slots.cdf, rng.random(n))
    lo2, hi2 = slots.low[side2], slots.high[side2]
    hn2 = lo2 + 2 * rng.integers(0, (hi2 - lo2) // 2 + 1)
    unit_p = 0.05 + 0.45 * urban
    unit = np.where(rng.random(n) < unit_p, rng.integers(1, 40, n), 0)
    unit_letter = rng.integers(0, 6, n)

    names = streets["FULLNAME"].to_numpy()
    zips = streets["ZIPL"].to_numpy()
    zip_city = dict(zip(geo.zips["zip5"].to_list(), geo.zips["city"].to_list(), strict=True))
    city_of = np.vectorize(zip_city.__getitem__, otypes=[object])
    uzips = np.unique(zips)
    ucity = city_of(uzips)
    zip_i = np.searchsorted(uzips, zips[street_row])
    zip2_i = np.searchsorted(uzips, zips[slots.street[side2]])

    # -- people who are hard to tell apart (a side stream: the draws above are unchanged) --
    # twins: the next person shares the birth date, last name, home, phone and email domain,
    # with another first name; strangers: the next person has the same first and last name,
    # sex and birth date, and another home and phone
    side_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
    u_pair = side_rng.random(n)
    twin = np.zeros(n, dtype=bool)
    twin[1:] = u_pair[1:] < TWIN_SHARE
    twin[1:] &= ~twin[:-1]  # the person a twin copies is not a twin themself
    stranger = np.zeros(n, dtype=bool)
    stranger[1:] = (u_pair[1:] >= TWIN_SHARE) & (u_pair[1:] < TWIN_SHARE + NAMESAKE_SHARE)
    stranger[1:] &= ~twin[:-1] & ~stranger[:-1]
    prev = np.maximum(np.arange(n) - 1, 0)
    for arr in (birth, last, hn, street_row, tract, urban, hispanic, race, lang, area, line, domain, moved, hn2,
                side2, unit, unit_letter, last2):
        arr[twin] = arr[prev[twin]]
    has_phone[twin | np.roll(twin, -1)] = True  # the family phone
    # a twin's first name differs from the sibling's (drawn again while they clash)
    for _ in range(5):
        # not the same name, nor a spelling of it (Steven and Stephen): another first three letters
        stem = np.char.lower(first.astype("U3"))
        clash = twin & (stem == stem[prev])
        k = int(clash.sum())
        first[clash] = np.where(
            sex[clash] == 1, male_names[side_rng.integers(0, len(male_names), k)],
            female_names[side_rng.integers(0, len(female_names), k)],
        )
    for arr in (birth, first, last, sex):
        arr[stranger] = arr[prev[stranger]]
    # an email address belongs to one person: a namesake's is not the other's
    email_num[stranger] = email_num[prev[stranger]] % 98 + 1
    age = (ref - birth) / 365.2425
    zip_i = np.searchsorted(uzips, zips[street_row])
    zip2_i = np.searchsorted(uzips, zips[slots.street[side2]])
    twin_of = np.where(twin, first_person + prev, -1)
    namesake_of = np.where(stranger, first_person + prev, -1)

    return pl.DataFrame(
        {
            "person": np.arange(first_person, first_person + n, dtype=np.int64),
            "twin_of": twin_of.astype(np.int64),
            "namesake_of": namesake_of.astype(np.int64),
            "sex": pl.Series(["F", "M", "X", "U"]).gather(sex),
            "birth_day": birth.astype(np.int32),
            "age": age,
            "first": first.astype(str),
            "last": last.astype(str),
            "last2": last2.astype(str),
            "hn": hn.astype(np.int64),
            "street": names[street_row].astype(str),
            "zip5": uzips[zip_i].astype(str),
            "city": ucity[zip_i].astype(str),
            "hn2": hn2.astype(np.int64),
            "street2": names[slots.street[side2]].astype(str),
            "zip52": uzips[zip2_i].astype(str),
            "city2": ucity[zip2_i].astype(str),
            "unit": unit.astype(np.int32),
            "unit_letter": unit_letter.astype(np.int8),
            "tract": tract.astype(np.int32),
            "rural": urban < 0.2,
            "hispanic": hispanic,
            "race": race.astype(np.int8),
            "lang": lang.astype(np.int8),
            "area": pl.Series(vocab.AREA_CODES).gather(area),
            "line": line.astype(np.int32),
            "has_phone": has_phone,
            "phone_type": phone_type.astype(np.int8),
            "has_email": has_email,
            "email_style": email_style.astype(np.int8),
            "email_num": email_num.astype(np.int16),
            "domain": pl.Series(vocab.EMAIL_DOMAINS).gather(domain),
            "email_consent": email_consent.astype(np.int8),
            "sms_consent": sms_consent.astype(np.int8),
            "dnc": dnc,
            "deceased": deceased,
            "deceased_day": np.where(deceased, deceased_day, 0).astype(np.int32),
            "enroll_day": enroll.astype(np.int32),
            "end_day": end.astype(np.int32),
            "engagement": engagement,
            "diabetes": diabetes,
            "mastectomy": mastectomy,
            "crc": crc,
            "colectomy": colectomy,
            "hysterectomy": hysterectomy,
            "hospice": hospice,
            "in_ehr": in_ehr,
            "in_crm": in_crm,
            "in_claims": in_claims,
            "moved": moved,
        }
    )


# -- rendering ---------------------------------------------------------------------------

_LANG_CODES = ("en", "es", "pt", "ht", "zh", "vi", "ru", "ar")


def _variant(rng: np.random.Generator, n: int, p: Sequence[float]) -> pl.Series:
    w = np.asarray(p, dtype=float)
    return pl.Series(rng.choice(len(w), n, p=w / w.sum()).astype(np.int8))


def _choose(col: str, options: Sequence[pl.Expr]) -> pl.Expr:
    """``options[k]`` where ``col == k``."""
    expr: Any = pl.when(pl.col(col) == 0).then(options[0])
    for k, opt in enumerate(options[1:], start=1):
        expr = expr.when(pl.col(col) == k).then(opt)
    result: pl.Expr = expr.otherwise(None)
    return result


def _date_text(day: pl.Expr, variant: str, formats: Sequence[str]) -> pl.Expr:
    d = day.cast(pl.Date)
    return _choose(variant, [d.dt.strftime(f) for f in formats])


def _typo(s: pl.Expr, pos: pl.Expr) -> pl.Expr:
    """Swap two adjacent characters at ``pos`` (a vectorized keyboard slip)."""
    return pl.concat_str(
        s.str.slice(0, pos), s.str.slice(pos + 1, 1), s.str.slice(pos, 1), s.str.slice(pos + 2)
    )


def _long_street(street: pl.Expr) -> pl.Expr:
    """``N Washington St`` -> ``North Washington Street`` (what people type)."""
    out = street
    for short, long in vocab.DIRECTIONAL_LONG.items():
        out = out.str.replace(f"^{short} ", f"{long} ")
    for short, long in vocab.STREET_TYPE_LONG.items():
        out = out.str.replace(f" {short}$", f" {long}").str.replace(f" {short} ", f" {long} ")
    return out


#: in a second system: birth day and month transposed, one digit of the day off, a married
#: name taken in full (of women), a typo in the first name
TRANSPOSED_SHARE, DIGIT_OFF_SHARE, MARRIED_SHARE, FIRST_TYPO_SHARE = 0.01, 0.005, 0.03, 0.01


def _drift(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """How a second system's copy drifts from the truth (a side random stream)."""
    u = pl.Series(rng.random(frame.height))
    u2 = pl.Series(rng.random(frame.height))
    day = pl.col("birth_day").cast(pl.Date)
    d, m, y = day.dt.day(), day.dt.month(), day.dt.year()
    transposed = (u < TRANSPOSED_SHARE) & (d <= 12) & (d != m)
    off = (u >= TRANSPOSED_SHARE) & (u < TRANSPOSED_SHARE + DIGIT_OFF_SHARE) & (d % 10 != 0) & (d % 10 != 9) & (d <= 27)
    married = (u2 < MARRIED_SHARE) & (pl.col("sex") == "F")
    typo = (u2 >= MARRIED_SHARE) & (u2 < MARRIED_SHARE + FIRST_TYPO_SHARE) & (pl.col("first").str.len_chars() > 4)
    epoch = pl.lit(dt.date(1970, 1, 1))
    return frame.with_columns(
        pl.when(transposed).then((pl.date(y, d, m) - epoch).dt.total_days().cast(pl.Int32))
        .when(off).then(pl.col("birth_day") + 1).otherwise(pl.col("birth_day")).alias("birth_day"),
        pl.when(married).then(pl.col("last2")).otherwise(pl.col("last")).alias("last"),
        pl.when(typo).then(_typo(pl.col("first"), pl.col("typo_pos"))).otherwise(pl.col("first")).alias("first"),
    )


def render_patients(
    people: pl.DataFrame, source: str, ids: pl.Series, rng: np.random.Generator, ref_date: dt.date
) -> pl.DataFrame:
    """The rows ``source`` holds for ``people`` (already filtered to its members).

    ``ids`` are the source record ids (text). Returns every raw column as text, with
    exact duplicates and broken rows mixed in.
    """
    n = people.height
    second = source != "ehr"  # the CRM and claims copies drift from the EHR's
    ref = _days(ref_date)
    v = {
        "v_id": _variant(rng, n, [0.9985, 0.0015]),
        "v_dob": _variant(rng, n, [0.2, 0.5, 0.3] if second else [0.7, 0.3, 0.0]),
        "v_dob_bad": _variant(rng, n, [0.9955, 0.003, 0.0008, 0.0007]),
        "v_sex": _variant(rng, n, [0.15, 0.75, 0.07, 0.03] if second else [0.85, 0.10, 0.04, 0.01]),
        "v_name": _variant(rng, n, [0.82, 0.08, 0.06, 0.04] if second else [0.88, 0.10, 0.0, 0.02]),
        "v_last": _variant(rng, n, [0.95, 0.03, 0.02] if second else [0.995, 0.005, 0.0]),
        "v_addr": _variant(rng, n, [0.66, 0.12, 0.06, 0.03, 0.03, 0.015, 0.005, 0.005, 0.01, 0.065]),
        "v_unit": _variant(rng, n, [0.3, 0.2, 0.15, 0.15, 0.1, 0.1]),
        "v_unit_where": _variant(rng, n, [0.6, 0.4]),
        "v_city": _variant(rng, n, [0.9, 0.05, 0.03, 0.02]),
        "v_state": _variant(rng, n, [0.84, 0.06, 0.02, 0.03, 0.05]),
        "v_zip": _variant(rng, n, [0.8, 0.08, 0.06, 0.015, 0.02, 0.025]),
        "v_phone": _variant(rng, n, [0.25, 0.15, 0.2, 0.2, 0.1, 0.05, 0.02, 0.03]),
        "v_ptype": _variant(rng, n, [0.6, 0.3, 0.1]),
        "v_email": _variant(rng, n, [0.96, 0.02, 0.01, 0.01]),
        "v_flag": _variant(rng, n, [0.4, 0.2, 0.2, 0.1, 0.1]),
        "v_lang": pl.Series(rng.integers(0, 6, n).astype(np.int8)),
        "v_race": _variant(rng, n, [0.9, 0.1]),
        "typo_pos": pl.Series(rng.integers(1, 4, n).astype(np.int32)),
        "other_zip": pl.Series(rng.integers(0, 1 << 30, n).astype(np.int64)),
        "ms": pl.Series(rng.integers(0, 86_400, n).astype(np.int64)),
        "upd_day": pl.Series(rng.integers(0, 1 << 30, n).astype(np.int64)),
        "box": pl.Series(rng.integers(1, 999, n).astype(np.int32)),
        "rr": pl.Series(rng.integers(1, 9, n).astype(np.int32)),
        "r_missing": pl.Series(rng.random(n)),
        "r_consent": pl.Series(rng.random(n)),
        "r_nick": pl.Series(rng.random(n)),
        "zip4": pl.Series(rng.integers(1000, 9999, n).astype(np.int32)),
    }
    frame = people.with_columns(ids=ids, **v)
    col = pl.col
    if second:
        frame = _drift(frame, np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0]))  # type: ignore[attr-defined]

    # which address this copy carries: movers' second systems know the new one
    use_new = col("moved") & pl.lit(second)
    hn = pl.when(use_new).then(col("hn2")).otherwise(col("hn"))
    street = pl.when(use_new).then(col("street2")).otherwise(col("street"))
    zip5 = pl.when(use_new).then(col("zip52")).otherwise(col("zip5"))
    city = pl.when(use_new).then(col("city2")).otherwise(col("city"))
    unit_text = _choose(
        "v_unit",
        [
            pl.format("Apt {}", col("unit")),
            pl.format("Apt {}{}", col("unit"), pl.lit("ABCDEF").str.slice(col("unit_letter"), 1)),
            pl.format("# {}", col("unit")),
            pl.format("#{}", col("unit")),
            pl.format("Unit {}", col("unit")),
            pl.format("APT {}", col("unit")),
        ],
    )
    has_unit = (col("unit") > 0) & ~use_new
    street_text = _choose(
        "v_addr",
        [
            street,
            _long_street(street),
            street.str.to_uppercase(),
            _typo(street, col("typo_pos")),
            pl.concat_str(street, pl.lit(".")),
        ],
    ).fill_null(street)
    line1_street = pl.format("{} {}", hn, street_text)
    po_box = pl.when(col("box") % 3 == 0).then(pl.format("PO Box {}", col("box"))).when(
        col("box") % 3 == 1
    ).then(pl.format("P.O. Box {}", col("box"))).otherwise(pl.format("POB {}", col("box")))
    nonaddr = pl.lit("HOMELESS|Unknown|No fixed address|General Delivery|UNK").str.split("|").list.get(
        col("box") % 5
    )
    line1 = (
        pl.when(col("v_addr") == 5).then(po_box)
        .when((col("v_addr") == 6) & col("rural")).then(pl.format("RR {} Box {}", col("rr"), col("box")))
        .when(col("v_addr") == 7).then(nonaddr)
        .when(col("v_addr") == 8).then(pl.lit(""))
        .when(has_unit & (col("v_unit_where") == 1)).then(pl.format("{} {}", line1_street, unit_text))
        .otherwise(line1_street)
    )
    line2 = pl.when(has_unit & (col("v_unit_where") == 0) & (col("v_addr") < 5)).then(unit_text).otherwise(pl.lit(""))
    no_place = col("v_addr") == 7
    zip_text = (
        pl.when(no_place & (col("box") % 2 == 0)).then(pl.lit(""))
        .when(col("v_zip") == 1).then(pl.format("{}-{}", zip5, col("zip4")))
        .when(col("v_zip") == 2).then(zip5.str.strip_chars_start("0"))
        .when(col("v_zip") == 3).then(col("zip52"))  # a wrong ZIP (another real one in the region)
        .when(col("v_zip") == 4).then(pl.lit(""))
        .otherwise(zip5)
    )
    city_text = _choose("v_city", [city, city.str.to_uppercase(), pl.lit(""), city.str.to_lowercase()])
    state_text = _choose(
        "v_state", [pl.lit(STATE), pl.lit("Massachusetts"), pl.lit("Mass."), pl.lit("ma"), pl.lit("")]
    )

    # names
    nick = col("first").replace_strict(vocab.NICKNAMES, default=col("first"))
    first = _choose(
        "v_name",
        [col("first"), col("first").str.to_uppercase(), nick, pl.format("  {} ", col("first"))],
    )
    last = _choose(
        "v_last",
        [col("last"), _typo(col("last"), col("typo_pos")), pl.format("{}-{}", col("last"), col("last2"))],
    )
    last = pl.when(col("v_name") == 1).then(last.str.to_uppercase()).otherwise(last)

    # birth date: mixed formats; 2-digit years only where the century is unambiguous
    year = col("birth_day").cast(pl.Date).dt.year()
    v_dob = pl.when((col("v_dob") == 2) & ((year < 1927) | (year > 1999))).then(pl.lit(1, pl.Int8)).otherwise(col("v_dob"))
    dob = _date_text(col("birth_day"), "v_dob_tmp", ["%Y-%m-%d", "%m/%d/%Y", "%-m/%-d/%y"])
    dob = (
        pl.when(col("v_dob_bad") == 1).then(pl.lit(""))
        .when(col("v_dob_bad") == 2).then(pl.format("02/30/{}", year))
        .when(col("v_dob_bad") == 3).then(pl.format("{}-02-31", year))
        .otherwise(dob)
    )
    sex_text = _choose(
        "v_sex",
        [
            col("sex"),
            col("sex").replace_strict({"F": "Female", "M": "Male", "X": "Nonbinary", "U": "Unknown"}),
            col("sex").str.to_lowercase().replace_strict({"f": "female", "m": "male", "x": "X", "u": ""}),
            col("sex").str.to_lowercase(),
        ],
    )

    # phone: ten digits in the 555 exchange, in whatever format the system used
    digits = pl.format("{}555{}", col("area"), col("line").cast(pl.String).str.zfill(4))
    a, ln = col("area"), col("line").cast(pl.String).str.zfill(4)
    phone = _choose(
        "v_phone",
        [
            pl.format("({}) 555-{}", a, ln),
            pl.format("{}.555.{}", a, ln),
            pl.format("+1{}", digits),
            pl.format("{}-555-{}", a, ln),
            digits,
            pl.format("1-{}-555-{}", a, ln),
            pl.format("555-{}", ln),  # no area code: invalid
            pl.lit("000-000-0000|N/A|617-555-01|12345").str.split("|").list.get(col("box") % 4),
        ],
    )
    phone = pl.when(col("has_phone")).then(phone).otherwise(pl.lit(""))
    ptype = pl.when(~col("has_phone")).then(pl.lit("")).otherwise(
        _choose(
            "v_ptype",
            [
                col("phone_type").replace_strict({0: "mobile", 1: "landline", 2: "unknown"}, return_dtype=pl.String),
                col("phone_type").replace_strict({0: "Cell", 1: "Home", 2: "Work"}, return_dtype=pl.String),
                pl.lit(""),
            ],
        )
    )

    # email: built from the name, some malformed
    fl = col("first").str.to_lowercase().str.replace_all("[^a-z]", "")
    ll = col("last").str.to_lowercase().str.replace_all("[^a-z]", "")
    local = _choose(
        "email_style",
        [
            # providers hand out an address once: a common name gets a number
            pl.format("{}.{}{}", fl, ll, col("email_num")),
            pl.format("{}{}{}", fl.str.slice(0, 1), ll, col("email_num") + 100),
            pl.format("{}{}{}", fl, ll, col("email_num")),
            pl.format("{}_{}{}", ll, fl.str.slice(0, 1), col("email_num")),
        ],
    )
    email = _choose(
        "v_email",
        [
            pl.format("{}@{}", local, col("domain")),
            pl.format("{}@{}", local, col("domain")).str.to_uppercase(),
            pl.format("{}@", local),  # malformed
            pl.format("{} at {}", local, col("domain")),  # malformed
        ],
    )
    email_missing = col("r_missing") < (0.08 if second else 0.35)
    email = pl.when(col("has_email") & ~email_missing).then(email).otherwise(pl.lit(""))

    # language, race, ethnicity
    spell = pl.lit(None, pl.String)
    for code_i, code in enumerate(_LANG_CODES):
        options = vocab.LANGUAGE_SPELLINGS[code]
        spell = pl.when(col("lang") == code_i).then(
            pl.lit("|".join(options)).str.split("|").list.get(col("v_lang") % len(options))
        ).otherwise(spell)
    unknown_lang = pl.lit("|".join(vocab.LANGUAGE_UNKNOWN)).str.split("|").list.get(col("v_lang") % 4)
    language = pl.when(col("r_missing") > 0.97).then(unknown_lang).otherwise(spell)
    race = pl.Series(vocab.RACES)
    race_text = pl.when(col("v_race") == 1).then(
        pl.lit("|".join(vocab.RACE_UNKNOWN)).str.split("|").list.get(col("box") % 3)
    ).otherwise(pl.lit("|".join(race)).str.split("|").list.get(col("race")))
    eth = pl.when(col("v_race") == 1).then(
        pl.lit("|".join(vocab.ETHNICITY_UNKNOWN)).str.split("|").list.get(col("box") % 3)
    ).when(col("hispanic")).then(pl.lit(vocab.ETHNICITIES[0])).otherwise(pl.lit(vocab.ETHNICITIES[1]))

    # consent: the EHR mostly does not record marketing consent; the CRM does
    unknown_here = col("r_consent") < (0.10 if second else 0.70)
    email_c = pl.when(unknown_here).then(pl.lit(2, pl.Int8)).otherwise(col("email_consent"))
    sms_c = pl.when(unknown_here).then(pl.lit(2, pl.Int8)).otherwise(col("sms_consent"))
    # the second system sometimes holds a later opt-out
    email_c = pl.when(pl.lit(second) & (col("r_consent") > 0.95)).then(pl.lit(1, pl.Int8)).otherwise(email_c)
    dnc = pl.when(col("dnc")).then(pl.lit(0, pl.Int8)).when(col("r_consent") > 0.5).then(pl.lit(1, pl.Int8)).otherwise(pl.lit(2, pl.Int8))
    knows_death = col("deceased") & (pl.lit(not second) | (col("r_missing") < 0.3))
    deceased = pl.when(knows_death).then(
        _date_text(col("deceased_day"), "v_dob_tmp", ["%Y-%m-%d", "%m/%d/%Y", "%m/%d/%Y"])
    ).otherwise(pl.lit(""))

    # last update: movers' newer record is the one with the new address
    span = pl.lit(ref) - col("enroll_day")
    upd = col("enroll_day") + col("upd_day") % (span + 1)
    upd = pl.when(col("moved") & pl.lit(second)).then(pl.lit(ref) - col("upd_day") % 200 - 1).when(
        col("moved")
    ).then(pl.lit(ref) - 400 - col("upd_day") % 1000).otherwise(upd)
    updated = (upd.cast(pl.Int64) * 86_400 + col("ms")).mul(1_000_000).cast(pl.Datetime("us")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )

    pid = pl.when(col("v_id") == 1).then(pl.lit("")).otherwise(col("ids"))
    out = frame.with_columns(v_dob_tmp=v_dob).select(
        pid.alias("patient_id"),
        first.alias("first_name"),
        last.alias("last_name"),
        dob.alias("birth_date"),
        sex_text.alias("sex"),
        line1.alias("address_line1"),
        line2.alias("address_line2"),
        pl.when(no_place).then(pl.lit("")).otherwise(city_text).alias("city"),
        state_text.alias("state"),
        zip_text.alias("zip5"),
        email.alias("email"),
        phone.alias("phone_e164"),
        ptype.alias("phone_type"),
        language.alias("language"),
        race_text.alias("race"),
        eth.alias("ethnicity"),
        _flag_text_expr(email_c).alias("email_consent"),
        _flag_text_expr(sms_c).alias("sms_consent"),
        _flag_text_expr(dnc).alias("do_not_contact"),
        deceased.alias("deceased_date"),
        updated.alias("updated_at"),
    )
    # exact duplicate rows (a record exported twice), then shuffle so they are not adjacent
    dup = np.flatnonzero(rng.random(n) < 0.006)
    out = pl.concat([out, out[dup]])
    return out[rng.permutation(out.height)]


def _flag_text_expr(value: pl.Expr) -> pl.Expr:
    return pl.when(value == 0).then(
        _choose("v_flag", [pl.lit("Y"), pl.lit("yes"), pl.lit("true"), pl.lit("1"), pl.lit("Yes")])
    ).when(value == 1).then(
        _choose("v_flag", [pl.lit("N"), pl.lit("no"), pl.lit("false"), pl.lit("0"), pl.lit("No")])
    ).otherwise(pl.lit(""))
