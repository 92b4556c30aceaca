"""``segment audit``: the equity and reach report for one campaign."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.cli._vocabulary import SegmentCommand
from segment.cli.options import as_of_option, command, get_reporter, workdir_argument
from segment.errors import ConfigError

# segment.audit (and matplotlib) is imported when the command runs, not at start-up.


def _references(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    from segment.audit import parse_reference_groups

    try:
        return parse_reference_groups(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.message) from None


@command(
    "audit",
    example="segment audit work campaigns/spring.yaml --reference-group race=White",
    cls=SegmentCommand,
    renamed={"--from": None, "--out": "--html"},
)
@workdir_argument
@click.argument("campaign", metavar="CAMPAIGN.yaml",
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--html",
    "out_html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the HTML report (default WORKDIR/audit.html); audit.json goes beside it.",
)
@click.option(
    "--reference-group",
    "reference_groups",
    multiple=True,
    metavar="COLUMN=VALUE",
    callback=_references,
    help="Reference group for a dimension (repeatable; default: each dimension's largest).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="COLUMN",
    help="Also audit by this enriched column, e.g. county_fips (repeatable).",
)
@click.option(
    "--fail-on-flag",
    is_flag=True,
    help="Exit 1 when any group is flagged, so a cron job can hold the export.",
)
@as_of_option
def audit(
    workdir: Path,
    campaign: Path,
    out_html: Path | None,
    reference_groups: dict[str, str],
    groups: tuple[str, ...],
    fail_on_flag: bool,
    as_of: dt.date | None,
) -> None:
    """Show who a campaign reaches and who it leaves out (audit.html + audit.json).

    Funnel per group (eligible, geocoded precisely, enriched, contactable, selected),
    selection-rate ratios against a reference group with Wilson 95% intervals, flags
    outside 0.8-1.25, geocoding by group and reach gaps. Counts under 11 show as <11.
    WORKDIR holds enriched.parquet and eligibility.parquet.
    """
    from segment.audit import AuditStage
    from segment.campaign import load_campaign
    from segment.config import Settings
    from segment.stage import StageContext, execute

    reporter = get_reporter()
    loaded = load_campaign(campaign)
    stage = AuditStage(loaded, html=out_html, reference_group=reference_groups, groups=groups)
    day = as_of or loaded.as_of or dt.date.today()
    result = execute(stage, StageContext(workdir=workdir, as_of=day, settings=Settings.from_env()))
    reporter.table("Selection by group", result.summary_rows())
    for flag in result.flags:
        reporter.warning("audit", flag["text"])
    reporter.result(
        "Audit written",
        {
            "html": str(result.html_path),
            "json": str(result.json_path),
            "groups flagged": len(result.flags),
        },
    )
    if fail_on_flag and result.is_flagged:
        reporter.error(
            f"{len(result.flags)} group(s) selected outside 0.8-1.25 times their reference "
            "group's rate (--fail-on-flag)"
        )
        click.get_current_context().exit(1)


COMMANDS = [audit]
