"""``segment ingest``: load, validate, normalize and de-duplicate extracts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.cli._vocabulary import SegmentCommand
from segment.cli.options import command, get_reporter
from segment.ingest import IngestStage, InputFormat, input_specs
from segment.ingest.identity import IdentityOptions, Linkage, Thresholds
from segment.ingest.results import MAX_ORPHAN_FRACTION
from segment.stage import StageContext, execute


@command(
    "ingest",
    example="segment ingest work extract/ehr-patients.csv extract/ehr-events.csv extract/crm-patients.csv\n"
    "segment ingest work epic=drops/2026-02-01/ synthea_out/csv",
    cls=SegmentCommand,
    renamed={"--out": None},
)
@click.argument("workdir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, metavar="[NAME=]PATH...",
                type=click.Path(path_type=Path))
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
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME",
    help="Source-system name: once for every PATH, or once per PATH in order (or write NAME=PATH). "
    "Default: the format's name (synthea, fhir, omop) or the file name without table words and dates.",
)
@click.option(
    "--allow-orphan-events",
    is_flag=True,
    help="Go on when more than --max-orphan-share of the event rows point at no patient (they are rejected).",
)
@click.option(
    "--max-orphan-share",
    type=click.FloatRange(0.0, 1.0),
    default=MAX_ORPHAN_FRACTION,
    show_default=True,
    help="Largest share of event rows that may point at no patient before ingest fails.",
)
@click.option(
    "--linkage",
    type=click.Choice([m.value for m in Linkage]),
    default=Linkage.AUTO.value,
    show_default=True,
    help="How records become patients: probabilistic (Splink), deterministic (exact keys), or auto "
    "(deterministic below 1,000 records). See docs/identity.md.",
)
@click.option(
    "--linkage-model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Pin a trained model (an identity-model.json) instead of training, so identities do not drift.",
)
@click.option("--merge-threshold", type=float, default=Thresholds.merge, show_default=True,
              help="Match probability at or above which two records merge.")
@click.option("--review-threshold", type=float, default=Thresholds.review, show_default=True,
              help="Match probability at or above which a pair not merged goes to identity-review.csv.")
@click.option("--same-source-threshold", type=float, default=Thresholds.same_source, show_default=True,
              help="Match probability two records of one source with different ids need to merge.")
def ingest_command(
    workdir: Path, paths: tuple[Path, ...], input_format: str | None, mapping: Path | None,
    sources: tuple[str, ...], allow_orphan_events: bool, max_orphan_share: float, linkage: str,
    linkage_model: Path | None, merge_threshold: float, review_threshold: float, same_source_threshold: float,
) -> None:
    """Load, validate, normalize and de-duplicate patient extracts into a working folder.

    WORKDIR is the working folder (created owner-only). Each PATH is a file or folder of one source system (a canonical CSV/Parquet file, a
    Synthea CSV folder, FHIR NDJSON or Bundle files, an OMOP CDM folder), optionally
    written NAME=PATH to name its source. Writes patients.parquet, events.parquet,
    rejects.csv and ingest-report.json into WORKDIR.
    """
    reporter = get_reporter()
    if sources and len(sources) not in (1, len(paths)):
        raise click.UsageError(
            f"--source given {len(sources)} times for {len(paths)} paths: give it once, or once per path"
        )
    names = None if not sources else list(sources) * len(paths) if len(sources) == 1 else list(sources)
    specs = input_specs(list(paths), input_format=input_format, mapping=mapping, sources=names)
    stage = IngestStage(
        specs, tuple((s.source, s.input_format, str(mapping)) for s in specs),
        (mapping,) if mapping else (), allow_orphan_events, max_orphan_share,
        IdentityOptions(Linkage(linkage), linkage_model,
                        Thresholds(merge_threshold, review_threshold, same_source_threshold)),
    )
    result = execute(stage, StageContext(workdir=workdir, as_of=dt.date.today()))
    reporter.table("Input files", result.table_rows())
    reporter.result("Ingest", result.summary())


COMMANDS = [ingest_command]
