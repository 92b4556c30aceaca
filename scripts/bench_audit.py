"""Benchmark the audit stage: `python scripts/bench.py audit --patients 1000000`.

Audits the campaign of a `bench.py run` folder (run that first at the same size): the
whole ``audit_campaign`` (contact plan, figures, suppression, JSON and HTML), then its two
parts (the campaign's contact plan, and ``audit_document`` over that plan), then the charts
alone. Each row carries the process CPU time beside the wall time, and the load averages
(1, 5 and 15 minutes) are printed before and after: on a shared machine the wall time mostly
measures the wait for a core. ``--run-id`` audits as ``segment run`` does after its export
(that run's own ledger rows ignored, so its selection shows instead of everyone capped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchlib import RESULTS, measure

from segment import workdir as wd
from segment.audit import audit_campaign, audit_document
from segment.audit.charts import all_charts
from segment.campaign import load_campaign, plan_contacts
from segment.campaign.ledger import ContactLedger
from segment.campaign.model import Campaign
from segment.synth.extract import DEFAULT_REF_DATE


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py audit")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="timed audits (the first is cold)")
    parser.add_argument("--no-parts", action="store_true",
                        help="time the whole audit only, not its two parts")
    parser.add_argument("--run-id", default=None,
                        help="ignore this run's ledger rows, as `segment run` does (default: count every row)")
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
    print(f"load average {_load()} (2 cores: above 2 the wall time includes waiting)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.html"
        for i in range(args.repeat):
            with measure(f"audit_campaign ({'cold' if i == 0 else 'warm'})",
                         patients=args.patients) as row:
                cpu = time.process_time()
                result = audit_campaign(campaign, work, out, as_of=DEFAULT_REF_DATE,
                                        ledger=ledger if ledger.exists() else None, run_id=args.run_id)
                row["cpu_s"] = round(time.process_time() - cpu, 2)
            row["flags"] = len(result.flags)
        if not args.no_parts:
            _parts(campaign, work, ledger if ledger.exists() else None, args.run_id)
        document = json.loads(out.with_suffix(".json").read_text())
        with measure("charts only (all_charts)") as row:
            charts = all_charts(document)
        row["charts"] = len(charts)
        row["svg_kib"] = sum(len(c) for c in charts.values()) // 1024
        row["html_kib"] = out.stat().st_size // 1024
    print(f"load average {_load()}")
    RESULTS.print()
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _parts(campaign: Campaign, work: Path, ledger: Path | None, run_id: str | None) -> None:
    """The audit's two parts timed apart: the contact plan (as the audit makes it), and the figures over it."""
    path = ledger or campaign.ledger
    led = ContactLedger(path) if path is not None and Path(path).exists() else None
    enriched = wd.scan(work, wd.ENRICHED, produced_by="enrich")
    eligibility = wd.scan(work, wd.ELIGIBILITY, produced_by="evaluate")
    with measure("of which plan_contacts") as row:
        cpu = time.process_time()
        plan = plan_contacts(campaign, enriched, eligibility, led, DEFAULT_REF_DATE, run_id=run_id,
                             timing=False).collect()
        row["cpu_s"] = round(time.process_time() - cpu, 2)
    with measure("of which audit_document") as row:
        cpu = time.process_time()
        audit_document(enriched, plan.lazy(), channels=[str(c) for c in campaign.channels], as_of=DEFAULT_REF_DATE,
                       delivery=led.delivery_outcomes(campaign.code) if led is not None else None)
        row["cpu_s"] = round(time.process_time() - cpu, 2)
