"""Resources of a used type -> decoded -> frames, one type at a time, for many files at once.

Lines wait until :data:`PENDING_BYTES` of them are queued (or the read ends), then are
decoded and built together, a type at a time: a folder of small per-patient Bundles costs
one decode and one frame build per type, not one per type per file. Each row carries
``_fidx`` (its file's index) so that rejects, skips and parts go back to their file.

A batch that Polars cannot decode is halved until the lines that do not fit are found:
each is rejected as ``malformed JSON`` (not JSON at all) or ``resource does not fit the
FHIR R4 shape`` (JSON, but an element we read has the wrong shape, e.g. a string where R4
has a CodeableConcept). Elements we do not read are never decoded, so they cannot misfit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segment.ingest.readers import ReadResult
from segment.ingest.readers.fhir.claims import claim_frame
from segment.ingest.readers.fhir.common import concept_codings, pick_coding, reference_id, rejects
from segment.ingest.readers.fhir.consent import consent_frame
from segment.ingest.readers.fhir.documents import load_entry
from segment.ingest.readers.fhir.events import VOID_STATUSES, event_frame, status_of
from segment.ingest.readers.fhir.patients import patient_frame
from segment.ingest.readers.fhir.schemas import schema_for

#: text of queued lines (per read) before they are decoded and built
PENDING_BYTES = 64 * 1024 * 1024
#: text decoded per Polars call: a whole queue in one call decodes 1.5 times slower (measured;
#: the parse of 64 MB outgrows the processor's caches)
DECODE_BYTES = 1024 * 1024
ID_AFTER_TYPE = r'^\s*\{\s*"resourceType"\s*:\s*"[^"\\]*"\s*,\s*"id"\s*:\s*"([^"\\]*)"'
MALFORMED = "malformed JSON"
MISFIT = "resource does not fit the FHIR R4 shape"
CLAIMS = ("Claim", "ExplanationOfBenefit")
SKIP_MEDICATION = "skipped: Medication (codes the requests that name it)"
SKIP_CONSENT = "skipped: Consent not about email or SMS"
NO_TYPE = "not a FHIR resource (no resourceType)"
ARRAY_LINE = "a JSON array on one line, not a resource (NDJSON holds one resource per line)"
SKIP_OUTCOME = "skipped: OperationOutcome (server messages)"


def skip_type(resource_type: str) -> str:
    """The skip reason of a resource type nothing reads."""
    return f"skipped: type not used ({resource_type})"


@dataclass(frozen=True)
class FileState:
    """One file of the read: its index (``_fidx`` of its rows), name and source."""

    index: int
    file: str
    source: str
    result: ReadResult

    def reject(self, frame: pl.DataFrame, column: str, value: pl.Expr, reason: str | pl.Expr,
               record: pl.Expr | None = None) -> None:
        """Rows of this file as rejects."""
        if frame.height:
            self.result.rejects.append(rejects(frame, self.file, column, value, reason, record))

    def skip(self, reason: str, n: int) -> None:
        """Count ``n`` rows of this file skipped for ``reason``."""
        self.result.skip(self.file, reason, n)


class Resources:
    """Decoded resources of every file of one read, built into frames by type.

    The frames (``patients``, ``events``, ``consents``, ``medications``) and the Bundle
    ``fullUrl`` maps (``patient_urls``, ``medication_urls``: ``_fidx``, ``_url``, ``_id``)
    hold every file's rows, told apart by ``_fidx``.
    """

    def __init__(self, result: ReadResult, as_of: dt.date) -> None:
        self.result = result
        self.as_of = as_of
        self.files: list[FileState] = []
        self.patients: list[pl.DataFrame] = []
        self.events: list[pl.DataFrame] = []
        self.consents: list[pl.DataFrame] = []
        self.medications: list[pl.DataFrame] = []
        self.patient_urls: list[pl.DataFrame] = []
        self.medication_urls: list[pl.DataFrame] = []
        self._pending: dict[bool, list[pl.DataFrame]] = {}
        self._bytes = 0

    def add(self, lines: pl.DataFrame, *, wrapped: bool) -> None:
        """Queue lines of used types, of any files: ``_fidx``, ``_row``, ``_type``, ``line``.

        ``line`` is a resource, or a Bundle entry when ``wrapped`` (with ``_full_url`` and
        ``_at``, its byte offset in the file).
        """
        frame = lines.select("_row", "_type", "line", *(c for c in ("_full_url", "_at") if c in lines.columns), "_fidx")
        self._pending.setdefault(wrapped, []).append(frame)
        self._bytes += int(frame["line"].str.len_bytes().sum() or 0)
        if self._bytes >= PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        """Decode and build every queued line."""
        pending, self._pending, self._bytes = self._pending, {}, 0
        decoded: dict[str, list[pl.DataFrame]] = {}
        for wrapped, frames in pending.items():
            # one chunk: Polars decodes JSON text in many chunks much slower (measured: 1.7x)
            queued = pl.concat(frames, how="diagonal").rechunk() if len(frames) > 1 else frames[0].rechunk()
            types = queued["_type"].unique(maintain_order=True)
            # a bulk-export file holds one type: no need to regroup (copy) its lines
            groups = [((types[0],), queued)] if types.len() == 1 else queued.group_by("_type", maintain_order=True)
            for (resource_type,), lines in groups:
                rtype = str(resource_type)
                decoded.setdefault(rtype, []).extend(self._decode(lines.drop("_type"), rtype, wrapped))
        for resource_type, parts in decoded.items():
            if not parts:  # every line of the type was rejected
                continue
            frame = pl.concat(parts, how="diagonal") if len(parts) > 1 else parts[0]
            if not frame.height:
                continue
            if "_full_url" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("_full_url"))
            # one chunk per column: Polars 1.44 panics on when/then over a struct field of a multi-chunk struct
            frame = frame.rechunk().with_columns(pl.coalesce("id", "_full_url").alias("_record"))
            self._build(frame, resource_type)

    def _decode(self, lines: pl.DataFrame, resource_type: str, wrapped: bool) -> Iterator[pl.DataFrame]:
        """Decoded frames of the lines that fit; the lines that do not are rejected (found by halving)."""
        schema = schema_for(resource_type)
        if wrapped:
            schema = pl.Struct({"resource": schema})
        record_id = pl.col("line").str.json_path_match("$.resource.id" if wrapped else "$.id")

        def decode(group: pl.DataFrame) -> pl.DataFrame:
            value = pl.col("line").str.json_decode(schema)
            value = value.struct.field("resource") if wrapped else value
            return group.select(pl.exclude("line", "_at"), value.alias("_r")).unnest("_r")

        if not lines.height:
            return
        size = int(lines["line"].str.len_bytes().sum() or 0)
        step = max(1, lines.height * DECODE_BYTES // max(size, 1))
        try:
            yield pl.concat([decode(lines.slice(i, step)) for i in range(0, lines.height, step)])
            return
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
            pass
        todo = [lines]
        if not wrapped:  # (a Bundle entry that is not JSON is an error, raised below)
            is_json = lines["line"].str.json_path_match("$.resourceType").is_not_null()
            self.reject(lines.filter(~is_json), "line", pl.lit(None), MALFORMED,
                         pl.col("line").str.extract(ID_AFTER_TYPE, 1))
            todo = [lines.filter(is_json)]
        while todo:
            part = todo.pop()
            try:
                yield decode(part)
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
                if part.height == 1:
                    if wrapped:  # a Bundle entry's JSON is checked here, by its decode: is it JSON at all?
                        load_entry(part["line"][0], Path(self.files[part["_fidx"][0]].file), part["_at"][0])
                    self.reject(part, "line", pl.lit(resource_type), MISFIT, record_id)
                else:
                    half = part.height // 2
                    todo += [part.slice(half), part.slice(0, half)]

    # -- per file ---------------------------------------------------------------------------
    def reject(self, frame: pl.DataFrame, column: str, value: pl.Expr, reason: str | pl.Expr,
               record: pl.Expr | None = None) -> None:
        """Rows of any files (``_fidx``) as rejects."""
        if frame.height:
            names = {f.index: f.file for f in self.files}
            file = pl.col("_fidx").replace_strict(names, return_dtype=pl.String)
            self.result.rejects.append(rejects(frame, file, column, value, reason, record))

    def skip(self, frame: pl.DataFrame, reason: str | pl.Expr) -> None:
        """Count rows of any files (``_fidx``) as skipped for ``reason``."""
        if not frame.height:
            return
        label = pl.lit(reason) if isinstance(reason, str) else reason
        for fidx, text, n in frame.group_by("_fidx", label.alias("_why")).len().iter_rows():
            self.result.skip(self.files[fidx].file, text, n)

    # -- per type ---------------------------------------------------------------------------
    def _build(self, frame: pl.DataFrame, resource_type: str) -> None:
        if resource_type == "Patient":
            patients = patient_frame(frame.lazy(), self.as_of, ["_fidx", "_full_url"]).collect()
            self.patients.append(patients.drop("_full_url"))
            self.patient_urls.append(patients.select(
                "_fidx", pl.col("_full_url").alias("_url"), pl.col("patient_id").alias("_id")).drop_nulls())
        elif resource_type == "Medication":
            self._medications(frame)
        elif resource_type == "Consent":
            self._consents(frame)
        else:
            self._events(frame, resource_type)

    def _events(self, frame: pl.DataFrame, resource_type: str) -> None:
        status = status_of(resource_type)
        void = status.is_in(VOID_STATUSES[resource_type]).fill_null(False)
        self.reject(frame.filter(void), "status", status, pl.lit("status ") + status)
        frame = frame.filter(~void)
        if resource_type in CLAIMS:
            other_use = pl.col("use").is_not_null() & (pl.col("use") != "claim")
            self.skip(frame.filter(other_use), pl.lit(f"skipped: {resource_type} use ") + pl.col("use"))
            frame = frame.filter(~other_use)
            rows = claim_frame(frame.lazy(), resource_type, ["_fidx"]).collect()
            coded = rows.select("_fidx", "_row").unique()
            self.skip(frame.join(coded, on=["_fidx", "_row"], how="anti"),
                       f"skipped: {resource_type} with no procedure or diagnosis code")
        else:
            rows = event_frame(frame.lazy(), resource_type, ["_fidx"]).collect()
        self.events.append(rows)

    def _medications(self, frame: pl.DataFrame) -> None:
        coding = pick_coding(concept_codings(pl.col("code")))
        meds = frame.select(
            "_fidx",
            pl.coalesce(pl.col("id"), reference_id(pl.col("_full_url"), "Medication")).alias("_med_id"),
            "_full_url",
            coding.struct.field("system").alias("_med_system"),
            coding.struct.field("code").alias("_med_code"),
        )
        self.medications.append(meds.drop("_fidx", "_full_url").drop_nulls("_med_id"))
        self.medication_urls.append(meds.select(
            "_fidx", pl.col("_full_url").alias("_url"), pl.col("_med_id").alias("_id")).drop_nulls())
        self.skip(frame, SKIP_MEDICATION)

    def _consents(self, frame: pl.DataFrame) -> None:
        status = pl.col("status").fill_null("")
        erroneous = status == "entered-in-error"
        self.reject(frame.filter(erroneous), "status", pl.col("status"), pl.lit("status ") + pl.col("status"))
        label = pl.when(status == "").then(pl.lit("missing")).otherwise(status)
        self.skip(frame.filter(~erroneous & (status != "active")), pl.lit("skipped: Consent status ") + label)
        decided = consent_frame(frame.filter(status == "active").lazy(), ["_fidx"]).collect()
        undecided = pl.col("email_consent").is_null() & pl.col("sms_consent").is_null()
        self.skip(decided.filter(undecided), SKIP_CONSENT)
        self.consents.append(decided.filter(~undecided))
