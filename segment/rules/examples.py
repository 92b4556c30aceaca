"""Running the example patients written inside rule files (``segment rules test``, pytest).

Each example becomes a one-patient frame and is evaluated through exactly the same
compiled plan as a real working folder, so an example that passes documents what the
rule really does. A rule must carry an example for every status it can give.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from segment.rules.evaluate import KNOWN_TYPES, evaluate_frames
from segment.rules.loader import iter_criteria
from segment.rules.model import ColumnTest, EventTest, Example, IfMissing, Rule, RuleSet, Status
from segment.schema import EVENT_SCHEMA

EXAMPLE_PATIENT_ID = "example"


@dataclass(frozen=True)
class ExampleResult:
    """The outcome of one example (or a missing-coverage finding when ``example`` is empty)."""

    rule_id: str
    example: str
    expected: str
    status: str
    reason: str
    ok: bool
    path: str = ""

    def describe(self) -> str:
        """One line for ``segment rules test`` output."""
        if self.ok:
            return f"ok    {self.rule_id}: {self.example}"
        if not self.example:
            return f"FAIL  {self.rule_id}: {self.reason}"
        return (f"FAIL  {self.rule_id}: {self.example}: expected {self.expected}, got "
                f"{self.status} ({self.reason})")


def example_frames(rule: Rule, example: Example) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The example as canonical patients and events frames."""
    p = example.patient
    values: dict[str, object] = {
        "patient_id": EXAMPLE_PATIENT_ID,
        "birth_date": p.birth_date,
        "sex": p.sex.value if p.sex is not None else None,
        "deceased_date": p.deceased_date,
        **p.columns,
    }
    for criterion, _keys in iter_criteria(rule):
        if isinstance(criterion, ColumnTest):
            values.setdefault(criterion.column, None)
    schema = {k: KNOWN_TYPES.get(k) for k in values}
    patients = pl.DataFrame(
        {k: pl.Series(k, [v], dtype=schema[k], strict=False) for k, v in values.items()}
    )
    events = pl.DataFrame(
        [
            {
                "patient_id": EXAMPLE_PATIENT_ID,
                "event_type": e.type.value,
                "code_system": e.system.value,
                "code": e.code,
                "event_date": e.date,
                "value": e.value,
                "unit": e.unit,
                "event_end": e.end,
                "value_code": e.answer,
                "encounter_class": e.encounter_class,
                "discharge_disposition": e.discharge,
            }
            for e in example.events
        ],
        schema=EVENT_SCHEMA,
        orient="row",
    )
    return patients.lazy(), events.lazy()


def possible_statuses(rule: Rule) -> set[Status]:
    """Statuses the rule can give, so ``rules test`` can ask for an example of each."""
    out = {Status.DUE, Status.NOT_DUE}
    pop = rule.population
    if pop.age is not None or pop.sex is not None or pop.conditions:
        out.add(Status.NOT_IN_POPULATION)
    if rule.exclude_deceased or rule.exclusions:
        out.add(Status.EXCLUDED)
    if pop.age is not None or pop.sex is not None:
        out.add(Status.UNKNOWN)
    for criterion, _keys in iter_criteria(rule):
        if isinstance(criterion, ColumnTest) and criterion.if_missing is IfMissing.UNKNOWN:
            out.add(Status.UNKNOWN)
        if isinstance(criterion, EventTest) and (criterion.min_age_at_event is not None
                                                 or criterion.result is not None):
            out.add(Status.UNKNOWN)
    return out


def run_example(rule: Rule, example: Example, ruleset: RuleSet) -> ExampleResult:
    """Evaluate one example of ``rule`` through the compiled plan."""
    single = RuleSet((rule,), ruleset.valuesets, {rule.id: ruleset.paths.get(rule.id, "")})
    patients, events = example_frames(rule, example)
    row = evaluate_frames(patients, events, single, example.as_of, enriched=True).collect()
    status, reason = row["status"][0], row["reason"][0] or ""
    ok = status == example.expect.value and (example.reason is None or example.reason in reason)
    return ExampleResult(rule.id, example.name, example.expect.value, status, reason, ok,
                         ruleset.paths.get(rule.id, ""))


def run_examples(ruleset: RuleSet) -> list[ExampleResult]:
    """Run every example of every rule; add a failure for each status without an example."""
    results: list[ExampleResult] = []
    for rule in ruleset.rules:
        results.extend(run_example(rule, example, ruleset) for example in rule.examples)
        covered = {e.expect for e in rule.examples}
        for status in sorted(possible_statuses(rule) - covered):
            results.append(ExampleResult(
                rule.id, "", status.value, "", f"no example with expect: {status.value} "
                "(every status the rule can give needs one)", False, ruleset.paths.get(rule.id, ""),
            ))
    return results
