"""`segment rules check|test|list DIR`: lint rule files, run their examples, list them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from segment.cli import group
from segment.cli.options import command, get_reporter
from segment.rules import load_rules, run_examples
from segment.rules.loader import check_rules_report, default_rules_dir, valueset_counts

rules_group = group(
    "rules",
    example="segment rules check rules",
    help="Check, test and list the screening and risk rules in a rules folder.\n\n"
    "DIR is a rules folder (rule YAML files and valuesets/); without it, the shipped rules.",
)

rules_dir_argument = click.argument(
    "rules_dir", metavar="[DIR]", required=False, default=None,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)


def _rules_dir(rules_dir: Path | None) -> Path:
    """The folder named on the line, or the shipped rules."""
    return rules_dir if rules_dir is not None else default_rules_dir()


#: one definition of ``--vsac``, shared by the rules commands and evaluate/explain
vsac_option = click.option(
    "--vsac",
    "vsac",
    default=None,
    metavar="DIR",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of official value-set files downloaded from VSAC (FHIR JSON, SVS XML, xlsx; "
    "searched recursively) read besides the rules folder's valuesets/vsac/ "
    "(default: SEGMENT_VSAC_DIR).",
)


@command("check", example="segment rules check rules\nsegment rules check rules/ecqm --vsac ~/vsac/ecqm-2026"
                          "\nsegment rules check --reference packs/ma-2020")
@rules_dir_argument
@vsac_option
@click.option("--reference", "reference", default=None, metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Also check that the area columns each risk rule reads (reads:) are in this "
              "reference pack with a vintage the rule names (not taken from SEGMENT_REFERENCE: "
              "only a pack named here is checked).")
def check_command(rules_dir: Path | None, vsac: Path | None, reference: Path | None) -> None:
    """Validate every rule and value set; list each problem as file:line and exit 1.

    Then list, for every value set a rule uses (local, or official from valuesets/vsac/
    or the --vsac folder), its codes per code system; codes of systems ingest does not
    know show as not matched. With --reference, a risk rule whose declared index vintage
    (reads:) is not the pack's is a problem too.
    """
    reporter = get_reporter()
    rules_dir = _rules_dir(rules_dir)
    report = check_rules_report(rules_dir, vsac)
    ruleset, problems = report.ruleset, report.shown()
    if ruleset is not None and reference is not None:
        from segment.enrich.citations import check_rule_reads

        problems = [*problems, *check_rule_reads(ruleset.rules, ruleset.paths, reference)]
    if problems:
        for problem in problems:
            reporter.error(problem.one_line(), context=problem.context)
        ctx = click.get_current_context()
        reporter.error(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {rules_dir}")
        ctx.exit(1)
    assert ruleset is not None
    counts = valueset_counts(ruleset)
    reporter.result("rules check", {
        "rules": len(ruleset.rules),
        "value sets": len(ruleset.valuesets),
        "codes": sum(len(v.codes) + len(v.prefixes) for v in ruleset.valuesets.values()),
    })
    reporter.table("value sets used (codes per system)", [asdict(c) for c in counts],
                   ["valueset", "title", "system", "codes", "note"])


@command("test", example="segment rules test rules\nsegment rules test rules/ecqm --vsac ~/vsac/ecqm-2026")
@rules_dir_argument
@vsac_option
def test_command(rules_dir: Path | None, vsac: Path | None) -> None:
    """Run the example patients inside each rule file; exit 1 listing the failures.

    Every status a rule can give needs at least one example.
    """
    reporter = get_reporter()
    results = run_examples(load_rules(_rules_dir(rules_dir), vsac=vsac))
    failed = [r for r in results if not r.ok]
    reporter.lines([r.describe() for r in results])
    if failed:
        reporter.error(f"{len(failed)} of {len(results)} example checks failed")
        click.get_current_context().exit(1)
    reporter.result("rules test", {"examples": len(results), "failed": 0})


@command("list", example="segment rules list\nsegment rules list my-rules/")
@rules_dir_argument
@vsac_option
def list_command(rules_dir: Path | None, vsac: Path | None) -> None:
    """List the rules: id, title, source and kind."""
    ruleset = load_rules(_rules_dir(rules_dir), vsac=vsac)
    rows = [
        {"id": r.id, "version": r.version, "kind": r.kind.value, "title": r.title, "source": r.source}
        for r in ruleset.rules
    ]
    get_reporter().table("rules", rows, ["id", "version", "kind", "title", "source"])


rules_group.add_command(check_command)
rules_group.add_command(test_command)
rules_group.add_command(list_command)

COMMANDS = [rules_group]
