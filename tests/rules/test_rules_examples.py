"""The examples inside the shipped rule files, run by one parametrized test (as sqlfluff does).

Two shipped folders: ``rules/`` (USPSTF-style rules, loaded as they ship) and
``rules/ecqm/`` (eCQM rules, which need the eCQM value sets from VSAC: read from the
reference data, ``vsac/ecqm_cms_2025``, as ``--vsac`` would; skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segment.config import load_yaml
from segment.errors import RulesError
from segment.rules import RuleSet, default_rules_dir, load_rules, possible_statuses
from segment.rules.examples import run_example
from segment.rules.loader import validate_rule
from segment.rules.model import Example, Rule

SHIPPED = load_rules(default_rules_dir())
SHIPPED_IDS = {
    "breast-cancer-screening", "colorectal-cancer-screening", "cervical-cancer-screening",
    "flu-vaccine", "ed-follow-up", "diabetes-a1c", "annual-wellness-visit", "high-area-need",
    "digital-divide",
}
ECQM_DIR = default_rules_dir() / "ecqm"
ECQM_IDS = {
    "breast-cancer-screening-cms125", "colorectal-cancer-screening-cms130",
    "cervical-cancer-screening-cms124", "diabetes-a1c-cms122", "influenza-immunization-cms147",
}
#: the eCQM rule files as written (validating a file needs no value sets; running it does)
ECQM_RULES = [validate_rule(load_yaml(p, RulesError), p, p.stem) for p in sorted(ECQM_DIR.glob("*.yaml"))]
CASES = [(rule, ex) for rule in SHIPPED.rules for ex in rule.examples]
ECQM_CASES = [(rule.id, i, ex.name) for rule in ECQM_RULES for i, ex in enumerate(rule.examples)]
RULES = [*SHIPPED.rules, *ECQM_RULES]


@pytest.fixture(scope="module")
def ecqm(reference_data: Path) -> RuleSet:
    """rules/ecqm with the real eCQM value sets (as ``--vsac vsac/ecqm_cms_2025``)."""
    return load_rules(ECQM_DIR, vsac=reference_data / "vsac" / "ecqm_cms_2025")


def test_the_contract_rule_ids_ship() -> None:
    assert {r.id for r in SHIPPED.rules} == SHIPPED_IDS


def test_the_default_folder_does_not_read_the_ecqm_subfolder() -> None:
    assert ECQM_DIR.is_dir()
    assert not any(Path(p).parent == ECQM_DIR for p in SHIPPED.paths.values())


def test_the_ecqm_rule_ids_ship() -> None:
    assert {r.id for r in ECQM_RULES} == ECQM_IDS
    assert len(ECQM_CASES) >= 100


@pytest.mark.parametrize("rule,example", CASES, ids=[f"{r.id}: {e.name}" for r, e in CASES])
def test_rule_example(rule: Rule, example: Example) -> None:
    result = run_example(rule, example, SHIPPED)
    assert result.status == example.expect.value, result.reason
    if example.reason is not None:
        assert example.reason in result.reason


@pytest.mark.reference
@pytest.mark.parametrize("rule_id,index,name", ECQM_CASES,
                         ids=[f"{r}: {n}" for r, _i, n in ECQM_CASES])
def test_ecqm_rule_example(ecqm: RuleSet, rule_id: str, index: int, name: str) -> None:
    rule = ecqm.get(rule_id)
    example = rule.examples[index]
    result = run_example(rule, example, ecqm)
    assert result.status == example.expect.value, result.reason
    if example.reason is not None:
        assert example.reason in result.reason


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_status_a_rule_can_give_has_an_example(rule: Rule) -> None:
    covered = {e.expect for e in rule.examples}
    assert possible_statuses(rule) <= covered


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_rule_cites_a_source_with_a_year(rule: Rule) -> None:
    assert any(str(y) in rule.source for y in range(2010, 2031)), rule.source
