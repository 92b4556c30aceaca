"""The end of a read: references resolved, Medication codes and Consents applied, parts made.

These steps wait for every file: a Bundle may name its Patient by ``fullUrl`` before
the Patient entry, a MedicationRequest may name a Medication of another file, and a
Consent may sit in ``Consent.ndjson`` beside ``Patient.ndjson``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from segment.ingest.mapping import EVENT_INPUT_COLUMNS, PATIENT_INPUT_COLUMNS
from segment.ingest.readers import RawPart
from segment.ingest.readers.fhir.common import reference_id
from segment.ingest.readers.fhir.consent import latest_consents
from segment.ingest.readers.fhir.resources import FileState, Resources
from segment.ingest.readers.fhir.schemas import DType

NOT_PATIENT = "reference is not to a Patient"
UNKNOWN_PATIENT = "consent for unknown patient"
CONSENT_JOINED = "joined onto its patient (Consent)"
_URLS: dict[str, DType] = {"_fidx": pl.Int64, "_url": pl.String, "_id": pl.String}
_MEDICATIONS: dict[str, DType] = {"_med_id": pl.String, "_med_system": pl.String, "_med_code": pl.String}


def _stack(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    if frames:
        return pl.concat(frames, how="diagonal") if len(frames) > 1 else frames[0]
    return None


def _stack_or_empty(frames: list[pl.DataFrame], schema: Mapping[str, DType]) -> pl.DataFrame:
    stacked = _stack(frames)
    return stacked if stacked is not None else pl.DataFrame(schema=dict(schema))


def _resolve(frame: pl.DataFrame, ref: str, resource_type: str, urls: pl.DataFrame, out: str) -> pl.DataFrame:
    """``out``: the id that column ``ref`` names, through its own file's Bundle ``fullUrl`` first."""
    parsed = reference_id(pl.col(ref), resource_type)
    if not urls.height:
        return frame.with_columns(parsed.alias(out))
    named = frame.join(urls.unique(["_fidx", "_url"], keep="last"), left_on=["_fidx", ref],
                       right_on=["_fidx", "_url"], how="left", maintain_order="left")
    return named.with_columns(pl.coalesce(pl.col("_id"), parsed).alias(out)).drop("_id")


def _events(res: Resources) -> pl.DataFrame | None:
    events = _stack(res.events)
    if events is None:
        return None
    events = _resolve(events, "_ref", "Patient", _stack_or_empty(res.patient_urls, _URLS), "patient_id")
    wrong = pl.col("_ref").is_not_null() & pl.col("patient_id").is_null()
    res.reject(events.filter(wrong).unique(["_fidx", "_row"], keep="first", maintain_order=True),
               "subject", pl.col("_ref"), NOT_PATIENT)
    events = events.filter(~wrong)
    if "_med" not in events.columns:
        return events
    # a medication named by reference takes the code of that Medication resource
    events = _resolve(events, "_med", "Medication", _stack_or_empty(res.medication_urls, _URLS), "_med_id")
    medications = _stack_or_empty(res.medications, _MEDICATIONS).unique("_med_id", keep="last")
    events = events.join(medications, on="_med_id", how="left", maintain_order="left")
    use = pl.col("code").is_null() & pl.col("_med_code").is_not_null()
    return events.with_columns(
        pl.when(use).then(pl.col("_med_system")).otherwise(pl.col("code_system")).alias("code_system"),
        pl.when(use).then(pl.col("_med_code")).otherwise(pl.col("code")).alias("code"),
    )


def _patients(res: Resources) -> pl.DataFrame | None:
    """Patients with the latest email/SMS decision of their Consents; Consents for no patient rejected."""
    patients = _stack(res.patients)
    consents = _stack(res.consents)
    if consents is None:
        return patients
    consents = _resolve(consents, "_ref", "Patient", _stack_or_empty(res.patient_urls, _URLS), "patient_id")
    known = patients["patient_id"].unique() if patients is not None else pl.Series(dtype=pl.String)
    unknown = ~consents["patient_id"].is_in(known.implode()).fill_null(False)
    res.reject(consents.filter(unknown), "patient", pl.col("_ref"), UNKNOWN_PATIENT)
    consents = consents.filter(~unknown)
    res.skip(consents, CONSENT_JOINED)
    if patients is None or not consents.height:
        return patients
    ordered = consents.with_columns(pl.struct("_fidx", "_row").rank("ordinal").alias("_seq"))
    return patients.join(latest_consents(ordered), on="patient_id", how="left", maintain_order="left")


def _part(kind: str, f: FileState, frame: pl.DataFrame, columns: tuple[str, ...]) -> RawPart:
    present = [c for c in columns if c in frame.columns]
    # in input order, whatever the batches and type groups were
    frame = frame.select("_row", "_record", *present).sort("_row", maintain_order=True)
    filled = frozenset(c for c in present if frame[c].null_count() < frame.height)
    # a Claim/ExplanationOfBenefit gives several events from one resource (one line or entry)
    single = frame.height == 0 or frame["_row"].n_unique() == frame.height
    return RawPart(kind, f.file, f.source, frame.lazy(), provided=filled,  # type: ignore[arg-type]
                   one_event_per_row=single)


def _by_file(frame: pl.DataFrame | None) -> dict[int, pl.DataFrame]:
    if frame is None or not frame.height:
        return {}
    return {int(k[0]): v for k, v in frame.partition_by("_fidx", as_dict=True, maintain_order=True).items()}


def finish(res: Resources) -> None:
    """Resolve, join and hand every file its parts (patients, then events), in file order."""
    events = _by_file(_events(res))
    patients = _by_file(_patients(res))
    for f in res.files:
        if f.index in patients:
            res.result.parts.append(_part("patients", f, patients[f.index], PATIENT_INPUT_COLUMNS))
        if f.index in events:
            res.result.parts.append(_part("events", f, events[f.index], EVENT_INPUT_COLUMNS))
