"""Address parsing and normalization: USPS Publication 28 abbreviations, units split off.

Addresses are normalized in Polars (upper case, punctuation out, every directional and
street-type word mapped to its Publication 28 abbreviation, ordinals to digits), then
parsed. The common shape, ``NUMBER STREET [UNIT]``, is parsed by one vectorized regular
expression; every other distinct line (numbers in words, units first, Wisconsin grid
numbers, text around the address...) goes to ``usaddress``, the CRF parser, applied once
per DISTINCT line. PO boxes, rural routes, general delivery and non-address text are
recognized and flagged (``addr_kind``), never guessed into a street.
"""

from __future__ import annotations

import hashlib

import polars as pl
import usaddress

from segment.addresses.pub28 import DIRECTIONALS, ORDINALS, STREET_TYPES, UNIT_DESIGNATORS
from segment.textnorm import collapse_spaces

#: ``addr_kind`` values; everything but ``street`` is a reason not to interpolate
STREET = "street"
PO_BOX = "po_box"
RURAL_ROUTE = "rural_route"
GENERAL_DELIVERY = "general_delivery"
NOT_AN_ADDRESS = "not_an_address"
MISSING = "missing_address"
NO_HOUSE_NUMBER = "no_house_number"

WORD_MAP: dict[str, str] = {**STREET_TYPES, **DIRECTIONALS, **ORDINALS, **UNIT_DESIGNATORS}

_DIR_ABBR = sorted(set(DIRECTIONALS.values()), key=len, reverse=True)
_TYPE_ABBR = sorted(set(STREET_TYPES.values()), key=len, reverse=True)
#: Publication 28 secondary unit designators that need no identifier after them
_UNIT_NO_ID = ["BSMT", "FRNT", "LBBY", "LOWR", "OFC", "PH", "REAR", "SIDE", "UPPR"]
_UNIT_WITH_ID = sorted({v for v in UNIT_DESIGNATORS.values() if v not in _UNIT_NO_ID})

_PO_BOX = r"(^|\s)(P\s?O\s?(BOX|BX|B)|POST\s?OFFICE\s?BOX|POB|POSTAL\s?BOX|CALLER\s?BOX|DRAWER)(\s|\d|$)|^BOX\s+\d"
_RURAL = (r"^(RR|R\s?R|RURAL\s?ROUTE|RURAL\s?RTE|RURAL\s?RT|RFD|R\s?F\s?D|HC|HCR|H\s?C|"
          r"HIGHWAY\s?CONTRACT(\s?ROUTE)?|HWY\s?CONTRACT|STAR\s?ROUTE|PSC|CMR|UNIT\s+\d+\s+BOX)(\s|\d|$)")
_GENERAL = r"GENERAL\s+DELIVERY"
_NON_ADDRESS = (r"^(UNKNOWN|UNK|NONE|NULL|N\s?A|NA|HOMELESS|NO\s+ADDRESS|ADDRESS\s+UNKNOWN|TBD|"
                r"DECLINED|REFUSED|SAME|TEST|XX+|NO\s+FIXED\s+(ABODE|ADDRESS)|"
                r"UNDOMICILED|SHELTER|TRANSIENT|MOVED|RETURNED\s+MAIL|BAD\s+ADDRESS)(\s|$)")

_NUMBER_WORDS = {
    "ONE": "1", "TWO": "2", "THREE": "3", "FOUR": "4", "FIVE": "5", "SIX": "6", "SEVEN": "7",
    "EIGHT": "8", "NINE": "9", "TEN": "10", "ELEVEN": "11", "TWELVE": "12",
}

_FAST = (
    r"^(?P<hn>\d{1,7})(?P<hnsfx>[A-Z]|\s1/2)?\s+(?P<street>.*?[A-Z].*?)"
    r"(?:\s+(?:(?P<utype>" + "|".join([*_UNIT_WITH_ID, "#"]) + r")\s?(?P<uid>[A-Z0-9][A-Z0-9-]*)"
    r"|(?P<unoid>" + "|".join(_UNIT_NO_ID) + r")))?$"
)

PARSED_COLUMNS = (
    "addr_kind", "house_number", "house_number_text", "street_key", "unit", "parse_method",
)


def _clean_line(expr: pl.Expr) -> pl.Expr:
    """Upper case, punctuation to spaces, ``#`` split off, whitespace collapsed."""
    cleaned = (
        expr.cast(pl.String)
        .str.to_uppercase()
        .str.replace_all(r"[.,;:'\"`()\[\]{}_]", " ")
        .str.replace_all(r"\s*#\s*", " # ")
        .str.replace_all(r"(\d)\s*-\s*([A-Z])\b", "$1$2")
    )
    return collapse_spaces(cleaned).str.strip_chars()


def _map_words(expr: pl.Expr) -> pl.Expr:
    """Map each word to its Publication 28 abbreviation (types, directionals, units, ordinals)."""
    return (
        expr.str.split(" ")
        .list.eval(pl.element().replace(WORD_MAP))
        .list.join(" ")
    )


def normalize_street(expr: pl.Expr) -> pl.Expr:
    """Normalize a street name (``North Main Street`` -> ``N MAIN ST``): the matching key."""
    return _map_words(_clean_line(expr)).str.replace_all(r"\s*#\s*", " ").str.strip_chars()


def parse_addresses(lines: pl.LazyFrame, column: str = "line") -> pl.LazyFrame:
    """Parse distinct address lines in ``column`` into the :data:`PARSED_COLUMNS`.

    The frame should hold distinct lines: the usaddress fallback runs once per row.
    """
    mapped = _map_words(_clean_line(pl.col(column)))
    lf = lines.with_columns(mapped.alias("_norm"))
    kind = (
        pl.when(pl.col("_norm").is_null() | (pl.col("_norm") == "")).then(pl.lit(MISSING))
        .when(pl.col("_norm").str.contains(_GENERAL)).then(pl.lit(GENERAL_DELIVERY))
        .when(pl.col("_norm").str.contains(_PO_BOX)).then(pl.lit(PO_BOX))
        .when(_clean_line(pl.col(column)).str.contains(_RURAL)).then(pl.lit(RURAL_ROUTE))
        .when(_clean_line(pl.col(column)).str.contains(_NON_ADDRESS)
              | ~pl.col("_norm").str.contains(r"[A-Z]")).then(pl.lit(NOT_AN_ADDRESS))
        .otherwise(pl.lit(STREET))
    )
    lf = lf.with_columns(kind.alias("addr_kind")).with_columns(
        pl.col("_norm").str.extract_groups(_FAST).alias("_m")
    ).unnest("_m")
    fast_ok = (pl.col("addr_kind") == STREET) & pl.col("hn").is_not_null() & _plain_street(
        pl.col("street"))
    lf = lf.with_columns(
        pl.when(fast_ok).then(pl.lit("fast")).when(pl.col("addr_kind") == STREET)
        .then(pl.lit("usaddress")).otherwise(pl.lit(None)).alias("parse_method"),
    )
    fast = lf.filter(pl.col("parse_method") == "fast").select(
        pl.exclude("_norm", "hn", "hnsfx", "street", "utype", "uid", "unoid", "parse_method"),
        pl.col("hn").cast(pl.Int64).alias("house_number"),
        (pl.col("hn") + pl.col("hnsfx").fill_null("")).alias("house_number_text"),
        pl.col("street").alias("street_key"),
        pl.when(pl.col("utype").is_not_null())
        .then(pl.concat_str([pl.col("utype"), pl.col("uid")], separator=" "))
        .otherwise(pl.col("unoid")).alias("unit"),
        pl.col("parse_method"),
    )
    slow_in = lf.filter(pl.col("parse_method") == "usaddress")
    slow = slow_in.select(
        pl.exclude("_norm", "hn", "hnsfx", "street", "utype", "uid", "unoid", "parse_method",
                   "addr_kind"),
        pl.col("_norm").map_batches(_usaddress_batch, return_dtype=_USADDRESS_DTYPE).alias("_u"),
    ).unnest("_u").with_columns(
        normalize_street(pl.col("street_key")).alias("street_key"),
        pl.lit("usaddress").alias("parse_method"),
    )
    other = lf.filter(pl.col("parse_method").is_null()).select(
        pl.exclude("_norm", "hn", "hnsfx", "street", "utype", "uid", "unoid", "parse_method"),
        pl.lit(None, pl.Int64).alias("house_number"),
        pl.lit(None, pl.String).alias("house_number_text"),
        pl.lit(None, pl.String).alias("street_key"),
        pl.lit(None, pl.String).alias("unit"),
        pl.lit(None, pl.String).alias("parse_method"),
    )
    out = pl.concat([fast, slow, other], how="diagonal_relaxed")
    return out.with_columns(
        pl.when((pl.col("addr_kind") == STREET) & pl.col("house_number").is_null()
                & pl.col("street_key").is_not_null())
        .then(pl.lit(NO_HOUSE_NUMBER))
        .when((pl.col("addr_kind") == STREET) & pl.col("street_key").is_null())
        .then(pl.lit(NOT_AN_ADDRESS))
        .otherwise(pl.col("addr_kind")).alias("addr_kind")
    )


def _plain_street(street: pl.Expr) -> pl.Expr:
    """A street the fast path may take: words only, no embedded number-street pattern."""
    return (
        street.str.contains(r"^[A-Z0-9/& -]+$")
        & ~street.str.contains(r"(^|\s)(#|APT|STE|UNIT)(\s|$)")
        & ~street.str.contains(r"\s\d{5}$")
    )


_USADDRESS_DTYPE = pl.Struct({
    "addr_kind": pl.String,
    "house_number": pl.Int64,
    "house_number_text": pl.String,
    "street_key": pl.String,
    "unit": pl.String,
})

_STREET_PARTS = (
    "StreetNamePreDirectional", "StreetNamePreModifier", "StreetNamePreType", "StreetName",
    "StreetNamePostType", "StreetNamePostDirectional", "StreetNamePostModifier",
)


def _usaddress_one(line: str | None) -> dict[str, object]:
    empty: dict[str, object] = {"addr_kind": NOT_AN_ADDRESS, "house_number": None,
                                "house_number_text": None, "street_key": None, "unit": None}
    if not line:
        return empty
    try:
        tags, kind = usaddress.tag(line)
    except usaddress.RepeatedLabelError:
        return empty
    if kind == "PO Box" or "USPSBoxType" in tags or "USPSBoxGroupType" in tags:
        group = str(tags.get("USPSBoxGroupType", ""))
        return {**empty, "addr_kind": RURAL_ROUTE if group else PO_BOX}
    street = " ".join(str(tags[p]) for p in _STREET_PARTS if p in tags).strip()
    if not street:
        return empty
    number_text = str(tags.get("AddressNumber", "")).strip()
    number_text = _NUMBER_WORDS.get(number_text, number_text)
    digits = "".join(ch for ch in number_text.split(" ")[-1].split("-")[0] if ch.isdigit())
    unit = " ".join(str(tags[p]) for p in ("OccupancyType", "OccupancyIdentifier") if p in tags)
    return {
        "addr_kind": STREET,
        "house_number": int(digits) if digits and len(digits) <= 9 else None,
        "house_number_text": number_text or None,
        "street_key": street,
        "unit": unit.replace("# ", "#").strip() or None,
    }


def _usaddress_batch(lines: pl.Series) -> pl.Series:
    """usaddress over a Series of DISTINCT lines (the CRF parser has no vectorized form)."""
    return pl.Series([_usaddress_one(v) for v in lines.to_list()], dtype=_USADDRESS_DTYPE)


def street_components(street_key: pl.Expr) -> pl.Expr:
    """Split a normalized street into ``pre_dir``, ``name``, ``street_type``, ``post_dir``."""
    dirs = "|".join(_DIR_ABBR)
    types = "|".join(_TYPE_ABBR)
    pattern = (rf"^(?:(?P<pre_dir>{dirs})\s+)?(?P<name>.+?)(?:\s+(?P<street_type>{types}))?"
               rf"(?:\s+(?P<post_dir>{dirs}))?$")
    return street_key.str.extract_groups(pattern)


def address_key(
    house_number: pl.Expr, street_key: pl.Expr, city: pl.Expr, state: pl.Expr, zip5: pl.Expr
) -> pl.Expr:
    """The normalized address text the cache is keyed by (no unit, no name)."""
    return pl.concat_str(
        [
            house_number.cast(pl.String).fill_null(""),
            street_key.fill_null(""),
            collapse_spaces(city.cast(pl.String).str.to_uppercase().str.replace_all(r"[^A-Z ]", ""))
            .str.strip_chars().fill_null(""),
            state.cast(pl.String).str.to_uppercase().str.strip_chars().fill_null(""),
            zip5.fill_null(""),
        ],
        separator="|",
    )


def sha256_hex(values: pl.Series) -> pl.Series:
    """SHA-256 hex of each string (hashlib per DISTINCT key; Polars has no stable sha256)."""
    return pl.Series(
        [hashlib.sha256(v.encode()).hexdigest() if v is not None else None for v in values.to_list()],
        dtype=pl.String,
    )


def clean_zip(expr: pl.Expr) -> pl.Expr:
    """A 5-digit ZIP from ZIP or ZIP+4 text, or null."""
    return expr.cast(pl.String).str.strip_chars().str.extract(r"^(\d{5})(?:-?\d{4})?$")
