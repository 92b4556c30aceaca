"""read_fhir: FHIR R4 files (bulk NDJSON, Bundles, gzip or not) -> raw canonical parts.

Each batch of lines (or Bundle entries) goes: resource type sniffed from the start of
the line (a regex, no parse) -> types read nowhere counted as skipped -> each type
decoded by Polars against its own schema (:mod:`.schemas`) -> queued, and built into
frames many files at a time (:mod:`.resources`: void statuses rejected there). When
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

from segment.ingest.readers import ReadResult
from segment.ingest.readers.fhir.finish import CONSENT_JOINED, NOT_PATIENT, UNKNOWN_PATIENT, finish
from segment.ingest.readers.fhir.resources import (
    ID_AFTER_TYPE,
    MALFORMED,
    MISFIT,
    SKIP_CONSENT,
    SKIP_MEDICATION,
    FileState,
    Resources,
)
from segment.ingest.readers.fhir.schemas import FIELDS
from segment.ingest.readers.fhir.sources import (
    BATCH_BYTES,
    ENTRY_BATCH,
    JSON_SUFFIXES,
    ndjson_batches,
    read_whole,
    stream_document,
)

__all__ = [
    "CONSENT_JOINED", "MALFORMED", "MISFIT", "NOT_PATIENT", "SKIP_CONSENT", "SKIP_MEDICATION", "UNKNOWN_PATIENT",
    "read_fhir",
]

_TYPE_AT_START = r'^\s*\{\s*"resourceType"\s*:\s*"([^"\\]*)"'
NO_TYPE = "not a FHIR resource (no resourceType)"
SKIP_LOG = "skipped: bulk-export log entry"
SKIP_OUTCOME = "skipped: OperationOutcome (server messages)"
SKIP_NO_RESOURCE = "skipped: Bundle entry without a resource"


def skip_type(resource_type: str) -> str:
    """The skip reason of a resource type nothing reads."""
    return f"skipped: type not used ({resource_type})"


# -- batches of lines --------------------------------------------------------------------
def _lines(batch: pl.DataFrame, f: FileState, resources: Resources, *, wrapped: bool = False) -> None:
    """One batch: ``_row`` and ``line``, one resource per line.

    Bundle entries (``wrapped``) are whole entries with ``_type`` and ``_full_url`` already
    known, and a null ``line`` for an entry without a resource.
    """
    no_resource = batch["line"].is_null()
    f.skip(SKIP_NO_RESOURCE, int(no_resource.sum()))
    typed = batch.filter(~no_resource)
    if not wrapped:
        typed = typed.with_columns(pl.col("line").str.extract(_TYPE_AT_START, 1).alias("_type"))
        unsniffed = typed["_type"].is_null()
        if unsniffed.any():  # resourceType not first: ask a JSON path (a full parse, but rare)
            later = typed.filter(unsniffed).with_columns(
                pl.col("line").str.json_path_match("$.resourceType").alias("_type")
            )
            typed = pl.concat([typed.filter(~unsniffed), later], rechunk=True)
    named = typed["_type"].str.contains(r"^[A-Z][A-Za-z]*$").fill_null(False)
    _untyped(typed.filter(~named), f, wrapped)
    typed = typed.filter(named)
    used = typed["_type"].is_in(list(FIELDS))
    for rtype, n in typed.filter(~used).group_by("_type", maintain_order=True).len().iter_rows():
        f.skip(SKIP_OUTCOME if rtype == "OperationOutcome" else skip_type(rtype), n)
    if used.all():
        resources.add(f, typed, wrapped=wrapped)
    elif used.any():
        resources.add(f, typed.filter(used), wrapped=wrapped)


def _untyped(lines: pl.DataFrame, f: FileState, wrapped: bool) -> None:
    if not lines.height:
        return
    if wrapped:  # a Bundle entry's resource is valid JSON (the entry was parsed) with no resourceType
        f.reject(lines, "resourceType", pl.col("_type"), NO_TYPE, pl.col("line").str.json_path_match("$.resource.id"))
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
    f.reject(other, "resourceType", pl.col("_type"), NO_TYPE, pl.col("line").str.json_path_match("$.id"))


# -- files ---------------------------------------------------------------------------------
def _document(path: Path, f: FileState, resources: Resources) -> None:
    """A JSON document: a Bundle's entries in batches (``_row`` = entry number), or one resource (row 1)."""
    schema = {"_row": pl.Int64, "line": pl.String, "_full_url": pl.String, "_type": pl.String}
    batch: dict[str, list[int | str | None]] = {name: [] for name in schema}
    kind: str | None = None
    size = n = 0
    with closing(stream_document(path)) as elements:
        for name, value, text in elements:
            if name == "resourceType":
                kind = value if isinstance(value, str) else None
                if kind != "Bundle":
                    break
            if name != "entry[]":
                continue
            n += 1
            entry = value if isinstance(value, dict) else {}
            resource, url = entry.get("resource"), entry.get("fullUrl")
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            batch["_row"].append(n)
            batch["line"].append(None if resource is None else text)
            batch["_full_url"].append(url if isinstance(url, str) else None)
            batch["_type"].append(rtype if isinstance(rtype, str) else None)
            size += len(text)
            if kind == "Bundle" and (size > BATCH_BYTES or len(batch["_row"]) >= ENTRY_BATCH):
                _lines(pl.DataFrame(batch, schema=schema), f, resources, wrapped=True)
                batch, size = {name: [] for name in schema}, 0
    if kind == "Bundle":
        if batch["_row"]:
            _lines(pl.DataFrame(batch, schema=schema), f, resources, wrapped=True)
        return
    one = {"_row": [1], "line": [read_whole(path)]}
    _lines(pl.DataFrame(one, schema={"_row": pl.Int64, "line": pl.String}), f, resources)


def _read_file(path: Path, f: FileState, resources: Resources) -> None:
    if path.name.lower().endswith(JSON_SUFFIXES):
        _document(path, f, resources)
        return
    for batch in ndjson_batches(path):
        _lines(batch, f, resources)


def read_fhir(files: list[Path], *, source: str | None = None, today: dt.date | None = None) -> ReadResult:
    """Read FHIR R4 files (one source system) into raw canonical patients and events.

    Files are bulk NDJSON (``.ndjson``/``.jsonl``) or JSON documents (``.json``: a Bundle
    of any type, or one resource), each optionally gzip-compressed. Consents and
    ``medicationReference`` codes are matched across all ``files``.
    """
    today = today or dt.date.today()
    result = ReadResult()
    resources = Resources(result, today)
    for path in files:
        f = FileState(len(resources.files), str(path), source or path.resolve().parent.name, result)
        resources.files.append(f)
        _read_file(path, f, resources)
    resources.flush()
    finish(resources)
    return result
