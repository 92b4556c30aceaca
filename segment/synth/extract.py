"""Writing a messy extract in the canonical layout, in chunks, at any size."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from segment.errors import ConfigError
from segment.log import get_logger, progress
from segment.synth.events import CODE_TABLE_SYSTEMS, draw_events, render_events
from segment.synth.people import (
    PATIENT_COLUMNS,
    SOURCE_PREFIX,
    SOURCES,
    draw_people,
    render_patients,
)
from segment.synth.world import DemoGeography, build_geography
from segment.workdir import atomic_open, ensure_private_dir

#: the fixed reference date ("today" of the synthetic world), so output is reproducible
DEFAULT_REF_DATE = dt.date(2026, 1, 1)
#: people generated per chunk: bounds memory whatever the extract size
CHUNK_PEOPLE = 100_000
MAX_SOURCES = len(SOURCES)
#: sources that carry an events file
_WITH_EVENTS = {"ehr", "claims"}
_CLAIMS_SYSTEMS = ("CPT", "HCPCS", "ICD10CM")

log = get_logger("synth")


class ExtractFiles(list[Path]):
    """The files written (a list of paths), with the data rows each one holds."""

    def __init__(self, paths: list[Path], rows: dict[Path, int], people: int) -> None:
        super().__init__(paths)
        #: data rows (header excluded) per file
        self.rows = rows
        #: distinct true people generated
        self.people = people


def patients_file(source: str) -> str:
    """``<source>-patients.csv``."""
    return f"{source}-patients.csv"


def events_file(source: str) -> str:
    """``<source>-events.csv``."""
    return f"{source}-events.csv"


def write_extract(
    out: Path,
    patients: int,
    seed: int = 0,
    sources: int = 2,
    world: DemoGeography | None = None,
    *,
    ref_date: dt.date = DEFAULT_REF_DATE,
    truth: Path | None = None,
    ssn: bool = False,
) -> ExtractFiles:
    """Write a messy extract for ``patients`` distinct people into ``out``.

    One patients file per source system (``ehr``, ``crm``, ``claims``) and events
    files for the EHR (and claims). Addresses lie on the streets of ``world`` (or of
    a demo geography generated for the purpose). Same arguments, same bytes.

    ``truth`` (a CSV path, outside ``out`` so ingest never reads it) receives the ground
    truth of who is who: ``source``, ``patient_id`` (the record id), ``person`` (the true
    person), ``twin_of`` and ``namesake_of`` (the person a twin, or a stranger with the
    same name, sex and birth date, was drawn beside; -1 for everyone else).

    ``ssn``: the patients files also carry ``ssn_last4`` (see :func:`ssn_last4`); without
    it the files are byte for byte what they were before the column existed.
    """
    if patients < 1:
        raise ConfigError(f"patients must be at least 1, found {patients}", key="patients")
    if not 1 <= sources <= MAX_SOURCES:
        raise ConfigError(
            f"sources must be between 1 and {MAX_SOURCES} ({', '.join(SOURCES)}), found {sources}",
            key="sources",
        )
    out = ensure_private_dir(out)
    geo = world if world is not None else build_geography(patients, seed)
    names = SOURCES[:sources]
    width = max(7, len(str(patients)))
    targets: dict[str, Path] = {}
    for s in names:
        targets[f"{s}:patients"] = out / patients_file(s)
        if s in _WITH_EVENTS:
            targets[f"{s}:events"] = out / events_file(s)
    rows = dict.fromkeys(targets, 0)
    next_id = dict.fromkeys(names, 0)
    truth_parts: list[pl.DataFrame] = []
    with contextlib.ExitStack() as stack, progress("synth: writing extract", total=patients) as advance:
        handles: dict[str, IO[Any]] = {
            key: stack.enter_context(atomic_open(path, "wb")) for key, path in targets.items()
        }
        for chunk, start in enumerate(range(0, patients, CHUNK_PEOPLE)):
            n = min(CHUNK_PEOPLE, patients - start)
            rng = np.random.default_rng([seed, 1, chunk])
            people = draw_people(rng, n, start, geo, ref_date, sources)
            events = draw_events(people, rng)
            for s in names:
                member = people[f"in_{s}"].to_numpy()
                k = int(member.sum())
                number = next_id[s] + 1 + rng.permutation(k)
                next_id[s] += k
                digits = pl.Series("ids", number).cast(pl.String).str.zfill(width)
                id_series = pl.select(pl.lit(SOURCE_PREFIX[s]) + digits).to_series().alias("ids")
                members = people.filter(pl.Series(member))
                frame = render_patients(members, s, id_series, rng, ref_date)
                if ssn:
                    frame = ssn_last4(frame, members, id_series, s, seed)
                if truth is not None:
                    truth_parts.append(members.select(
                        pl.lit(s).alias("source"), id_series.alias("patient_id"), "person", "twin_of",
                        "namesake_of",
                    ))
                _append(handles[f"{s}:patients"], frame, header=chunk == 0)
                rows[f"{s}:patients"] += frame.height
                if s not in _WITH_EVENTS:
                    continue
                id_of_row = pl.Series("ids", [None] * n, dtype=pl.String).scatter(
                    np.flatnonzero(member), id_series
                )
                ev = events.filter(pl.Series(member)[events["row"]])
                if s == "claims":
                    # claims carry billing codes only, and not every service is billed
                    ev = _claims_subset(ev, rng)
                ev_frame = render_events(
                    ev, id_of_row, rng, us_dates=1.0 if s == "claims" else 0.05
                )
                _append(handles[f"{s}:events"], ev_frame, header=chunk == 0)
                rows[f"{s}:events"] += ev_frame.height
            advance(n)
            log.debug("chunk written", chunk=chunk, people=n, events=events.height)
    if truth is not None:
        with atomic_open(truth, "wb") as handle:
            pl.concat(truth_parts).write_csv(handle)
    paths = list(targets.values())
    counts = {targets[k]: v for k, v in rows.items()}
    log.info(
        "extract written",
        files=len(paths),
        people=patients,
        patient_rows=sum(v for k, v in rows.items() if k.endswith(":patients")),
        event_rows=sum(v for k, v in rows.items() if k.endswith(":events")),
    )
    return ExtractFiles(paths, counts, patients)


#: share of a source's records that carry an SSN, and of those the share with two digits swapped
SSN_SHARE = {"ehr": 0.75, "crm": 0.5, "claims": 0.95}
SSN_SWAP_SHARE = 0.005


def ssn_last4(frame: pl.DataFrame, members: pl.DataFrame, ids: pl.Series, source: str, seed: int) -> pl.DataFrame:
    """Add ``ssn_last4`` to a source's rendered patients.

    Each person's four digits come from a hash of the person (no draw from the extract's
    random streams, so every other column is unchanged); a twin's are the sibling's plus
    one (SSNs assigned at birth together run in sequence). A source holds them for
    :data:`SSN_SHARE` of its records (the same records on every run), a few with two
    adjacent digits swapped; rows without a record id get none.
    """
    person = members.select(
        pl.when(pl.col("twin_of") >= 0).then(pl.col("twin_of")).otherwise(pl.col("person")).alias("_base"),
        (pl.col("twin_of") >= 0).cast(pl.Int64).alias("_step"), ids.alias("patient_id"),
    )
    number = ((pl.col("_base").hash(seed) % 10_000).cast(pl.Int64) + pl.col("_step")) % 10_000
    digits = number.cast(pl.String).str.zfill(4)
    roll = (pl.col("patient_id").hash(seed + 1) % 10_000).cast(pl.Float64) / 10_000
    swapped = pl.concat_str([digits.str.slice(0, 1), digits.str.slice(2, 1), digits.str.slice(1, 1),
                             digits.str.slice(3, 1)])
    table = person.select(
        "patient_id",
        pl.when(roll >= SSN_SHARE[source]).then(None)
        .when(roll < SSN_SHARE[source] * SSN_SWAP_SHARE).then(swapped)
        .otherwise(digits).alias("ssn_last4"),
    )
    return frame.join(table, on="patient_id", how="left", maintain_order="left")


def _claims_subset(events: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    billable = np.isin(np.asarray(CODE_TABLE_SYSTEMS), _CLAIMS_SYSTEMS)[events["code"].to_numpy()]
    keep = billable & (rng.random(events.height) < 0.7)
    return events.filter(pl.Series(keep))


def _append(handle: IO[Any], frame: pl.DataFrame, *, header: bool) -> None:
    """Append rows; a blank field is written empty (not as a quoted empty string)."""
    blank_to_null = pl.when(pl.col(pl.String) != "").then(pl.col(pl.String))
    frame.with_columns(blank_to_null).write_csv(handle, include_header=header)


__all__ = ["DEFAULT_REF_DATE", "PATIENT_COLUMNS", "ExtractFiles", "write_extract"]
