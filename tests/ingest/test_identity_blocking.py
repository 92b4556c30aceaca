"""Blocking on numbers gives the same candidate pairs as blocking on the texts.

The linkage frame carries the names and birth-date parts as whole numbers (``_i_*``) and the
hot-value-free blocking columns (``_b_*``) as numbers too; Splink's blocking rules join on
them. Each rule is run here twice in DuckDB, once on the numbers and once with every number
column replaced by the text it codes, over records built to hit the edge cases: a first name
that is someone's last name, nicknames, missing values, day and month transposed.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from segment.ingest.identity.features import _code, hot_values, with_codes
from segment.ingest.identity.model import blocking_rules

#: the text column each number column codes
TEXT_OF = {
    "_i_first_name": "first_name", "_i_first_canon": "first_canon", "_i_last_name": "last_name",
    "_i_birth_date": "birth_date", "_i_birth_year": "birth_year", "_i_birth_month": "birth_month",
    "_i_birth_day": "birth_day", "_b_phone": "t_phone", "_b_email": "t_email", "_b_identifier": "t_identifier",
    "_b_address": "t_address", "_b_phone_shared": "t_phone_shared",
    "_i_first_name_initial": "t_first_initial", "_i_last_name_initial": "t_last_initial", "_i_zip5": "zip5",
}


def _records() -> pl.DataFrame:
    rows = [
        # first, canon, last, birth date, phone, email, address
        ("james", "james", "lee", "1980-03-04", "+15550001", "a@x.org", "1 MAIN ST"),
        ("lee", "lee", "james", "1980-03-04", None, None, "1 MAIN ST"),          # swapped names
        ("jim", "james", "lee", "1980-04-03", "+15550001", None, None),          # nickname, transposed
        ("james", "james", "leigh", "1980-03-04", None, "a@x.org", "2 ELM ST"),  # same birth date
        (None, None, "lee", None, None, None, "1 MAIN ST"),                       # missing name and date
        ("anna", "anna", "james", "1981-03-04", "+15550002", None, "2 ELM ST"),   # year differs
        ("anna", "anna", "smith", "1981-03-04", "+15550002", "b@x.org", None),    # married name
        ("smith", "smith", "anna", "1990-12-01", None, "b@x.org", "3 OAK AVE"),
        ("maria", "maria", None, "1990-01-12", None, None, "3 OAK AVE"),
    ]
    frame = pl.DataFrame(rows, schema=["first_name", "first_canon", "last_name", "birth_date", "phone", "email",
                                       "address"], orient="row")
    birth = pl.col("birth_date").str.to_date()
    return frame.with_row_index("unique_id").with_columns(
        birth.dt.year().cast(pl.String).alias("birth_year"), birth.dt.strftime("%m").alias("birth_month"),
        birth.dt.strftime("%d").alias("birth_day"),
        pl.col("phone").alias("t_phone"), pl.col("email").alias("t_email"),
        pl.lit(None, pl.String).alias("t_identifier"), pl.col("address").alias("t_address"),
        pl.col("phone").alias("t_phone_shared"),
        pl.col("first_name").str.slice(0, 1).alias("t_first_initial"),
        pl.col("last_name").str.slice(0, 1).alias("t_last_initial"),
        pl.Series(["02140"] * 4 + ["02139"] * 5).alias("zip5"),
    )


def _coded(frame: pl.DataFrame) -> pl.DataFrame:
    rows = frame.with_columns(
        pl.lit(None, pl.String).alias("identifier"),
        pl.col("birth_date").str.to_date("%Y-%m-%d").cast(pl.Int32).alias("_i_birth_date"),
        *(pl.col(c).cast(pl.Int16).alias(f"_i_{c}") for c in ("birth_year", "birth_month", "birth_day")),
        *(_code(pl.col(c).str.slice(0, 1)).alias(f"_i_{c}_initial") for c in ("first_name", "last_name")),
        _code(pl.col("zip5")).alias("_i_zip5"),
    )
    return with_codes(rows, hot_values(rows.lazy()))


def _pairs(con: duckdb.DuckDBPyConnection, condition: str) -> set[tuple[int, int]]:
    sql = f"SELECT l.unique_id, r.unique_id FROM t l JOIN t r ON ({condition}) AND l.unique_id < r.unique_id"
    return set(con.sql(sql).fetchall())


def test_every_blocking_rule_pairs_the_same_records_as_on_the_texts() -> None:
    frame = _coded(_records())
    con = duckdb.connect()
    con.register("t", frame.to_arrow())
    found = 0
    for rule in blocking_rules():
        on_numbers = rule.get_blocking_rule("duckdb").blocking_rule_sql
        columns = set(re.findall(r"_[ib]_[a-z_0-9]+", on_numbers))
        assert columns <= set(TEXT_OF), f"a blocking rule uses a column without its text twin: {columns}"
        on_texts = re.sub(r"_[ib]_[a-z_0-9]+", lambda m: TEXT_OF[m.group(0)], on_numbers)
        pairs = _pairs(con, on_numbers)
        assert pairs == _pairs(con, on_texts), on_numbers
        found += len(pairs)
    assert found > 10  # the records do pair up: the comparison is not between two empty sets


def test_swapped_names_meet_through_one_vocabulary() -> None:
    coded = _coded(_records())
    james_first = coded.filter(pl.col("first_name") == "james")["_i_first_name"][0]
    james_last = coded.filter(pl.col("last_name") == "james")["_i_last_name"][0]
    assert james_first == james_last
    assert coded.filter(pl.col("first_name").is_null())["_i_first_name"].null_count() == 1
