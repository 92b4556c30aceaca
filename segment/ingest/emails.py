"""Emails checked by syntax with ``email-validator`` (no network), once per distinct domain.

An address is split at its last ``@``. The local part is accepted by a vectorized check
when it is a plain ASCII dot-atom of at most 64 characters (what RFC 5322 and
email-validator accept without question); the domain is checked by
``email_validator.validate_email`` once per distinct domain (a few hundred in an extract
of millions). Addresses with an unusual local part (quoted, non-ASCII) go whole through
``validate_email``, once per distinct address. Stored addresses are lower-cased: the
mailbox part is case-insensitive at every mainstream provider and matching needs one
spelling.
"""

from __future__ import annotations

import polars as pl
from email_validator import EmailNotValidError, validate_email

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
DOT_ATOM = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$"

_RESULT = pl.Struct({"email": pl.String, "problem": pl.String})


def validate_one(address: str) -> dict[str, str | None]:
    """One distinct address (or ``x@domain`` probe) through email-validator."""
    try:
        info = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return {"email": None, "problem": "invalid email"}
    return {"email": info.normalized.lower(), "problem": None}


def email_lookup(raw_values: pl.LazyFrame, column: str = "email_raw") -> pl.LazyFrame:
    """Distinct raw emails -> ``email`` (normalized, lower case) and ``email_problem``."""
    # computed once: both paths below read it (a lazy plan would redo it per path)
    texts = raw_values.select(pl.col(column)).unique().with_columns(
        pl.col(column).str.strip_chars().str.to_lowercase().alias("_e")
    ).collect().lazy()
    # split at the last @: an address with one @ (nearly all) without a regular expression
    one_at = pl.col("_e").str.count_matches("@", literal=True) == 1
    halves = pl.col("_e").str.splitn("@", 2)
    distinct = pl.concat([
        texts.filter(one_at).with_columns(
            halves.struct.field("field_0").alias("_local"), halves.struct.field("field_1").alias("_domain"),
        ),
        texts.filter(~one_at | one_at.is_null()).with_columns(
            pl.col("_e").str.extract(r"^(.*)@([^@]*)$", 1).alias("_local"),
            pl.col("_e").str.extract(r"^(.*)@([^@]*)$", 2).alias("_domain"),
        ),
    ]).collect().lazy()
    simple = pl.col("_local").str.contains(DOT_ATOM) & (pl.col("_local").str.len_bytes() <= 64)
    fast = distinct.filter(simple.fill_null(False))
    domains = (
        fast.select(pl.col("_domain")).unique()
        .with_columns(
            (pl.lit("x@") + pl.col("_domain"))
            .map_elements(validate_one, return_dtype=_RESULT)
            .alias("_r")
        )
        .select(
            "_domain",
            pl.col("_r").struct.field("email").str.replace(r"^x@", "").alias("_norm_domain"),
            pl.col("_r").struct.field("problem").alias("_dproblem"),
        )
    )
    fast_out = fast.join(domains, on="_domain", how="left").select(
        pl.col(column),
        pl.when(pl.col("_dproblem").is_null() & (pl.col("_e").str.len_bytes() <= 254))
        .then(pl.col("_local") + pl.lit("@") + pl.col("_norm_domain"))
        .otherwise(None)
        .alias("email"),
        pl.when(pl.col("_dproblem").is_null() & (pl.col("_e").str.len_bytes() <= 254))
        .then(None)
        .otherwise(pl.lit("invalid email"))
        .alias("email_problem"),
    )
    slow_out = (
        distinct.filter(~simple.fill_null(False))
        .select(pl.col(column), pl.col("_e").map_elements(validate_one, return_dtype=_RESULT).alias("_r"))
        .select(
            pl.col(column),
            pl.col("_r").struct.field("email").alias("email"),
            pl.col("_r").struct.field("problem").alias("email_problem"),
        )
    )
    return pl.concat([fast_out, slow_out], how="vertical")
