"""read_fhir: FHIR R4 files (bulk NDJSON, Bundles, gzip or not) -> raw canonical parts.

Each batch of lines goes: resource type sniffed from the start of the line (a regex, no
parse) -> types read nowhere counted as skipped -> each type decoded by Polars against
its own schema (:mod:`.schemas`) -> queued, and built into frames many files at a time
(:mod:`.resources`: void statuses rejected there). Bundle entries go the same way, typed
from their first keys and handled many files at a time (:mod:`.bundles`). When
every file is read, references are resolved per file (a Bundle may name its Patient by
``fullUrl``, before or after the Patient entry), then Medication codes and Consents,
which may live in other files of the same read.

Every line or entry ends in a part, a reject (``malformed JSON``, ``not a FHIR resource
(no resourceType)``, ``resource does not fit the FHIR R4 shape``, ``status <x>``,
``reference is not to a Patient``, ``consent for unknown patient``) or a named skip
(``skipped: type not used (<Type>)``, an OperationOutcome, a bulk-export log entry, a
Bundle entry without a resource, a Medication, a Consent not about email or SMS...).
``_row`` is the line number (NDJSON) or the entry number (Bundle), ``_record`` the
resource id (else the entry's ``fullUrl``).
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers import ReadResult
from segment.ingest.readers.fhir.bundles import SKIP_NO_RESOURCE, Entries, check_json, numbered
from segment.ingest.readers.fhir.documents import first_error, stream_document
from segment.ingest.readers.fhir.finish import CONSENT_JOINED, NOT_PATIENT, UNKNOWN_PATIENT, finish
from segment.ingest.readers.fhir.resources import (
    ARRAY_LINE,
    ID_AFTER_TYPE,
    MALFORMED,
    MISFIT,
    NO_TYPE,
    SKIP_CONSENT,
    SKIP_MEDICATION,
    SKIP_OUTCOME,
    FileState,
    Resources,
    skip_type,
)
from segment.ingest.readers.fhir.schemas import FIELDS
from segment.ingest.readers.fhir.sources import JSON_SUFFIXES, ndjson_batches, read_whole

__all__ = [
    "ARRAY_LINE", "CONSENT_JOINED", "MALFORMED", "MISFIT", "NOT_PATIENT", "NO_TYPE", "SKIP_CONSENT", "SKIP_LOG", "SKIP_MEDICATION",
    "SKIP_NO_RESOURCE", "SKIP_OUTCOME", "UNKNOWN_PATIENT", "read_fhir", "skip_type",
]

_TYPE_AT_START = r'^\s*\{\s*"resourceType"\s*:\s*"([^"\\]*)"'
SKIP_LOG = "skipped: bulk-export log entry"


# -- batches of lines --------------------------------------------------------------------
def _lines(batch: pl.DataFrame, f: FileState, resources: Resources) -> None:
    """One batch of one file's lines (``_row``, ``line``), one resource per line (bulk NDJSON, a lone resource)."""
    typed = batch.with_columns(pl.col("line").str.extract(_TYPE_AT_START, 1).alias("_type"))
    unsniffed = typed["_type"].is_null()
    if unsniffed.any():  # resourceType not first: ask a JSON path (a full parse, but rare)
        later = typed.filter(unsniffed).with_columns(pl.col("line").str.json_path_match("$.resourceType").alias("_type"))
        typed = pl.concat([typed.filter(~unsniffed), later], rechunk=True)
    named = typed["_type"].str.contains(r"^[A-Z][A-Za-z]*$").fill_null(False)
    _untyped(typed.filter(~named), f)
    typed = typed.filter(named)
    used = typed["_type"].is_in(list(FIELDS))
    for rtype, n in typed.filter(~used).group_by("_type", maintain_order=True).len().iter_rows():
        f.skip(SKIP_OUTCOME if rtype == "OperationOutcome" else skip_type(rtype), n)
    if used.any():
        typed = typed if used.all() else typed.filter(used)
        resources.add(typed.with_columns(pl.lit(f.index, dtype=pl.Int64).alias("_fidx")), wrapped=False)


def _untyped(lines: pl.DataFrame, f: FileState) -> None:
    if not lines.height:
        return
    parsed = lines.with_columns(
        pl.col("line").str.json_path_match("$").is_not_null().alias("_json"),
        pl.col("line").str.json_path_match("$.eventId").is_not_null().alias("_log"),
    )
    bad = parsed.filter(~pl.col("_json"))
    f.reject(bad, "line", pl.lit(None), MALFORMED, pl.col("line").str.extract(ID_AFTER_TYPE, 1))
    log = parsed.filter(pl.col("_json") & pl.col("_log"))
    f.skip(SKIP_LOG, log.height)
    other = parsed.filter(pl.col("_json") & ~pl.col("_log"))
    # a line holding a JSON array is several resources on one line, not one resource per line
    array = pl.col("line").str.strip_chars_start().str.starts_with("[")
    f.reject(other.filter(array), "line", pl.lit(None), ARRAY_LINE)
    f.reject(other.filter(~array), "resourceType", pl.col("_type"), NO_TYPE,
             pl.col("line").str.json_path_match("$.id"))


# -- files ---------------------------------------------------------------------------------
def _document(path: Path, f: FileState, entries: Entries) -> None:
    """A JSON document: a Bundle's entries (``_row`` = entry number), or one resource (row 1)."""
    kind: str | None = None
    early: list[pl.DataFrame] = []  # entries before the document's resourceType
    n = 0
    try:
        with closing(stream_document(path)) as members:
            for name, value in members:
                if name == "resourceType":
                    kind = value if isinstance(value, str) else None
                    if kind != "Bundle":
                        break
                    for batch in early:
                        entries.add(batch)
                    early = []
                if name != "entry[]":
                    continue
                batch = numbered(f, value, n)
                n += batch.height
                if kind == "Bundle":
                    entries.add(batch)
                else:
                    early.append(batch)
    except InputDataError as exc:
        # the scan may trip over a flaw later than where it is (an earlier file's flaw is raised as is)
        exact = first_error(path) if exc.path == path else None
        if exact is None:
            raise
        raise exact from exc
    if kind == "Bundle":
        return
    entries.flush()  # (the files before this one first)
    for batch in early:  # not a Bundle after all: its entries were still to be JSON
        check_json(batch, entries.resources.files)
    one = {"_row": [1], "line": [read_whole(path)]}
    _lines(pl.DataFrame(one, schema={"_row": pl.Int64, "line": pl.String}), f, entries.resources)


def read_fhir(files: list[Path], *, source: str | None = None, as_of: dt.date | None = None) -> ReadResult:
    """Read FHIR R4 files (one source system) into raw canonical patients and events.

    Files are bulk NDJSON (``.ndjson``/``.jsonl``) or JSON documents (``.json``: a Bundle
    of any type, or one resource), each optionally gzip-compressed. Consents and
    ``medicationReference`` codes are matched across all ``files``.
    """
    as_of = as_of or dt.date.today()
    result = ReadResult()
    resources = Resources(result, as_of)
    entries = Entries(resources)
    for path in files:
        f = FileState(len(resources.files), str(path), source or path.resolve().parent.name, result)
        resources.files.append(f)
        if path.name.lower().endswith(JSON_SUFFIXES):
            _document(path, f, entries)
            continue
        entries.flush()  # (the files before this one first)
        for batch in ndjson_batches(path):
            _lines(batch, f, resources)
    entries.flush()
    resources.flush()
    finish(resources)
    return result
