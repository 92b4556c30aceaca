"""Small-cell suppression: primary (<11), complementary, and the invariants behind it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from segment.audit.suppress import (
    Derived,
    Equation,
    Hidden,
    TableRules,
    is_small,
    publish,
    suppress_table,
)

P, C = Hidden.PRIMARY, Hidden.COMPLEMENTARY
ONE_COL = TableRules()


def _col(values: list[int]) -> tuple[list[Hidden | None], Hidden | None]:
    statuses, total = suppress_table([{"n": v} for v in values], {"n": sum(values)}, ONE_COL)
    return [s["n"] for s in statuses], total["n"]


def test_primary_small_cells_and_zero() -> None:
    assert publish(7, P) == "<11" and publish(7, C) == "suppressed" and publish(7, None) == 7
    assert [is_small(v) for v in (0, 1, 10, 11)] == [False, True, True, False]
    # two small cells whose sum is 11 or more protect each other; zero is published
    assert _col([100, 5, 6, 0]) == ([None, P, P, None], None)


def test_single_small_cell_gets_a_complementary_partner() -> None:
    # total 155 is published: hiding only 5 would leave it as 155 - 100 - 50
    assert _col([100, 50, 5]) == ([None, C, P], None)


def test_small_hidden_sum_is_protected_too() -> None:
    # 3 + 4 = 7 would be recoverable as a combined small cell: hide the smallest other
    assert _col([100, 40, 3, 4]) == ([None, C, P, P], None)


def test_small_total_is_primary() -> None:
    assert _col([4, 3]) == ([P, P], P)


def test_row_base_hides_the_whole_row() -> None:
    rules = TableRules(row_bases=(("eligible", ("eligible", "selected")),))
    statuses, _total = suppress_table(
        [{"eligible": 8, "selected": 0}, {"eligible": 50, "selected": 20},
         {"eligible": 40, "selected": 15}],
        {"eligible": 98, "selected": 35},
        rules,
    )
    assert statuses[0] == {"eligible": P, "selected": P}
    # the column total 35 is published: selected of row 0 (0) must not be recoverable
    assert statuses[2]["selected"] is C and statuses[1]["selected"] is None
    assert statuses[2]["eligible"] is C  # 98 - 50 would reveal 8 otherwise


def test_derived_difference_is_protected() -> None:
    rules = TableRules(derived=(Derived(("eligible",), ("selected",)),), protected=("eligible",))
    statuses, total = suppress_table(
        [{"eligible": 30, "selected": 25}, {"eligible": 40, "selected": 20}],
        {"eligible": 70, "selected": 45},
        rules,
    )
    # 30 - 25 = 5 people eligible but not selected: selected is hidden, and its
    # column partner too (45 - 20 would give it back)
    assert statuses[0] == {"eligible": None, "selected": C}
    assert statuses[1] == {"eligible": None, "selected": C}
    assert total == {"eligible": None, "selected": None}


def test_row_equation() -> None:
    rules = TableRules(equations=(Equation("patients", ("a", "b", "c")),), protected=("patients",))
    _statuses, total = suppress_table(
        [{"patients": 60, "a": 4, "b": 30, "c": 26}],
        {"patients": 60, "a": 4, "b": 30, "c": 26},
        rules,
    )
    assert total == {"patients": None, "a": P, "b": None, "c": C}


# -- property: nothing small is published or recoverable by one subtraction ----------------
RULES = TableRules(
    row_bases=(("base", ("base", "x", "y", "z")),),
    equations=(Equation("base", ("x", "y")),),
    derived=(Derived(("base",), ("z",)), Derived(("x",), ("z",))),
    protected=("base",),
)


@st.composite
def tables(draw: st.DrawFn) -> list[dict[str, int]]:
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        x = draw(st.integers(0, 60))
        y = draw(st.integers(0, 60))
        z = draw(st.integers(0, x))
        rows.append({"base": x + y, "x": x, "y": y, "z": z})
    return rows


def _check_relations(values: dict[str, int], status: dict[str, Hidden | None]) -> None:
    for col, v in values.items():
        if status[col] is None:
            assert not is_small(v)
    for eq in RULES.equations:
        hidden = [p for p in eq.parts if status[p] is not None]
        if status[eq.total] is None:
            assert len(hidden) != 1
            assert not is_small(sum(values[p] for p in hidden))
    for d in RULES.derived:
        if all(status[c] is None for c in (*d.plus, *d.minus)):
            assert not is_small(sum(values[c] for c in d.plus) - sum(values[c] for c in d.minus))


@settings(max_examples=300, deadline=None)
@given(tables())
def test_no_small_count_published_or_recoverable(rows: list[dict[str, int]]) -> None:
    overall = {c: sum(r[c] for r in rows) for c in rows[0]}
    statuses, total = suppress_table(rows, overall, RULES)
    _check_relations(overall, total)
    for values, status in zip(rows, statuses, strict=True):
        _check_relations(values, status)
    for col in overall:
        hidden = [i for i, s in enumerate(statuses) if s[col] is not None]
        if total[col] is None:
            assert len(hidden) != 1 or rows[hidden[0]][col] == 0 or not any(
                rows[i][col] for i, s in enumerate(statuses) if s[col] is None
            )
            assert not is_small(sum(rows[i][col] for i in hidden)) or len(hidden) == len(rows)


def test_protected_selected_survives_a_small_difference() -> None:
    rules = TableRules(
        derived=(Derived(("contactable",), ("selected",)),),
        protected=("eligible", "selected"),
    )
    row = {"contactable": 349, "selected": 344}
    statuses, total = suppress_table([row], row, rules)
    assert total == {"contactable": C, "selected": None}
    assert statuses[0] == {"contactable": C, "selected": None}


def test_partner_preferences_missing_first_reference_last() -> None:
    rows = [{"n": 5}, {"n": 40}, {"n": 500}, {"n": 30}]
    overall = {"n": 575}

    def hidden(**kwargs: int) -> list[Hidden | None]:
        statuses, _ = suppress_table(rows, overall, ONE_COL, **kwargs)
        return [s["n"] for s in statuses]

    assert hidden() == [P, None, None, C]  # the smallest other group
    assert hidden(avoid_partner=3) == [P, C, None, None]  # not the reference group
    assert hidden(avoid_partner=3, preferred_partner=2) == [P, None, C, None]  # (missing)
    # the reference serves only when nothing else can
    assert _only_reference() == [P, C]


def _only_reference() -> list[Hidden | None]:
    statuses, _ = suppress_table([{"n": 5}, {"n": 40}], {"n": 45}, ONE_COL, avoid_partner=1)
    return [s["n"] for s in statuses]
