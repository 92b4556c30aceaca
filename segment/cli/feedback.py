"""`segment feedback import FILE --vendor V`: vendor delivery, bounce and opt-out exports into the ledger."""

from __future__ import annotations

from pathlib import Path

import click

from segment.campaign.feedback import FeedbackVendor, import_feedback
from segment.campaign.ledger import ContactLedger
from segment.campaign.loader import load_campaign
from segment.cli import group
from segment.cli.options import command, get_reporter
from segment.config import Settings

feedback_group = group(
    "feedback",
    example="segment feedback import twilio-messages.csv --vendor twilio --ledger ledger.sqlite",
    help="Read vendors' delivery, bounce and opt-out exports into the contact ledger.",
)


@command(
    "import",
    example=(
        "segment feedback import twilio-messages.csv --vendor twilio --ledger ledger.sqlite\n"
        "segment feedback import bounces.csv --vendor sfmc --campaign campaigns/spring.yaml"
    ),
)
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--vendor", required=True, type=click.Choice([v.value for v in FeedbackVendor]),
              help="Whose export FILE is.")
@click.option("--campaign", "campaign_file", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Match only this campaign's contacts (and use its `ledger:`).")
@click.option("--ledger", "ledger_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="The contact ledger (default: the campaign's, else SEGMENT_LEDGER or the user data folder).")
@click.option("--rejects", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Where unmatched rows go (default: FILE's name with .rejects.csv).")
def import_command(file: Path, vendor: str, campaign_file: Path | None, ledger_path: Path | None,
                   rejects: Path | None) -> None:
    """Record delivered, failed (with the vendor's code), bounced, opted-out and clicked messages.

    Rows match the latest contact the ledger holds for the vendor's id (phone, email,
    external id or contact key) sent no later than the event. Importing a file twice
    changes nothing. Hard bounces, invalid numbers and STOP replies leave the person out of
    the next run on that channel; frequency caps no longer count failed messages.
    """
    campaign = load_campaign(campaign_file) if campaign_file is not None else None
    path = ledger_path or (campaign.ledger if campaign is not None else None) or Settings.from_env().ledger_path
    result = import_feedback(file, vendor, ContactLedger(path),
                             campaign_code=campaign.code if campaign is not None else None, rejects=rejects)
    summary: dict[str, object] = {"layout": result.layout, "rows": result.rows, "recorded": result.recorded,
                                  "already imported": result.already_imported,
                                  "duplicate rows": result.duplicates, "rejected": result.rejected}
    summary.update({f"outcome: {k}": v for k, v in result.outcomes.items()})
    summary["suppressed for next runs"] = result.suppressed
    if result.rejects_path is not None:
        summary["rejects"] = str(result.rejects_path)
    get_reporter().result(f"feedback {result.vendor}", summary)


feedback_group.add_command(import_command)

COMMANDS = [feedback_group]
