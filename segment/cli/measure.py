"""``segment measure``: completion lift of the contacted arm against the randomized holdout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from segment.cli._vocabulary import SegmentCommand
from segment.cli.options import as_of_option, command, get_reporter, workdir_argument
from segment.cli.rules import vsac_option

# segment.measure (and Polars) is imported when the command runs, not at start-up.


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _points(section: dict[str, float | None]) -> str:
    if section["value"] is None:
        return "-"
    text = f"{section['value'] * 100:+.1f} points"
    if section["ci_low"] is not None and section["ci_high"] is not None:
        text += f" (95% CI {section['ci_low'] * 100:+.1f} to {section['ci_high'] * 100:+.1f})"
    return text


@command(
    "measure",
    example="segment measure work campaigns/spring.yaml --as-of 2025-09-01 --window 90d",
    cls=SegmentCommand,
    renamed={"--from": None},
)
@workdir_argument
@click.argument("campaign", metavar="CAMPAIGN.yaml",
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--window", default="90d", show_default=True, metavar="DAYS",
              help="How long after the send a completion counts: 90d, 12w or a number of days.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Before sending: the arms the next export would draw and the smallest "
                   "difference they can detect at 80% power; nothing is written.")
@click.option("--html", "out_html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML report (default WORKDIR/measure.html); measure.json goes beside it.")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The contact ledger (default: the campaign's `ledger:` or SEGMENT_LEDGER).")
@click.option("--group", "groups", multiple=True, metavar="COLUMN",
              help="Also break the effect down by this enriched column (repeatable).")
@click.option("--rules", "rules_dir", default=None, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Rules folder the campaign's rules are read from (default: the campaign's `rules:`, "
                   "else the shipped rules).")
@as_of_option
@vsac_option
def measure(
    workdir: Path,
    campaign: Path,
    window: str,
    plan_only: bool,
    out_html: Path | None,
    ledger: Path | None,
    groups: tuple[str, ...],
    rules_dir: Path | None,
    as_of: dt.date | None,
    vsac: Path | None,
) -> None:
    """Measure completion lift against the holdout (measure.html + measure.json).

    WORKDIR holds a later extract's patients and events (ingested, and enriched when rules
    or groups read SDOH columns); the campaign's due rules are evaluated on them for every
    patient of either arm as of the end of their window (capped at --as-of), so no
    `segment evaluate` run is needed. Per arm: assigned, reached, completed within --window
    of the send; the
    difference with a Newcombe 95% interval, relative lift, number needed to contact,
    intention-to-treat and per-protocol views, cost per additional completion from the
    campaign's `costs:`, the same by every audit group, and patients lost between extracts.
    """
    from segment.config import Settings
    from segment.measure import MeasureStage, parse_window, plan_campaign
    from segment.measure.inputs import holdout_campaign
    from segment.rules.loader import using_vsac
    from segment.stage import StageContext, execute

    reporter = get_reporter()
    if plan_only:
        plan = plan_campaign(campaign, workdir, as_of=as_of, ledger=ledger)
        mde = plan["minimum_detectable_effect"]
        reporter.result("Holdout plan", {
            "contacted": plan["contact"],
            "held out": plan["holdout"],
            "baseline completion": _pct(plan["baseline_rate"]),
            "minimum detectable effect (80% power)": "none" if mde is None else f"{mde * 100:.1f} points",
        })
        if plan["warning"]:
            reporter.warning("measure", plan["warning"])
        return
    days = parse_window(window)
    stage = MeasureStage(holdout_campaign(campaign), window_days=days, html=out_html, ledger=ledger,
                         groups=groups, rules_dir=rules_dir)
    with using_vsac(vsac):
        result = execute(stage, StageContext(workdir=workdir, as_of=as_of or dt.date.today(),
                                             settings=Settings.from_env()))
    doc = result.document
    itt, pp = doc["intention_to_treat"], doc["per_protocol"]
    reporter.table("Completion by arm", [
        {"analysis": "intention to treat", "treated": itt["contact"]["assigned"],
         "treated rate": _pct(itt["contact"]["rate"]), "held out": itt["holdout"]["assigned"],
         "held-out rate": _pct(itt["holdout"]["rate"]), "difference": _points(itt["difference"])},
        {"analysis": "per protocol", "treated": pp["reached"]["assigned"],
         "treated rate": _pct(pp["reached"]["rate"]), "held out": pp["holdout"]["assigned"],
         "held-out rate": _pct(pp["holdout"]["rate"]), "difference": _points(pp["difference"])},
    ])
    if not doc["follow_up"]["complete"]:
        reporter.warning("measure", f"{doc['follow_up']['incomplete']} patients have not had their full "
                                    f"{days}-day window by {doc['as_of']}: completion may still rise")
    if doc["plan"]["warning"]:
        reporter.warning("measure", doc["plan"]["warning"])
    per = doc["cost"]["per_additional_completion"]["value"]
    reporter.result("Measurement written", {
        "html": str(result.html_path),
        "json": str(result.json_path),
        "cost per additional completion": "-" if per is None else f"{per:,.2f}",
    })


COMMANDS = [measure]
