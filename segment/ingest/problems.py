"""Row problems as a struct column, and the rejects rows built from them.

A problem that makes a row unusable names the column at fault and the reason: a Polars
struct ``{column, reason}`` (:data:`PROBLEM`), null when the row is fine. Problems that
only blank one field stay plain text columns (the column is known from where they sit).
Every reject row has the shape :data:`segment.ingest.readers.REJECT_SCHEMA`.
"""

from __future__ import annotations

import polars as pl

#: the dtype of a row-problem column
PROBLEM = pl.Struct({"column": pl.String, "reason": pl.String})


def problem(column: str, reason: str | pl.Expr) -> pl.Expr:
    """A row problem: ``column`` made the row unusable because of ``reason``."""
    text = pl.lit(reason, dtype=pl.String) if isinstance(reason, str) else reason
    return pl.struct(pl.lit(column, dtype=pl.String).alias("column"), text.alias("reason"))


def problem_column(name: str) -> pl.Expr:
    """The column a row problem (the struct column ``name``) names."""
    return pl.col(name).struct.field("column")


def problem_reason(name: str) -> pl.Expr:
    """The reason of a row problem (the struct column ``name``)."""
    return pl.col(name).struct.field("reason")


def reject_columns(column: str | pl.Expr, value: pl.Expr, reason: pl.Expr, level: str) -> list[pl.Expr]:
    """The rejects columns from a frame with ``_file``, ``_row`` and ``_record``."""
    return [
        pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
        (pl.lit(column) if isinstance(column, str) else column).alias("column"),
        value.alias("value"), reason.alias("reason"), pl.lit(level).alias("level"),
    ]
