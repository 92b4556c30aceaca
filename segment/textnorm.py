"""Text helpers shared by the stages' normalizers (Polars expressions, no stage imports)."""

from __future__ import annotations

import polars as pl


def collapse_spaces(expr: pl.Expr) -> pl.Expr:
    """Every run of whitespace as one space: what ``replace_all(r"\\s+", " ")`` gives, about three
    times faster, because a lone space (most of them) is no match and is left as it is
    (1.36M addresses: 0.36 -> 0.13 s on one core)."""
    return expr.str.replace_all(r"\s{2,}|[^\S ]", " ")
