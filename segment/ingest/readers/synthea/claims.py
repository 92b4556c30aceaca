"""claims.csv and claims_transactions.csv (Synthea 3.x): billing copies of the clinical rows.

A claim (``claims.csv``) carries up to eight diagnoses (DIAGNOSIS1..8, SNOMED CT) for one
encounter (APPOINTMENTID); its lines (``claims_transactions.csv``) carry one code each
(PROCEDURECODE) with TYPE ``CHARGE``, ``PAYMENT``, ``TRANSFERIN`` or ``TRANSFEROUT``.
Synthea builds both from the clinical tables, so each code is matched back, exactly, to
a clinical row of the same encounter, and only what matches nothing becomes an event:

- a claim diagnosis equal to a code of its encounter -- a conditions.csv row with that
  ENCOUNTER and CODE, the encounter's own CODE or REASONCODE, or an allergies.csv row of
  the encounter (allergies are otherwise not read) -- repeats what is already read; a
  claim whose diagnoses all do is skipped (:data:`CLAIM_REPEAT`). Any other diagnosis is
  a ``condition`` event, SNOMED CT, dated SERVICEDATE (several per claim row).
- a CHARGE line equal to its encounter's CODE or to a procedures, immunizations or
  medications row with that ENCOUNTER and CODE repeats that row (:data:`LINE_REPEAT`).
  A CHARGE line matching nothing is skipped too (:data:`LINE_UNMATCHED`): its code may
  be SNOMED CT, CVX or RxNorm and the line does not say which. Payments and transfers
  are billing, not services (:data:`LINE_BILLING`).

On the four 3.x samples with claims (dbt-synthea, jijones12, krvenkat12, sarabuzzi: 561
to 9,120 claims; the first two with claims_transactions.csv) every diagnosis and every
CHARGE line matched a clinical row: no double counting, and no event comes from claims. Emitting the matched codes instead would
not be collapsed as exact duplicates: a procedure's START is not its encounter's
SERVICEDATE, and an ongoing condition is restated on every later claim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from segment.ingest.readers import RawPart, ReadResult
from segment.ingest.readers.synthea.table import Table

CLAIM_REPEAT = ("skipped: claim diagnoses repeat codes of their encounter already read "
                "(conditions, encounter code or reason, allergies)")
CLAIM_EMPTY = "skipped: claim with no diagnosis"
LINE_BILLING = "skipped: claim payment or transfer line (billing, no service)"
LINE_REPEAT = ("skipped: claim charge repeats a row already read (same encounter and code in "
               "encounters, procedures, immunizations or medications)")
LINE_UNMATCHED = "skipped: claim charge with no clinical row (its code system is unknown)"

#: file -> (encounter column, code columns) whose pairs a claim diagnosis may repeat
_DIAGNOSIS_SOURCES = {
    "conditions.csv": ("ENCOUNTER", ("CODE",)),
    "encounters.csv": ("ID", ("CODE", "REASONCODE")),
    "allergies.csv": ("ENCOUNTER", ("CODE",)),
}
#: file -> (encounter column, code columns) whose pairs a CHARGE line may repeat
_CHARGE_SOURCES = {
    "encounters.csv": ("ID", ("CODE",)),
    "procedures.csv": ("ENCOUNTER", ("CODE",)),
    "immunizations.csv": ("ENCOUNTER", ("CODE",)),
    "medications.csv": ("ENCOUNTER", ("CODE",)),
}


def _known_pairs(
    tables: Mapping[str, Table], sources: Mapping[str, tuple[str, tuple[str, ...]]]
) -> pl.LazyFrame | None:
    """Distinct (encounter, code) pairs of the clinical rows, ``_known`` = True."""
    frames = []
    for file, (encounter, codes) in sources.items():
        table = tables.get(file)
        if table is None or not table.has(encounter):
            continue
        frames += [
            table.frame.select(pl.col(encounter).alias("_enc"), pl.col(code).alias("_code"))
            for code in codes if table.has(code)
        ]
    if not frames:
        return None
    return pl.concat(frames).drop_nulls().unique().with_columns(pl.lit(True).alias("_known"))


def _flag(frame: pl.LazyFrame, encounter: str | None, known: pl.LazyFrame | None) -> pl.LazyFrame:
    if encounter is None or known is None:
        return frame.with_columns(pl.lit(None, dtype=pl.Boolean).alias("_known"))
    return frame.join(known, left_on=[encounter, "_code"], right_on=["_enc", "_code"], how="left")


def read_claims(tables: Mapping[str, Table], source: str, result: ReadResult) -> None:
    """Add what the claims of ``tables`` carry beyond the clinical rows (usually nothing)."""
    claims = tables.get("claims.csv")
    if claims is not None:
        _diagnoses(claims, tables, source, result)
    lines = tables.get("claims_transactions.csv")
    if lines is not None:
        _charges(lines, claims, tables, result)


def _diagnoses(claims: Table, tables: Mapping[str, Table], source: str, result: ReadResult) -> None:
    claims.require("PATIENTID", ("SERVICEDATE", "CURRENTILLNESSDATE"))
    date = claims.first("SERVICEDATE", "CURRENTILLNESSDATE")
    encounter = claims.first("APPOINTMENTID")
    slots = [c for c in claims.columns if re.fullmatch(r"DIAGNOSIS\d+", c)]
    record = pl.col("ID") if claims.has("ID") else pl.lit(None, dtype=pl.String)
    base = claims.frame.select(
        "_row", record.alias("_record"), pl.col("PATIENTID").alias("patient_id"),
        pl.col(str(date)).alias("event_date"), *([encounter] if encounter else []), *slots,
    )
    index = ["_row", "_record", "patient_id", "event_date", *([encounter] if encounter else [])]
    dx = base.unpivot(index=index, on=slots, value_name="_code").filter(
        pl.col("_code").str.strip_chars().str.len_chars() > 0
    )
    flagged = _flag(dx, encounter, _known_pairs(tables, _DIAGNOSIS_SOURCES))
    new, with_dx, total = pl.collect_all([
        flagged.filter(pl.col("_known").is_null()).unique(["_row", "_code"], maintain_order=True),
        flagged.select(pl.col("_row").n_unique()),
        claims.frame.select(pl.len()),
    ])
    result.skip(claims.file, CLAIM_EMPTY, int(total.item()) - int(with_dx.item()))
    result.skip(claims.file, CLAIM_REPEAT, int(with_dx.item()) - new["_row"].n_unique())
    if new.height:
        frame = new.lazy().select(
            "_row", "_record", "patient_id", pl.lit("condition").alias("event_type"),
            pl.lit("SNOMED").alias("code_system"), pl.col("_code").alias("code"), "event_date",
        )
        result.parts.append(RawPart("events", claims.file, source, frame, one_event_per_row=False))


def _charges(lines: Table, claims: Table | None, tables: Mapping[str, Table], result: ReadResult) -> None:
    lines.require("TYPE", "PROCEDURECODE")
    frame = lines.frame.select(
        pl.col("TYPE").str.strip_chars().str.to_uppercase().fill_null("").alias("_type"),
        pl.col("PROCEDURECODE").alias("_code"),
        *([pl.col("APPOINTMENTID").alias("_appt")] if lines.has("APPOINTMENTID") else []),
        *([pl.col("CLAIMID")] if lines.has("CLAIMID") else []),
    )
    encounter: str | None = "_appt" if lines.has("APPOINTMENTID") else None
    if encounter is None and claims is not None and lines.has("CLAIMID") and claims.has("APPOINTMENTID"):
        by_claim = claims.frame.select(pl.col("ID").alias("CLAIMID"), pl.col("APPOINTMENTID").alias("_appt"))
        frame, encounter = frame.join(by_claim, on="CLAIMID", how="left"), "_appt"
    flagged = _flag(frame, encounter, _known_pairs(tables, _CHARGE_SOURCES))
    kind = (
        pl.when(pl.col("_type") != "CHARGE").then(pl.lit(LINE_BILLING))
        .when(pl.col("_known")).then(pl.lit(LINE_REPEAT))
        .otherwise(pl.lit(LINE_UNMATCHED))
    )
    counts = flagged.select(kind.alias("reason")).group_by("reason").len().collect()
    for reason, n in counts.iter_rows():
        result.skip(lines.file, reason, n)
