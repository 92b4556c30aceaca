"""``segment ingest``: load, validate, normalize and de-duplicate extracts."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.options import command, get_reporter, out_option
from segment.ingest import InputFormat, ingest


@command(
    "ingest",
    example="segment ingest extract/ehr-patients.csv extract/ehr-events.csv extract/crm-patients.csv --out work",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@out_option
@click.option(
    "--format",
    "input_format",
    type=click.Choice([f.value for f in InputFormat]),
    default=None,
    help="Input format (default: detected: Synthea folder, FHIR .ndjson, canonical CSV/Parquet).",
)
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Mapping YAML for a non-canonical column layout (see examples/mappings/).",
)
def ingest_command(paths: tuple[Path, ...], out: Path, input_format: str | None, mapping: Path | None) -> None:
    """Load, validate, normalize and de-duplicate patient extracts into a working folder.

    Each PATH is a file or folder of one source system (a canonical CSV/Parquet file, a
    Synthea CSV folder, or FHIR NDJSON files). Writes patients.parquet, events.parquet,
    rejects.csv and ingest-report.json into --out.
    """
    reporter = get_reporter()
    result = ingest(list(paths), out, input_format=input_format, mapping=mapping)
    reporter.table("Input files", result.table_rows())
    reporter.result("Ingest", result.summary())


COMMANDS = [ingest_command]
