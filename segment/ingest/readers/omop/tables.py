"""OMOP tables on disk: finding them (any case, CSV or Parquet), opening them as text, concepts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers.files import (
    check_readable,
    check_utf8,
    csv_header,
    parquet_header,
    scan_csv_text,
    scan_parquet_text,
)

SUFFIXES = ("csv", "parquet", "pq")

#: Visit concepts known without a CONCEPT table: concept_id -> (vocabulary_id, concept_code, name)
BUILTIN_CONCEPTS: dict[str, tuple[str, str, str]] = {
    "9201": ("Visit", "IP", "Inpatient Visit"),
    "9202": ("Visit", "OP", "Outpatient Visit"),
    "9203": ("Visit", "ER", "Emergency Room Visit"),
    "262": ("Visit", "ERIP", "Emergency Room and Inpatient Visit"),
}


@dataclass(frozen=True)
class Table:
    """One OMOP table: its file, lower-case column names and all columns as text with ``_row``."""

    name: str
    path: Path
    columns: tuple[str, ...]
    frame: pl.LazyFrame

    @property
    def label(self) -> str:
        """The table's name as the CDM writes it (``CONDITION_OCCURRENCE``)."""
        return self.name.upper()

    def has(self, *columns: str) -> bool:
        """True when every one of ``columns`` is in the table."""
        return all(c in self.columns for c in columns)

    def first(self, *columns: str) -> str | None:
        """The first of ``columns`` the table has."""
        return next((c for c in columns if c in self.columns), None)

    def require(self, *columns: str) -> None:
        """Raise a one-line error naming the first missing column."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise InputDataError(
                f"OMOP table {self.label} is missing required column `{missing[0]}`",
                path=self.path, column=missing[0],
            )


def table_files(folder: Path) -> dict[str, Path]:
    """Lower-case table name -> file for the table files of ``folder`` (``PERSON.csv``, ``person.parquet``)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem, _, suffix = path.name.partition(".")
        if suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        key = stem.lower()
        if key in found:
            raise InputDataError(
                f"two files for the OMOP table {key.upper()}: {found[key].name} and {path.name}", path=folder
            )
        found[key] = path
    return found


def _tabbed_header(path: Path) -> list[str] | None:
    """The column names of a tab-separated table (a first line with tabs and no comma), else None."""
    with open(path, "rb") as fh:
        first = fh.readline(1 << 16)
    if b"\t" not in first or b"," in first:
        return None
    check_readable(path)
    check_utf8(path)
    return [h.strip().lstrip("\ufeff") for h in first.decode("utf-8").rstrip("\r\n").split("\t")]


def _scan_tabbed(path: Path, header: list[str]) -> pl.LazyFrame:
    """A tab-separated table as text (Athena vocabulary downloads: tabs, no quoting)."""
    frame = pl.scan_csv(
        path, separator="\t", quote_char=None, infer_schema=False, row_index_name="_row",
        row_index_offset=1, empty_string_is_null=True, encoding="utf8",
    )
    raw = frame.collect_schema().names()[1:]
    return frame.rename(dict(zip(raw, header, strict=True))).with_columns(pl.col("_row").cast(pl.Int64))


def open_table(name: str, path: Path) -> Table | None:
    """Open one table as text with lower-case column names; None for a zero-byte file (no table)."""
    if path.stat().st_size == 0:
        return None
    if path.suffix.lower() in {".parquet", ".pq"}:
        header = parquet_header(path)
        frame = scan_parquet_text(path)
    else:
        tabbed = _tabbed_header(path)
        if tabbed is not None:
            header = tabbed
            frame = _scan_tabbed(path, header)
        else:
            header = csv_header(path)
            frame = scan_csv_text(path, header)
    lower = [h.lower() for h in header]
    repeated = sorted({c for c in lower if lower.count(c) > 1})
    if repeated:
        raise InputDataError(f"OMOP table {name.upper()} has the column `{repeated[0]}` twice", path=path)
    frame = frame.rename(dict(zip(header, lower, strict=True)))
    return Table(name, path, tuple(lower), frame)


def open_tables(folder: Path, names: tuple[str, ...]) -> dict[str, Table]:
    """The tables among ``names`` that ``folder`` holds (absent and zero-byte tables left out)."""
    files = table_files(folder)
    tables = {}
    for name in names:
        if name in files and (table := open_table(name, files[name])) is not None:
            tables[name] = table
    return tables


def concept_id(column: str) -> pl.Expr:
    """A concept id as a join key: trimmed text, ``12.0`` read as ``12``, 0 and blank as null."""
    text = pl.col(column).cast(pl.String).str.strip_chars().str.replace(r"\.0+$", "")
    return pl.when(text.is_in(["", "0"])).then(None).otherwise(text)


def concept_lookup(concept: Table | None) -> pl.LazyFrame:
    """``concept_id, vocabulary_id, concept_code, concept_name`` from CONCEPT plus the built-in visits.

    A concept id repeated in CONCEPT uses its first row. Without a CONCEPT table only the
    built-in Visit concepts (:data:`BUILTIN_CONCEPTS`) resolve.
    """
    builtin = pl.LazyFrame(
        {
            "concept_id": list(BUILTIN_CONCEPTS),
            "vocabulary_id": [v for v, _, _ in BUILTIN_CONCEPTS.values()],
            "concept_code": [c for _, c, _ in BUILTIN_CONCEPTS.values()],
            "concept_name": [n for _, _, n in BUILTIN_CONCEPTS.values()],
        },
        schema=dict.fromkeys(("concept_id", "vocabulary_id", "concept_code", "concept_name"), pl.String),
    )
    if concept is None:
        return builtin
    concept.require("concept_id", "vocabulary_id", "concept_code")
    name = pl.col("concept_name") if concept.has("concept_name") else pl.lit(None, dtype=pl.String)
    table = concept.frame.select(
        concept_id("concept_id").alias("concept_id"),
        pl.col("vocabulary_id").str.strip_chars(),
        pl.col("concept_code").str.strip_chars(),
        name.alias("concept_name"),
    ).filter(pl.col("concept_id").is_not_null())
    return pl.concat([table, builtin]).unique(subset="concept_id", keep="first", maintain_order=True)


def resolve(frame: pl.LazyFrame, concepts: pl.LazyFrame, column: str | None, prefix: str) -> pl.LazyFrame:
    """Add ``<prefix>_id`` (the key), ``_vocab``, ``_code`` and ``_name`` for the concept in ``column``.

    A missing column gives null ids (and so null codes).
    """
    key = concept_id(column) if column else pl.lit(None, dtype=pl.String)
    looked = concepts.select(
        pl.col("concept_id").alias(f"{prefix}_id"),
        pl.col("vocabulary_id").alias(f"{prefix}_vocab"),
        pl.col("concept_code").alias(f"{prefix}_code"),
        pl.col("concept_name").alias(f"{prefix}_name"),
    )
    return frame.with_columns(key.alias(f"{prefix}_id")).join(
        looked, on=f"{prefix}_id", how="left", maintain_order="left"
    )
