"""``segment journey status WORKDIR CAMPAIGN.yaml``: patients per journey step, completed, stopped and why."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.cli import group
from segment.cli.options import as_of_option, command, get_reporter, workdir_argument

# segment.campaign (and Polars) is imported when the command runs, not at start-up.

journey_group = group(
    "journey",
    example="segment journey status work campaigns/spring.yaml",
    help="Show where patients stand in a campaign's multi-touch journey.",
)


@command("status", example="segment journey status work campaigns/spring.yaml --as-of 2025-03-24")
@workdir_argument
@click.argument("campaign", metavar="CAMPAIGN.yaml", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The contact ledger (default: the campaign's `ledger:` or SEGMENT_LEDGER).")
@as_of_option
def status_command(workdir: Path, campaign: Path, ledger: Path | None, as_of: dt.date | None) -> None:
    """Count patients sent each step, due tonight, waiting, completed and stopped (by reason).

    Reads the contact ledger (journey contacts and recorded stops) and WORKDIR's newest
    enriched.parquet and eligibility.parquet, and decides as the next nightly run would;
    nothing is written.
    """
    from segment.campaign.journey_status import journey_counts

    reporter = get_reporter()
    status = journey_counts(campaign, workdir, as_of=as_of, ledger=ledger)
    reporter.table(f"Journey of {status.campaign_code} on {status.as_of.isoformat()}", status.rows(),
                   ["what", "patients sent", "due tonight"])
    reporter.result("Patients by state", status.states or {"none": 0})


journey_group.add_command(status_command)
COMMANDS = [journey_group]
