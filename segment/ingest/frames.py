"""Frame helpers for ingest: normalizers evaluated once per distinct raw value, collecting.

Extract columns repeat a few values many times (20M events carry ~9k distinct dates, a
hundred distinct codes; 1.4M patient records ~2k first names). The normalizers in
:mod:`segment.ingest.normalize` are Polars expressions of a dozen regular expressions
each, so evaluating them on every row costs tens of seconds at a million patients.
:func:`by_distinct` evaluates them on the distinct values of their input columns and
joins the results back: the same expressions, the same results, on a table thousands
of times smaller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest import normalize as nz
from segment.ingest.readers import RawPart


def with_all_columns(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``_row`` plus ``columns`` as text; a column the source lacks is all null."""
    have = set(frame.collect_schema().names())
    return frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in have]
    ).select("_row", *[pl.col(c).cast(pl.String) for c in columns])


Outputs = Mapping[str, pl.Expr] | Sequence[Mapping[str, pl.Expr]]


def distinct_table(frame: pl.LazyFrame, keys: Sequence[str], outputs: Outputs) -> pl.LazyFrame:
    """One row per distinct combination of ``keys`` with ``outputs`` evaluated on it.

    ``outputs`` may be a sequence of stages: each stage can use the columns of the stages
    before it (a big expression used twice is cheaper computed once as a column); the
    table keeps the keys and the last stage's columns.
    """
    stages = [outputs] if isinstance(outputs, Mapping) else list(outputs)
    table = frame.select(*keys).unique()
    for stage in stages:
        table = table.with_columns(**stage)
    return table.select(*keys, *stages[-1])


def by_distinct(
    frame: pl.LazyFrame,
    lookups: Sequence[tuple[Sequence[str], Outputs]],
    *,
    source: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Add each lookup's outputs (expressions of its key columns only), evaluated per distinct key.

    The keys are read from ``source`` (default ``frame``), which must have ``frame``'s rows
    in the same order. Null keys match null keys, so an expression's answer for a missing
    value is kept. Only the key columns go through the join and the new columns are
    placed beside ``frame``'s, so the wide frame itself is never copied. ``source`` is
    read once per lookup: use an in-memory frame (``df.lazy()``), not a file scan.
    """
    base = frame if source is None else source
    columns = []
    for keys, outputs in lookups:
        last = outputs if isinstance(outputs, Mapping) else outputs[-1]
        columns.append(
            base.select(*keys)
            .join(distinct_table(base, keys, outputs), on=list(keys), how="left", nulls_equal=True,
                  maintain_order="left")
            .select(*last)
        )
    return pl.concat([frame, *columns], how="horizontal", strict=True)


def part_dates(column: str, parts: Sequence[RawPart], today: dt.date) -> nz.Normalized:
    """Dates parsed by the default layouts, or by a mapping's explicit format per part.

    Reads ``column`` and, when a part has an explicit format, ``_part``.
    """
    raw = pl.col(column)
    default = nz.parse_date(raw, today=today)
    fmts = {i: p.date_formats[column] for i, p in enumerate(parts) if column in p.date_formats}
    if not fmts:
        return default
    value, problem = default.value, default.problem
    for part, fmt in fmts.items():
        explicit = nz.parse_date(raw, today=today, fmt=fmt)
        is_part = pl.col("_part") == part
        value = pl.when(is_part).then(explicit.value).otherwise(value)
        problem = pl.when(is_part).then(explicit.problem).otherwise(problem)
    return nz.Normalized(value, problem)


def date_keys(column: str, parts: Sequence[RawPart]) -> list[str]:
    """Lookup keys for :func:`part_dates`: the column, plus ``_part`` when formats differ by part."""
    return [column, "_part"] if any(column in p.date_formats for p in parts) else [column]


def collect_all(frames: list[pl.LazyFrame], parts: Sequence[RawPart]) -> list[pl.DataFrame]:
    """Collect, turning a Polars failure while reading into a one-line error naming the files."""
    try:
        return pl.collect_all(frames, engine="streaming")
    except pl.exceptions.ComputeError as exc:
        names = ", ".join(sorted({Path(p.file).name for p in parts}))
        text = str(exc).lower()
        if "utf-8" in text or "utf8" in text:
            raise InputDataError(f"a file is not valid UTF-8 (one of: {names})") from exc
        raise InputDataError(
            f"malformed CSV (a row with more fields than the header, or an unclosed quote) in one of: {names}"
        ) from exc
