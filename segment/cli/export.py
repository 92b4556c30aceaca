"""`segment export`: per-channel vendor files with a manifest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.campaign import load_campaign
from segment.cli._vocabulary import SegmentCommand
from segment.cli.options import as_of_option, command, get_reporter, workdir_argument
from segment.export import ExportMode, ExportStage
from segment.stage import StageContext, execute


@command(
    "export",
    example=(
        "segment export work campaigns/spring.yaml --to outbox/ --as-of 2025-03-10\n"
        "segment export work campaigns/spring.yaml --to sftp://mkt@files.example.com:22/in --delta"
    ),
    cls=SegmentCommand,
    renamed={"--from": None},
)
@workdir_argument
@click.argument("campaign_file", metavar="CAMPAIGN.yaml",
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--to", "dest", default=None,
              help="Destination folder or sftp://user@host:port/path (default: the campaign's `destination`).")
@as_of_option
@click.option("--full", "mode", flag_value=ExportMode.FULL.value, default=True,
              help="Send everyone eligible (default).")
@click.option("--delta", "mode", flag_value=ExportMode.DELTA.value,
              help="Send only patients not already sent for this campaign (from the ledger).")
@click.option("--dry-run", is_flag=True, help="Plan and report; write no vendor file and no ledger rows.")
@click.option("--run-id", default=None, help="Run id for file names (default: derived from the inputs and date).")
def export_command(
    workdir: Path, campaign_file: Path, dest: str | None, as_of: dt.date | None, mode: str,
    dry_run: bool, run_id: str | None,
) -> None:
    """Write one vendor file per channel, a per-run manifest and a .done trigger file.

    WORKDIR holds enriched.parquet and eligibility.parquet.

    Consent, suppression, frequency caps and quiet hours come from the campaign file.
    Files are staged under temporary names and renamed only once their contacts are
    committed to the ledger; then manifest-<code>-<run>.json, and the trigger last. A delivery left unfinished by a
    killed run is completed or withdrawn first; a run already delivered is not sent
    again; a run dated before contacts already in the ledger is refused unless --dry-run.
    """
    reporter = get_reporter()
    campaign = load_campaign(campaign_file)
    stage = ExportStage(campaign, dest, dry_run=dry_run, mode=ExportMode(mode), run_id=run_id)
    result = execute(stage, StageContext(workdir=workdir, as_of=as_of or campaign.as_of or dt.date.today()))
    if result.reconciled:
        reporter.result("reconciled unfinished deliveries",
                        {f"{r.campaign_code} {r.run_id}": f"found {r.found}; {r.action}"
                         + (f": {r.detail}" if r.detail else "") for r in result.reconciled})
    verb = "would send" if result.dry_run else "sent"
    if result.already_delivered:
        verb = "already delivered"
    reporter.table(
        f"{result.campaign_code} {result.run_id}: files" + (" (dry run: not written)" if dry_run else ""),
        [{"file": f.name, "channel": f.channel, "rows": f.rows, "bytes": f.size} for f in result.files],
        columns=["file", "channel", "rows", "bytes"],
    )
    summary: dict[str, object] = {f"{verb} ({ch})": n for ch, n in result.sent.items()}
    summary.update({f"removed: {k}": v for k, v in result.removed.items() if v})
    summary["destination"] = result.destination
    if result.manifest_path is not None:
        summary["manifest"] = str(result.manifest_path)
    summary["ledger rows"] = result.ledger_rows
    reporter.result(f"export {result.campaign_code}", summary)


COMMANDS = [export_command]
