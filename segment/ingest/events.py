"""Events: normalize, reject, de-duplicate and write tens of millions of rows.

An events extract is long (20 events per patient) but repetitive: a million-patient
extract has 20M rows but only ~9k distinct date texts, ~100 distinct values and ~100
distinct (type, system, code) triples. So:

1. the raw rows are read once, the patient id and the repetitive columns as Categorical
   (a 4-byte id per row instead of a string);
2. every normalizer runs once per *distinct* raw text (:func:`segment.ingest.frames.by_distinct`),
   giving small lookup tables with the normalized value, an integer id of the normalized
   value and the problem, if any; the patient id is looked up in the id map of the merged
   patients (source, source id) -> row of ``patients.parquet``;
3. the rows join those tables (integer-keyed after the first match), rows with a problem
   go to the rejects with the same reason as before, and the kept rows are de-duplicated
   on integer ids (patient, code triple, unit, date, value) — the normalized strings are
   in one-to-one correspondence with those ids, so this is exactly the de-duplication of
   the written rows;
4. the unique rows get their strings back by joins on integer ids and stream to Parquet,
   sorted by patient (the row order of ``patients.parquet``), code, unit, value and date.

Reasons, in order (the first that applies): missing patient id, unknown patient, missing
or unknown event type, missing or unknown code system, missing code, missing event date,
an unparseable or impossible date, a date in the future.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segment.ingest import normalize as nz
from segment.ingest.codesystems import normalize_system
from segment.ingest.context import normalize_encounter_class
from segment.ingest.frames import (
    collect_all,
    date_builder,
    date_keys,
    distinct_table,
    with_all_columns,
)
from segment.ingest.mapping import EVENT_INPUT_COLUMNS
from segment.ingest.readers import REJECT_SCHEMA, RawPart
from segment.log import get_logger, peak_rss_gib
from segment.schema import EVENT_SCHEMA, CodeSystem, EventType

log = get_logger("ingest")


def _peak_gib() -> float:
    return round(peak_rss_gib(), 2)

EVENT_TYPES: dict[str, str] = {
    **{e.value: e.value for e in EventType},
    **dict.fromkeys(["dx", "diagnosis", "problem", "conditions"], "condition"),
    **dict.fromkeys(["px", "proc", "procedures", "surgery"], "procedure"),
    **dict.fromkeys(["imm", "vaccine", "vaccination", "immunizations", "shot"], "immunization"),
    **dict.fromkeys(["obs", "lab", "result", "observations", "vital"], "observation"),
    **dict.fromkeys(["enc", "visit", "encounters"], "encounter"),
    **dict.fromkeys(["med", "rx", "medications", "prescription"], "medication"),
}
#: columns read as Categorical: few distinct values, each normalized once
LOOKED_UP = (
    "event_type", "code_system", "code", "event_date", "value", "unit",
    "event_end", "value_code", "encounter_class", "discharge_disposition",
)
CODE_KEYS = ["event_type", "code_system", "code"]
#: the event's span and context, looked up together (one id per distinct combination)
CONTEXT_KEYS = ["event_end", "value_code", "encounter_class", "discharge_disposition"]
#: code systems whose codes are compared in upper case
_UPPER_SYSTEMS = [CodeSystem.ICD10CM.value, CodeSystem.ICD10PCS.value, CodeSystem.HCPCS.value, CodeSystem.CPT.value]


@dataclass(frozen=True)
class EventsWritten:
    """What :func:`write_events` did."""

    counts: pl.DataFrame  # _file, rows_read, rows_rejected, field_problems (one row per file with rows)
    rejects: pl.DataFrame  # REJECT_SCHEMA
    kept: int
    written: int


def raw_events(parts: Sequence[RawPart], order: dict[str, int]) -> pl.LazyFrame:
    """All event parts stacked: ``_row``, raw text columns, ``_part``, ``_order`` (source rank).

    Each text column is Categorical with a mapping of its own, so a row's physical id is
    the index of its text among that column's distinct texts (see :func:`_lookup`).
    ``_record`` (the source's record id, for rejects) is carried when a reader gives one.
    """
    categories = {c: pl.Categorical(pl.Categories.random()) for c in ("patient_id", *LOOKED_UP)}
    with_record = [("_record" in p.frame.collect_schema()) for p in parts]
    frames = []
    for i, p in enumerate(parts):
        record = pl.col("_record").cast(pl.String) if with_record[i] else pl.lit(None, dtype=pl.String)
        frame = with_all_columns(p.frame.with_columns(record.alias("_record")), [*EVENT_INPUT_COLUMNS, "_record"])
        frames.append(frame.select(
            pl.col("_row").cast(pl.Int64),
            *[pl.col(c).cast(categories[c]) for c in ("patient_id", *LOOKED_UP)],
            *([pl.col("_record")] if any(with_record) else []),
            pl.lit(i, dtype=pl.Int32).alias("_part"),
            pl.lit(order[p.source], dtype=pl.Int32).alias("_order"),
        ))
    return pl.concat(frames, how="vertical")


def _code_table(raw: pl.LazyFrame) -> pl.DataFrame:
    """Distinct raw (type, system, code) -> normalized triple, its id ``_cid`` and problem."""
    etype = nz.blank_to_null(pl.col("event_type")).str.to_lowercase()
    system = nz.blank_to_null(pl.col("code_system")).str.to_uppercase()
    code = nz.blank_to_null(pl.col("code"))
    etype_v = etype.replace_strict(EVENT_TYPES, default=None, return_dtype=pl.String)
    system_v = normalize_system(system)
    code_v = pl.when(system_v.is_in(_UPPER_SYSTEMS)).then(code.str.to_uppercase()).otherwise(code)
    problem = (
        pl.when(etype.is_null()).then(pl.lit("event_type|missing event type"))
        .when(etype_v.is_null()).then(pl.lit("event_type|unknown event type"))
        .when(system.is_null()).then(pl.lit("code_system|missing code system"))
        .when(system_v.is_null()).then(pl.lit("code_system|unknown code system"))
        .when(code_v.is_null()).then(pl.lit("code|missing code"))
        .otherwise(None)
    )
    table = distinct_table(
        raw, CODE_KEYS,
        {"_etype": etype_v, "_system": system_v, "_code": code_v, "_cproblem": problem},
    ).collect()
    ids = (
        table.filter(pl.col("_cproblem").is_null()).select("_etype", "_system", "_code").unique()
        .sort(["_etype", "_system", "_code"]).with_row_index("_cid")
    )
    return table.join(ids, on=["_etype", "_system", "_code"], how="left")


def _date_table(raw: pl.LazyFrame, parts: Sequence[RawPart], today: dt.date) -> pl.DataFrame:
    """Distinct raw event dates (per part when a mapping gives a format) -> date and problem."""
    problem = (
        pl.when(nz.blank_to_null(pl.col("event_date")).is_null()).then(pl.lit("event_date|missing event date"))
        .when(pl.col("_parse_problem").is_not_null()).then(pl.lit("event_date|") + pl.col("_parse_problem"))
        .when(pl.col("_date") > pl.lit(today)).then(pl.lit("event_date|event date in the future"))
        .otherwise(None)
    )
    keys = date_keys("event_date", parts)
    return distinct_table(raw, keys, [
        date_builder("event_date", parts, today, "_date", "_parse_problem"),
        {"_date": pl.col("_date"), "_dproblem": problem},
    ]).collect()


def _context_table(raw: pl.LazyFrame, parts: Sequence[RawPart], today: dt.date) -> pl.DataFrame:
    """Distinct raw (end date, value code, class, disposition) -> normalized values and ``_xid``.

    An unreadable end date is a field problem (the end is blanked, the event kept).
    """
    keys = [*CONTEXT_KEYS, *(["_part"] if "_part" in date_keys("event_end", parts) else [])]
    table = distinct_table(raw, keys, [
        date_builder("event_end", parts, today, "_end", "_end_problem"),
        {
            "_end": pl.col("_end"),
            "_eproblem": pl.when(pl.col("_end_problem").is_not_null()).then(pl.lit("end date: ") + pl.col("_end_problem")),
            "_vcode": nz.blank_to_null(pl.col("value_code")),
            "_eclass": normalize_encounter_class(pl.col("encounter_class")),
            "_disp": nz.blank_to_null(pl.col("discharge_disposition")),
        },
    ]).collect()
    normalized = ["_end", "_vcode", "_eclass", "_disp"]
    ids = table.select(normalized).unique().sort(normalized, nulls_last=True).with_row_index("_xid")
    return table.join(ids, on=normalized, how="left", nulls_equal=True)


def _value_table(raw: pl.LazyFrame) -> pl.DataFrame:
    """Distinct raw values -> float, its id ``_vid`` (null included) and the field problem."""
    value = nz.normalize_float(pl.col("value"))
    table = distinct_table(raw, ["value"], {"_value": value.value, "_vproblem": value.problem}).collect()
    ids = table.select("_value").unique().sort("_value", nulls_last=True).with_row_index("_vid")
    return table.join(ids, on="_value", how="left", nulls_equal=True)


def _unit_table(raw: pl.LazyFrame) -> pl.DataFrame:
    """Distinct raw units -> unit and its id ``_uid`` (one id per normalized unit, null included)."""
    table = distinct_table(raw, ["unit"], {"_unit": nz.blank_to_null(pl.col("unit"))}).collect()
    ids = table.select("_unit").unique().sort("_unit", nulls_last=True).with_row_index("_uid")
    return table.join(ids, on="_unit", how="left", nulls_equal=True)


#: a dense index array is used up to this many packed keys (else a join on the packed key)
_DENSE_KEYS = 1 << 25


def _lookup(
    raw: pl.DataFrame, keys: Sequence[str], build: Callable[[pl.LazyFrame], pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``build``'s outputs for every row of ``raw`` without joining the long frame on text.

    The key columns (Categorical with mappings of their own, or small integers such as
    ``_part``) become one packed integer per row; ``build`` runs on the distinct key values
    only, as text; each row then takes its outputs by position (a gather through a dense
    index when the key space is small, else a join on the integer). Returns (the outputs,
    one row per row of ``raw``; the table ``build`` made, keys as text).
    """
    digits: list[pl.Series | None] = []  # None: a key with one value everywhere (no digit)
    sizes: list[int] = []
    decode: list[pl.Series | None] = []
    lows: list[int] = []
    for key in keys:
        column = raw[key]
        if isinstance(column.dtype, pl.Categorical):
            names = column.dtype.categories.to_series().cast(pl.String)  # in physical-id order
            n = len(names)
            phys = column.to_physical()
            digits.append(None if n == 0 else phys.fill_null(n) if phys.null_count() else phys)
            decode.append(names.append(pl.Series([None], dtype=pl.String)))
            sizes.append(n + 1)
            lows.append(0)
        else:
            as_int = column.cast(pl.Int64)
            low, high = int(as_int.min() or 0), int(as_int.max() or 0)  # type: ignore[arg-type]
            digits.append(None if high == low else (as_int - low).cast(pl.UInt32))
            decode.append(None)
            sizes.append(high - low + 1)
            lows.append(low)
    total = 1
    for n in sizes:
        total *= n
    if total >= 2**63:
        raise ValueError("lookup keys too many to pack")  # never with the key columns used here
    used = [(d, n) for d, n in zip(digits, sizes, strict=True) if d is not None]
    packed: pl.Series
    if not used:
        packed = pl.repeat(0, raw.height, dtype=pl.UInt64, eager=True)
    elif len(used) == 1:
        packed = used[0][0]
    else:
        frame = pl.DataFrame({f"d{i}": d for i, (d, _n) in enumerate(used)})
        key_expr: pl.Expr = pl.lit(0, dtype=pl.UInt64)
        for i, (_d, n) in enumerate(used):
            key_expr = key_expr * pl.lit(n, dtype=pl.UInt64) + pl.col(f"d{i}").cast(pl.UInt64)
        packed = frame.select(key_expr.alias("_key")).to_series()
    # one categorical key: every id is a row of its table, no need to find the distinct ones
    single = len(used) == 1 and decode[[d is not None for d in digits].index(True)] is not None
    distinct = (
        pl.int_range(total, dtype=pl.UInt64, eager=True) if single or not used
        else packed.unique().sort().cast(pl.UInt64)
    )
    columns: dict[str, pl.Series] = {}
    rest = distinct
    for key, n, labels, low, digit_col in reversed(list(zip(keys, sizes, decode, lows, digits, strict=True))):
        digit = rest % n if digit_col is not None else pl.repeat(0, len(distinct), dtype=pl.UInt64, eager=True)
        if digit_col is not None:
            rest = rest // n
        if labels is not None:
            columns[key] = labels.gather(digit)
        else:
            columns[key] = (digit.cast(pl.Int64) + low).cast(raw[key].dtype)
    small = pl.DataFrame({k: columns[k] for k in keys}).with_columns(distinct.alias("_key"))
    table = build(small.drop("_key").lazy())
    outputs = [c for c in table.columns if c not in keys]
    keyed = small.join(table, on=list(keys), how="left", nulls_equal=True).sort("_key")
    if single:
        # the table has one row per id, in id order: rows gather by their own id
        per_row = keyed.select(pl.col(outputs).gather(packed))
    elif total <= _DENSE_KEYS:
        position = pl.repeat(None, total, dtype=pl.UInt32, eager=True)
        position = position.scatter(keyed["_key"].cast(pl.Int64), pl.int_range(keyed.height, dtype=pl.UInt32, eager=True))
        per_row = keyed.select(pl.col(outputs).gather(position.gather(packed)))
    else:
        per_row = packed.alias("_key").cast(pl.UInt64).to_frame().join(
            keyed.select("_key", *outputs), on="_key", how="left", maintain_order="left"
        ).select(outputs)
    return per_row, table


_ID_COLUMNS = ("_p", "_cid", "_uid", "_vid", "_xid", "_date")


def _unique_ids(
    ids: pl.DataFrame, n_patients: int, codes: pl.DataFrame, units: pl.DataFrame, values: pl.DataFrame,
    contexts: pl.DataFrame,
) -> pl.DataFrame:
    """Distinct kept events as id tuples (:data:`_ID_COLUMNS`), sorted.

    Each id is below a known bound, so a tuple packs into one ``UInt64`` (mixed radix)
    whenever the product of the bounds fits: one integer column to de-duplicate and sort
    instead of five. Otherwise the five columns are de-duplicated as they are.
    """
    if ids.is_empty():
        return ids
    first, last = ids.select(pl.col("_date").min().alias("a"), pl.col("_date").max().alias("b")).row(0)
    bounds = {
        "_p": max(n_patients, 1),
        "_cid": int(codes.select(pl.col("_cid").max().fill_null(0)).item()) + 1,
        "_uid": units.height + 1,
        "_vid": values.height + 1,
        "_xid": contexts.height + 1,
        "_date": (last - first).days + 1,
    }
    total = 1
    for b in bounds.values():
        total *= b
    if total >= 2**63:
        return ids.unique().sort(list(_ID_COLUMNS))
    digits = {c: pl.col(c).cast(pl.UInt64) for c in _ID_COLUMNS}
    digits["_date"] = (pl.col("_date").cast(pl.Int32) - pl.lit(first).cast(pl.Int32)).cast(pl.UInt64)
    key: pl.Expr = pl.lit(0, dtype=pl.UInt64)
    for c in _ID_COLUMNS:
        key = key * pl.lit(bounds[c], dtype=pl.UInt64) + digits[c]
    # sorted, then each run of equal keys kept once: cheaper than hashing 20M keys, and sorted anyway
    keys = ids.select(key.alias("_key")).sort("_key")
    keys = keys.filter(pl.col("_key").diff().fill_null(1) != 0)
    # unpack, last digit first
    out: dict[str, pl.Expr] = {}
    weight = 1
    for c in reversed(_ID_COLUMNS):
        out[c] = (pl.col("_key") // pl.lit(weight, dtype=pl.UInt64)) % pl.lit(bounds[c], dtype=pl.UInt64)
        weight *= bounds[c]
    return keys.select(
        *[out[c].cast(ids.schema[c]).alias(c) for c in _ID_COLUMNS if c != "_date"],
        (pl.lit(first) + pl.duration(days=out["_date"].cast(pl.Int64))).cast(pl.Date).alias("_date"),
    )


@dataclass
class PreparedEvents:
    """The event rows read and looked up, all but the patient: :func:`prepare_events`.

    Nothing here depends on the merged patients, so ingest prepares the events while it
    normalizes and merges the patients (on another thread: Polars releases the GIL).
    """

    parts: Sequence[RawPart]
    raw: pl.DataFrame
    dkeys: list[str]
    xkeys: list[str]
    code_out: pl.DataFrame
    codes: pl.DataFrame
    date_out: pl.DataFrame
    dates: pl.DataFrame
    value_out: pl.DataFrame
    values: pl.DataFrame
    unit_out: pl.DataFrame
    units: pl.DataFrame
    context_out: pl.DataFrame
    contexts: pl.DataFrame


def prepare_events(parts: Sequence[RawPart], order: dict[str, int], today: dt.date) -> PreparedEvents:
    """Read the event parts and look up their codes, dates, values, units and context."""
    clock = time.perf_counter()
    raw = collect_all([raw_events(parts, order)], parts)[0]
    log.debug("events read", seconds=round(time.perf_counter() - clock, 2), rows=raw.height, peak_gib=_peak_gib())
    clock = time.perf_counter()
    dkeys = date_keys("event_date", parts)
    xkeys = [*CONTEXT_KEYS, *(["_part"] if "_part" in date_keys("event_end", parts) else [])]
    # each lookup runs on the distinct key values only; rows take their answers by position
    code_out, codes = _lookup(raw, CODE_KEYS, _code_table)
    date_out, dates = _lookup(raw, dkeys, lambda k: _date_table(k, parts, today))
    value_out, values = _lookup(raw, ["value"], _value_table)
    unit_out, units = _lookup(raw, ["unit"], _unit_table)
    context_out, contexts = _lookup(raw, xkeys, lambda k: _context_table(k, parts, today))
    log.debug("event lookups", seconds=round(time.perf_counter() - clock, 2), codes=codes.height,
              dates=dates.height, values=values.height, units=units.height, contexts=contexts.height)
    return PreparedEvents(parts, raw, dkeys, xkeys, code_out, codes, date_out, dates, value_out, values,
                          unit_out, units, context_out, contexts)


def write_events(
    prepared: PreparedEvents,
    patient_ids: pl.Series,
    id_map: pl.DataFrame,
    path: Path,
) -> EventsWritten:
    """Look up the patients of the prepared events, write the kept unique events to ``path``.

    ``patient_ids`` is ``patients.parquet``'s ``patient_id`` column in row order;
    ``id_map`` maps (``_order``, ``_pid``: a source's own normalized id) to ``_p``, the
    row of that patient in ``patient_ids``; a null ``_p`` marks the id of a patient record
    that was rejected (its events are rejected as such, and are not orphans).
    """
    clock = time.perf_counter()
    p = prepared
    parts, raw, dkeys, xkeys = p.parts, p.raw, p.dkeys, p.xkeys
    codes, dates, values, units, contexts = p.codes, p.dates, p.values, p.units, p.contexts
    code_out, date_out, value_out, unit_out, context_out = p.code_out, p.date_out, p.value_out, p.unit_out, p.context_out

    def lap() -> float:
        nonlocal clock
        now = time.perf_counter()
        seconds, clock = round(now - clock, 2), now
        return seconds

    def patients_of(keys: pl.LazyFrame) -> pl.DataFrame:
        return (
            keys.with_columns(pl.col("patient_id").str.strip_chars().alias("_pid"))
            .join(id_map.lazy().with_columns(pl.lit(True).alias("_prej")), on=["_order", "_pid"], how="left")
            .join(id_map.lazy().select(pl.col("_pid").unique(), pl.lit(True).alias("_pelse")), on="_pid", how="left")
            .select(
                "_order", "patient_id", "_p",
                (pl.col("_prej").fill_null(False) & pl.col("_p").is_null()).alias("_prej"),
                (pl.col("_pelse").fill_null(False) & pl.col("_prej").is_null()).alias("_pelse"),
            )
            .collect()
        )

    pat, _ = _lookup(raw, ["_order", "patient_id"], patients_of)
    log.debug("event patients looked up", seconds=lap(), peak_gib=_peak_gib())
    looked = pl.DataFrame([
        pat["_p"], pat["_prej"], pat["_pelse"],
        code_out["_cid"], code_out["_cproblem"].is_not_null().alias("_cbad"),
        date_out["_date"], date_out["_dproblem"].is_not_null().alias("_dbad"),
        value_out["_vid"], value_out["_vproblem"].is_not_null().alias("_vbad"),
        unit_out["_uid"],
        context_out["_xid"], context_out["_eproblem"].is_not_null().alias("_ebad"),
    ]).with_columns((pl.col("_p").is_null() | pl.col("_cbad") | pl.col("_dbad")).alias("_bad"))
    del pat, code_out, date_out, value_out, unit_out, context_out, p
    joined = raw.hstack(looked)  # no copy: the columns are shared
    for name in ("raw", "code_out", "date_out", "value_out", "unit_out", "context_out"):
        # the caller's handle must not keep 20M rows alive
        setattr(prepared, name, getattr(prepared, name).clear())
    del raw, looked
    log.debug("events looked up", seconds=lap(), rows=joined.height, peak_gib=_peak_gib())
    per_row = joined
    multi = [i for i, p in enumerate(parts) if not p.one_event_per_row]
    if multi:
        # a row that gave several events is read once, rejected only when all its events are
        grouped = joined.filter(pl.col("_part").is_in(multi)).group_by("_part", "_row").agg(
            pl.col("_bad").all(), pl.col("_vbad").any(), pl.col("_ebad").any(), pl.col("_p").first(),
            pl.col("_prej").all(), pl.col("patient_id").first(), pl.col("_pelse").all(),
        )
        per_row = pl.concat([
            joined.filter(~pl.col("_part").is_in(multi)).select(grouped.columns), grouped
        ], how="vertical_relaxed")
    counts = per_row.group_by("_part").agg(
        pl.len().alias("rows_read"),
        pl.col("_bad").sum().alias("rows_rejected"),
        (~pl.col("_bad") & pl.col("_vbad")).sum().alias("_fv"),
        (~pl.col("_bad") & pl.col("_ebad")).sum().alias("_fe"),
        (pl.col("_p").is_null() & ~pl.col("_prej").fill_null(False) & pl.col("patient_id").is_not_null())
        .sum().alias("orphans"),
        # orphans whose id is a patient id of another source: a source-naming mistake
        (pl.col("_p").is_null() & pl.col("_pelse").fill_null(False)).sum().alias("orphans_elsewhere"),
    ).with_columns((pl.col("_fv") + pl.col("_fe")).alias("field_problems")).drop("_fv", "_fe")
    problem_rows = joined.filter(pl.col("_bad") | pl.col("_vbad") | pl.col("_ebad"))
    ids = joined.select(*_ID_COLUMNS, "_bad").filter(~pl.col("_bad")).drop("_bad")
    del joined
    kept = ids.height
    unique = _unique_ids(ids, len(patient_ids), codes, units, values, contexts)
    del ids
    log.debug("events de-duplicated", seconds=lap(), kept=kept, unique=unique.height, peak_gib=_peak_gib())
    # every id is a dense row number of its table: the strings come back by position
    code_ids = codes.filter(pl.col("_cid").is_not_null()).unique("_cid").sort("_cid")
    unit_ids = units.unique("_uid").sort("_uid")
    value_ids = values.unique("_vid").sort("_vid")
    context_table = contexts.unique("_xid").sort("_xid")
    out = pl.DataFrame({
        "patient_id": patient_ids.gather(unique["_p"]),
        "event_type": code_ids["_etype"].gather(unique["_cid"]),
        "code_system": code_ids["_system"].gather(unique["_cid"]),
        "code": code_ids["_code"].gather(unique["_cid"]),
        "event_date": unique["_date"],
        "value": value_ids["_value"].gather(unique["_vid"]),
        "unit": unit_ids["_unit"].gather(unique["_uid"]),
        "event_end": context_table["_end"].gather(unique["_xid"]),
        "value_code": context_table["_vcode"].gather(unique["_xid"]),
        "encounter_class": context_table["_eclass"].gather(unique["_xid"]),
        "discharge_disposition": context_table["_disp"].gather(unique["_xid"]),
    }).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    out.write_parquet(path)
    del out
    log.debug("events written", seconds=lap())
    files = pl.DataFrame({"_part": list(range(len(parts))), "_file": [p.file for p in parts]},
                        schema={"_part": pl.Int32, "_file": pl.String})
    rejects = _rejects(problem_rows, codes, dates, values, contexts, dkeys, xkeys, files)
    return EventsWritten(
        # one row per file: a FHIR file holding several resource types is several parts
        counts=counts.join(files, on="_part").group_by("_file").agg(
            pl.col("rows_read", "rows_rejected", "field_problems", "orphans", "orphans_elsewhere").sum()
        ),
        rejects=rejects, kept=kept, written=unique.height,
    )


def _rejects(
    rows: pl.DataFrame, codes: pl.DataFrame, dates: pl.DataFrame, values: pl.DataFrame,
    contexts: pl.DataFrame, dkeys: list[str], xkeys: list[str], files: pl.DataFrame,
) -> pl.DataFrame:
    """Row rejects (first problem of the row) and field rejects (not a number, unreadable end date)."""
    if "_record" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("_record"))
    # a format without its own record ids (a canonical events file): the patient's id (MRN)
    rows = rows.with_columns(
        pl.coalesce(pl.col("_record"), pl.col("patient_id").cast(pl.String)).alias("_record"),
        *[pl.col(c).cast(pl.String) for c in ("patient_id", *LOOKED_UP)],
    )
    rows = (
        rows.join(codes.select(*CODE_KEYS, "_cproblem"), on=CODE_KEYS, how="left", nulls_equal=True)
        .join(dates.select(*dkeys, "_dproblem"), on=dkeys, how="left", nulls_equal=True)
        .join(values.select("value", "_vproblem"), on="value", how="left", nulls_equal=True)
        .join(contexts.select(*xkeys, "_eproblem"), on=xkeys, how="left", nulls_equal=True)
        .join(files, on="_part")
        .with_columns(pl.col(c).cast(pl.String) for c in ("patient_id", *LOOKED_UP))
    )
    problem = (
        pl.when(nz.blank_to_null(pl.col("patient_id")).is_null()).then(pl.lit("patient_id|missing patient id"))
        .when(pl.col("_prej").fill_null(False))
        .then(pl.lit("patient_id|patient record rejected (see that patient's row in rejects.csv)"))
        .when(pl.col("_pelse").fill_null(False))
        .then(pl.lit("patient_id|unknown patient in this source (the id is a patient of another source)"))
        .when(pl.col("_p").is_null()).then(pl.lit("patient_id|unknown patient (no patient record with this id)"))
        .otherwise(pl.coalesce("_cproblem", "_dproblem"))
    )
    split = pl.col("_row_problem").str.split_exact("|", 1)
    col = split.struct.field("field_0")
    value = (
        pl.when(col == "patient_id").then(pl.col("patient_id"))
        .when(col == "event_type").then(pl.col("event_type"))
        .when(col == "code_system").then(pl.col("code_system"))
        .when(col == "code").then(pl.col("code"))
        .otherwise(pl.col("event_date"))
    )
    bad = rows.filter(pl.col("_bad")).with_columns(problem.alias("_row_problem"))
    good = rows.filter(~pl.col("_bad"))
    return pl.concat([
        bad.select(
            pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
            col.alias("column"), value.alias("value"), split.struct.field("field_1").alias("reason"),
            pl.lit("row").alias("level"),
        ),
        good.filter(pl.col("_vbad")).select(
            pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
            pl.lit("value").alias("column"), pl.col("value").alias("value"), pl.col("_vproblem").alias("reason"),
            pl.lit("field").alias("level"),
        ),
        good.filter(pl.col("_ebad")).select(
            pl.col("_file").alias("file"), pl.col("_row").alias("row"), pl.col("_record").alias("record_id"),
            pl.lit("event_end").alias("column"), pl.col("event_end").alias("value"),
            pl.col("_eproblem").alias("reason"), pl.lit("field").alias("level"),
        ),
    ]).cast(REJECT_SCHEMA)  # type: ignore[arg-type]

