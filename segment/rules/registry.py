"""The one registry of rule operations: name, typed parameters, expression, reason templates.

Every test a rule can make is an :class:`Operation` registered here with
:func:`register_operation` (after pandera's ``register_builtin_check``): a small typed
function returning a ``pl.Expr`` plus the sentences used to explain its outcome.
Column operations (``eq``, ``ge``, ``in``...) are used by ``column:`` criteria; the
built-in ``age``, ``sex``, ``event`` and ``deceased`` operations are used by the
compiler for population, exclusion and due criteria, so every reason a rule can give
comes from a template in this one module.

Templates are ``str.format`` strings. Static placeholders (``{name}``, ``{expected}``,
``{window}``...) are filled when the rule is compiled; dynamic ones (``{actual}``,
``{date}``, ``{age}``) become Polars expressions, see :func:`render`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import polars as pl


class ValueKind(StrEnum):
    """What an operation's ``value:`` must be."""

    NONE = "none"
    NUMBER = "number"
    SCALAR = "scalar"
    LIST = "list"
    BUILTIN = "builtin"


@dataclass(frozen=True)
class Operation:
    """A registered operation: how to build its expression and how to explain it."""

    name: str
    build: Callable[..., pl.Expr]
    value: ValueKind
    symbol: str = ""
    aliases: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)

    def reason(self, key: str) -> str:
        """The reason template ``key`` (met, not_met, missing...)."""
        return self.reasons[key]


OPERATIONS: dict[str, Operation] = {}
_ALIASES: dict[str, str] = {}


def register_operation(
    name: str,
    *,
    value: ValueKind,
    symbol: str = "",
    aliases: tuple[str, ...] = (),
    **reasons: str,
) -> Callable[[Callable[..., pl.Expr]], Callable[..., pl.Expr]]:
    """Register ``fn`` as operation ``name`` with its reason templates."""

    def decorator(fn: Callable[..., pl.Expr]) -> Callable[..., pl.Expr]:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} registered twice")
        OPERATIONS[name] = Operation(name, fn, value, symbol, aliases, dict(reasons))
        for alias in (name, *aliases):
            _ALIASES[alias] = name
        return fn

    return decorator


def resolve_op(name: str) -> str | None:
    """The canonical name of a column operation or one of its aliases, else None."""
    canonical = _ALIASES.get(name.strip())
    if canonical is None or OPERATIONS[canonical].value is ValueKind.BUILTIN:
        return None
    return canonical


# -- column operations ---------------------------------------------------------------
_CMP_MET = "{name} is {actual} ({symbol} {expected})"
_CMP_NOT = "{name} is {actual} (needs {symbol} {expected})"
_MISSING = "{name} is missing"


@register_operation(
    "eq", value=ValueKind.SCALAR, symbol="=", aliases=("==", "equal_to"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def eq(column: pl.Expr, value: Any) -> pl.Expr:
    """Column equals the value."""
    return column == value


@register_operation(
    "ne", value=ValueKind.SCALAR, symbol="≠", aliases=("!=", "not_equal_to"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def ne(column: pl.Expr, value: Any) -> pl.Expr:
    """Column differs from the value."""
    return column != value


@register_operation(
    "gt", value=ValueKind.NUMBER, symbol=">", aliases=(">", "greater_than"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def gt(column: pl.Expr, value: float) -> pl.Expr:
    """Column is greater than the value."""
    return column > value


@register_operation(
    "ge", value=ValueKind.NUMBER, symbol="≥", aliases=(">=", "greater_than_or_equal_to"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def ge(column: pl.Expr, value: float) -> pl.Expr:
    """Column is greater than or equal to the value."""
    return column >= value


@register_operation(
    "lt", value=ValueKind.NUMBER, symbol="<", aliases=("<", "less_than"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def lt(column: pl.Expr, value: float) -> pl.Expr:
    """Column is less than the value."""
    return column < value


@register_operation(
    "le", value=ValueKind.NUMBER, symbol="≤", aliases=("<=", "less_than_or_equal_to"),
    met=_CMP_MET, not_met=_CMP_NOT, missing=_MISSING,
)
def le(column: pl.Expr, value: float) -> pl.Expr:
    """Column is less than or equal to the value."""
    return column <= value


def _text_if_listed_text(column: pl.Expr, values: list[Any]) -> pl.Expr:
    """The column as text when every listed value is text.

    A categorical column (``phone_type``, ``geo_precision``, a rule ``status`` are Polars
    Enums) compared with a list holding a value outside its categories would raise; as text,
    that value simply matches nothing, as it does on a String column.
    """
    return column.cast(pl.String) if values and all(isinstance(v, str) for v in values) else column


@register_operation(
    "in", value=ValueKind.LIST, symbol="in", aliases=("isin", "one_of"),
    met="{name} is {actual} (one of {expected})",
    not_met="{name} is {actual} (needs one of {expected})", missing=_MISSING,
)
def in_(column: pl.Expr, value: list[Any]) -> pl.Expr:
    """Column is one of the listed values."""
    return _text_if_listed_text(column, value).is_in(value)


@register_operation(
    "not_in", value=ValueKind.LIST, symbol="not in", aliases=("notin", "none_of"),
    met="{name} is {actual} (none of {expected})",
    not_met="{name} is {actual} (needs none of {expected})", missing=_MISSING,
)
def not_in(column: pl.Expr, value: list[Any]) -> pl.Expr:
    """Column is none of the listed values."""
    return ~_text_if_listed_text(column, value).is_in(value)


@register_operation(
    "is_null", value=ValueKind.NONE, aliases=("missing",),
    met="no {name} on record", not_met="{name} is on record", missing=_MISSING,
)
def is_null(column: pl.Expr) -> pl.Expr:
    """Column is empty (no value on record)."""
    return column.is_null()


@register_operation(
    "not_null", value=ValueKind.NONE, aliases=("present",),
    met="{name} is on record", not_met="no {name} on record", missing=_MISSING,
)
def not_null(column: pl.Expr) -> pl.Expr:
    """Column has a value."""
    return column.is_not_null()


@register_operation(
    "is_true", value=ValueKind.NONE,
    met="{name} is yes", not_met="{name} is no", missing=_MISSING,
)
def is_true(column: pl.Expr) -> pl.Expr:
    """Boolean column is true (null stays unknown)."""
    return column.cast(pl.Boolean)


@register_operation(
    "is_false", value=ValueKind.NONE,
    met="{name} is no", not_met="{name} is yes", missing=_MISSING,
)
def is_false(column: pl.Expr) -> pl.Expr:
    """Boolean column is false (null stays unknown)."""
    return ~column.cast(pl.Boolean)


# -- built-in operations used by population, exclusion and due criteria ---------------
@register_operation(
    "age", value=ValueKind.BUILTIN,
    met="aged {age} on {as_of}, within {range}",
    not_met="aged {age} on {as_of}, outside {range}",
    unborn="birth date is after {as_of}; cannot be in age {range}",
    missing="birth date missing; cannot check age {range}",
)
def is_age_between(age: pl.Expr, low: int | None, high: int | None) -> pl.Expr:
    """Age (completed units on the as-of date) within inclusive bounds."""
    test = pl.lit(True)
    if low is not None:
        test = test & (age >= low)
    if high is not None:
        test = test & (age <= high)
    return test


@register_operation(
    "sex", value=ValueKind.BUILTIN,
    met="sex {actual}, rule is for {sexes}",
    not_met="sex {actual}; rule is for {sexes}",
    missing="sex {actual}; rule is for {sexes}, cannot decide",
)
def is_sex_in(sex: pl.Expr, allowed: list[str]) -> pl.Expr:
    """Sex is one of ``allowed``; null, U, and X (when X is not listed) are unknown."""
    undecided = sex.is_null() | (sex == "U")
    if "X" not in allowed:
        undecided = undecided | (sex == "X")
    return pl.when(undecided).then(pl.lit(None, pl.Boolean)).otherwise(sex.is_in(allowed))


@register_operation(
    "event", value=ValueKind.BUILTIN,
    met="{label} on {date}{phrase}",
    older="last {label} on {date} {phrase}",
    too_young="last {label} on {date} was before age {min_age}",
    none="no {label} on record",
    missing="birth date missing; cannot check age at {label}",
)
def is_event_within(last: pl.Expr, start: pl.Expr | None) -> pl.Expr:
    """The most recent event of a value set (on or before the as-of date) is in the window."""
    if start is None:
        return last.is_not_null()
    return (last >= start).fill_null(False)


@register_operation(
    "episode", value=ValueKind.BUILTIN,
    met="{label} from {date}, {span}, overlaps {window}",
    older="{label} from {date} ended before {window}",
    none="no {label} on record",
)
def is_episode_overlapping(start: pl.Expr, end: pl.Expr, window_start: pl.Expr | None) -> pl.Expr:
    """An episode that began on or before the as-of date (``start``) and lasts into the window."""
    if window_start is None:
        return start.is_not_null()
    return (start.is_not_null() & (end >= window_start)).fill_null(False)


@register_operation(
    "result", value=ValueKind.BUILTIN,
    met="result {actual} ({symbol} {expected})",
    not_met="result {actual} (needs {symbol} {expected})",
    no_result="has no result",
    unit="has a result in {found}, which cannot be compared with {expected}",
)
def result_compared(
    value: pl.Expr, no_result: pl.Expr, bad_unit: pl.Expr, compare: Operation, expected: float
) -> pl.Expr:
    """The most recent event's result (in the rule's unit) compared by a numeric operation.

    No result on that day is false (the comparison cannot hold: CMS122's "without result"
    is poor control); a unit that cannot be converted is unknown.
    """
    return (
        pl.when(no_result.fill_null(False)).then(pl.lit(False))
        .when(bad_unit.is_not_null()).then(pl.lit(None, pl.Boolean))
        .otherwise(compare.build(value, expected))
    )


@register_operation("deceased", value=ValueKind.BUILTIN, met="died on {date}")
def is_deceased(deceased_date: pl.Expr, as_of: pl.Expr) -> pl.Expr:
    """Date of death on or before the as-of date."""
    return (deceased_date <= as_of).fill_null(False)


COLUMN_OPERATIONS: tuple[str, ...] = tuple(
    name for name, op in OPERATIONS.items() if op.value is not ValueKind.BUILTIN
)


def render(template: str, **values: str | pl.Expr) -> pl.Expr:
    """A template as a string expression: text values are inlined, expressions concatenated.

    The result is null when a dynamic value is null, so callers can ``coalesce``.
    """
    pieces: list[pl.Expr] = []
    text = ""
    for literal, field_name, spec, _conv in string.Formatter().parse(template):
        text += literal
        if field_name is None:
            continue
        value = values[field_name]
        if isinstance(value, pl.Expr):
            if text:
                pieces.append(pl.lit(text))
                text = ""
            pieces.append(_as_text(value))
        else:
            text += format(value, spec) if spec else str(value)
    if text or not pieces:
        pieces.append(pl.lit(text))
    return pieces[0] if len(pieces) == 1 else pl.concat_str(pieces)


def _as_text(expr: pl.Expr) -> pl.Expr:
    """Dates as ISO text, everything else through Polars' string cast."""
    return expr.cast(pl.String)


def describe_value(value: Any) -> str:
    """A rule value as it reads in a reason: lists comma-separated, floats trimmed."""
    if isinstance(value, list | tuple):
        return ", ".join(describe_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
