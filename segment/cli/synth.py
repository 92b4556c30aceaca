"""`segment synth`: a synthetic messy extract, with the demo world it lives in."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.options import command, get_reporter, out_option
from segment.synth import synthesize
from segment.synth.extract import MAX_SOURCES


@command(
    "synth",
    example="segment synth --patients 10000 --out demo-data --seed 7",
)
@click.option(
    "--patients",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Distinct people to generate (source systems hold overlapping records of them).",
)
@out_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same bytes.")
@click.option(
    "--sources",
    type=click.IntRange(1, MAX_SOURCES),
    default=2,
    show_default=True,
    help="Source systems: 1 = ehr, 2 = ehr + crm, 3 = ehr + crm + claims.",
)
@click.option(
    "--world/--no-world",
    default=True,
    show_default=True,
    help="Also write the demo geography (Census-format sources and a reference pack) "
    "under DIR/source and DIR/reference, with the extract under DIR/extract; "
    "--no-world writes only the extract into DIR.",
)
def synth_command(patients: int, out: Path, seed: int, sources: int, world: bool) -> None:
    """Write a realistic, messy synthetic patient extract (no real person in it).

    Two source systems (an EHR and a CRM) with overlapping, inconsistent records; mixed
    date, phone, ZIP and consent formats; duplicates and broken rows; about 20 clinical
    events per person in real code systems. With the demo world, every address lies on
    the streets of a fictional county (FIPS 25901) whose reference pack is built too.
    """
    summary = synthesize(out, patients, seed, sources, world=world)
    reporter = get_reporter()
    reporter.result(
        "synth",
        {
            "folder": str(summary.root),
            "people": summary.people,
            **summary.geography,
            "reference pack": str(summary.reference) if summary.reference else "not built (--no-world)",
        },
    )
    reporter.table("files written", summary.files, ["file", "rows"])


COMMANDS = [synth_command]
