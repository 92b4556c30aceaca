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
    drop_ragged,
    with_all_columns,
)
from segment.ingest.mapping import EVENT_INPUT_COLUMNS
from segment.ingest.packing import lookup
from segment.ingest.problems import problem, problem_column, problem_reason, reject_columns
from segment.ingest.readers import REJECT_SCHEMA, RawPart
from segment.ingest.timing import step
from segment.schema import EVENT_SCHEMA, CodeSystem, EventType

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


def raw_events(parts: Sequence[RawPart], order: dict[str, int], indices: Sequence[int] | None = None) -> pl.LazyFrame:
    """All event parts stacked: ``_row``, raw text columns, ``_part``, ``_order`` (source rank).

    ``indices``: only these parts (positions in ``parts``, which stay their ``_part``).

    Each looked-up text column is Categorical with a mapping of its own, so a row's physical
    id is the index of its text among that column's distinct texts (see
    :func:`segment.ingest.packing.lookup`); the patient id stays text (it is looked up per run
    of equal ids: :func:`_patients_by_run`). ``_record`` (the source's record id, for
    rejects) is carried when a reader gives one.
    """
    categories = {c: pl.Categorical(pl.Categories.random()) for c in LOOKED_UP}
    chosen = list(range(len(parts)) if indices is None else indices)
    with_record = {i: "_record" in parts[i].frame.collect_schema() for i in chosen}
    frames = []
    for i in chosen:
        p = parts[i]
        record = pl.col("_record").cast(pl.String) if with_record[i] else pl.lit(None, dtype=pl.String)
        frame = with_all_columns(p.frame.with_columns(record.alias("_record")), [*EVENT_INPUT_COLUMNS, "_record"])
        schema = frame.collect_schema()
        # one part read as Categorical by its reader (a canonical CSV) keeps its own mappings
        kept = {c for c in schema if len(chosen) == 1 and isinstance(schema[c], pl.Categorical)}
        frames.append(frame.select(
            pl.col("_row").cast(pl.Int64),
            pl.col("patient_id").cast(pl.String),
            *[pl.col(c) if c in kept else pl.col(c).cast(pl.String).cast(categories[c]) for c in LOOKED_UP],
            *([pl.col("_record")] if any(with_record.values()) else []),
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
    why = (
        pl.when(etype.is_null()).then(problem("event_type", "missing event type"))
        .when(etype_v.is_null()).then(problem("event_type", "unknown event type"))
        .when(system.is_null()).then(problem("code_system", "missing code system"))
        .when(system_v.is_null()).then(problem("code_system", "unknown code system"))
        .when(code_v.is_null()).then(problem("code", "missing code"))
        .otherwise(None)
    )
    table = distinct_table(
        raw, CODE_KEYS,
        {"_etype": etype_v, "_system": system_v, "_code": code_v, "_cproblem": why},
    ).collect()
    ids = (
        table.filter(pl.col("_cproblem").is_null()).select("_etype", "_system", "_code").unique()
        .sort(["_etype", "_system", "_code"]).with_row_index("_cid")
    )
    return table.join(ids, on=["_etype", "_system", "_code"], how="left")


def _date_table(raw: pl.LazyFrame, parts: Sequence[RawPart], as_of: dt.date) -> pl.DataFrame:
    """Distinct raw event dates (per part when a mapping gives a format) -> date and problem."""
    why = (
        pl.when(nz.blank_to_null(pl.col("event_date")).is_null()).then(problem("event_date", "missing event date"))
        .when(pl.col("_parse_problem").is_not_null()).then(problem("event_date", pl.col("_parse_problem")))
        .when(pl.col("_date") > pl.lit(as_of)).then(problem("event_date", "event date in the future"))
        .otherwise(None)
    )
    keys = date_keys("event_date", parts)
    return distinct_table(raw, keys, [
        date_builder("event_date", parts, as_of, "_date", "_parse_problem"),
        {"_date": pl.col("_date"), "_dproblem": why},
    ]).collect()


def _context_table(raw: pl.LazyFrame, parts: Sequence[RawPart], as_of: dt.date) -> pl.DataFrame:
    """Distinct raw (end date, value code, class, disposition) -> normalized values and ``_xid``.

    An unreadable end date is a field problem (the end is blanked, the event kept).
    """
    keys = [*CONTEXT_KEYS, *(["_part"] if "_part" in date_keys("event_end", parts) else [])]
    table = distinct_table(raw, keys, [
        date_builder("event_end", parts, as_of, "_end", "_end_problem"),
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


ID_COLUMNS = ("_p", "_cid", "_uid", "_vid", "_xid", "_date")


def unique_ids(ids: pl.DataFrame) -> pl.DataFrame:
    """Distinct kept events as id tuples (:data:`ID_COLUMNS`), sorted.

    Each id is below a bound (its largest value + 1), so a tuple packs into one ``UInt64``
    (mixed radix) whenever the product of the bounds fits: one integer column to
    de-duplicate and sort instead of six. Otherwise the six columns are de-duplicated as
    they are.
    """
    return _unique_ids(ids.lazy())[1]


def kept_unique_ids(joined: pl.DataFrame) -> tuple[int, pl.DataFrame]:
    """(how many rows of :func:`looked_up`'s frame are kept, :func:`unique_ids` of their id
    tuples): :func:`kept_ids` then :func:`unique_ids`, without the six kept id columns ever
    being built (the filter runs inside the passes that read them: at 1M people 20M rows x 6
    columns not copied, 0.5 s)."""
    return _unique_ids(_kept(joined))


def _unique_ids(ids: pl.LazyFrame) -> tuple[int, pl.DataFrame]:
    """(rows of ``ids``, :func:`unique_ids` of them); ``ids`` is read twice (bounds, then keys)."""
    # each digit's bound from the ids themselves (a column of one value, as a context column
    # no source fills, is no digit at all)
    stats = ids.select(
        pl.len().alias("rows"), pl.col("_date").min().alias("first"), pl.col("_date").max().alias("last"),
        *[pl.col(c).max().alias(c) for c in ID_COLUMNS if c != "_date"],
    ).collect(engine="streaming").row(0, named=True)
    rows = int(stats["rows"])
    if rows == 0:
        return 0, ids.collect()
    first = stats["first"]
    bounds = {c: int(stats[c]) + 1 for c in ID_COLUMNS if c != "_date"}
    bounds["_date"] = (stats["last"] - first).days + 1
    total = 1
    for b in bounds.values():
        total *= b
    if total >= 2**63:
        return rows, ids.collect().unique().sort(list(ID_COLUMNS))
    digits = {c: pl.col(c).cast(pl.UInt64) for c in ID_COLUMNS}
    digits["_date"] = (pl.col("_date").cast(pl.Int32) - pl.lit(first).cast(pl.Int32)).cast(pl.UInt64)
    used = [c for c in ID_COLUMNS if bounds[c] > 1]
    key: pl.Expr = pl.lit(0, dtype=pl.UInt64)
    for c in used:
        key = key * pl.lit(bounds[c], dtype=pl.UInt64) + digits[c]
    # sorted, then each run of equal keys kept once: cheaper than hashing 20M keys, and sorted anyway.
    # Packing and unpacking are row-wise: the streaming engine does them on every core (the
    # in-memory engine runs one expression on one core: 1.6 -> 1.1 s for 19.8M ids)
    keys = ids.select(key.alias("_key")).collect(engine="streaming").sort("_key")
    keys = keys.filter(pl.col("_key").diff().fill_null(1) != 0)
    schema = ids.collect_schema()
    return rows, keys.lazy().select(*_unpacked(used, bounds, schema, first)).collect(engine="streaming")


def _unpacked(used: list[str], bounds: dict[str, int], schema: pl.Schema, first: dt.date) -> list[pl.Expr]:
    """The id columns of packed keys ``_key`` (mixed radix over the ``used`` digits, the first
    highest; every other id is 0): no division for the last digit, no remainder for the first."""
    out: dict[str, pl.Expr] = {}
    weight = 1
    for i, c in enumerate(reversed(used)):
        shifted = pl.col("_key") // pl.lit(weight, dtype=pl.UInt64) if weight > 1 else pl.col("_key")
        out[c] = shifted % pl.lit(bounds[c], dtype=pl.UInt64) if i < len(used) - 1 else shifted
        weight *= bounds[c]
    zero = pl.lit(0, dtype=pl.UInt64)
    return [
        *[out.get(c, zero).cast(schema[c]).alias(c) for c in ID_COLUMNS if c != "_date"],
        # days since the epoch, cast to a date (a duration sum costs ten times more)
        (out.get("_date", zero).cast(pl.Int32) + pl.lit(first).cast(pl.Int32)).cast(pl.Date).alias("_date"),
    ]


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


def _flagged(build: Callable[[pl.LazyFrame], pl.DataFrame], problem: str, flag: str
             ) -> Callable[[pl.LazyFrame], pl.DataFrame]:
    """``build`` with a boolean ``flag``: the row has a ``problem``."""
    return lambda keys: build(keys).with_columns(pl.col(problem).is_not_null().alias(flag))


def prepare_events(parts: Sequence[RawPart], order: dict[str, int], as_of: dt.date) -> PreparedEvents:
    """Read the event parts and look up their codes, dates, values, units and context."""
    with step("events read") as counts:
        raw = drop_ragged(collect_all([raw_events(parts, order)], parts)[0], parts)
        counts["rows"] = raw.height
    return look_up_events(raw, parts, as_of)


def look_up_events(raw: pl.DataFrame, parts: Sequence[RawPart], as_of: dt.date) -> PreparedEvents:
    """Look up the codes, dates, values, units and context of the raw event rows :func:`raw_events` read.

    ``parts`` are all the event parts (``raw`` may hold some of them: its ``_part`` is a
    position in ``parts``).
    """
    dkeys = date_keys("event_date", parts)
    xkeys = [*CONTEXT_KEYS, *(["_part"] if "_part" in date_keys("event_end", parts) else [])]
    with step("event lookups") as counts:
        # each lookup runs on the distinct key values only; rows take their answers by position
        # (rows take only the ids and problem flags; the texts stay in the small tables)
        code_out, codes = lookup(raw, CODE_KEYS, _flagged(_code_table, "_cproblem", "_cbad"), ["_cid", "_cbad"])
        date_out, dates = lookup(raw, dkeys, _flagged(lambda k: _date_table(k, parts, as_of), "_dproblem", "_dbad"),
                                 ["_date", "_dbad"])
        value_out, values = lookup(raw, ["value"], _flagged(_value_table, "_vproblem", "_vbad"), ["_vid", "_vbad"])
        unit_out, units = lookup(raw, ["unit"], _unit_table, ["_uid"])
        context_out, contexts = lookup(
            raw, xkeys, _flagged(lambda k: _context_table(k, parts, as_of), "_eproblem", "_ebad"), ["_xid", "_ebad"]
        )
        counts.update(codes=codes.height, dates=dates.height, values=values.height, units=units.height,
                      contexts=contexts.height)
    return PreparedEvents(parts, raw, dkeys, xkeys, code_out, codes, date_out, dates, value_out, values,
                          unit_out, units, context_out, contexts)


@dataclass
class ByRecord:
    """Events looked up against the patient records before the merge (:func:`prepare_by_record`).

    ``joined`` is :func:`looked_up`'s frame with ``_p`` the row of the event's kept record
    (null: no record, or a rejected one), not yet of its merged patient.
    """

    prepared: PreparedEvents
    joined: pl.DataFrame


def prepare_by_record(
    parts: Sequence[RawPart], order: dict[str, int], as_of: dt.date, record_map: pl.DataFrame,
) -> ByRecord:
    """:func:`prepare_events`, then the patients looked up by record: ``record_map`` maps
    (``_order``, ``_pid``) to ``_p``, the row of the kept record (null: a rejected record's id).

    The normalized records are known before identities are resolved, so the 20M event rows
    are joined to their records on the events' thread while the patients are merged; after
    the merge each row takes its patient by position (:func:`write_events`' ``record_rows``).
    """
    prepared = prepare_events(parts, order, as_of)
    with step("events looked up by record") as counts:
        joined = looked_up(prepared, record_map)
        counts["rows"] = joined.height
    return ByRecord(prepared, joined)


def write_events(
    prepared: PreparedEvents | ByRecord,
    patient_ids: pl.Series,
    id_map: pl.DataFrame | pl.Series,
    path: Path,
) -> EventsWritten:
    """Look up the patients of the prepared events, write the kept unique events to ``path``.

    ``patient_ids`` is ``patients.parquet``'s ``patient_id`` column in row order;
    ``id_map`` maps (``_order``, ``_pid``: a source's own normalized id) to ``_p``, the
    row of that patient in ``patient_ids``; a null ``_p`` marks the id of a patient record
    that was rejected (its events are rejected as such, and are not orphans). For events
    already looked up by record (:class:`ByRecord`), ``id_map`` is each kept record's ``_p``
    instead, in record order.
    """
    with step("events looked up") as counts:
        if isinstance(prepared, ByRecord):
            assert isinstance(id_map, pl.Series)
            joined = prepared.joined.with_columns(id_map.gather(prepared.joined["_p"]).alias("_p"))
            prepared.joined = prepared.joined.clear()  # the caller's handle must not keep 20M rows alive
            prepared = prepared.prepared
        else:
            assert isinstance(id_map, pl.DataFrame)
            joined = looked_up(prepared, id_map)
        counts["rows"] = joined.height
    p = prepared
    parts, codes, dates, values, units, contexts = p.parts, p.codes, p.dates, p.values, p.units, p.contexts
    with step("events counted"):
        per_file = row_counts(joined, parts)
        problems = problem_rows(joined)
    with step("events de-duplicated") as counts:
        kept, unique = kept_unique_ids(joined)
        del joined
        counts.update(kept=kept, unique=unique.height)
    with step("events parquet written"):
        # zstd level 1, as the chunked path's writer and geocode's files: at 1M people (19.7M
        # events) 3.0 s against 3.8 s at Polars' default level, for a file 3% larger
        written_events(unique, patient_ids, codes, units, values, contexts).sink_parquet(
            path, compression="zstd", compression_level=1)
    files = part_files(parts)
    rejects = event_rejects(problems, codes, dates, values, contexts, p.dkeys, p.xkeys, files)
    return events_written(per_file, files, rejects, kept, unique.height)


def kept_ids(joined: pl.DataFrame) -> pl.DataFrame:
    """The id tuples (:data:`ID_COLUMNS`) of :func:`looked_up`'s kept rows."""
    return _kept(joined).collect()


def _kept(joined: pl.DataFrame) -> pl.LazyFrame:
    """:func:`kept_ids`, lazily; the raw texts are left out before the filter, which would
    otherwise copy them."""
    return joined.lazy().select(*ID_COLUMNS, "_bad").filter(~pl.col("_bad")).drop("_bad")


def problem_rows(joined: pl.DataFrame) -> pl.DataFrame:
    """The rows of :func:`looked_up`'s frame with a problem (rejected, or a field blanked).

    Taken by position: a filter would align the raw columns' chunks (the reader's: 1,678 for
    20M rows of CSV) with the flags' one chunk, 0.4-0.6 s against 0.07 s at 1M people.
    """
    return joined[joined.select((pl.col("_bad") | pl.col("_vbad") | pl.col("_ebad")).arg_true()).to_series()]


def part_files(parts: Sequence[RawPart]) -> pl.DataFrame:
    """``_part`` (a position in ``parts``) -> ``_file``."""
    return pl.DataFrame({"_part": list(range(len(parts))), "_file": [p.file for p in parts]},
                        schema={"_part": pl.Int32, "_file": pl.String})


def events_written(per_part: pl.DataFrame, files: pl.DataFrame, rejects: pl.DataFrame, kept: int,
                   written: int) -> EventsWritten:
    """The outcome, with the counts of each part (:func:`row_counts`) summed per file."""
    return EventsWritten(
        # one row per file: a FHIR file holding several resource types is several parts
        counts=per_part.join(files, on="_part").group_by("_file").agg(
            pl.col("rows_read", "rows_rejected", "field_problems", "orphans", "orphans_elsewhere").sum()
        ),
        rejects=rejects, kept=kept, written=written,
    )


@dataclass(frozen=True)
class PatientIndex:
    """The id map (``_order``, ``_pid`` -> ``_p``) prepared once for the many chunks of one
    events file: sorted by ``_pid``, and its distinct ``_pid``. A chunk then joins only the
    slice of ids between its own smallest and largest (two binary searches), not the whole
    map: at 10M people each of 13 chunks hashed the 13.5M records' ids twice.
    """

    by_id: pl.DataFrame
    distinct: pl.DataFrame
    #: ``by_id``'s and ``distinct``'s non-null ids, sorted (nulls sort last: the same positions)
    by_id_ids: pl.Series
    distinct_ids: pl.Series

    @classmethod
    def of(cls, id_map: pl.DataFrame) -> PatientIndex:
        """The index of ``id_map``."""
        by_id = id_map.sort("_pid", nulls_last=True)
        distinct = by_id.select(pl.col("_pid").unique(maintain_order=True)).drop_nulls()
        return cls(by_id, distinct, by_id["_pid"].drop_nulls().set_sorted(), distinct["_pid"].set_sorted())

    def around(self, ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(the map's rows, the distinct ids) with ``_pid`` between ``ids``' smallest and largest."""
        lo, hi = ids.min(), ids.max()
        if lo is None or hi is None:
            return self.by_id.clear(), self.distinct.clear()
        return (_between(self.by_id, self.by_id_ids, str(lo), str(hi)),
                _between(self.distinct, self.distinct_ids, str(lo), str(hi)))


def _between(frame: pl.DataFrame, ids: pl.Series, lo: str, hi: str) -> pl.DataFrame:
    """The rows of ``frame`` whose sorted ids ``ids`` (its first rows') lie from ``lo`` to ``hi``."""
    start = ids.search_sorted(lo, side="left")
    end = ids.search_sorted(hi, side="right")
    return frame.slice(start, max(end - start, 0))


def looked_up(prepared: PreparedEvents, id_map: pl.DataFrame | PatientIndex) -> pl.DataFrame:
    """The raw rows beside their patient row ``_p``, their ids and their problem flags.

    ``id_map``: the map itself (used once), or its :class:`PatientIndex` (one events file
    in many chunks). Empties ``prepared``'s row-long frames: the caller's handle must not
    keep 20M rows alive.
    """
    def patients_of(keys: pl.LazyFrame) -> pl.DataFrame:
        keyed = keys.with_columns(pl.col("patient_id").cast(pl.String).str.strip_chars().alias("_pid"))
        if isinstance(id_map, PatientIndex):
            keyed_df = keyed.collect()
            records, distinct = id_map.around(keyed_df["_pid"])
            keyed = keyed_df.lazy()
        else:
            records, distinct = id_map, id_map.select("_pid")
        matched = keyed.join(
            records.lazy().with_columns(pl.lit(True).alias("_found")), on=["_order", "_pid"], how="left",
            maintain_order="left",
        ).collect()
        # an id its source does not have may be another source's (a naming mistake): only the
        # few ids not found are looked for among every source's ids
        missing = matched.lazy().filter(pl.col("_found").is_null()).select("_pid").unique()
        elsewhere = missing.join(distinct.lazy(), on="_pid", how="semi").collect()["_pid"]
        return matched.select(
            "_order", "patient_id", "_p",
            (pl.col("_found").fill_null(False) & pl.col("_p").is_null()).alias("_prej"),
            (pl.col("_found").is_null() & pl.col("_pid").is_in(elsewhere.implode()).fill_null(False)).alias("_pelse"),
        )

    p = prepared
    pat = _patients_by_run(p.raw, patients_of)
    looked = pl.DataFrame([
        pat["_p"], pat["_prej"], pat["_pelse"],
        p.code_out["_cid"], p.code_out["_cbad"],
        p.date_out["_date"], p.date_out["_dbad"],
        p.value_out["_vid"], p.value_out["_vbad"],
        p.unit_out["_uid"],
        p.context_out["_xid"], p.context_out["_ebad"],
    ]).with_columns((pl.col("_p").is_null() | pl.col("_cbad") | pl.col("_dbad")).alias("_bad"))
    joined = p.raw.hstack(looked)  # no copy: the columns are shared
    for name in ("raw", "code_out", "date_out", "value_out", "unit_out", "context_out"):
        setattr(prepared, name, getattr(prepared, name).clear())
    return joined


def _patients_by_run(raw: pl.DataFrame, build: Callable[[pl.LazyFrame], pl.DataFrame]) -> pl.DataFrame:
    """``build``'s outputs for the (``_order``, ``patient_id``) of every row of ``raw``.

    An events file lists a patient's events together: a run of rows with the same id and
    source is looked up once (a million runs, not 20M hashed ids), and the rows take their
    run's answers by position. ``build`` gets the keys (``patient_id`` as text, or
    Categorical) and returns them with its outputs, row for row. When the runs are short
    (an unsorted file), the distinct ids are looked up instead.
    """
    # in one chunk: a reader's chunks (3,354 for 20M rows of CSV) make the shifts and the
    # filter below several times slower (1M people: 0.9 -> 0.2 s with the copy)
    ids = raw.select("_order", "patient_id").rechunk()
    starts = (
        pl.col("patient_id").ne_missing(pl.col("patient_id").shift())
        | pl.col("_order").ne_missing(pl.col("_order").shift())
    ).fill_null(True)
    flagged = ids.with_columns(starts.alias("_start"))
    run = flagged.select(pl.col("_start").cast(pl.get_index_type()).cum_sum() - 1).to_series()
    first = flagged.filter(pl.col("_start")).select("_order", "patient_id")
    if first.height * _RUNS_PER_LOOKUP > raw.height:
        # short runs (an unsorted file): each distinct id once, through Categorical ids
        first = first.with_columns(pl.col("patient_id").cast(pl.Categorical(pl.Categories.random())))
        per_run, _ = lookup(first, ["_order", "patient_id"], build)
    else:
        # the file lists a patient's events together: each run once, no distinct ids needed
        per_run = build(first.lazy()).drop("_order", "patient_id")
    return per_run.select(pl.all().gather(run))


#: runs of fewer rows than this on average are looked up by distinct id (see :func:`_patients_by_run`)
_RUNS_PER_LOOKUP = 4


def row_counts(joined: pl.DataFrame, parts: Sequence[RawPart]) -> pl.DataFrame:
    """Per part: rows read, rejected, with a field problem, orphans (of which ids of another source)."""
    # only the columns counted: the raw columns come in the reader's chunks (1,678 for 20M rows
    # of CSV) and the looked-up ones in one, and a filter over both must align them (0.76 s);
    # ``_part`` in one chunk, as the flags
    multi = [i for i, p in enumerate(parts) if not p.one_event_per_row]
    per_row = pl.DataFrame([
        *([joined["_row"].rechunk()] if multi else []), joined["_part"].rechunk(),
        *[joined[c] for c in ("_bad", "_vbad", "_ebad", "_p", "_prej", "_pelse")],
        joined["patient_id"].is_not_null().rechunk().alias("_has_pid"),
    ])
    if multi:
        # a row that gave several events is read once, rejected only when all its events are
        grouped = per_row.filter(pl.col("_part").is_in(multi)).group_by("_part", "_row").agg(
            pl.col("_bad").all(), pl.col("_vbad").any(), pl.col("_ebad").any(), pl.col("_p").first(),
            pl.col("_prej").all(), pl.col("_has_pid").first(), pl.col("_pelse").all(),
        )
        per_row = pl.concat([
            per_row.filter(~pl.col("_part").is_in(multi)).select(grouped.columns), grouped
        ], how="vertical_relaxed")
    # every count but the rows read is of rows with a problem: counted on those rows only
    read = per_row.group_by("_part").agg(pl.len().alias("rows_read"))
    flagged = per_row.filter(pl.col("_bad") | pl.col("_vbad") | pl.col("_ebad")).group_by("_part").agg(
        pl.col("_bad").sum().alias("rows_rejected"),
        (~pl.col("_bad") & pl.col("_vbad")).sum().alias("_fv"),
        (~pl.col("_bad") & pl.col("_ebad")).sum().alias("_fe"),
        (pl.col("_p").is_null() & ~pl.col("_prej").fill_null(False) & pl.col("_has_pid"))
        .sum().alias("orphans"),
        # orphans whose id is a patient id of another source: a source-naming mistake
        (pl.col("_p").is_null() & pl.col("_pelse").fill_null(False)).sum().alias("orphans_elsewhere"),
    )
    counts = [c for c in flagged.columns if c != "_part"]
    return read.join(flagged, on="_part", how="left").with_columns(pl.col(counts).fill_null(0)).with_columns(
        (pl.col("_fv") + pl.col("_fe")).alias("field_problems")
    ).drop("_fv", "_fe")


def written_events(
    unique: pl.DataFrame, patient_ids: pl.Series, codes: pl.DataFrame, units: pl.DataFrame,
    values: pl.DataFrame, contexts: pl.DataFrame,
) -> pl.LazyFrame:
    """The unique events as written: every id is a dense row number of its table, so the
    strings come back by position.

    Lazy: each column's gather is an expression, so the columns are gathered on every core
    (eagerly, one after the other on one core: at 1M people 1.1-2.6 s), and a sink gathers
    and encodes one morsel at a time without first building 20M rows of strings.
    """
    return unique.lazy().select(
        _take(patient_ids, "_p").alias("patient_id"),
        **event_columns(codes, units, values, contexts),
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]


def event_columns(
    codes: pl.DataFrame, units: pl.DataFrame, values: pl.DataFrame, contexts: pl.DataFrame,
) -> dict[str, pl.Expr]:
    """events.parquet's columns but the patient's id, as expressions over event id tuples
    (:data:`ID_COLUMNS`)."""
    code_ids = codes.filter(pl.col("_cid").is_not_null()).unique("_cid").sort("_cid")
    unit_ids = units.unique("_uid").sort("_uid")
    value_ids = values.unique("_vid").sort("_vid")
    context_table = contexts.unique("_xid").sort("_xid")
    return {
        "event_type": _take(code_ids["_etype"], "_cid"),
        "code_system": _take(code_ids["_system"], "_cid"),
        "code": _take(code_ids["_code"], "_cid"),
        "event_date": pl.col("_date"),
        "value": _take(value_ids["_value"], "_vid"),
        "unit": _take(unit_ids["_unit"], "_uid"),
        "event_end": _take(context_table["_end"], "_xid"),
        "value_code": _take(context_table["_vcode"], "_xid"),
        "encounter_class": _take(context_table["_eclass"], "_xid"),
        "discharge_disposition": _take(context_table["_disp"], "_xid"),
    }


def _take(values: pl.Series, ids: str) -> pl.Expr:
    """``values`` gathered at the ids of column ``ids``; a column no event has (all null, as
    most context columns of most extracts) is a null literal instead of gathered row by row."""
    if values.null_count() == values.len():
        return pl.lit(None, dtype=values.dtype)
    return pl.lit(values).gather(pl.col(ids))


#: why a row is rejected, in order: the patient first, then the code, then the date
_ROW_PROBLEM = (
    pl.when(nz.blank_to_null(pl.col("patient_id")).is_null()).then(problem("patient_id", "missing patient id"))
    .when(pl.col("_prej").fill_null(False))
    .then(problem("patient_id", "patient record rejected (see that patient's row in rejects.csv)"))
    .when(pl.col("_pelse").fill_null(False))
    .then(problem("patient_id", "unknown patient in this source (the id is a patient of another source)"))
    .when(pl.col("_p").is_null()).then(problem("patient_id", "unknown patient (no patient record with this id)"))
    .otherwise(pl.coalesce("_cproblem", "_dproblem"))
)


def event_rejects(
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
    column = problem_column("_row_problem")
    # the value shown is the raw text of the column at fault; a date problem shows the date
    value = (
        pl.when(column == "patient_id").then(pl.col("patient_id"))
        .when(column == "event_type").then(pl.col("event_type"))
        .when(column == "code_system").then(pl.col("code_system"))
        .when(column == "code").then(pl.col("code"))
        .otherwise(pl.col("event_date"))
    )
    bad = rows.filter(pl.col("_bad")).with_columns(_ROW_PROBLEM.alias("_row_problem"))
    good = rows.filter(~pl.col("_bad"))
    return pl.concat([
        bad.select(*reject_columns(column, value, problem_reason("_row_problem"), "row")),
        good.filter(pl.col("_vbad")).select(*reject_columns("value", pl.col("value"), pl.col("_vproblem"), "field")),
        good.filter(pl.col("_ebad")).select(
            *reject_columns("event_end", pl.col("event_end"), pl.col("_eproblem"), "field")
        ),
    ]).cast(REJECT_SCHEMA)  # type: ignore[arg-type]
