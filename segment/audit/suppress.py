"""Small-cell suppression with complementary suppression, for every published table.

Primary suppression: a count from 1 to 10 is published as ``"<11"`` (the CMS cell-size
rule); when a row's base count (its patients, or its eligible people) is 1-10, every
count that depends on it is suppressed too. Zero is published: it describes nobody.

Complementary suppression stops a hidden count from being recovered by arithmetic on
published ones. Such cells are published as ``"suppressed"``. Three kinds of relation
are checked until nothing changes:

* **Equations** ``total = part + part + ...`` (within a row, e.g. patients = the sum of
  the precision classes; and down every column, the overall row = the sum of the
  groups, because the overall figure is published). When exactly one part is hidden,
  or the hidden parts add up to 1-10, the smallest other non-zero part is hidden too
  (within a row, the row's total when no part can partner); when the total is hidden
  but no part is, the smallest non-zero part is hidden. Overall figures are never
  hidden to protect a group, because the overall row is shared by every dimension.
* **Derived counts** ``a - b`` (and ``a + b - c``) that count people without being
  published, e.g. eligible - selected ("eligible but not selected"): when every cell
  is shown and the difference is 1-10, the smallest of its non-zero cells is hidden.

Rates, intervals and ratios are published only when every count they are computed
from is published. The rules act on one dimension's table at a time; the overall row
is decided from its own figures first, so it is the same in every table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import polars as pl

from segment.audit.metrics import MIN_CELL, MISSING


class Hidden(StrEnum):
    """Why a published count is hidden."""

    PRIMARY = "primary"
    COMPLEMENTARY = "complementary"


#: what a hidden count is published as
SHOWN_AS = {Hidden.PRIMARY: f"<{MIN_CELL}", Hidden.COMPLEMENTARY: "suppressed"}


def is_small(value: int) -> bool:
    """A count that must not be published (1 to 10)."""
    return 0 < value < MIN_CELL


@dataclass(frozen=True)
class Equation:
    """A published relation ``total = sum(parts)`` within one row."""

    total: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Derived:
    """An unpublished count of people, ``sum(plus) - sum(minus)``, within one row."""

    plus: tuple[str, ...]
    minus: tuple[str, ...]


@dataclass(frozen=True)
class TableRules:
    """The relations between the count columns of one table."""

    #: (base column, the columns that depend on it): a small base hides them all
    row_bases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    equations: tuple[Equation, ...] = ()
    derived: tuple[Derived, ...] = ()
    #: columns whose overall value is the sum over the groups (default: every column)
    additive_columns: tuple[str, ...] | None = None
    #: columns never chosen for complementary suppression when another cell will do
    protected: tuple[str, ...] = field(default=())


Status = dict[str, Hidden | None]


def _choose(
    values: Mapping[str, int], status: Status, candidates: Sequence[str], protected: Sequence[str]
) -> str | None:
    shown = [c for c in candidates if status[c] is None and values[c] > 0]
    preferred = [c for c in shown if c not in protected] or shown
    if not preferred:
        return None
    return min(preferred, key=lambda c: (values[c], candidates.index(c)))


def _apply_row_rules(values: Mapping[str, int], status: Status, rules: TableRules) -> bool:
    changed = False
    for eq in rules.equations:
        hidden = [p for p in eq.parts if status[p] is not None]
        hidden_sum = sum(values[p] for p in hidden)
        need = (
            status[eq.total] is None and (len(hidden) == 1 or (hidden and is_small(hidden_sum)))
        ) or (status[eq.total] is not None and not hidden and values[eq.total] > 0)
        if need:
            pick = _choose(values, status, eq.parts, rules.protected)
            if pick is None and status[eq.total] is None and values[eq.total] > 0:
                pick = eq.total  # no part can partner: hide the total instead
            if pick is not None:
                status[pick] = Hidden.COMPLEMENTARY
                changed = True
    for d in rules.derived:
        cells = (*d.plus, *d.minus)
        if any(status[c] is not None for c in cells):
            continue
        if is_small(sum(values[c] for c in d.plus) - sum(values[c] for c in d.minus)):
            pick = _choose(values, status, cells, rules.protected)
            if pick is not None:
                status[pick] = Hidden.COMPLEMENTARY
                changed = True
    return changed


def _primary(values: Mapping[str, int], rules: TableRules) -> Status:
    status: Status = {c: (Hidden.PRIMARY if is_small(v) else None) for c, v in values.items()}
    for base, dependants in rules.row_bases:
        if is_small(values[base]):
            for c in dependants:
                status[c] = Hidden.PRIMARY
    return status


def suppress_table(
    rows: Sequence[Mapping[str, int]],
    overall: Mapping[str, int],
    rules: TableRules,
    *,
    preferred_partner: int | None = None,
    avoid_partner: int | None = None,
) -> tuple[list[Status], Status]:
    """Which cells of a dimension's table to hide: (one status per group row, overall).

    ``rows`` are the groups of one dimension (they partition the population) and
    ``overall`` is the published total row. A status maps each column to None (publish)
    or the :class:`Hidden` reason. Down a column, the complementary cell is taken from
    row ``preferred_partner`` when it can serve (the audit passes its "(missing)"
    group, the least informative one), otherwise from the smallest non-zero group
    other than ``avoid_partner`` (the reference group, whose figures every ratio
    needs), and from ``avoid_partner`` only when nothing else can serve.
    """
    total_status = _primary(overall, rules)
    while _apply_row_rules(overall, total_status, rules):
        pass
    statuses = [_primary(r, rules) for r in rows]
    columns = rules.additive_columns if rules.additive_columns is not None else tuple(overall)
    changed = True
    while changed:
        changed = False
        for values, status in zip(rows, statuses, strict=True):
            changed |= _apply_row_rules(values, status, rules)
        for col in columns:
            hidden = [i for i, s in enumerate(statuses) if s[col] is not None]
            hidden_sum = sum(rows[i][col] for i in hidden)
            total_hidden = total_status[col] is not None
            need = (
                not total_hidden and (len(hidden) == 1 or (hidden and is_small(hidden_sum)))
            ) or (total_hidden and not hidden and overall[col] > 0)
            if not need:
                continue
            shown = [i for i, s in enumerate(statuses) if s[col] is None and rows[i][col] > 0]
            if shown:
                others = [i for i in shown if i != avoid_partner] or shown
                pick = (
                    preferred_partner
                    if preferred_partner in shown
                    else min(others, key=lambda i: (rows[i][col], i))
                )
                statuses[pick][col] = Hidden.COMPLEMENTARY
                changed = True
    return statuses, total_status


def publish(value: int, status: Hidden | None) -> int | str:
    """A count as published: the number, ``"<11"`` or ``"suppressed"``."""
    return value if status is None else SHOWN_AS[status]


@dataclass(frozen=True)
class DimensionTable:
    """One dimension of a counts frame, suppressed: its rows, their counts and their statuses."""

    name: str
    #: the group rows (every column of the counts frame), in order
    groups: list[dict[str, Any]]
    #: the dimension's overall row (a null ``group``)
    overall: dict[str, Any]
    #: per group, the counts of the suppressed columns
    values: list[dict[str, int]]
    total: dict[str, int]
    statuses: list[Status]
    total_status: Status

    def index_of(self, group: str | None) -> int | None:
        """The position of ``group`` among the rows (None when absent)."""
        return _index_of(self.groups, group)


def _index_of(groups: Sequence[Mapping[str, Any]], group: str | None) -> int | None:
    return next((i for i, g in enumerate(groups) if g["group"] == group), None)


def suppressed_dimensions(
    counts: pl.DataFrame,
    columns: Sequence[str],
    rules: TableRules,
    *,
    references: Mapping[str, str | None] | None = None,
) -> Iterator[DimensionTable]:
    """Each dimension of ``counts``, in order, with :func:`suppress_table` applied to ``columns``.

    ``counts`` comes from :func:`segment.audit.metrics.group_counts` (a null ``group`` is
    a dimension's overall row; a null count is 0). The "(missing)" group is the preferred
    complementary partner; each dimension's reference group (``references``) is avoided.
    """
    for dim in dict.fromkeys(counts["dimension"].to_list()):
        part = counts.filter(pl.col("dimension") == dim)
        groups = part.filter(pl.col("group").is_not_null()).to_dicts()
        overall = part.filter(pl.col("group").is_null()).to_dicts()[0]
        values = [{c: int(g[c] or 0) for c in columns} for g in groups]
        total = {c: int(overall[c] or 0) for c in columns}
        statuses, total_status = suppress_table(
            values, total, rules, preferred_partner=_index_of(groups, MISSING),
            avoid_partner=_index_of(groups, (references or {}).get(str(dim))),
        )
        yield DimensionTable(str(dim), groups, overall, values, total, statuses, total_status)


def publish_dimensions(
    counts: pl.DataFrame,
    columns: Sequence[str],
    rules: TableRules,
    row: Callable[[dict[str, int], Status], dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Each dimension of ``counts`` suppressed and published: (overall row, ``dimensions``).

    ``counts`` comes from :func:`segment.audit.metrics.group_counts` (a null ``group`` is
    a dimension's overall row); ``row`` publishes one row's ``columns`` given its status.
    The "(missing)" group is the preferred complementary partner. The overall row is None
    when ``counts`` is empty.
    """
    overall_doc: dict[str, Any] | None = None
    dimensions: list[dict[str, Any]] = []
    for table in suppressed_dimensions(counts, columns, rules):
        if overall_doc is None:
            overall_doc = row(table.total, table.total_status)
        dimensions.append({"name": table.name, "groups": [
            {"group": g["group"], **row(v, st)}
            for g, v, st in zip(table.groups, table.values, table.statuses, strict=True)
        ]})
    return overall_doc, dimensions
