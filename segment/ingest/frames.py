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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import polars as pl

from segment.errors import InputDataError
from segment.ingest import normalize as nz
from segment.ingest.packing import lookup
from segment.ingest.readers import RawPart
from segment.ingest.readers.files import locate_bad_utf8, read_as
from segment.memory import release_mapped_pages


def with_all_columns(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``_row`` plus ``columns`` as text (String, or Categorical as read); a column the source lacks is all null."""
    schema = frame.collect_schema()
    return frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in schema]
    ).select("_row", *[
        pl.col(c) if isinstance(schema.get(c), pl.Categorical) else pl.col(c).cast(pl.String) for c in columns
    ])


Stage = Mapping[str, pl.Expr]
#: a table builder: the distinct keys in, the keys plus new columns out
Builder = Callable[[pl.LazyFrame], pl.LazyFrame]
Outputs = Stage | Sequence[Stage | Builder]


def distinct_table(frame: pl.LazyFrame, keys: Sequence[str], outputs: Outputs) -> pl.LazyFrame:
    """One row per distinct combination of ``keys`` with ``outputs`` evaluated on it.

    ``outputs`` may be a sequence of stages: each stage can use the columns of the stages
    before it (a big expression used twice is cheaper computed once as a column); a stage
    may also be a :data:`Builder` (see :func:`date_builder`). The table keeps the keys and
    the last stage's columns.
    """
    stages = [outputs] if isinstance(outputs, Mapping) else list(outputs)
    table = frame.select(*keys).unique()
    for stage in stages:
        table = stage(table) if callable(stage) else table.with_columns(**stage)
    return table.select(*keys, *_stage_columns(stages[-1], table, keys))


def _stage_columns(stage: Stage | Builder, table: pl.LazyFrame, keys: Sequence[str]) -> list[str]:
    if callable(stage):
        return [c for c in table.collect_schema().names() if c not in keys]
    return list(stage)


def distinct_columns(source: pl.DataFrame, lookups: Sequence[tuple[Sequence[str], Outputs]]) -> pl.DataFrame:
    """Each lookup's outputs for every row of ``source``: :func:`by_distinct` without text joins.

    Every text key column is made Categorical once (a small integer per row), each lookup's
    table is built on the distinct keys only (:func:`distinct_table`), and the rows take
    their answers by position (:func:`segment.ingest.packing.lookup`) instead of joining
    ``source`` on text. The same answers as :func:`by_distinct`, one row per row of ``source``.
    """
    names = list(dict.fromkeys(k for keys, _ in lookups for k in keys))
    keyed = source.select(
        pl.col(c).cast(pl.Categorical(pl.Categories.random())) if source.schema[c] == pl.String else pl.col(c)
        for c in names
    )
    columns = [lookup(keyed, keys, _table_builder(keys, outputs))[0] for keys, outputs in lookups]
    return pl.concat(columns, how="horizontal", strict=True) if columns else pl.DataFrame(height=source.height)


def _table_builder(keys: Sequence[str], outputs: Outputs) -> Callable[[pl.LazyFrame], pl.DataFrame]:
    def build(table: pl.LazyFrame) -> pl.DataFrame:
        return distinct_table(table, keys, outputs).collect()

    return build


#: dates exactly ``YYYY-MM-DD`` (maybe with a time after ``T`` or a space): what the general
#: parser reads from the first ten characters, so those alone decide when they parse
_ISO_DATE_SHAPE = r"^\d{4}-\d{2}-\d{2}(?:[T ].*)?$"
#: dates written ``M/D/YYYY`` (one or two digits for month and day): read by one ``strptime``
#: when they parse, as the general parser reads them
_US_DATE_SHAPE = r"^\d{1,2}/\d{1,2}/\d{4}$"


def date_builder(column: str, parts: Sequence[RawPart], as_of: dt.date, value: str, problem: str) -> Builder:
    """A :data:`Builder` giving :func:`part_dates`'s value and problem, cheaply.

    Texts of the plain ISO or US (``M/D/YYYY``) shape that parse are read with one ``strptime``; every other text
    (and every part with an explicit format) goes through the general parser. The results
    are the same as :func:`part_dates` on every text (a test checks it); the general parser
    tries a dozen patterns, so on 300k distinct birth dates this is several times faster.
    """
    explicit = any(column in p.date_formats for p in parts)

    def build(table: pl.LazyFrame) -> pl.LazyFrame:
        full = part_dates(column, parts, as_of)
        if explicit:
            return table.with_columns(full.value.alias(value), full.problem.alias(problem))
        raw = pl.col(column).cast(pl.String)
        fast = (
            pl.when(raw.str.contains(_ISO_DATE_SHAPE))
            .then(raw.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False))
            .when(raw.str.contains(_US_DATE_SHAPE))
            .then(raw.str.strptime(pl.Date, "%m/%d/%Y", strict=False))
        )
        marked = table.with_columns(fast.alias(value))
        quick = marked.filter(pl.col(value).is_not_null()).with_columns(pl.lit(None, pl.String).alias(problem))
        slow = marked.filter(pl.col(value).is_null()).with_columns(
            full.value.alias(value), full.problem.alias(problem)
        )
        return pl.concat([quick, slow], how="vertical")

    return build


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
        table = distinct_table(base, keys, outputs)
        new = [c for c in table.collect_schema().names() if c not in keys]
        columns.append(
            base.select(*keys)
            .join(table, on=list(keys), how="left", nulls_equal=True, maintain_order="left")
            .select(*new)
        )
    return pl.concat([frame, *columns], how="horizontal", strict=True)


def part_dates(column: str, parts: Sequence[RawPart], as_of: dt.date) -> nz.Normalized:
    """Dates parsed by the default layouts, or by a mapping's explicit format per part.

    Reads ``column`` and, when a part has an explicit format, ``_part``.
    """
    raw = pl.col(column)
    default = nz.parse_date(raw, as_of=as_of)
    fmts = {i: p.date_formats[column] for i, p in enumerate(parts) if column in p.date_formats}
    if not fmts:
        return default
    value, problem = default.value, default.problem
    for part, fmt in fmts.items():
        explicit = nz.parse_date(raw, as_of=as_of, fmt=fmt)
        is_part = pl.col("_part") == part
        value = pl.when(is_part).then(explicit.value).otherwise(value)
        problem = pl.when(is_part).then(explicit.problem).otherwise(problem)
    return nz.Normalized(value, problem)


def date_keys(column: str, parts: Sequence[RawPart]) -> list[str]:
    """Lookup keys for :func:`part_dates`: the column, plus ``_part`` when formats differ by part."""
    return [column, "_part"] if any(column in p.date_formats for p in parts) else [column]


_PARQUET_SUFFIXES = (".parquet", ".pq")


def _list_columns(paths: Sequence[Path]) -> list[tuple[Path, str, pl.DataType]]:
    """(file, column, type) of every list column in the Parquet files among ``paths``."""
    found: list[tuple[Path, str, pl.DataType]] = []
    for path in paths:
        if path.suffix.lower() not in _PARQUET_SUFFIXES:
            continue
        try:
            schema = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError):
            continue
        found += [(path, name, dtype) for name, dtype in schema.items() if isinstance(dtype, pl.List | pl.Array)]
    return found


def collect_all(frames: list[pl.LazyFrame], parts: Sequence[RawPart]) -> list[pl.DataFrame]:
    """Collect, turning a Polars failure while reading into a one-line error naming the files.

    The message names what the files are: a Parquet list column, a corrupt Parquet file
    and a malformed CSV row are different problems with different fixes.
    """
    try:
        return pl.collect_all(frames, engine="streaming")
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise_read_error(exc, parts)


def drop_ragged(frame: pl.DataFrame, parts: Sequence[RawPart], indices: Sequence[int] | None = None) -> pl.DataFrame:
    """``frame`` (collected from ``parts``, with ``_part`` and ``_row``) without the rows its
    parts' row-length checks found ragged (:attr:`RawPart.ragged`); ``indices``: only those parts."""
    for i in range(len(parts)) if indices is None else indices:
        check = parts[i].ragged
        if check is None:
            continue
        rows = check.result()["_row"]
        if rows.len():
            frame = frame.filter(~((pl.col("_part") == i) & pl.col("_row").is_in(rows.implode())))
    return frame


def collect_batches(frame: pl.LazyFrame, parts: Sequence[RawPart], rows: int) -> Iterator[pl.DataFrame]:
    """``frame`` in batches of about ``rows`` rows, in order (streaming: only a batch or two in memory).

    A Polars failure while reading is the one-line error of :func:`collect_all`.
    """
    files = [str(read_as(Path(p.file))) for p in parts]
    try:
        for batch in frame.collect_batches(chunk_size=rows, maintain_order=True, lazy=True):
            # Polars maps each CSV whole: the pages read so far would stay resident to the end
            release_mapped_pages(files)
            yield batch
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise_read_error(exc, parts)


def checked_batches(
    frame: pl.LazyFrame, parts: Sequence[RawPart], rows: int, indices: Sequence[int] | None = None,
) -> Iterator[pl.DataFrame]:
    """:func:`collect_batches` without the rows the parts' row-length checks found ragged
    (:func:`drop_ragged`; ``indices``: only those parts), and without empty batches."""
    read = parts if indices is None else [parts[i] for i in indices]  # the files a read error names
    for batch in collect_batches(frame, read, rows):
        batch = drop_ragged(batch, parts, indices)
        if batch.height:
            yield batch


def raise_read_error(exc: Exception, parts: Sequence[RawPart]) -> NoReturn:
    """Raise the one-line :class:`InputDataError` for a Polars failure while reading ``parts``.

    The message names what the files are: a Parquet list column, a corrupt Parquet file
    and a malformed CSV row are different problems with different fixes.
    """
    files = sorted({Path(p.file) for p in parts})
    names = ", ".join(sorted({f.name for f in files}))
    text = str(exc)
    if lists := _list_columns(files):
        path, column, dtype = ([c for c in lists if f'col("{c[1]}")' in text] or lists)[0]
        raise InputDataError(
            f"Parquet column `{column}` holds a list in each cell ({dtype}); segment reads one "
            "value per cell: flatten it (one row per value) or leave the column out",
            path=path, column=column,
        ) from exc
    if isinstance(exc, pl.exceptions.InvalidOperationError):
        raise exc
    if "utf-8" in text.lower() or "utf8" in text.lower():
        locate_bad_utf8(sorted({Path(p.file) for p in parts}))  # raises with the file and line
        raise InputDataError(f"a file is not valid UTF-8 (one of: {names})") from exc
    parquet = [f for f in files if f.suffix.lower() in _PARQUET_SUFFIXES]
    if parquet and len(parquet) == len(files):
        raise InputDataError(
            f"cannot read Parquet data (a corrupt or truncated file) in one of: {names}"
        ) from exc
    if parquet:
        raise InputDataError(
            "cannot read the data: a malformed CSV row (more fields than the header, or an "
            f"unclosed quote) or a corrupt Parquet file, in one of: {names}"
        ) from exc
    raise InputDataError(
        f"malformed CSV (a row with more fields than the header, or an unclosed quote) in one of: {names}"
    ) from exc
