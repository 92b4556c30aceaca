"""`segment purge`: remove working outputs past a retention period."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.options import command, get_reporter, workdir_argument
from segment.retention import parse_duration, purge


@command(
    "purge",
    example="segment purge work/ --older-than 30d",
)
@workdir_argument
@click.option("--older-than", default="30d", show_default=True, help="Retention period (s, m, h, d, w).")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def purge_command(workdir: Path, older_than: str, dry_run: bool) -> None:
    """Remove segment's working outputs older than a retention period.

    Only files segment's own records say it wrote there (stage outputs, reports, caches,
    audits), each still the file it wrote, are removed; a file of yours with the same
    name, or one replaced since, is never touched. The run log is kept.
    """
    reporter = get_reporter()
    result = purge(workdir, parse_duration(older_than), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    reporter.lines([f"{verb} {name}" for name in result.removed])
    reporter.result(
        "purge",
        {f"files {verb}": len(result.removed), "bytes": result.bytes_removed, "files kept": result.kept},
    )


COMMANDS = [purge_command]
