"""The examples inside the shipped rule files, run by one parametrized test (as sqlfluff does)."""

from __future__ import annotations

import pytest

from segment.rules import default_rules_dir, load_rules, possible_statuses
from segment.rules.examples import run_example

SHIPPED = load_rules(default_rules_dir())
SHIPPED_IDS = {
    "breast-cancer-screening", "colorectal-cancer-screening", "cervical-cancer-screening",
    "flu-vaccine", "ed-follow-up", "diabetes-a1c", "annual-wellness-visit", "high-area-need",
    "digital-divide",
}
CASES = [(rule, ex) for rule in SHIPPED.rules for ex in rule.examples]


def test_the_contract_rule_ids_ship() -> None:
    assert {r.id for r in SHIPPED.rules} == SHIPPED_IDS


@pytest.mark.parametrize(
    "rule,example", CASES, ids=[f"{r.id}: {e.name}" for r, e in CASES]
)
def test_rule_example(rule, example) -> None:  # type: ignore[no-untyped-def]
    result = run_example(rule, example, SHIPPED)
    assert result.status == example.expect.value, result.reason
    if example.reason is not None:
        assert example.reason in result.reason


@pytest.mark.parametrize("rule", SHIPPED.rules, ids=[r.id for r in SHIPPED.rules])
def test_every_status_a_rule_can_give_has_an_example(rule) -> None:  # type: ignore[no-untyped-def]
    covered = {e.expect for e in rule.examples}
    assert possible_statuses(rule) <= covered


@pytest.mark.parametrize("rule", SHIPPED.rules, ids=[r.id for r in SHIPPED.rules])
def test_every_rule_cites_a_source_with_a_year(rule) -> None:  # type: ignore[no-untyped-def]
    assert any(str(y) in rule.source for y in range(2010, 2031)), rule.source
