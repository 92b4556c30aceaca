"""The canonical layout (CSV or Parquet), directly or through a mapping file.

A patients file has at least ``patient_id`` and ``birth_date``; an events file at least
``patient_id``, ``event_type``, ``code_system``, ``code`` and ``event_date``. Which one a
file is, is told by its columns. Columns the layout does not know are ignored.

With a mapping (:mod:`segment.ingest.mapping`), each file is matched to one of its tables
(by file-name pattern and header) and renamed, recoded and completed by it; a table's
``join`` pulls columns from a second file by key (:func:`join_lookup`, a left join).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.mapping import (
    EVENT_INPUT_COLUMNS,
    EVENT_REPEATED,
    EVENT_REQUIRED,
    JOINED,
    PATIENT_INPUT_COLUMNS,
    PATIENT_REQUIRED,
    EventJoin,
    Kind,
    Mapping,
    PatientJoin,
    Table,
    apply_table,
)
from segment.ingest.readers import REJECT_SCHEMA, RawPart, ReadResult
from segment.ingest.readers.files import (
    csv_header,
    parquet_header,
    scan_csv_rows,
    scan_csv_text,
    scan_parquet_text,
)

_KIND_SUFFIX = re.compile(r"[-_. ]?(patients?|events?|persons?|people|members?)$", re.IGNORECASE)


def source_name(path: Path) -> str:
    """Source-system name from a file name: ``ehr-patients.csv`` -> ``ehr``.

    A bare ``patients.csv`` takes its folder's name.
    """
    stem = path.name.split(".")[0]
    name = _KIND_SUFFIX.sub("", stem)
    return name or path.resolve().parent.name or "source"


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def _header(path: Path) -> list[str]:
    # a .gz or CR-only CSV file is read from a plain copy (files.readable)
    return parquet_header(path) if _is_parquet(path) else csv_header(path)


def _scan(path: Path, header: list[str], categorical: tuple[str, ...] = ()) -> pl.LazyFrame:
    return scan_parquet_text(path) if _is_parquet(path) else scan_csv_text(path, header, categorical)


def _header_and_scan(path: Path) -> tuple[list[str], pl.LazyFrame]:
    header = _header(path)
    return header, _scan(path, header)


def _kind_of(header: list[str], path: Path) -> str:
    cols = set(header)
    if {"event_type", "code"} & cols and "birth_date" not in cols:
        missing = [c for c in EVENT_REQUIRED if c not in cols]
        if missing:
            raise InputDataError(
                f"events file is missing required column `{missing[0]}`"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                path=path,
                column=missing[0],
            )
        return "events"
    missing = [c for c in PATIENT_REQUIRED if c not in cols]
    if missing:
        raise InputDataError(
            f"missing required column `{missing[0]}`"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; a patients file needs "
            + ", ".join(PATIENT_REQUIRED)
            + " and an events file "
            + ", ".join(EVENT_REQUIRED),
            path=path,
            column=missing[0],
        )
    return "patients"


def read_canonical(path: Path, *, source: str | None = None, mapping: Mapping | None = None) -> ReadResult:
    """Read one canonical (or mapped) patients or events file as raw text.

    With a mapping, a file that is only named by a table's ``join`` is a lookup: it is
    read through that join, not as data (an empty result).
    """
    header = _header(path)
    src = source or (mapping.source if mapping and mapping.source else None) or source_name(path)
    if mapping is None:
        kind = _kind_of(header, path)
        known = EVENT_INPUT_COLUMNS if kind == "events" else PATIENT_INPUT_COLUMNS
        # an events file's repetitive columns come out of the reader as Categorical; its ragged
        # rows are dropped once read (no anti-join in the plan: there are usually none)
        categorical = EVENT_REPEATED if kind == "events" else ()
        frame, ragged = (scan_parquet_text(path), None) if _is_parquet(path) else scan_csv_rows(path, header, categorical)
        frame = frame.select("_row", *[c for c in known if c in header])
        return ReadResult(parts=[RawPart(kind, str(path), src, frame, ragged=ragged)])  # type: ignore[arg-type]
    frame = _scan(path, header)
    found = _mapped_table(path, header, mapping)
    if found is None:
        return ReadResult()
    kind, table, label = found
    required = EVENT_REQUIRED if kind == "events" else PATIENT_REQUIRED
    missing = [c for c in required if c not in table.provides()]
    if missing:
        raise InputDataError(
            f"the mapping provides no `{missing[0]}` for this {kind} file", path=path, column=missing[0]
        )
    result = ReadResult()
    if table.join is not None:
        frame = _join(frame, header, path, table.join, mapping, label, result)
    frame = apply_table(frame, table, header)
    date_formats = {str(k): v for k, v in table.date_formats.items()}
    result.parts.append(RawPart(kind, str(path), src, frame, date_formats))
    return result


def _mapped_table(path: Path, header: list[str], mapping: Mapping) -> tuple[Kind, Table, str] | None:
    """The mapping's table for this file; None for a lookup file read only through a join."""
    found = mapping.tables_for(header, path.name)
    where = f"mapping {mapping.path.name}" if mapping.path else "the mapping"
    if len(found) > 1:
        raise InputDataError(
            "the file fits several tables of the mapping equally well ("
            + ", ".join(f"`{label}`" for _, _, label in found)
            + f" in {where}); give them `files:` patterns",
            path=path,
        )
    if found:
        return found[0]
    if mapping.is_join_file(path):
        return None
    named = [(kind, table, label) for kind, table, label in mapping.tables() if table.matches_name(path.name)]
    if named:
        kind, table, label = named[0]
        required = EVENT_REQUIRED if kind == "events" else PATIENT_REQUIRED
        absent = [c for c in table.key_columns(required) if c not in header]
        raise InputDataError(
            f"the file name matches table `{label}` of {where}, but its header lacks "
            + ", ".join(f"`{c}`" for c in absent),
            path=path, column=absent[0] if absent else None,
        )
    wanted = [s for _, table, _ in mapping.tables() for s, t in table.columns.items() if t == "patient_id"]
    raise InputDataError(
        "columns do not match the mapping: missing "
        + " or ".join(f"`{w}`" for w in dict.fromkeys(wanted or ["the id column"]))
        + f" ({where})",
        path=path,
    )


def _join(
    frame: pl.LazyFrame, header: list[str], path: Path, join: PatientJoin | EventJoin, mapping: Mapping,
    label: str, result: ReadResult,
) -> pl.LazyFrame:
    """``frame`` with the join's columns as ``_joined:<column>`` (see :func:`join_lookup`)."""
    where = f"mapping {mapping.path.name}" if mapping.path else "the mapping"
    target = Path(join.file) if Path(join.file).is_absolute() else path.parent / join.file
    if not target.is_file():
        raise InputDataError(f"the file joined by table `{label}` of {where} is not there", path=target)
    left = [c for c in join.on if c not in header]
    if left:
        raise InputDataError(f"join key `{left[0]}` of table `{label}` ({where}) is not a column of this file",
                             path=path, column=left[0])
    jheader, lookup = _header_and_scan(target)
    right = [c for c in join.on.values() if c not in jheader]
    if right:
        raise InputDataError(f"join key `{right[0]}` of table `{label}` ({where}) is not a column of the joined file",
                             path=target, column=right[0])
    lookup = lookup.select(
        *dict.fromkeys(join.on.values()), *[pl.col(c).alias(f"{JOINED}{c}") for c in join.columns if c in jheader]
    )
    return join_lookup(frame, lookup, list(join.on), list(join.on.values()), file=str(path),
                       lookup_file=str(target), result=result)


def join_lookup(
    frame: pl.LazyFrame, lookup: pl.LazyFrame, left_on: list[str], right_on: list[str], *,
    file: str, lookup_file: str, result: ReadResult,
) -> pl.LazyFrame:
    """Left-join ``lookup``'s other columns onto ``frame`` by text keys (blanks trimmed).

    Every row of ``frame`` is kept, once: a key repeated in ``lookup`` uses its first row
    (the repeats are counted in ``result.skipped`` for ``lookup_file``); a row whose key is
    not in ``lookup`` keeps empty joined columns and gets a field-level reject naming the
    key column. Keys are compared as trimmed text. Collects the keys once, to count both.
    """
    keys = [f"_key{i}" for i in range(len(left_on))]
    lookup = lookup.with_columns(
        *[pl.col(r).cast(pl.String).str.strip_chars().alias(k) for r, k in zip(right_on, keys, strict=True)],
        pl.lit(True).alias("_matched"),
    ).drop([r for r in dict.fromkeys(right_on)])
    keyed = pl.all_horizontal(pl.col(k).is_not_null() for k in keys)
    repeats = lookup.filter(keyed).group_by(keys).len().filter(pl.col("len") > 1).select((pl.col("len") - 1).sum())
    left = frame.with_columns(
        pl.col(c).cast(pl.String).str.strip_chars().alias(k) for c, k in zip(left_on, keys, strict=True)
    )
    lookup = lookup.unique(subset=keys, keep="first", maintain_order=True)
    joined = left.join(lookup, on=keys, how="left", maintain_order="left")
    record = pl.col("_record") if "_record" in frame.collect_schema().names() else pl.lit(None, dtype=pl.String)
    missing = joined.filter(keyed & pl.col("_matched").is_null()).select(
        pl.lit(file).alias("file"), pl.col("_row").alias("row"), record.alias("record_id"),
        pl.lit(",".join(left_on)).alias("column"),
        pl.concat_str([pl.col(k) for k in keys], separator=",").alias("value"),
        pl.lit(f"no row in {Path(lookup_file).name} with this key").alias("reason"),
        pl.lit("field").alias("level"),
    )
    repeated, unmatched = pl.collect_all([repeats, missing])
    result.skip(lookup_file, "repeated join key (its first row is used)", int(repeated.item() or 0))
    if unmatched.height:
        result.rejects.append(unmatched.cast(REJECT_SCHEMA))  # type: ignore[arg-type]
    return joined.drop(*keys, "_matched")
