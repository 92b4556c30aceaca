"""Compiling a rule into Polars expressions over the per-patient frame.

The evaluation frame has one row per patient: the patient (or enriched) columns plus,
for every value set a rule uses, ``__last__<name>``: the date of the patient's most
recent event in that value set on or before the as-of date (see
:func:`segment.rules.evaluate.last_event_dates`). Every criterion compiles to a
:class:`Node` of expressions, with three-valued (Kleene) logic: a null test means
"cannot tell", which becomes status ``unknown``, never ``not_due``.

Why the last date is enough: every window ends on the as-of date, so "an event inside
the window" is "the most recent event is on or after the window start"; and
``min_age_at_event`` is monotone in the event date, so it holds for some event in the
window exactly when it holds for the most recent one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any, cast

import polars as pl

from segment.dates import age_in_months, age_in_years
from segment.rules.model import (
    AgeRange,
    AgeTest,
    AgeUnit,
    AllOf,
    AnyOf,
    ColumnTest,
    Criterion,
    EventTest,
    Evidence,
    IfMissing,
    Kind,
    Rule,
    Status,
    ValueSet,
    WindowKind,
)
from segment.rules.registry import (
    OPERATIONS,
    ValueKind,
    describe_value,
    is_age_between,
    is_deceased,
    is_episode_overlapping,
    is_event_within,
    is_sex_in,
    render,
    result_compared,
)

LAST_PREFIX = "__last__"
END_PREFIX = "__end__"
VALUE_PREFIX = "__value__"
NO_RESULT_PREFIX = "__noresult__"
BAD_UNIT_PREFIX = "__badunit__"
#: patient columns every rule may read
BASE_COLUMNS = ("patient_id", "birth_date", "sex", "deceased_date")
STEP_POPULATION, STEP_EXCLUSION, STEP_DECISION = 1, 2, 3

_NULL_DATE = pl.lit(None, pl.Date)


def _age(birth: pl.Expr, on: pl.Expr, months: bool) -> pl.Expr:
    """Completed months or years from ``birth`` to ``on`` (the rule's age unit)."""
    return age_in_months(birth, on) if months else age_in_years(birth, on)
_NULL_STR = pl.lit(None, pl.String)


#: how each window kind reads after "{label} on {date}" (met, not met)
WINDOW_PHRASES: dict[WindowKind, tuple[str, str]] = {
    WindowKind.EVER: ("", "is on record"),
    WindowKind.LOOKBACK: (" is within {window}", "is older than {window}"),
    WindowKind.MEASUREMENT_YEAR: (
        " is in the measurement year (since {start})",
        "is before the measurement year (since {start})",
    ),
    WindowKind.SEASON: (" is in the season since {start}", "is before the season since {start}"),
    WindowKind.YEARS_BEFORE: (
        " is in the {window} (since {start})",
        "is before the {window} (since {start})",
    ),
    WindowKind.FROM_DATE: (" is on or after {start}", "is before {start}"),
    WindowKind.SINCE: (
        " is on or after the last {anchor} on {start}",
        "is before the last {anchor} on {start}",
    ),
}



def last_column(key: str) -> str:
    """The evaluation-frame column holding the last event date of a lookup (a value set name, or an :class:`Evidence` key)."""
    return f"{LAST_PREFIX}{key}"


def value_column(key: str) -> str:
    """The evaluation-frame column holding the lowest result (in the rule's unit) on a lookup's last day."""
    return f"{VALUE_PREFIX}{key}"


def no_result_column(key: str) -> str:
    """The evaluation-frame column saying an event on a lookup's last day has no result."""
    return f"{NO_RESULT_PREFIX}{key}"


def bad_unit_column(key: str) -> str:
    """The evaluation-frame column naming a unit on a lookup's last day that cannot be converted."""
    return f"{BAD_UNIT_PREFIX}{key}"


def end_column(key: str) -> str:
    """The evaluation-frame column holding the latest end of an episode lookup."""
    return f"{END_PREFIX}{key}"


@dataclass(frozen=True)
class Node:
    """A compiled criterion: a nullable boolean test and the sentences explaining it."""

    test: pl.Expr
    met: pl.Expr
    not_met: pl.Expr
    missing: pl.Expr
    date: pl.Expr  # evidence date when met
    older: pl.Expr  # the not-met sentence when there is dated evidence, else null
    last: pl.Expr  # most recent relevant event date, met or not


@dataclass(frozen=True)
class Branch:
    """One outcome of a rule: the status it gives and how to explain it."""

    status: Status
    reason: pl.Expr
    evidence_date: pl.Expr
    step: int


@dataclass(frozen=True)
class CompiledRule:
    """A rule as expressions: ``status``, ``reason``, ``evidence_date`` and waterfall ``step``.

    ``branch`` is the index into ``branches`` of the outcome each patient gets (cheap,
    numeric). Evaluation filters rows by branch and renders each branch's reason only
    for its own rows, instead of building every sentence for every patient.
    """

    rule: Rule
    status: pl.Expr
    reason: pl.Expr
    evidence_date: pl.Expr
    step: pl.Expr
    branch: pl.Expr
    branches: tuple[Branch, ...]
    columns: frozenset[str]
    evidence: frozenset[Evidence]

    @property
    def valuesets(self) -> frozenset[str]:
        """Names of the value sets the rule reads."""
        return frozenset(e.valueset for e in self.evidence) | frozenset(
            e.answer for e in self.evidence if e.answer
        )


def _label(vs_name: str, valuesets: dict[str, ValueSet], label: str | None) -> str:
    if label:
        return label
    vs = valuesets.get(vs_name)
    return vs.title if vs is not None else vs_name.replace("-", " ")


class _Compiler:
    def __init__(self, valuesets: dict[str, ValueSet], as_of: dt.date, absent: frozenset[str] = frozenset()) -> None:
        self.valuesets = valuesets
        self.absent = absent
        self.as_of = as_of
        self.as_of_lit = pl.lit(as_of, pl.Date)
        self.columns: set[str] = set(BASE_COLUMNS)
        self.used: set[Evidence] = set()

    # -- leaves ---------------------------------------------------------------
    def event(self, c: EventTest) -> Node:
        op = OPERATIONS["event"]
        self.used.add(c.evidence)
        label = _label(c.valueset, self.valuesets, c.label)
        last = pl.col(last_column(c.evidence.key))
        window = c.window
        if c.episode:
            return self.episode(c, label, last)
        phrase_met, phrase_not = WINDOW_PHRASES[window.kind]
        values: dict[str, str | pl.Expr] = {"window": window.describe(), "label": label}
        start: pl.Expr | None
        anchor_missing: pl.Expr | None = None
        if window.kind is WindowKind.SINCE:
            self.used.add(Evidence(window.valueset))
            start = pl.col(last_column(window.valueset))
            anchor_label = _label(window.valueset, self.valuesets, None)
            values |= {"start": start, "anchor": anchor_label}
            anchor_missing = pl.lit(f"no {anchor_label} on record")
        else:
            fixed = window.start(self.as_of)
            start = pl.lit(fixed, pl.Date) if fixed is not None else None
            values["start"] = fixed.isoformat() if fixed is not None else ""
        until = c.evidence.until_date(self.as_of)
        if until is not None:
            # events after the window's end were left out of the lookup
            phrase_met += f" (counted up to {until.isoformat()})"
        in_window = is_event_within(last, start)
        met_phrase = render(phrase_met, **values)
        older_phrase = render(phrase_not, **values)
        met = render(op.reason("met"), label=label, date=last, phrase=met_phrase)
        branches = [(
            last.is_not_null() & ~in_window,
            render(op.reason("older"), label=label, date=last, phrase=older_phrase),
        )]
        test = in_window
        missing: pl.Expr = _NULL_STR
        age_at = c.age_at_event
        if age_at is not None:
            amount, months = age_at
            shown_age = f"{amount} months" if months else str(amount)
            old_enough = _age(pl.col("birth_date"), last, months) >= amount
            test = in_window & old_enough
            branches.append((
                in_window & ~old_enough,
                render(op.reason("too_young"), label=label, date=last, min_age=shown_age),
            ))
            missing = pl.lit(op.reason("missing").format(label=label))
        if c.result is not None:
            test, met, result_branches, result_missing = self.result(c, test, met, label, last, met_phrase)
            branches.extend(result_branches)
            missing = pl.when(test.is_null() & result_missing.is_not_null()).then(result_missing).otherwise(missing)
        older = _chain(branches, _NULL_STR)
        none_text = op.reason("none").format(label=label)
        if until is not None:
            none_text += f" up to {until.isoformat()}"
        none = pl.lit(none_text)
        if anchor_missing is not None and start is not None:
            none = pl.when(start.is_null()).then(anchor_missing).otherwise(none)
        return Node(
            test=test,
            met=met,
            not_met=pl.coalesce(older, none),
            missing=missing,
            date=pl.when(test.fill_null(False)).then(last).otherwise(_NULL_DATE),
            older=older,
            last=last,
        )

    def result(
        self, c: EventTest, found: pl.Expr, met: pl.Expr, label: str, last: pl.Expr, phrase: pl.Expr
    ) -> tuple[pl.Expr, pl.Expr, list[tuple[pl.Expr, pl.Expr]], pl.Expr]:
        """The most recent event's result compared with a number: test, met, not-met branches, missing."""
        assert c.result is not None
        op = OPERATIONS["result"]
        compare = OPERATIONS[c.result.op]
        key = c.evidence.key
        value = pl.col(value_column(key))
        no_result = pl.col(no_result_column(key))
        bad_unit = pl.col(bad_unit_column(key))
        unit = c.result.unit
        joiner = " " if unit[:1].isalnum() else ""
        expected = f"{describe_value(c.result.value)}{joiner}{unit}"
        values: dict[str, str | pl.Expr] = {
            "actual": value.round(2).cast(pl.String) + pl.lit(f"{joiner}{unit}"),
            "symbol": compare.symbol, "expected": expected, "found": bad_unit,
        }
        outcome = result_compared(value, no_result, bad_unit, compare, c.result.value)
        test = found & outcome
        met = pl.concat_str([met, pl.lit(", "), render(op.reason("met"), **values)])
        head = render(OPERATIONS["event"].reason("met"), label=label, date=last, phrase=phrase)
        last_head = pl.lit("last ") + head
        branches = [
            (found & no_result.fill_null(False),
             pl.concat_str([last_head, pl.lit(" but " + op.reason("no_result"))])),
            (found & (outcome == False),  # noqa: E712 (a Polars expression, not a bool)
             pl.concat_str([last_head, pl.lit(", "), render(op.reason("not_met"), **values)])),
        ]
        missing = pl.when(found.fill_null(False) & bad_unit.is_not_null()).then(
            pl.concat_str([last_head, pl.lit(" but "), render(op.reason("unit"), **values)])
        )
        return test, met, branches, missing

    def column(self, c: ColumnTest) -> Node:
        op = OPERATIONS[c.op]
        self.columns.add(c.column)
        col = pl.col(c.column)
        if c.column in self.absent:
            # no source has this column: every patient would look the same, so nothing is decided
            # (``if_missing`` is about a patient's missing value, not about a missing column)
            reason = pl.lit(f"extract has no {c.column} column")
            null = pl.lit(None, pl.Boolean)
            return Node(null, reason, reason, reason, _NULL_DATE, _NULL_STR, _NULL_DATE)
        raw = op.build(col) if op.value is ValueKind.NONE else op.build(col, c.value)
        name = c.label or c.column
        values: dict[str, str | pl.Expr] = {
            "name": name, "actual": _shown(col), "symbol": op.symbol,
            "expected": describe_value(c.value),
        }
        met = render(op.reason("met"), **values)
        not_met = render(op.reason("not_met"), **values)
        missing = pl.lit(op.reason("missing").format(name=name))
        test = raw
        if c.if_missing is not IfMissing.UNKNOWN and op.value is not ValueKind.NONE:
            policy = c.if_missing is IfMissing.TRUE
            test = pl.when(col.is_null()).then(pl.lit(policy)).otherwise(raw)
            counted = pl.lit(f"no {name} on record (counted as {'met' if policy else 'not met'})")
            met = pl.when(col.is_null()).then(counted).otherwise(met)
            not_met = pl.when(col.is_null()).then(counted).otherwise(not_met)
        return Node(test, met, not_met, missing, _NULL_DATE, not_met, _NULL_DATE)

    def episode(self, c: EventTest, label: str, last: pl.Expr) -> Node:
        """A span (start to end, or still ongoing) that overlaps the window."""
        op = OPERATIONS["episode"]
        window = c.window
        end = pl.col(end_column(c.evidence.key))
        fixed = window.start(self.as_of)
        start = pl.lit(fixed, pl.Date) if fixed is not None else None
        if window.kind is WindowKind.SINCE:
            self.used.add(Evidence(window.valueset))
            start = pl.col(last_column(window.valueset))
        test = is_episode_overlapping(last, end, start)
        ongoing = end >= self.as_of_lit
        values: dict[str, str | pl.Expr] = {
            "label": label, "date": last, "window": window.describe(),
            "span": pl.when(ongoing).then(pl.lit("still ongoing")).otherwise(pl.lit("to ") + end.cast(pl.String)),
        }
        met = render(op.reason("met"), **values)
        older = pl.when(last.is_not_null() & ~test.fill_null(False)).then(render(op.reason("older"), **values))
        none = pl.lit(op.reason("none").format(label=label))
        return Node(
            test=test, met=met, not_met=pl.coalesce(older, none), missing=_NULL_STR,
            date=pl.when(test.fill_null(False)).then(last).otherwise(_NULL_DATE), older=older, last=last,
        )

    def age(self, rng: AgeRange, label: str | None = None) -> Node:
        """Age in completed units on the as-of date, or at the end of the measurement year."""
        op = OPERATIONS["age"]
        months = rng.unit is AgeUnit.MONTHS
        day = rng.on(self.as_of)
        age = _age(pl.col("birth_date"), pl.lit(day, pl.Date), months)
        shown = age.cast(pl.String) + (" months" if months else "")
        values: dict[str, str | pl.Expr] = {"age": shown, "as_of": day.isoformat(), "range": rng.describe()}
        met = render(op.reason("met"), **values)
        if label:
            met = pl.concat_str([pl.lit(f"{label}: "), met])
        return Node(
            test=is_age_between(age, rng.min, rng.max) & (age >= 0),
            met=met,
            not_met=pl.when(age < 0)
            .then(render(op.reason("unborn"), **values))
            .otherwise(render(op.reason("not_met"), **values)),
            missing=render(op.reason("missing"), **values),
            date=_NULL_DATE, older=_NULL_STR, last=_NULL_DATE,
        )

    # -- combinators -----------------------------------------------------------
    def any_of(self, nodes: list[Node], label: str | None = None) -> Node:
        test = reduce(lambda a, b: a | b, (n.test for n in nodes))
        met = _first(nodes, lambda n: n.test.fill_null(False), lambda n: n.met)
        missing = _first(nodes, lambda n: n.test.is_null(), lambda n: n.missing)
        date = _first(nodes, lambda n: n.test.fill_null(False), lambda n: n.date, _NULL_DATE)
        not_met = pl.concat_str([n.not_met for n in nodes], separator=" and ", ignore_nulls=True)
        older = _join_nonnull([n.older for n in nodes], "; ")
        if label:
            met = pl.concat_str([pl.lit(f"{label}: "), met])
        return Node(test, met, not_met, missing, date, older, _max([n.last for n in nodes]))

    def all_of(self, nodes: list[Node], label: str | None = None) -> Node:
        test = reduce(lambda a, b: a & b, (n.test for n in nodes))
        met = pl.concat_str([n.met for n in nodes], separator=" and ", ignore_nulls=True)
        not_met = _first(nodes, lambda n: ~n.test.fill_null(True), lambda n: n.not_met)
        missing = _first(nodes, lambda n: n.test.is_null(), lambda n: n.missing)
        if label:
            met = pl.concat_str([pl.lit(f"{label}: "), met])
        older = pl.when(~test.fill_null(True)).then(not_met).otherwise(_NULL_STR)
        dates = _max([n.date for n in nodes])
        return Node(test, met, not_met, missing, dates, older, _max([n.last for n in nodes]))

    def criterion(self, c: Criterion) -> Node:
        if isinstance(c, EventTest):
            return self.event(c)
        if isinstance(c, ColumnTest):
            return self.column(c)
        if isinstance(c, AgeTest):
            return self.age(c.age, c.label)
        if isinstance(c, AnyOf):
            return self.any_of([self.criterion(x) for x in c.any], c.label)
        return self.all_of([self.criterion(x) for x in c.all], c.label)

    # -- rule parts -------------------------------------------------------------
    def population(self, rule: Rule) -> Node | None:
        parts: list[Node] = []
        pop = rule.population
        if pop.age is not None:
            parts.append(self.age(pop.age))
        if pop.sex is not None:
            op = OPERATIONS["sex"]
            allowed = [s.value for s in pop.sex]
            sex = pl.col("sex")
            values: dict[str, str | pl.Expr] = {
                "actual": pl.coalesce(sex, pl.lit("missing")), "sexes": ", ".join(allowed),
            }
            parts.append(Node(
                test=is_sex_in(sex, allowed),
                met=render(op.reason("met"), **values),
                not_met=render(op.reason("not_met"), **values),
                missing=render(op.reason("missing"), **values),
                date=_NULL_DATE, older=_NULL_STR, last=_NULL_DATE,
            ))
        parts.extend(self.criterion(c) for c in pop.conditions)
        return self.all_of(parts) if parts else None

    def exclusions(self, rule: Rule) -> Node | None:
        parts: list[Node] = []
        if rule.exclude_deceased:
            died = pl.col("deceased_date")
            test = is_deceased(died, self.as_of_lit)
            met = render(OPERATIONS["deceased"].reason("met"), date=died)
            parts.append(Node(test, met, _NULL_STR, _NULL_STR,
                              pl.when(test).then(died).otherwise(_NULL_DATE), _NULL_STR, _NULL_DATE))
        parts.extend(self.criterion(c) for c in rule.exclusions)
        return self.any_of(parts) if parts else None


def compile_rule(
    rule: Rule, valuesets: dict[str, ValueSet], as_of: dt.date, *, absent: frozenset[str] = frozenset()
) -> CompiledRule:
    """Compile ``rule`` for the run date ``as_of`` into status/reason/evidence expressions.

    ``absent`` names the patient columns that no source of the extract provided: a test of
    one of them is ``unknown`` with the reason "extract has no <column> column".
    """
    comp = _Compiler(valuesets, as_of, absent)
    pop = comp.population(rule)
    excl = comp.exclusions(rule)
    chain_status: list[tuple[pl.Expr, Status, pl.Expr, pl.Expr, int]] = []
    if pop is not None:
        chain_status.append((~pop.test.fill_null(True), Status.NOT_IN_POPULATION, pop.not_met,
                             _NULL_DATE, STEP_POPULATION))
        chain_status.append((pop.test.is_null(), Status.UNKNOWN, pop.missing, _NULL_DATE,
                             STEP_POPULATION))
    if excl is not None:
        chain_status.append((excl.test.fill_null(False), Status.EXCLUDED, excl.met, excl.date,
                             STEP_EXCLUSION))
        chain_status.append((excl.test.is_null(), Status.UNKNOWN, excl.missing, _NULL_DATE,
                             STEP_EXCLUSION))
    if rule.kind is Kind.SCREENING:
        assert rule.due is not None
        due = comp.any_of([comp.criterion(c) for c in rule.due.unless])
        labels = _label_list(rule, comp)
        ends = {c.evidence.until_date(as_of) for c in rule.due.unless if isinstance(c, EventTest)}
        # windows that end before the as-of date say so: a later event is not "on record" for them
        end = ends.pop() if len(ends) == 1 else None
        up_to = f" up to {end.isoformat()}" if end is not None else ""
        due_reason = pl.coalesce(
            pl.concat_str([pl.lit(f"no qualifying {rule.due.label}: "), due.older]),
            pl.lit(f"no qualifying {rule.due.label} on record{up_to} ({labels})"),
        )
        chain_status.append((due.test.fill_null(False), Status.NOT_DUE, due.met, due.date,
                             STEP_DECISION))
        chain_status.append((due.test.is_null(), Status.UNKNOWN, due.missing, _NULL_DATE,
                             STEP_DECISION))
        final = (Status.DUE, due_reason, due.last)
    else:
        assert rule.condition is not None
        cond = comp.criterion(rule.condition)
        chain_status.append((cond.test.fill_null(False), Status.DUE, cond.met, cond.date,
                             STEP_DECISION))
        chain_status.append((~cond.test.fill_null(True), Status.NOT_DUE, cond.not_met,
                             _NULL_DATE, STEP_DECISION))
        final = (Status.UNKNOWN, cond.missing, _NULL_DATE)

    status = _chain([(c, pl.lit(st.value)) for c, st, _, _, _ in chain_status], pl.lit(final[0].value))
    reason = _chain([(c, r) for c, _, r, _, _ in chain_status], final[1])
    evidence = _chain([(c, d) for c, _, _, d, _ in chain_status], final[2])
    step = _chain([(c, pl.lit(s)) for c, _, _, _, s in chain_status], pl.lit(STEP_DECISION))
    branch = _chain([(c, pl.lit(i, pl.UInt8)) for i, (c, *_rest) in enumerate(chain_status)],
                    pl.lit(len(chain_status), pl.UInt8))
    branches = (
        *(Branch(st, r.cast(pl.String), d.cast(pl.Date), s) for _c, st, r, d, s in chain_status),
        Branch(final[0], final[1].cast(pl.String), final[2].cast(pl.Date), STEP_DECISION),
    )
    return CompiledRule(
        rule=rule,
        status=status.cast(pl.String),
        reason=reason.cast(pl.String),
        evidence_date=evidence.cast(pl.Date),
        step=step.cast(pl.Int8),
        branch=branch,
        branches=branches,
        columns=frozenset(comp.columns),
        evidence=frozenset(comp.used),
    )


def _label_list(rule: Rule, comp: _Compiler) -> str:
    assert rule.due is not None
    names: list[str] = []
    for c in rule.due.unless:
        if isinstance(c, EventTest):
            names.append(_label(c.valueset, comp.valuesets, c.label))
        elif isinstance(c, AnyOf | AllOf) and c.label:
            names.append(c.label)
        elif isinstance(c, ColumnTest):
            names.append(c.label or c.column)
    return ", ".join(dict.fromkeys(names))


def _chain(branches: list[tuple[pl.Expr, pl.Expr]], otherwise: pl.Expr) -> pl.Expr:
    """``when(c1).then(v1).when(c2).then(v2)...otherwise(otherwise)``."""
    if not branches:
        return otherwise
    expr: Any = pl
    for cond, value in branches:
        expr = expr.when(cond).then(value)
    return cast(pl.Expr, expr.otherwise(otherwise))


def _first(
    nodes: list[Node],
    cond: Callable[[Node], pl.Expr],
    pick: Callable[[Node], pl.Expr],
    default: pl.Expr = _NULL_STR,
) -> pl.Expr:
    """The ``pick`` of the first node whose ``cond`` holds (in listed order)."""
    return _chain([(cond(n), pick(n)) for n in nodes], default)


def _max(exprs: list[pl.Expr]) -> pl.Expr:
    return exprs[0] if len(exprs) == 1 else pl.max_horizontal(exprs)


def _join_nonnull(exprs: list[pl.Expr], sep: str) -> pl.Expr:
    """Join the non-null sentences; null when all are null."""
    if len(exprs) == 1:
        return exprs[0]
    joined = pl.concat_str(exprs, separator=sep, ignore_nulls=True)
    return pl.when(pl.any_horizontal([e.is_not_null() for e in exprs])).then(joined).otherwise(_NULL_STR)


def _shown(col: pl.Expr) -> pl.Expr:
    """A column value as it reads in a reason."""
    return col.cast(pl.String)
