"""Declarative screening-eligibility and risk rules, compiled to Polars expressions.

Public API: :func:`load_rules`/:func:`check_rules` (validate a rules folder),
:func:`evaluate` (a working folder -> ``eligibility.parquet``; its stage object:
:class:`EvaluateStage`), :func:`explain` (one patient), :func:`run_examples` (the
examples inside rule files), and the operation registry (:data:`OPERATIONS`, :func:`register_operation`).
"""

from __future__ import annotations

from segment.rules.compiler import CompiledRule, compile_rule
from segment.rules.evaluate import evaluate_frames, last_event_dates
from segment.rules.examples import ExampleResult, possible_statuses, run_examples
from segment.rules.loader import check_rules, default_rules_dir, load_rules
from segment.rules.model import Kind, Rule, RuleSet, Status, ValueSet
from segment.rules.registry import OPERATIONS, register_operation
from segment.rules.run import EvaluateResult, EvaluateStage, evaluate

__all__ = [
    "OPERATIONS",
    "CompiledRule",
    "EvaluateResult",
    "EvaluateStage",
    "ExampleResult",
    "Kind",
    "Rule",
    "RuleSet",
    "Status",
    "ValueSet",
    "check_rules",
    "compile_rule",
    "default_rules_dir",
    "evaluate",
    "evaluate_frames",
    "last_event_dates",
    "load_rules",
    "possible_statuses",
    "register_operation",
    "run_examples",
]
