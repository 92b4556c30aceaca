"""Benchmark the audit stage: `python scripts/bench.py audit --patients 1000000`.

Audits the campaign of a `bench.py run` folder (run that first at the same size): the
whole ``audit_campaign`` (contact plan, figures, suppression, JSON and HTML), then the
charts alone, so the share of drawing is visible.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchlib import RESULTS, measure

from segment.audit import audit_campaign
from segment.audit.charts import all_charts
from segment.campaign import load_campaign
from segment.synth.extract import DEFAULT_REF_DATE


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py audit")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="timed audits (the first is cold)")
    args = parser.parse_args(argv)

    root = args.cache / f"run-{args.patients}-{args.seed}"
    work = root / "work"
    campaigns = sorted((root / "campaigns").glob("*.yaml"))
    if not (work / "eligibility.parquet").exists() or not campaigns:
        print(f"no evaluated run under {root}: run `scripts/bench.py run --patients "
              f"{args.patients}` first", file=sys.stderr)
        return 2
    campaign = load_campaign(campaigns[0])
    ledger = root / "bench-audit-ledger.sqlite"  # an empty ledger: the audit never creates one
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.html"
        for i in range(args.repeat):
            with measure(f"audit_campaign ({'cold' if i == 0 else 'warm'})",
                         patients=args.patients) as row:
                result = audit_campaign(campaign, work, out, as_of=DEFAULT_REF_DATE,
                                        ledger=ledger if ledger.exists() else None)
            row["flags"] = len(result.flags)
        document = json.loads(out.with_suffix(".json").read_text())
        with measure("charts only (all_charts)") as row:
            charts = all_charts(document)
        row["charts"] = len(charts)
        row["svg_kib"] = sum(len(c) for c in charts.values()) // 1024
        row["html_kib"] = out.stat().st_size // 1024
    RESULTS.print()
    return 0
