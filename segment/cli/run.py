"""`segment run` (one campaign, end to end, safe under cron) and `segment demo`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.cli.engine import engine_choice, engine_options
from segment.cli.options import as_of_option, command, get_reporter
from segment.report import Reporter


def _show_run(reporter: Reporter, result: object) -> None:
    from segment.pipeline import RunResult

    assert isinstance(result, RunResult)
    reporter.table(
        f"run {result.run_id} ({result.campaign_code}, as of {result.as_of})",
        [
            {"stage": s.name, "status": s.status, "seconds": round(s.seconds, 2)}
            for s in result.stages
        ],
    )
    summary: dict[str, object] = {"outcome": result.outcome, "working folder": str(result.workdir)}
    for i, line in enumerate(result.reconciled, start=1):
        summary[f"reconciled ({i})"] = line
    if result.temp_files_removed:
        summary["temporary files removed"] = len(result.temp_files_removed)
    if result.audit_html is not None:
        summary["audit report"] = str(result.audit_html)
        summary["audit flags"] = result.audit_flags
    summary.update(result.export)
    reporter.result("summary" + (" (dry run: nothing written or recorded)" if result.dry_run else ""), summary)


@command("run", example="segment run campaigns/colorectal.yaml --as-of 2026-03-01\n"
                        "segment run campaigns/colorectal.yaml --engine spark --master spark://m:7077")
@click.argument("campaign", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@as_of_option
@click.option("--dry-run", is_flag=True, help="Do everything except write vendor files and the ledger.")
@click.option("--force", is_flag=True, help="Rerun every stage even when its inputs are unchanged.")
@engine_options(tables=("patients", "events"), output=False)
def run_command(campaign: Path, as_of: dt.date | None, dry_run: bool, force: bool,
                engine: str = "polars", master: str | None = None, buckets: int | None = None,
                patients_uri: str | None = None, events_uri: str | None = None) -> None:
    """Run the whole pipeline for one campaign: ingest to export, safe under cron.

    Stages whose inputs, rules and reference pack have not changed are reused; a lock
    refuses a second concurrent run. Every run first completes or withdraws any delivery
    a killed run left unfinished. A vendor file is visible only while its contacts are in
    the ledger; a failure says exactly what, if anything, is left delivered. A run dated
    before contacts already in the ledger is refused (use --dry-run to preview it).
    With --engine spark, geocode, enrich and evaluate run on Apache Spark; with --patients
    and --events (canonical lake tables, both needed) ingest is skipped (docs/spark.md).
    """
    from segment.pipeline import run_campaign

    choice = engine_choice(engine, master, buckets, patients_uri, events_uri)
    if (patients_uri is None) != (events_uri is None):
        raise click.UsageError("--patients and --events go together (canonical lake tables)")
    spark = None
    if choice.spark:
        from segment.stage import SparkRun

        spark = SparkRun(master, buckets, patients_uri, events_uri)
    reporter = get_reporter()
    result = run_campaign(campaign, as_of=as_of, dry_run=dry_run, force=force, spark=spark)
    _show_run(reporter, result)


@command("demo", example="segment demo --out demo-work --patients 10000")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-work"),
              show_default=True, help="Folder for the demo world, campaigns, work and exports.")
@click.option("--patients", type=click.IntRange(min=10), default=10_000, show_default=True,
              help="How many synthetic people.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same world).")
def demo_command(out: Path, patients: int, seed: int) -> None:
    """Generate the synthetic demo world and run two campaigns on it end to end.

    Colorectal screening by SMS then email, and flu vaccine by email with a mail
    fallback; prints where the vendor files, manifests and audit reports are.
    """
    from segment.demo import run_demo

    reporter = get_reporter()
    result = run_demo(out, patients, seed)
    for run in result.runs:
        _show_run(reporter, run)
    reporter.result(
        "demo",
        {
            "folder": str(result.root),
            "campaign files": ", ".join(str(p) for p in result.campaigns),
            "vendor files": str(result.root / "exports"),
        },
    )


COMMANDS = [run_command, demo_command]
