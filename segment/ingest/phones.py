"""Phones to E.164 with the ``phonenumbers`` library, at the cost of one check per distinct value.

Two paths, both defined by ``phonenumbers``:

- **NANP fast path** (the bulk of a US extract): text whose digits are 10 long, or 11
  starting with 1 (``(617) 555-0100``, ``617.555.0100``, ``+1 617 555 0100``), is checked
  against ``phonenumbers``' own metadata for country calling code 1 (each NANP region's
  general pattern and per-type patterns), compiled once into vectorized Polars regular
  expressions. This is what ``phonenumbers.is_valid_number`` does, without a Python call
  per number; a property test checks the two agree.
- **Everything else** (``+44 20 ...``, extensions, vanity letters): ``phonenumbers.parse``
  with default region US on each *distinct* raw text, once, joined back.

``phone_type``: ``mobile`` or ``landline`` only when the metadata can tell (in the US and
Canada the patterns are the same, so ``unknown``), unless the source says (a
``phone_type`` column with mobile/cell/home/landline/work).
"""

from __future__ import annotations

from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from segment.schema import PhoneType

_TYPE_ATTRS = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)


def _full(pattern: str) -> str:
    return f"^(?:{pattern})$"


@cache
def _nanp_patterns(regions: tuple[str, ...]) -> list[tuple[str, list[str], str | None, str | None]]:
    """(general, [the type patterns as one], fixed_line, mobile) per NANP region, from phonenumbers."""
    out = []
    for region in regions:
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if md is None or md.general_desc is None or not md.general_desc.national_number_pattern:
            continue
        patterns = []
        for attr in _TYPE_ATTRS:
            desc = getattr(md, attr)
            if desc is not None and desc.national_number_pattern and desc.national_number_pattern not in patterns:
                patterns.append(desc.national_number_pattern)
        # one anchored alternation matches exactly when one of the type patterns does: one
        # regular-expression pass per number instead of one per type
        types = [_full("|".join(f"(?:{p})" for p in patterns))] if patterns else []
        fixed = md.fixed_line.national_number_pattern if md.fixed_line else None
        mobile = md.mobile.national_number_pattern if md.mobile else None
        out.append((
            _full(md.general_desc.national_number_pattern),
            types,
            _full(fixed) if fixed else None,
            _full(mobile) if mobile else None,
        ))
    return out


def nanp_national(raw: pl.Expr) -> pl.Expr:
    """The 10-digit national number when ``raw`` looks like a NANP number, else null."""
    looks = raw.str.contains(r"^\+?[\d\s().\-/]+$")
    digits = raw.str.replace_all(r"\D", "")
    national = (
        pl.when(digits.str.len_chars() == 10)
        .then(digits)
        .when((digits.str.len_chars() == 11) & digits.str.starts_with("1"))
        .then(digits.str.slice(1))
        .otherwise(None)
    )
    # "+44..." with 10 digits is not NANP: a leading + must be followed by 1
    plus_ok = ~raw.str.starts_with("+") | raw.str.contains(r"^\+\s*1")
    return pl.when(looks & plus_ok).then(national).otherwise(None)


def nanp_valid_and_type(
    national: pl.Expr, regions: tuple[str, ...] = tuple(COUNTRY_CODE_TO_REGION_CODE[1])
) -> tuple[pl.Expr, pl.Expr]:
    """(is valid, mobile/landline/unknown) for 10-digit NANP numbers, vectorized."""
    valid = pl.lit(False)
    mobile_only = pl.lit(False)
    fixed_only = pl.lit(False)
    for general, types, fixed, mobile in _nanp_patterns(regions):
        in_region = national.str.contains(general)
        any_type = pl.any_horizontal([national.str.contains(t) for t in types]) if types else pl.lit(False)
        valid = valid | (in_region & any_type)
        is_fixed = national.str.contains(fixed) if fixed else pl.lit(False)
        is_mobile = national.str.contains(mobile) if mobile else pl.lit(False)
        if fixed != mobile:
            mobile_only = mobile_only | (in_region & is_mobile & ~is_fixed)
            fixed_only = fixed_only | (in_region & is_fixed & ~is_mobile)
    kind = (
        pl.when(mobile_only).then(pl.lit(PhoneType.MOBILE.value)).when(fixed_only).then(pl.lit(PhoneType.LANDLINE.value))
        .otherwise(pl.lit(PhoneType.UNKNOWN.value))
    )
    return valid.fill_null(False), kind


_LIB_TYPES = {
    PhoneNumberType.MOBILE: PhoneType.MOBILE.value,
    PhoneNumberType.FIXED_LINE: PhoneType.LANDLINE.value,
}


def parse_with_library(raw: str) -> dict[str, str | None]:
    """One distinct raw phone through ``phonenumbers``: E.164 and type, or the reason it failed."""
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return {"e164": None, "kind": None, "problem": "unparseable phone"}
    if not phonenumbers.is_valid_number(number):
        return {"e164": None, "kind": None, "problem": "invalid phone number"}
    return {
        "e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "kind": _LIB_TYPES.get(phonenumbers.number_type(number), PhoneType.UNKNOWN.value),
        "problem": None,
    }


_RESULT = pl.Struct({"e164": pl.String, "kind": pl.String, "problem": pl.String})

SOURCE_PHONE_TYPES: dict[str, str] = {
    **dict.fromkeys(["mobile", "cell", "cellular", "cell phone", "mobile phone", "sms", "wireless", "m", "c"],
                    PhoneType.MOBILE.value),
    **dict.fromkeys(["landline", "home", "land line", "fixed", "fixed line", "work", "office", "h", "w",
                     "business"], PhoneType.LANDLINE.value),
}


def phone_lookup(raw_values: pl.LazyFrame, column: str = "phone_raw") -> pl.LazyFrame:
    """Distinct raw phone texts -> ``phone_e164``, ``phone_kind``, ``phone_problem``.

    ``raw_values`` holds the raw (trimmed, non-null) texts in ``column``; the result has
    one row per distinct text. NANP-shaped texts go through the vectorized metadata path,
    the rest through ``phonenumbers.parse`` (once per distinct text).
    """
    # computed once: each of the three paths below reads it (a lazy plan would redo it per path)
    distinct = raw_values.select(pl.col(column)).unique().with_columns(
        nanp_national(pl.col(column)).alias("_national")
    ).collect().lazy()
    # Most numbers are US: check the US patterns first, the other NANP regions on the rest.
    us_valid, us_kind = nanp_valid_and_type(pl.col("_national"), ("US",))
    staged = distinct.filter(pl.col("_national").is_not_null()).with_columns(
        us_valid.alias("_us_valid"), us_kind.alias("_us_kind")
    )
    valid, kind = nanp_valid_and_type(pl.col("_national"))
    us = staged.filter(pl.col("_us_valid")).select(
        pl.col(column),
        (pl.lit("+1") + pl.col("_national")).alias("phone_e164"),
        pl.col("_us_kind").alias("phone_kind"),
        pl.lit(None, dtype=pl.String).alias("phone_problem"),
    )
    rest = staged.filter(~pl.col("_us_valid")).select(
        pl.col(column),
        pl.when(valid).then(pl.lit("+1") + pl.col("_national")).otherwise(None).alias("phone_e164"),
        pl.when(valid).then(kind).otherwise(None).alias("phone_kind"),
        pl.when(valid).then(None).otherwise(pl.lit("invalid phone number")).alias("phone_problem"),
    )
    other = (
        distinct.filter(pl.col("_national").is_null())
        .select(
            pl.col(column),
            pl.col(column)
            .map_elements(parse_with_library, return_dtype=_RESULT, skip_nulls=True)
            .alias("_r"),
        )
        .select(
            pl.col(column),
            pl.col("_r").struct.field("e164").alias("phone_e164"),
            pl.col("_r").struct.field("kind").alias("phone_kind"),
            pl.col("_r").struct.field("problem").alias("phone_problem"),
        )
    )
    return pl.concat([us, rest, other], how="vertical")
