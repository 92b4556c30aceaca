"""The linkage frame: one row per source record, with the comparison and blocking columns.

Everything here is a Polars expression over the normalized patient records (no Python
loop over rows). Names are compared as letters only in lower case (``O'Brien`` =
``obrien``) with a nickname-mapped twin (``bill`` -> ``william``, :data:`NICKNAMES`);
address line 1 is upper case with Publication 28 abbreviations (``North Main Street`` =
``N MAIN ST``); a sex of X or U is missing for matching, not a disagreement.

Blocking columns (``_b_*``) drop values that too many records share (a clinic's phone, a
placeholder email, ``UNKNOWN``), so one hot value cannot explode the candidate pairs:
those records are still compared through their other blocking rules.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from segment.addresses.parse import normalize_street
from segment.addresses.pub28 import STREET_TYPES, UNIT_DESIGNATORS
from segment.ingest.dedupe import NICKNAMES
from segment.ingest.normalize import name_key

#: the shared-identifier columns linkage uses when a source provides them
IDENTIFIER_COLUMNS = ("ssn_last4", "enterprise_id")
#: a blocking value shared by more records than this is not used for blocking
HOT_BLOCK_VALUE = 8
#: the same for a phone or address blocked on together with a name or birth date
HOT_SHARED_VALUE = 100
#: a trailing unit (``APT 26``, ``# 4``, ``REAR``; a bare ``20`` or ``B`` right after a street
#: type, as in ``WASHINGTON ST 20``): one home, whichever flat of it a source wrote down
_ROUTES = {"RTE", "HWY", "FWY", "EXPY", "TPKE"}  # STATE RTE 9: the 9 is the road's
_UNIT_TAIL = r"\s+(?:" + "|".join(sorted(set(UNIT_DESIGNATORS.values()))) + r")(?:\s+[A-Z0-9-]+)?$"
_BARE_UNIT_TAIL = r"^(\d+[A-Z]?\s+(?:\S+\s+)*\S{2,}\s(?:" + "|".join(sorted(set(STREET_TYPES.values()) - _ROUTES)) + r"))\s+(?:\d+[A-Z]?|[A-Z])$"
#: columns of the linkage frame (besides ``unique_id``, ``source``, ``record``)
LINKAGE_COLUMNS = (
    "first_name", "first_canon", "last_name", "birth_date", "birth_year", "birth_month", "birth_day",
    "sex", "address", "address_number", "address_street", "zip5", "phone", "email", "identifier",
)


#: the columns of the records :func:`linkage_frame` reads (besides :data:`IDENTIFIER_COLUMNS`)
_READ = ("_k_id", "_source", "_order", "first_name", "last_name", "birth_date", "sex", "address_line1", "zip5",
         "phone_e164", "email")


def linkage_input(columns: Collection[str]) -> tuple[str, ...]:
    """The columns of records with ``columns`` that :func:`linkage_frame` reads (Splink needs no other)."""
    return (*_READ, *(c for c in IDENTIFIER_COLUMNS if c in columns))


def _blank(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.len_chars() > 0).then(expr)


def linkage_frame(records: pl.DataFrame) -> pl.DataFrame:
    """One row per ``_k_id`` (its first row, in input order): the columns Splink compares.

    ``records`` holds the normalized patient records (``dedupe.MERGE_INPUT`` + ``_k_id``,
    optionally :data:`IDENTIFIER_COLUMNS`). Returns ``unique_id`` (``_k_id``), ``source``,
    the :data:`LINKAGE_COLUMNS`, the blocking columns ``_b_phone``, ``_b_email``,
    ``_b_identifier``, ``_b_address``, ``_b_phone_shared`` and the names and birth-date parts
    as numbers for blocking (``_i_*``; see :func:`with_codes`) and ``_record_number`` (see
    :func:`record_numbers`). The same frame in parts, for
    records that do not fit in memory: :func:`linkage_rows` of each part, :func:`hot_values`
    over all of them, then :func:`with_codes` of each part.
    """
    rows = linkage_rows(records)
    return with_codes(rows, hot_values(rows.lazy())).with_columns(record_numbers(rows["unique_id"]))


def record_numbers(ids: pl.Series) -> pl.Series:
    """``_record_number``: each record id's place among the ids in sorted order (1, 2, ...).

    Splink pairs and scores records by this number rather than by the id's text (DuckDB joins
    and compares whole numbers faster); as the numbers follow the texts' order, each pair
    comes out the same way round as on the texts (the smaller id on the left)."""
    return ids.rank("ordinal").cast(pl.Int64).alias("_record_number")


def linkage_rows(records: pl.DataFrame) -> pl.DataFrame:
    """:func:`linkage_frame` without its blocking columns (``_b_*``, the names' ``_i_*``): every
    column is a function of its own record, so records can be worked out part by part."""
    ids = [c for c in IDENTIFIER_COLUMNS if c in records.columns]
    # only the columns read here (the records carry about thirty)
    one = records.select(*_READ, *ids).unique("_k_id", keep="first", maintain_order=True)
    identifier = (
        pl.coalesce([_blank(pl.col(c).cast(pl.String).str.strip_chars()) for c in ids])
        if ids else pl.lit(None, dtype=pl.String)
    )
    # names, birth dates and addresses repeat: each is worked out once per distinct value
    first = _distinct(one, "first_name", {
        "_first": _blank(name_key(pl.col("first_name"))),
        "_first_canon": _blank(name_key(pl.col("first_name"))).replace(NICKNAMES),
    })
    last = _distinct(one, "last_name", {"_last": _blank(name_key(pl.col("last_name")))})
    birth = pl.col("birth_date").cast(pl.Date)
    births = _distinct(one, "birth_date", {
        "_birth": birth.dt.strftime("%Y-%m-%d"), "_year": birth.dt.year().cast(pl.String),
        "_month": birth.dt.strftime("%m"), "_day": birth.dt.strftime("%d"),
    })
    # the street is normalized into a column first: _home reads its line three times, and
    # the normalizer's list expressions are not shared between them (3.4 -> 1.1 s at 1M)
    home = pl.col("_address")
    streets = _distinct(one, "address_line1", {"_address": normalize_street(pl.col("address_line1"))}, {
        "_address": _home(home)}, {
        # the house number (12, 12B) and the rest of the line, compared apart; the street
        # without spaces, so that a word typed together (PRESCOTTSTREET) still compares
        "_number": home.str.extract(r"^(\d+[A-Z]?)\s", 1),
        "_street": _blank(home.str.replace(r"^\d+[A-Z]?\s+", "").str.replace_all(" ", "")),
    })
    looked = pl.concat([first, last, births, streets], how="horizontal", strict=True)
    return pl.concat([one, looked], how="horizontal", strict=True).select(
        pl.col("_k_id").alias("unique_id"),
        pl.col("_source").alias("source"),
        pl.col("_order"),
        pl.col("_first").alias("first_name"),
        pl.col("_first_canon").alias("first_canon"),
        pl.col("_last").alias("last_name"),
        pl.col("_birth").alias("birth_date"),
        pl.col("_year").alias("birth_year"),
        pl.col("_month").alias("birth_month"),
        pl.col("_day").alias("birth_day"),
        pl.when(pl.col("sex").is_in(["F", "M"])).then(pl.col("sex")).alias("sex"),
        pl.col("_address").alias("address"),
        pl.col("_number").alias("address_number"),
        pl.col("_street").alias("address_street"),
        _blank(pl.col("zip5")).alias("zip5"),
        _blank(pl.col("phone_e164")).alias("phone"),
        _blank(pl.col("email").str.to_lowercase()).alias("email"),
        identifier.alias("identifier"),
    ).with_columns(
        pl.col("birth_date").str.to_date("%Y-%m-%d").cast(pl.Int32).alias("_i_birth_date"),
        *(pl.col(c).cast(pl.Int16).alias(f"_i_{c}") for c in ("birth_year", "birth_month", "birth_day")),
        # the names' first letters and the ZIP, beside a name and a birth date (model.blocking_rules)
        *(_code(pl.col(c).str.slice(0, 1)).alias(f"_i_{c}_initial") for c in ("first_name", "last_name")),
        _code(pl.col("zip5")).alias("_i_zip5"),
    )


@dataclass(frozen=True)
class HotValues:
    """The values too many records share to block on (:data:`HOT_BLOCK_VALUE`,
    :data:`HOT_SHARED_VALUE`), found over every record: a value is hot or not for the whole
    extract, whichever part its records are in."""

    phone: pl.Series
    email: pl.Series
    identifier: pl.Series
    #: phones shared by more than :data:`HOT_SHARED_VALUE` records
    phone_shared: pl.Series
    #: (``address``, ``zip5``) pairs shared by more than :data:`HOT_SHARED_VALUE` records
    address: pl.DataFrame


def hot_values(rows: pl.LazyFrame) -> HotValues:
    """The hot values of :func:`linkage_rows` (one frame, or every part of one scanned)."""
    def over(*columns: str, hot: int) -> pl.LazyFrame:
        return rows.group_by(*columns).len().filter(pl.col("len") > hot)

    phone, email, identifier, address = pl.collect_all(
        [over("phone", hot=HOT_BLOCK_VALUE), over("email", hot=HOT_BLOCK_VALUE),
         over("identifier", hot=HOT_BLOCK_VALUE), over("address", "zip5", hot=HOT_SHARED_VALUE)],
        engine="streaming",
    )
    shared = phone.filter(pl.col("len") > HOT_SHARED_VALUE)
    return HotValues(phone["phone"], email["email"], identifier["identifier"], shared["phone"], address.drop("len"))


#: the seed of the blocking codes' hash (any fixed number: codes only meet codes of one run)
CODE_SEED = 20_240_601


def _code(expr: pl.Expr) -> pl.Expr:
    """A text as a whole number, equal where the texts are equal (null stays null).

    Blocking compares these instead of the texts: DuckDB joins integers about twice as fast.
    The number is a 64-bit hash, the same for the same text in any part and any column (a
    first name meets a last name). Two texts that hash alike (among ten million values, the
    chance that any two do is about 3 in a million) only add candidate pairs, which Splink
    then scores on the texts.
    """
    # as a signed number: DuckDB hands filters on an Arrow table's columns to pyarrow as Python
    # integers, which fail beyond the signed 64-bit range
    return pl.when(expr.is_not_null()).then(expr.hash(CODE_SEED).reinterpret(signed=True))


def with_codes(rows: pl.DataFrame, hot: HotValues) -> pl.DataFrame:
    """:func:`linkage_rows` with the blocking columns: the names as numbers (``_i_first_name``,
    ``_i_first_canon``, ``_i_last_name``) and each blocking value as a number unless ``hot``
    (``_b_phone``, ``_b_email``, ``_b_identifier``, ``_b_address``, ``_b_phone_shared``)."""
    def cold(column: str, values: pl.Series) -> pl.Expr:
        return _code(pl.when(~pl.col(column).is_in(values.drop_nulls().implode())).then(pl.col(column)))

    hot_homes = hot.address.with_columns(_hot=pl.lit(True))
    return rows.join(hot_homes, on=["address", "zip5"], how="left", nulls_equal=True,
                     maintain_order="left").with_columns(
        cold("phone", hot.phone).alias("_b_phone"),
        cold("email", hot.email).alias("_b_email"),
        cold("identifier", hot.identifier).alias("_b_identifier"),
        # used only beside a name or a birth date, so a household's phone or a block of
        # flats still pairs its people; a clinic's number or a shelter's address does not
        # (the line alone is the code: the same line in two ZIPs still meets)
        _code(pl.when(pl.col("_hot").is_null()).then(pl.col("address"))).alias("_b_address"),
        cold("phone", hot.phone_shared).alias("_b_phone_shared"),
        *(_code(pl.col(c)).alias(f"_i_{c}") for c in ("first_name", "first_canon", "last_name")),
    ).drop("_hot")


def _home(line: pl.Expr) -> pl.Expr:
    """A normalized line 1 without its unit: ``835 CTR ST APT 26`` -> ``835 CTR ST``.

    A unit goes only after a house number and at least two words of street (``STATE RTE 9``
    keeps its 9); PO boxes and lines without a number are kept whole.
    """
    numbered = line.str.contains(r"^\d+[A-Z]?\s+\S+\s+\S+")
    return _blank(pl.when(numbered).then(line.str.replace(_UNIT_TAIL, "").str.replace(_BARE_UNIT_TAIL, "$1"))
                  .otherwise(line))


def _distinct(
    frame: pl.DataFrame, column: str, exprs: dict[str, pl.Expr], *then: dict[str, pl.Expr],
) -> pl.DataFrame:
    """``exprs`` (then each of ``then`` in turn, over the results before it) computed once per
    distinct value of ``column``, in ``frame``'s row order.

    The distinct values go through the streaming engine: it cuts them into morsels worked on
    every core, where the in-memory engine runs a chain of string expressions over one column
    on one (the linkage rows of 1.34M records: 3.1-3.4 -> 2.5 s, the same CPU seconds).
    """
    table = frame.lazy().select(column).unique().with_columns(**exprs)
    for more in then:
        table = table.with_columns(**more)
    return frame.select(column).join(table.collect(engine="streaming"), on=column, how="left", nulls_equal=True,
                                     maintain_order="left").drop(column)
