"""`segment enrich DIR`: join tract indicators, the need index and HP2030 gaps to patients."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.engine import engine_choice, engine_options
from segment.cli.options import command, get_reporter, reference_option, settings, workdir_argument
from segment.enrich import EnrichStage
from segment.stage import execute


@command(
    "enrich",
    example="segment enrich work --reference packs/ma-2010",
)
@workdir_argument
@reference_option
@click.option(
    "--crosswalk",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Tract crosswalk (Census tract relationship file) when the pack's indicators are "
    "keyed to another tract vintage than its tracts.",
)
@engine_options()
def enrich_command(workdir: Path, reference: Path | None, crosswalk: Path | None,
                   engine: str = "polars", master: str | None = None, buckets: int | None = None,
                   patients_uri: str | None = None, output: str | None = None) -> None:
    """Join area-level SDOH indicators, a need index and HP2030 gaps to geocoded patients.

    Reads geocoded.parquet, writes enriched.parquet and enrich-report.json, and prints the
    share of patients each new column covers. Area measures describe the neighbourhood,
    not the patient. With --engine spark, each partition is enriched on Apache Spark
    (--patients: the geocoded table; docs/spark.md).
    """
    choice = engine_choice(engine, master, buckets, patients_uri, output=output)
    stage = EnrichStage(crosswalk=crosswalk, patients=patients_uri)
    report = execute(choice.stage(stage), choice.context(workdir, settings=settings(reference)))
    reporter = get_reporter()
    reporter.result(
        "enrich",
        {
            "patients": report.patients,
            **{f"sdoh_source {k}": v for k, v in report.sdoh_source.items()},
            "need index variance explained": report.need_index.variance_explained,
        },
    )
    reporter.table("coverage", report.coverage_rows(), ["column", "patients", "percent"])


COMMANDS = [enrich_command]
