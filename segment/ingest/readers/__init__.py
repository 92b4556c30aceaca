"""Readers turn one source system's files into raw canonical tables (all text) plus rejects.

Every reader returns :class:`RawPart` objects: a LazyFrame whose columns are canonical
names holding the source's raw text, with ``_row`` (1-based data row, or line number for
NDJSON) so that every problem can point at its input row. Normalization happens later,
the same way for every format.

The contract every reader keeps:

- columns are canonical names (``segment.ingest.mapping.PATIENT_INPUT_COLUMNS`` /
  ``EVENT_INPUT_COLUMNS``) holding the source's text; a column the source does not have
  is left out, never filled with nulls (so the working folder can tell "the extract has
  no email column" from "this patient has no email");
- ``_row`` is the 1-based data row (or line / entry number); ``_record``, when the format
  has one, is the source's own record id (MRN, FHIR resource id, OMOP occurrence id), so
  every reject names it;
- code systems are passed through as the source spells them (URI, OID or label):
  :mod:`segment.ingest.codesystems` reads them all;
- every row read ends in a part, in ``rejects`` (with its reason), or in ``skipped``
  (a named count: a resource type nothing reads, a FHIR ``OperationOutcome``...).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

REJECT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "file": pl.String,
    "row": pl.Int64,
    "record_id": pl.String,
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
    #: canonical columns this part really provides; None: every column of ``frame``
    #: (a reader of sparse JSON names the columns some record of the file filled)
    provided: frozenset[str] | None = None
    #: False when one input row may give several events (an OMOP row with a source code
    #: beside its standard code, a claim with several diagnoses): counts go by distinct row
    one_event_per_row: bool = True
    #: rows (``_row``) still in ``frame`` that a row-length check found ragged: whoever collects
    #: the frame drops them (:func:`segment.ingest.frames.drop_ragged`); None: nothing to drop
    ragged: Future[pl.DataFrame] | None = None


@dataclass
class ReadResult:
    """What a reader found: tables to normalize and rows it already had to reject."""

    parts: list[RawPart] = field(default_factory=list)
    rejects: list[pl.DataFrame] = field(default_factory=list)
    #: file -> reason -> rows read and deliberately not used (each reason named)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    def skip(self, file: str, reason: str, n: int = 1) -> None:
        """Count ``n`` rows of ``file`` skipped for ``reason``."""
        if n:
            by_reason = self.skipped.setdefault(file, {})
            by_reason[reason] = by_reason.get(reason, 0) + n

    def extend(self, other: ReadResult) -> None:
        """Add another reader's output."""
        self.parts.extend(other.parts)
        self.rejects.extend(other.rejects)
        for file, reasons in other.skipped.items():
            for reason, n in reasons.items():
                self.skip(file, reason, n)


def empty_rejects() -> pl.DataFrame:
    """A rejects frame with no rows."""
    return pl.DataFrame(schema=REJECT_SCHEMA)
