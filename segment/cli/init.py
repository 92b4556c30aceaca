"""`segment init DIR`: write a starter project (campaign, mapping template, rules, README)."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.options import command, get_reporter


@command("init", example="segment init my-project\nsegment rules check my-project/rules")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
def init_command(folder: Path) -> None:
    """Write a starter project: a commented campaign, a mapping template and a rules folder.

    DIR gets campaign.yaml, mapping.yaml (your column names onto the canonical ones),
    rules/ with one shipped rule and its value sets, an empty extract/ folder and a README
    of next steps. DIR may exist, but nothing in it is overwritten: when any of these files
    exists, nothing is written and the command exits 1.
    """
    from segment.starter import write_starter_project

    project = write_starter_project(folder)
    reporter = get_reporter()
    reporter.lines([f"wrote {path}" for path in project.files])
    reporter.result("init", {
        "folder": str(project.root),
        "files": len(project.files),
        "rule": project.rule,
        "next": f"read {project.root / 'README.md'}",
    })


COMMANDS = [init_command]
