"""`segment evaluate WORKDIR [--rules RULES]` and `segment explain DIR PATIENT_ID`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from segment.cli.engine import engine_choice, engine_options
from segment.cli.options import as_of_option, command, get_reporter, workdir_argument
from segment.cli.rules import vsac_option
from segment.config import Settings
from segment.rules import EvaluateStage
from segment.rules.explain import explain
from segment.rules.loader import default_rules_dir, using_vsac
from segment.stage import execute

F = TypeVar("F", bound=Callable[..., Any])


def rules_option(help_text: str) -> Callable[[F], F]:
    """``--rules DIR`` (an existing folder; default: the shipped rules)."""
    return click.option("--rules", "rules_dir", default=None,
                        type=click.Path(file_okay=False, exists=True, path_type=Path), help=help_text)


WATERFALL_COLUMNS = [
    "rule_id", "patients", "in_population", "not_excluded", "due", "not_due", "excluded",
    "unknown",
]


@command("evaluate", example="segment evaluate work --as-of 2026-01-01\n"
                             "segment evaluate work --rules my-rules/\n"
                             "segment evaluate work --engine spark --master spark://m:7077 --buckets 64")
@workdir_argument
@rules_option("Rules folder: rule YAML files and valuesets/ (default: the shipped rules).")
@as_of_option
@vsac_option
@engine_options(tables=("patients", "events"))
def evaluate_command(
    workdir: Path, rules_dir: Path | None, as_of: dt.date | None, vsac: Path | None,
    engine: str = "polars", master: str | None = None, buckets: int | None = None,
    patients_uri: str | None = None, events_uri: str | None = None, output: str | None = None,
) -> None:
    """Apply every rule to every patient and write eligibility.parquet.

    Uses enriched.parquet when present (risk rules read its SDOH columns), otherwise
    patients.parquet, plus events.parquet. Writes evaluate-report.json with a waterfall
    per rule (patients -> in population -> not excluded -> due) and prints it. Rules
    that name official value sets (the eCQM rules in rules/ecqm) need --vsac or
    SEGMENT_VSAC_DIR. With --engine spark the same rules run on Apache Spark, bucket by
    bucket, and give identical rows (docs/spark.md).
    """
    choice = engine_choice(engine, master, buckets, patients_uri, events_uri, output)
    reporter = get_reporter()  # installed first, so the library's log lines go through it
    stage = EvaluateStage(rules_dir or default_rules_dir(), patients=patients_uri)
    with using_vsac(vsac):
        result = execute(choice.stage(stage), choice.context(workdir, as_of=as_of, settings=Settings.from_env(vsac_dir=vsac)))
    reporter.table(f"evaluate (as of {result.as_of.isoformat()})", result.waterfall,
                   WATERFALL_COLUMNS)


@command("explain", example="segment explain work 3edac2e3 --rules rules")
@workdir_argument
@click.argument("patient_id")
@rules_option("Rules folder (default: the shipped rules).")
@click.option("--campaign", "campaign", default=None, metavar="CAMPAIGN.yaml",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Also show what this campaign would send the patient: channel, variant and why, journey step.")
@as_of_option
@vsac_option
def explain_command(
    workdir: Path, patient_id: str, rules_dir: Path | None, as_of: dt.date | None,
    vsac: Path | None, campaign: Path | None = None,
) -> None:
    """Show why one patient is or is not due for each rule, with their SDOH columns.

    With --campaign, also the campaign's decision for the patient: contact status, channel
    (and their preferred one), the message variant and the condition that chose it, and the
    journey step due.
    """
    reporter = get_reporter()
    with using_vsac(vsac):
        result = explain(workdir, patient_id, rules_dir, as_of)
    reporter.table(
        f"patient {result.patient_id} as of {result.as_of.isoformat()}",
        result.rules,
        ["rule_id", "status", "evidence_date", "reason"],
    )
    if result.sdoh:
        reporter.result(f"SDOH ({result.source})", result.sdoh)
    from segment.ingest.identity.summary import patient_identity

    records = patient_identity(workdir, result.patient_id)
    if records:
        reporter.table(f"source records merged into {result.patient_id}", records,
                       ["record", "linked to", "match weight", "probability", "agreeing", "disagreeing"])
    if campaign is not None:
        from segment.campaign.explain import explain_contact

        decision = explain_contact(campaign, workdir, result.patient_id, as_of=result.as_of)
        if decision:
            reporter.result(f"campaign {decision.pop('campaign')}", decision)


COMMANDS = [evaluate_command, explain_command]
