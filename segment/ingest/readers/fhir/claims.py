"""FHIR Claim and ExplanationOfBenefit -> procedure and condition events (several per resource).

- each ``item[]`` whose ``productOrService`` has a coding in CPT, HCPCS, ICD-10-PCS or
  SNOMED CT (the first such coding) is a **procedure**, dated ``item.servicedDate``, else
  ``item.servicedPeriod`` (start/end), else the claim's ``billablePeriod``. An item coded
  only in SNOMED CT that points at a diagnosis (``diagnosisSequence``) and at no procedure
  is the claim restating a diagnosis (Synthea writes each one that way): it is not a
  service and is not read. Items coded otherwise (CVX, RxNorm, NDC, revenue codes) are
  not read either; immunizations and medications come from their own resources.
- each ``diagnosis[].diagnosisCodeableConcept`` is a **condition** dated
  ``billablePeriod.start`` (a ``diagnosisReference`` names a Condition read on its own);
- each ``procedure[].procedureCodeableConcept`` is a **procedure** dated
  ``procedure.date``, else ``billablePeriod.start``.

A claim whose ``use`` is not ``claim`` (a preauthorization or predetermination: nothing
was done) is skipped; so is a claim that yields no event. All rows of one claim share its
``_row`` and ``_record``.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from segment.ingest.readers.fhir.common import canonical, concept_codings, pick_coding
from segment.ingest.readers.fhir.events import subject

SERVICE_SYSTEMS = ("CPT", "HCPCS", "ICD10PCS", "SNOMED")


def claim_frame(frame: pl.LazyFrame, resource_type: str, keep: Sequence[str] = ()) -> pl.LazyFrame:
    """``_row``, ``_record``, the ``keep`` columns, ``_ref`` and raw event columns, one row per coded item,
    diagnosis or procedure."""
    base = frame.select(
        "_row", "_record", *keep, subject(resource_type).alias("_ref"),
        pl.col("billablePeriod").struct.field("start").alias("_bill_start"),
        pl.col("billablePeriod").struct.field("end").alias("_bill_end"),
        "item", "diagnosis", "procedure",
    )
    ids = ["_row", "_record", *keep, "_ref"]
    keys = [*ids, "_bill_start", "_bill_end"]

    item = pl.col("item")
    coding = pick_coding(concept_codings(item.struct.field("productOrService")), SERVICE_SYSTEMS, fallback=False)
    served = item.struct.field("servicedPeriod")
    has_own_date = item.struct.field("servicedDate").is_not_null() | served.struct.field("start").is_not_null()
    restates_diagnosis = (
        (canonical(coding.struct.field("system")) == "SNOMED")
        & (item.struct.field("diagnosisSequence").list.len().fill_null(0) > 0)
        & (item.struct.field("procedureSequence").list.len().fill_null(0) == 0)
    )
    items = _events(
        base, keys, ids, "item", coding, coding.is_not_null() & ~restates_diagnosis, "procedure",
        pl.coalesce(item.struct.field("servicedDate"), served.struct.field("start"), "_bill_start"),
        pl.when(has_own_date).then(served.struct.field("end")).otherwise("_bill_end"),
    )
    diagnosis = pick_coding(concept_codings(pl.col("diagnosis").struct.field("diagnosisCodeableConcept")))
    diagnoses = _events(base, keys, ids, "diagnosis", diagnosis, diagnosis.is_not_null(), "condition",
                        pl.col("_bill_start"))
    proc = pl.col("procedure")
    proc_coding = pick_coding(concept_codings(proc.struct.field("procedureCodeableConcept")))
    procedures = _events(base, keys, ids, "procedure", proc_coding, proc_coding.is_not_null(), "procedure",
                         pl.coalesce(proc.struct.field("date"), "_bill_start"))
    return pl.concat([items, diagnoses, procedures], how="vertical").sort([*keep, "_row"], maintain_order=True)


def _events(
    base: pl.LazyFrame, keys: Sequence[str], ids: Sequence[str], column: str, coding: pl.Expr, wanted: pl.Expr,
    event_type: str, date: pl.Expr, end: pl.Expr | None = None,
) -> pl.LazyFrame:
    """One event per entry of the list column ``column`` that is ``wanted``, coded by ``coding``."""
    return (
        base.select(*keys, column).explode(column, empty_as_null=True)
        .filter(wanted)
        .select(
            *ids,
            pl.lit(event_type).alias("event_type"),
            coding.struct.field("system").alias("code_system"),
            coding.struct.field("code").alias("code"),
            date.alias("event_date"),
            (end if end is not None else pl.lit(None, dtype=pl.String)).alias("event_end"),
        )
    )
