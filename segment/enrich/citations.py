"""Do a pack's area columns match the index and vintage each risk rule says it reads?

A risk rule declares what it reads (``reads: [{column, index, vintages}]``); a pack's data
dictionary says, per column, its source and vintage. :func:`check_rule_reads` compares the
two so ``segment rules check --reference PACK`` fails when a rule written for SVI 2022 would
run on SVI 2018 values, or on a pack without the column at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from segment.enrich.core import data_dictionary
from segment.errors import RulesError
from segment.reference import open_pack


class _Rule(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def reads(self) -> list[Any]: ...


def check_rule_reads(rules: Iterable[_Rule], paths: Mapping[str, str],
                     pack_dir: str | Path) -> list[RulesError]:
    """One problem per declared column missing from the pack or of an undeclared vintage."""
    pack = open_pack(pack_dir)
    dictionary = {str(e["name"]): e for e in data_dictionary(pack.manifest)}
    problems: list[RulesError] = []
    for rule in rules:
        for i, reads in enumerate(rule.reads):
            key = f"reads[{i}].vintages"
            entry = dictionary.get(reads.column)
            where = paths.get(rule.id)
            if entry is None:
                problems.append(RulesError(
                    f"key `reads[{i}].column`: the rule reads {reads.column} ({reads.index}) but "
                    f"reference pack {pack.name!r} has no such column; build the pack with "
                    f"{reads.index} ({', '.join(reads.vintages)})",
                    path=where, rule_id=rule.id, key=f"reads[{i}].column"))
                continue
            vintage = str(entry.get("vintage", ""))
            if vintage not in reads.vintages:
                problems.append(RulesError(
                    f"key `{key}`: the rule reads {reads.column} from {reads.index} "
                    f"{' or '.join(reads.vintages)} but reference pack {pack.name!r} holds "
                    f"{vintage or 'a column of unstated vintage'} ({entry.get('source', '')}); "
                    "rebuild the pack with a declared vintage or update the rule (its thresholds "
                    "were set for the vintages it names)",
                    path=where, rule_id=rule.id, key=key))
    return problems
