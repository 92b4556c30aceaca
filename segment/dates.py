"""Date arithmetic shared by the stages, as Polars expressions."""

from __future__ import annotations

import datetime as dt

import polars as pl


def _expr(value: pl.Expr | dt.date) -> pl.Expr:
    return value if isinstance(value, pl.Expr) else pl.lit(value, pl.Date)


def age_in_years(birth: pl.Expr | dt.date, on: pl.Expr | dt.date) -> pl.Expr:
    """Completed years from ``birth`` to ``on`` (Int32); null when either is null.

    A birthday on 29 February is reached on 1 March in common years.
    """
    b, o = _expr(birth), _expr(on)
    years = o.dt.year().cast(pl.Int32) - b.dt.year().cast(pl.Int32)
    on_md = o.dt.month().cast(pl.Int32) * 100 + o.dt.day().cast(pl.Int32)
    birth_md = b.dt.month().cast(pl.Int32) * 100 + b.dt.day().cast(pl.Int32)
    return years - (on_md < birth_md).cast(pl.Int32)


def age_in_months(birth: pl.Expr | dt.date, on: pl.Expr | dt.date) -> pl.Expr:
    """Completed months from ``birth`` to ``on`` (Int32); null when either is null."""
    b, o = _expr(birth), _expr(on)
    years = o.dt.year().cast(pl.Int32) - b.dt.year().cast(pl.Int32)
    whole = years * 12 + o.dt.month().cast(pl.Int32) - b.dt.month().cast(pl.Int32)
    return whole - (o.dt.day() < b.dt.day()).cast(pl.Int32)


#: age bands (lower bound inclusive, label), youngest first
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "0-17"),
    (18, "18-34"),
    (35, "35-49"),
    (50, "50-64"),
    (65, "65-74"),
    (75, "75+"),
)


def age_band_expr(birth_date: str | pl.Expr, as_of: dt.date) -> pl.Expr:
    """Age band label as of ``as_of`` (completed years), null when birth date is missing."""
    bd = pl.col(birth_date) if isinstance(birth_date, str) else birth_date
    age = age_in_years(bd, as_of)
    expr: pl.Expr = pl.lit(None, pl.String)
    for lower, label in AGE_BANDS:  # the highest band ends up tested first
        expr = pl.when(age >= lower).then(pl.lit(label)).otherwise(expr)
    return pl.when(age < 0).then(pl.lit(None, pl.String)).otherwise(expr)
