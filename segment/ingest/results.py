"""What an ingest did: per-file reconciliation, the result, ``ingest-report.json``.

Every input row ends in ``patients.parquet``/``events.parquet``, in ``rejects.csv``, or in
a named skip count; :class:`FileCounts` reconciles rows read = kept + rejected + skipped
for each file, and :func:`report` writes it all into ``ingest-report.json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment.ingest.mapping import EVENT_INPUT_COLUMNS, PATIENT_INPUT_COLUMNS
from segment.ingest.readers import RawPart
from segment.schema import PATIENT_SCHEMA

#: default ceiling on the share of event rows that point at no patient
MAX_ORPHAN_FRACTION = 0.01


@dataclass(frozen=True)
class FileCounts:
    """Reconciliation for one input file: read = kept + rejected + skipped."""

    file: str
    source: str
    kind: str
    rows_read: int
    rows_kept: int
    rows_rejected: int
    field_problems: int
    rows_skipped: int = 0
    orphans: int = 0  # event rows whose patient id matches no patient record of their source
    orphans_elsewhere: int = 0  # ... of which the id is a patient of another source


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` did, for the reporter and for callers."""

    workdir: Path
    files: list[FileCounts]
    patient_records: int
    patients: int
    events_kept: int
    events_written: int
    events_rejected: int
    reject_lines: int
    problems: dict[str, int] = field(default_factory=dict)
    #: canonical patient and event columns, each with the sources that provided it
    columns: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    orphan_events: int = 0
    event_rows: int = 0

    @property
    def reconciled(self) -> bool:
        """Every file's rows read = rows kept + rows rejected + rows skipped."""
        return all(f.rows_read == f.rows_kept + f.rows_rejected + f.rows_skipped for f in self.files)

    @property
    def absent_columns(self) -> list[str]:
        """Canonical patient columns that no source provided."""
        provided = set(self.columns.get("patients", {}))
        if "phone_e164" in provided:
            provided.add("phone_type")  # the phone library tells mobile from landline
        return [c for c in PATIENT_SCHEMA if c not in provided and c not in ("patient_id", "source_ids")]

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per input file, for a table."""
        return [
            {"file": Path(f.file).name, "source": f.source, "kind": f.kind, "read": f.rows_read,
             "kept": f.rows_kept, "rejected": f.rows_rejected, "skipped": f.rows_skipped,
             "field problems": f.field_problems}
            for f in self.files
        ]

    def summary(self) -> dict[str, Any]:
        """Headline counts."""
        return {
            "patient records kept": self.patient_records,
            "patients after de-duplication": self.patients,
            "events written": self.events_written,
            "events rejected": self.events_rejected,
            "events with no patient": self.orphan_events,
            "rows skipped (named)": sum(f.rows_skipped for f in self.files),
            "rejects.csv lines": self.reject_lines,
            "reconciled": "yes" if self.reconciled else "NO",
            "output": str(self.workdir),
        }



def provided_columns(parts: Sequence[RawPart]) -> dict[str, dict[str, list[str]]]:
    """Per kind, each canonical column some part provides, with the sources providing it."""
    canonical = {"patients": PATIENT_INPUT_COLUMNS, "events": EVENT_INPUT_COLUMNS}
    found: dict[str, dict[str, set[str]]] = {"patients": {}, "events": {}}
    for p in parts:
        have = p.provided if p.provided is not None else set(p.frame.collect_schema().names())
        for c in canonical[p.kind]:
            if c in have:
                found[p.kind].setdefault(c, set()).add(p.source)
    return {
        kind: {c: sorted(found[kind][c]) for c in canonical[kind] if c in found[kind]}
        for kind in canonical
    }


def orphan_failure(result: IngestResult, ceiling: float) -> str | None:
    """The error message when too many event rows point at no patient, else None."""
    if not result.event_rows or result.orphan_events <= ceiling * result.event_rows:
        return None
    worst = max((f for f in result.files if f.kind == "events"), key=lambda f: f.orphans)
    share = result.orphan_events / result.event_rows
    elsewhere = sum(f.orphans_elsewhere for f in result.files)
    patient_sources = sorted({f.source for f in result.files if f.kind == "patients"})
    if elsewhere * 2 >= result.orphan_events:
        cause = (
            f"{elsewhere:,} of them are patient ids of another source, so {Path(worst.file).name} was read as "
            f"source `{worst.source}` and its patients as {', '.join(f'`{s}`' for s in patient_sources)}: "
            "give both the same name with --source NAME (or `source:` in a mapping, `name:` in a campaign's sources)"
        )
    else:
        cause = (
            "no patient record has these ids: the patients file of these events is missing from the inputs, "
            "or writes its ids differently (a prefix, leading zeros)"
        )
    return (
        f"{result.orphan_events:,} of {result.event_rows:,} event rows ({share:.1%}) point at no patient, "
        f"{worst.orphans:,} of them in {Path(worst.file).name}; likely cause: {cause}. "
        f"Nothing was written but rejects.csv and ingest-report.json; pass --allow-orphan-events "
        f"to keep going with them rejected (ceiling {ceiling:.1%})"
    )



def patient_counts(per_file: pl.DataFrame, rejects: pl.DataFrame, parts: list[RawPart]) -> list[FileCounts]:
    """Each patients file's rows read, kept, rejected and field problems (``per_file``: ``_file``,
    ``read``, ``rejected``, from :class:`segment.ingest.patientbatches.NormalizedRecords`)."""
    fields = rejects.filter(pl.col("level") == "field").group_by("file").len()
    read = {r["_file"]: (r["read"], r["rejected"]) for r in per_file.iter_rows(named=True)}
    field_n = dict(fields.iter_rows())
    out = []
    for p in parts:
        n, rej = read.get(p.file, (0, 0))
        out.append(FileCounts(p.file, p.source, "patients", n, n - rej, rej, field_n.get(p.file, 0)))
    return out


def add_reader_rows(
    counts: list[FileCounts], rejects: pl.DataFrame, skipped: dict[str, dict[str, int]], parts: list[RawPart]
) -> list[FileCounts]:
    """Rows a reader rejected before normalization (unreadable lines) or skipped by name count as read."""
    extra = dict(rejects.filter(pl.col("level") == "row").group_by("file").len().iter_rows()) if rejects.height else {}
    skips = {file: sum(reasons.values()) for file, reasons in skipped.items()}
    done: set[str] = set()
    out = []
    for c in counts:
        if c.file not in done and (c.file in extra or c.file in skips):
            n, k = extra.get(c.file, 0), skips.get(c.file, 0)
            c = FileCounts(c.file, c.source, c.kind, c.rows_read + n + k, c.rows_kept, c.rows_rejected + n,
                           c.field_problems, c.rows_skipped + k, c.orphans, c.orphans_elsewhere)
            done.add(c.file)
        out.append(c)
    sources = {p.file: p.source for p in parts}
    for file in sorted((set(extra) | set(skips)) - done):
        n, k = extra.get(file, 0), skips.get(file, 0)
        out.append(FileCounts(file, sources.get(file, ""), "other", n + k, 0, n, 0, k))
    return out


def _sum_reasons(skipped: dict[str, dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for reasons in skipped.values():
        for reason, n in reasons.items():
            total[reason] = total.get(reason, 0) + n
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


def report(
    result: IngestResult, rejects: pl.DataFrame, skipped: dict[str, dict[str, int]], failure: str | None,
    ceiling: float,
) -> dict[str, Any]:
    """The content of ``ingest-report.json`` (counts and reasons only, never values)."""
    by_file_reason: dict[str, dict[str, int]] = {}
    for file, reason, n in rejects.group_by(["file", "reason"]).len().sort(["file", "reason"]).iter_rows():
        by_file_reason.setdefault(file, {})[reason] = n
    return {
        "version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "outcome": "failed" if failure else "ok",
        "failure": failure,
        "reconciled": result.reconciled,
        "files": [
            {**f.__dict__, "problems_by_reason": by_file_reason.get(f.file, {}),
             "skipped_by_reason": skipped.get(f.file, {})}
            for f in result.files
        ],
        "problems_by_reason": result.problems,
        "patients": {
            "records_kept": result.patient_records,
            "before_deduplication": result.patient_records,
            "after_deduplication": result.patients,
            "records_merged_away": result.patient_records - result.patients,
        },
        "events": {
            "kept": result.events_kept,
            "rejected": result.events_rejected,
            "exact_duplicates_collapsed": result.events_kept - result.events_written,
            "written": result.events_written,
            "rows_read": result.event_rows,
            "orphans": result.orphan_events,
            "orphan_ceiling": ceiling,
        },
        "skipped_by_reason": _sum_reasons(skipped),
        # which canonical columns the sources provided: a rule over an absent column is unknown
        "columns": {**result.columns, "absent": result.absent_columns},
        "rejects_csv_lines": result.reject_lines,
    }
