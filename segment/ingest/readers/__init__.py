"""Readers turn one source system's files into raw canonical tables (all text) plus rejects.

Every reader returns :class:`RawPart` objects: a LazyFrame whose columns are canonical
names holding the source's raw text, with ``_row`` (1-based data row, or line number for
NDJSON) so that every problem can point at its input row. Normalization happens later,
the same way for every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

REJECT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "file": pl.String,
    "row": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "reason": pl.String,
    "level": pl.String,
}


@dataclass(frozen=True)
class RawPart:
    """One input table: raw canonical text columns plus ``_row``."""

    kind: Literal["patients", "events"]
    file: str
    source: str
    frame: pl.LazyFrame
    date_formats: dict[str, str] = field(default_factory=dict)


@dataclass
class ReadResult:
    """What a reader found: tables to normalize and rows it already had to reject."""

    parts: list[RawPart] = field(default_factory=list)
    rejects: list[pl.DataFrame] = field(default_factory=list)

    def extend(self, other: ReadResult) -> None:
        """Add another reader's output."""
        self.parts.extend(other.parts)
        self.rejects.extend(other.rejects)


def empty_rejects() -> pl.DataFrame:
    """A rejects frame with no rows."""
    return pl.DataFrame(schema=REJECT_SCHEMA)
