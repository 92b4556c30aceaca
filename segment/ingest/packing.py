"""Look-ups over tens of millions of rows by packed integer keys instead of text joins.

A row's key columns (Categorical columns with mappings of their own, or small integers
such as ``_part``) become one integer per row in mixed radix: each column a digit, its
size the number of its categories plus one (null). A table is built for the distinct
keys only, as text, and each row takes its answers by position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

#: a dense index array is used up to this many packed keys (else a join on the packed key)
_DENSE_KEYS = 1 << 25


@dataclass(frozen=True)
class _Digit:
    """One key column as a digit of the packed key."""

    #: the row's digit; None: a key with one value everywhere (no digit)
    values: pl.Series | None
    #: the number of values the digit can take
    size: int
    #: digit -> text (Categorical: the categories, then null); None for an integer key
    labels: pl.Series | None
    #: the integer key's smallest value (digit 0)
    low: int


def category_texts(dtype: pl.Categorical) -> pl.Series:
    """The texts of a Categorical's categories, in physical-id order (index = physical id).

    Each physical id is cast back to its text (``Categories.to_series`` asks for one text
    at a time from Python: 0.24 s against 0.05 s for 1.3M categories, holding the GIL).
    """
    n = _category_count(dtype)
    if n is None:  # a Polars without the count: the public, slower way
        return dtype.categories.to_series().cast(pl.String)
    return pl.int_range(n, dtype=pl.UInt32, eager=True).cat.to(dtype).cast(pl.String)


def _category_count(dtype: pl.Categorical) -> int | None:
    """How many physical ids a Categorical's categories hold (what ``Categories.__iter__``
    reads), or None where Polars does not have this private method."""
    try:
        return int(dtype.categories._categories.num_cats_upper_bound())
    except AttributeError:
        return None


def _digit(column: pl.Series) -> _Digit:
    if isinstance(column.dtype, pl.Categorical):
        names = category_texts(column.dtype)
        n = len(names)
        phys = column.to_physical()
        values = None if n == 0 else phys.fill_null(n) if phys.null_count() else phys
        return _Digit(values, n + 1, names.append(pl.Series([None], dtype=pl.String)), 0)
    as_int = column.cast(pl.Int64)
    low, high = int(as_int.min() or 0), int(as_int.max() or 0)  # type: ignore[arg-type]
    return _Digit(None if high == low else (as_int - low).cast(pl.UInt32), high - low + 1, None, low)


def _pack(digits: Sequence[_Digit], height: int) -> pl.Series:
    """One packed ``UInt64``-compatible key per row."""
    used = [d for d in digits if d.values is not None]
    if not used:
        return pl.repeat(0, height, dtype=pl.UInt64, eager=True)
    if len(used) == 1:
        return used[0].values  # type: ignore[return-value]
    frame = pl.DataFrame({f"d{i}": d.values for i, d in enumerate(used)})
    key: pl.Expr = pl.lit(0, dtype=pl.UInt64)
    for i, d in enumerate(used):
        key = key * pl.lit(d.size, dtype=pl.UInt64) + pl.col(f"d{i}").cast(pl.UInt64)
    return frame.select(key.alias("_key")).to_series()


def _unpack(distinct: pl.Series, keys: Sequence[str], digits: Sequence[_Digit], raw: pl.DataFrame) -> pl.DataFrame:
    """The key columns (as text, or as the integer keys' own type) of each packed key."""
    columns: dict[str, pl.Series] = {}
    rest = distinct
    for key, d in reversed(list(zip(keys, digits, strict=True))):
        digit = rest % d.size if d.values is not None else pl.repeat(0, len(distinct), dtype=pl.UInt64, eager=True)
        if d.values is not None:
            rest = rest // d.size
        if d.labels is not None:
            columns[key] = d.labels.gather(digit)
        else:
            columns[key] = (digit.cast(pl.Int64) + d.low).cast(raw[key].dtype)
    return pl.DataFrame({k: columns[k] for k in keys}).with_columns(distinct.alias("_key"))


def _distinct_keys(packed: pl.Series, total: int) -> pl.Series:
    """The distinct packed keys, sorted: marks in an array of ``total`` flags when that is
    small (no hashing of the long column), else a sort of the unique keys."""
    if total <= _DENSE_KEYS and not packed.null_count():
        seen = np.zeros(total, dtype=np.bool_)
        seen[packed.to_numpy()] = True
        return pl.Series("_key", np.flatnonzero(seen), dtype=pl.UInt64)
    return packed.unique().sort().cast(pl.UInt64)


def lookup(
    raw: pl.DataFrame, keys: Sequence[str], build: Callable[[pl.LazyFrame], pl.DataFrame],
    outputs: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``build``'s outputs for every row of ``raw`` without joining the long frame on text.

    ``build`` runs on the distinct key values only, as text; each row then takes its
    outputs by position (a gather through a dense index when the key space is small, else
    a join on the integer). Returns (the outputs, one row per row of ``raw``; the table
    ``build`` made, keys as text). ``outputs`` names the table's columns the rows need
    (default: all but the keys); only those are gathered row by row.
    """
    digits = [_digit(raw[key]) for key in keys]
    total = 1
    for d in digits:
        total *= d.size
    if total >= 2**63:
        raise ValueError("lookup keys too many to pack")  # never with the key columns used here
    packed = _pack(digits, raw.height)
    used = [d for d in digits if d.values is not None]
    # one categorical key: every id is a row of its table, no need to find the distinct ones
    single = len(used) == 1 and used[0].labels is not None
    distinct = (
        pl.int_range(total, dtype=pl.UInt64, eager=True) if single or not used
        else _distinct_keys(packed, total)
    )
    small = _unpack(distinct, keys, digits, raw)
    table = build(small.drop("_key").lazy())
    outputs = list(outputs) if outputs is not None else [c for c in table.columns if c not in keys]
    keyed = small.join(table, on=list(keys), how="left", nulls_equal=True).sort("_key")
    if single:
        # the table has one row per id, in id order: rows gather by their own id
        per_row = keyed.select(pl.col(outputs).gather(packed))
    elif total <= _DENSE_KEYS:
        position = pl.repeat(None, total, dtype=pl.UInt32, eager=True)
        position = position.scatter(keyed["_key"].cast(pl.Int64), pl.int_range(keyed.height, dtype=pl.UInt32, eager=True))
        per_row = keyed.select(pl.col(outputs).gather(position.gather(packed)))
    else:
        per_row = packed.alias("_key").cast(pl.UInt64).to_frame().join(
            keyed.select("_key", *outputs), on="_key", how="left", maintain_order="left"
        ).select(outputs)
    return per_row, table
