"""``segment identity report WORKDIR``: how source records were linked into patients."""

from __future__ import annotations

from pathlib import Path

from segment.cli import group
from segment.cli.options import command, get_reporter, workdir_argument
from segment.ingest.identity.summary import identity_report

identity_group = group(
    "identity",
    example="segment identity report work",
    help="Show how source records were linked into patients: model, clusters, review pairs.",
)


@command("report", example="segment identity report work")
@workdir_argument
def report_command(workdir: Path) -> None:
    """Print the linkage used, cluster sizes, the review count and the model's m/u per level.

    Reads patients.parquet and the identity files that `segment ingest` wrote
    (identity-report.json, identity-model.json, identity-review.csv).
    """
    reporter = get_reporter()
    result = identity_report(workdir)
    reporter.result("Identity", result.summary)
    reporter.table("Records per patient", result.cluster_sizes, ["records", "patients"])
    if result.parameters:
        reporter.table("Model parameters (m, u and match weight per comparison level)", result.parameters,
                       ["comparison", "level", "m", "u", "match_weight"])


identity_group.add_command(report_command)
COMMANDS = [identity_group]
