"""`segment enrich DIR`: join tract indicators, the need index and HP2030 gaps to patients."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.options import command, get_reporter, reference_option, settings, workdir_argument
from segment.enrich import enrich_workdir


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
def enrich_command(workdir: Path, reference: Path | None, crosswalk: Path | None) -> None:
    """Join area-level SDOH indicators, a need index and HP2030 gaps to geocoded patients.

    Reads geocoded.parquet, writes enriched.parquet and enrich-report.json, and prints the
    share of patients each new column covers. Area measures describe the neighbourhood,
    not the patient.
    """
    report = enrich_workdir(workdir, settings(reference).reference_dir, crosswalk=crosswalk)
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
