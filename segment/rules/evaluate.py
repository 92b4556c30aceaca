"""Evaluating rules over a working folder: one lazy plan, one row per patient and rule.

Plan: events on or before the as-of date are joined to the value-set codes (exact
spellings, plus ICD-10-CM prefixes), reduced to the last date per patient and value
set, spread to one ``__last__<value set>`` column each, joined to the patient frame
(``enriched.parquet`` when present, else ``patients.parquet``), and every compiled
rule selects ``status``, ``reason`` and ``evidence_date`` from that frame. Nothing
loops over patients or events in Python.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment import workdir as wd
from segment.errors import StageInputError
from segment.log import get_logger
from segment.rules.codes import code_variants
from segment.rules.compiler import (
    BASE_COLUMNS,
    STEP_DECISION,
    STEP_EXCLUSION,
    STEP_POPULATION,
    CompiledRule,
    bad_unit_column,
    compile_rule,
    end_column,
    last_column,
    no_result_column,
    value_column,
)
from segment.rules.loader import iter_criteria
from segment.rules.model import (
    STATUS_DTYPE,
    ColumnTest,
    Evidence,
    EvidenceField,
    NoUnit,
    ResultUnits,
    RuleSet,
    Status,
    ValueSet,
)
from segment.rules.registry import OPERATIONS, ValueKind
from segment.schema import (
    NEED_INDEX,
    NEED_INDEX_QUINTILE,
    NEED_INDEX_STATE_PCTILE,
    NO_INTERNET_PCT,
    PATIENT_SCHEMA,
    SVI_OVERALL,
    CodeSystem,
)

log = get_logger("evaluate")

ELIGIBILITY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String,
    "rule_id": pl.String,
    "rule_version": pl.Int32,
    "status": STATUS_DTYPE,
    "reason": pl.String,
    "evidence_date": pl.Date,
}

#: types of enrichment columns rules commonly read (for example patients)
KNOWN_TYPES: dict[str, pl.DataType | type[pl.DataType]] = {
    **PATIENT_SCHEMA,
    NEED_INDEX: pl.Float64,
    NEED_INDEX_STATE_PCTILE: pl.Float64,
    NEED_INDEX_QUINTILE: pl.Int8,
    SVI_OVERALL: pl.Float64,
    NO_INTERNET_PCT: pl.Float64,
}


@dataclass(frozen=True)
class _LookupTables:
    """Every lookup's codes as rows naming the lookup (``_k``) and its filters.

    ``_type`` is an event type the lookup takes (null: any), ``_answer`` the index of the
    answer value set the event's ``value_code`` must be in (null: no answer test).
    """

    exact: list[tuple[Any, ...]] = field(default_factory=list)
    prefix: list[tuple[Any, ...]] = field(default_factory=list)
    disposition: list[tuple[Any, ...]] = field(default_factory=list)


#: per table row: the lookup, and its filters (event type, answer set, needs a result, last day)
_FILTERS = {"_k": pl.UInt16, "_type": pl.String, "_answer": pl.UInt16, "_result": pl.Boolean, "_until": pl.Date}


def _lookup_tables(
    valuesets: dict[str, ValueSet], lookups: list[Evidence], answers: list[str], as_of: dt.date
) -> _LookupTables:
    tables = _LookupTables()
    for k, e in enumerate(lookups):
        vs = valuesets[e.valueset]
        answer = answers.index(e.answer) if e.answer else None
        until = e.until_date(as_of)
        for event_type in e.types or (None,):
            filters = (k, event_type, answer, e.with_result, until)
            if e.field is EvidenceField.DISCHARGE_DISPOSITION:
                # dispositions are written as bare codes (NUBC, SNOMED, FHIR); the value set's codes in any system
                tables.disposition.extend(
                    (v, *filters) for s, c in vs.codes for v in code_variants(s, c)
                )
                continue
            tables.exact.extend(
                (s, v, *filters) for s, c in vs.codes for v in code_variants(s, c)
            )
            tables.prefix.extend((c, len(c), *filters) for _s, c in vs.prefixes)
    return tables


def _in_rule_unit(units: ResultUnits) -> tuple[pl.Expr, pl.Expr]:
    """The event's value in the rule's unit, and the unit text when it cannot be converted."""
    unit = pl.col("unit").str.replace_all(r"\s+", "").str.to_lowercase()
    no_unit = unit.is_null() | (unit == "")
    value: Any = pl.when(no_unit).then(
        pl.col("value") if units.if_no_unit is NoUnit.ASSUME else pl.lit(None, pl.Float64)
    )
    for name, scale, offset in units.conversions:
        value = value.when(unit == name).then(pl.col("value") * scale + offset)
    value = value.otherwise(pl.lit(None, pl.Float64))
    bad = (
        pl.when(pl.col("value").is_null()).then(pl.lit(None, pl.String))
        .when(no_unit).then(pl.lit(None, pl.String) if units.if_no_unit is NoUnit.ASSUME else pl.lit("no unit"))
        .when(unit.is_in([name for name, _s, _o in units.conversions])).then(pl.lit(None, pl.String))
        .otherwise(pl.col("unit").str.strip_chars())
    )
    return value, bad


def _lookup_tests(lookups: list[Evidence], valuesets: dict[str, ValueSet], answers: list[str]) -> list[pl.Expr]:
    """The table-row filters of :func:`last_event_dates`: only the lookups that have them pay for them."""
    tests: list[pl.Expr] = []
    if any(e.types for e in lookups):
        tests.append(pl.col("_type").is_null() | (pl.col("_type") == pl.col("event_type")))
    if answers:
        answer_fits: Any = pl.when(pl.col("_answer").is_null()).then(pl.lit(True))
        for i, name in enumerate(answers):
            codes = sorted({v for s, c in valuesets[name].codes for v in code_variants(s, c)})
            answer_fits = answer_fits.when(pl.col("_answer") == i).then(
                pl.col("value_code").is_in(codes).fill_null(False)
            )
        tests.append(answer_fits.otherwise(pl.lit(False)))
    if any(e.with_result for e in lookups):
        # CQL `where X.value is not null`: a number or a coded result
        tests.append(~pl.col("_result") | pl.col("value").is_not_null() | pl.col("value_code").is_not_null())
    if any(e.until is not None for e in lookups):
        tests.append(pl.col("_until").is_null() | (pl.col("event_date") <= pl.col("_until")))
    return tests


def _matching_events(
    ev: pl.LazyFrame, tables: _LookupTables, tests: list[pl.Expr], with_values: bool
) -> list[pl.LazyFrame]:
    """Events joined to their lookups (``_k``): exact codes, ICD-10-CM prefixes, dispositions."""

    def kept(frame: pl.LazyFrame) -> pl.LazyFrame:
        if tests:
            frame = frame.filter(pl.all_horizontal(tests))
        return frame.select("patient_id", "_k", "event_date", "event_end", *(["value", "unit"] if with_values else []))

    parts = []
    if tables.exact:
        exact = pl.LazyFrame(
            tables.exact, schema={"code_system": pl.String, "code": pl.String, **_FILTERS}, orient="row"
        ).unique()
        spellings = sorted({row[1] for row in tables.exact})
        # a cheap membership test first: most events carry codes no rule uses
        parts.append(kept(ev.filter(pl.col("code").is_in(spellings)).join(exact, on=["code_system", "code"])))
    if tables.prefix:
        prefixes = pl.LazyFrame(
            tables.prefix, schema={"prefix": pl.String, "length": pl.UInt8, **_FILTERS}, orient="row"
        ).unique()
        heads = sorted({row[0][:3] for row in tables.prefix})
        icd = ev.filter(
            (pl.col("code_system") == CodeSystem.ICD10CM.value)
            & pl.col("code").str.slice(0, 3).str.to_uppercase().is_in(heads)
        ).with_columns(norm=pl.col("code").str.replace_all(".", "", literal=True).str.to_uppercase())
        for length in sorted({row[1] for row in tables.prefix}):
            table = prefixes.filter(pl.col("length") == length).drop("length")
            parts.append(kept(icd.with_columns(prefix=pl.col("norm").str.slice(0, length)).join(table, on="prefix")))
    if tables.disposition:
        dispositions = pl.LazyFrame(
            tables.disposition, schema={"discharge_disposition": pl.String, **_FILTERS}, orient="row"
        ).unique()
        codes = sorted({row[0] for row in tables.disposition})
        parts.append(kept(
            ev.filter(pl.col("discharge_disposition").is_in(codes)).join(dispositions, on="discharge_disposition")
        ))
    return parts


def _result_columns(valued: dict[int, ResultUnits], keys: list[str]) -> list[pl.Expr]:
    """Per lookup with a result test: the lowest result on its last day, "without result", a bad unit."""
    results: list[pl.Expr] = []
    for k, units in valued.items():
        # the lowest result on the lookup's last day; a reading without one makes the day "without result"
        converted, bad = _in_rule_unit(units)
        on_last = (pl.col("_k") == k) & (
            pl.col("event_date") == pl.col("event_date").filter(pl.col("_k") == k).max()
        )
        results += [
            converted.filter(on_last).min().alias(value_column(keys[k])),
            pl.col("value").is_null().filter(on_last).any().alias(no_result_column(keys[k])),
            bad.filter(on_last).drop_nulls().first().alias(bad_unit_column(keys[k])),
        ]
    return results


def _no_events_frame(keys: list[str], episodes: set[str], valued: dict[int, ResultUnits]) -> pl.LazyFrame:
    """The empty result of :func:`last_event_dates` when no lookup has a code."""
    value_schema = {
        name: dtype for k in valued
        for name, dtype in ((value_column(keys[k]), pl.Float64), (no_result_column(keys[k]), pl.Boolean),
                            (bad_unit_column(keys[k]), pl.String))
    }
    return pl.LazyFrame(schema={
        "patient_id": pl.String, **{last_column(k): pl.Date for k in keys},
        **{end_column(k): pl.Date for k in keys if k in episodes}, **value_schema,
    })


def last_event_dates(
    events: pl.LazyFrame,
    valuesets: dict[str, ValueSet],
    names: list[str] | list[Evidence],
    as_of: dt.date,
) -> pl.LazyFrame:
    """One row per patient with ``__last__<key>``: the last matching event date on or before ``as_of``.

    ``names`` are value set names (a plain code lookup each) or :class:`Evidence` lookups;
    an episode lookup also gets ``__end__<key>``: the latest end of a matching event that
    started on or before ``as_of`` (an event with no end is still ongoing: ``as_of``).

    Every lookup is answered from one pass over the events: the events whose code (or
    discharge disposition) is in any lookup are joined to one table of (code, lookup,
    event type, answer set) rows, and the rows whose event type and answer fit are kept.
    """
    wanted = [n if isinstance(n, Evidence) else Evidence(n) for n in names]
    lookups = list({e.key: e for e in wanted}.values())
    keys = [e.key for e in lookups]
    episodes = {e.key for e in wanted if e.episode}
    answers = sorted({e.answer for e in lookups if e.answer})
    valued = {k: e.units for k, e in enumerate(lookups) if e.units is not None}
    reads_value = bool(valued) or any(e.with_result for e in lookups)
    ev = events.select(
        "patient_id", "event_type", "code_system", "code", "event_date", "event_end", "value_code",
        "discharge_disposition", *(["value", "unit"] if reads_value else []),
    ).filter(pl.col("event_date").is_not_null() & (pl.col("event_date") <= as_of))
    parts = _matching_events(ev, _lookup_tables(valuesets, lookups, answers, as_of),
                             _lookup_tests(lookups, valuesets, answers), bool(valued))
    if not parts:
        return _no_events_frame(keys, episodes, valued)
    ongoing = pl.coalesce(pl.col("event_end"), pl.lit(as_of, pl.Date))
    return pl.concat(parts).group_by("patient_id").agg(
        *[pl.col("event_date").filter(pl.col("_k") == k).max().alias(last_column(key)) for k, key in enumerate(keys)],
        *[ongoing.filter(pl.col("_k") == k).max().alias(end_column(key))
          for k, key in enumerate(keys) if key in episodes],
        *_result_columns(valued, keys),
    )


def _check_columns(
    compiled: list[CompiledRule], schema: pl.Schema, source: str, enriched: bool
) -> tuple[dict[str, pl.DataType | type[pl.DataType]], list[str]]:
    """Columns rules need that the frame lacks: an error without enrichment, null with it."""
    fill: dict[str, pl.DataType | type[pl.DataType]] = {}
    warnings: list[str] = []
    for cr in compiled:
        for name in sorted(cr.columns):
            if name in schema or name in fill:
                continue
            if name in BASE_COLUMNS and name != "patient_id":
                fill[name] = KNOWN_TYPES[name]
                continue
            if not enriched:
                raise StageInputError(
                    f"rule {cr.rule.id} needs column `{name}`, which {source} does not have; "
                    "run `segment enrich` first"
                )
            fill[name] = KNOWN_TYPES.get(name, pl.Float64)
            warnings.append(f"column `{name}` is not in {source}; rule {cr.rule.id} treats it as missing")
        for criterion, _keys in iter_criteria(cr.rule):
            if isinstance(criterion, ColumnTest) and criterion.column in schema:
                dtype = schema[criterion.column]
                if OPERATIONS[criterion.op].value is ValueKind.NUMBER and not dtype.is_numeric():
                    raise StageInputError(
                        f"rule {cr.rule.id}: `{criterion.op}` needs a numeric column but "
                        f"`{criterion.column}` in {source} is {dtype}"
                    )
    return fill, warnings


def evaluate_frames(
    patients: pl.LazyFrame,
    events: pl.LazyFrame,
    ruleset: RuleSet,
    as_of: dt.date,
    *,
    source: str = "patients.parquet",
    enriched: bool = False,
    warnings: list[str] | None = None,
    absent: frozenset[str] = frozenset(),
    part_column: str | None = None,
    quiet: bool = False,
) -> pl.LazyFrame:
    """The eligibility plan: ``ELIGIBILITY_SCHEMA`` columns plus ``step`` (waterfall stage).

    ``absent``: patient columns no source provided (``ingest-report.json``); tests of them
    are ``unknown``, never a confident status. Rows come rule by rule and branch by branch,
    each in the patients' order; ``part_column`` (when given) numbers those blocks (an
    evaluation in batches puts each block's rows back together with it). ``quiet``: the
    absent-column warnings are not logged (a batch after the first).
    """
    compiled = [compile_rule(r, ruleset.valuesets, as_of, absent=absent) for r in ruleset.rules]
    schema = patients.collect_schema()
    fill, found = _check_columns(compiled, schema, source, enriched)
    if warnings is not None:
        warnings.extend(found)
    for w in [] if quiet else found:
        log.warning(w)
    needed = sorted(set().union(*(c.columns for c in compiled)) if compiled else set(BASE_COLUMNS))
    frame = patients.with_columns(
        [pl.lit(None, dtype).alias(name) for name, dtype in fill.items()]
    ).select(needed)
    names = sorted(set().union(*(c.evidence for c in compiled)), key=lambda e: (e.key, e.episode)) if compiled else []
    if names:
        # the patients' order restored after the join (the streaming engine reorders rows), so the
        # same inputs give the same bytes; a sort on a row number costs less than an ordered join
        frame = (
            frame.with_row_index("__order")
            .join(last_event_dates(events, ruleset.valuesets, names, as_of), on="patient_id", how="left")
            .sort("__order")
            .drop("__order")
        )
    base = frame.with_columns(
        [cr.branch.alias(f"__branch_{i}") for i, cr in enumerate(compiled)]
    )
    outputs = [
        base.filter(pl.col(f"__branch_{i}") == k).select(
            pl.col("patient_id"),
            pl.lit(cr.rule.id).alias("rule_id"),
            pl.lit(cr.rule.version, pl.Int32).alias("rule_version"),
            pl.lit(b.status.value, STATUS_DTYPE).alias("status"),
            b.reason.alias("reason"),
            b.evidence_date.alias("evidence_date"),
            pl.lit(b.step, pl.Int8).alias("step"),
            *([pl.lit(j, pl.UInt16).alias(part_column)] if part_column else []),
        )
        for j, (i, k, cr, b) in enumerate(
            (i, k, cr, b) for i, cr in enumerate(compiled) for k, b in enumerate(cr.branches))
    ]
    if not outputs:
        return pl.LazyFrame(schema={**ELIGIBILITY_SCHEMA, "step": pl.Int8,
                                    **({part_column: pl.UInt16} if part_column else {})})
    return pl.concat(outputs, how="vertical")


def waterfall_from_counts(counts: pl.DataFrame, ruleset: RuleSet) -> list[dict[str, Any]]:
    """Per rule: patients -> in population -> not excluded -> due, with unknown counts, from the
    result rows counted by ``rule_id``, ``step``, ``status`` (``len``)."""
    lookup: dict[tuple[str, int, str], int] = {
        (r, s, st): n for r, s, st, n in counts.iter_rows()
    }
    rows: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        def n(step: int, status: Status, rid: str = rule.id) -> int:
            return lookup.get((rid, step, status.value), 0)

        total = sum(v for (rid, _s, _st), v in lookup.items() if rid == rule.id)
        unknown_pop = n(STEP_POPULATION, Status.UNKNOWN)
        in_pop = total - n(STEP_POPULATION, Status.NOT_IN_POPULATION) - unknown_pop
        excluded = n(STEP_EXCLUSION, Status.EXCLUDED)
        unknown_excl = n(STEP_EXCLUSION, Status.UNKNOWN)
        not_excluded = in_pop - excluded - unknown_excl
        due, not_due, unknown_dec = (n(STEP_DECISION, Status.DUE), n(STEP_DECISION, Status.NOT_DUE),
                                     n(STEP_DECISION, Status.UNKNOWN))
        rows.append({
            "rule_id": rule.id,
            "version": rule.version,
            "kind": rule.kind.value,
            "patients": total,
            "in_population": in_pop,
            "not_excluded": not_excluded,
            "due": due,
            "not_due": not_due,
            "excluded": excluded,
            "not_in_population": n(STEP_POPULATION, Status.NOT_IN_POPULATION),
            "unknown": unknown_pop + unknown_excl + unknown_dec,
            "unknown_population": unknown_pop,
            "unknown_exclusion": unknown_excl,
            "unknown_decision": unknown_dec,
        })
    return rows


def absent_columns(workdir: Path) -> frozenset[str]:
    """Patient columns no source provided, as ingest recorded them (empty when unknown)."""
    report = workdir / wd.INGEST_REPORT
    if not report.exists():
        return frozenset()
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(doc.get("columns", {}).get("absent", []))


def absent_warnings(ruleset: RuleSet, absent: frozenset[str]) -> list[str]:
    """One warning per column a rule tests that no source provided."""
    used = sorted(absent & {c.column for r in ruleset.rules for c, _k in iter_criteria(r) if isinstance(c, ColumnTest)})
    warnings = [f"the extract has no `{name}` column: rules testing it give unknown" for name in used]
    for w in warnings:
        log.warning(w)
    return warnings


def patient_source(workdir: Path) -> tuple[pl.LazyFrame, str, bool]:
    """``enriched.parquet`` when present (rules may read SDOH columns), else ``patients.parquet``."""
    enriched = workdir / wd.ENRICHED
    if enriched.exists():
        return pl.scan_parquet(enriched), wd.ENRICHED, True
    return wd.scan(workdir, wd.PATIENTS, produced_by="ingest"), wd.PATIENTS, False
