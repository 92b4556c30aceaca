"""Benchmark `segment measure`: `python scripts/bench.py measure --patients 1000000`.

Builds (once, cached) a campaign that was sent with a 10% holdout stratified by race:
``enriched.parquet`` with the audit's group columns and linkage ``source_ids``, the
contact ledger with every patient's arm and the contacted arm's messages, and a later
extract's ``events.parquet`` (10 unrelated events per patient, plus a FIT in the window for
about 24% of the contacted arm against 20% of the holdout, and a second FIT after the window
for a quarter of those) in which some patients left, died or were merged. Then times
``measure_campaign`` end to end (ledger reads, the shipped colorectal rule evaluated per
window end, cohort, figures by every group, suppression, JSON and HTML).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from benchlib import RESULTS, measure

from segment.campaign import load_campaign
from segment.campaign.holdout import assign_arms, holdout_key
from segment.campaign.ledger import ContactLedger
from segment.measure import measure_campaign
from segment.schema import EVENT_SCHEMA

SENT = dt.datetime(2025, 3, 10, 14, 0, tzinfo=dt.UTC)
LATER = dt.date(2025, 7, 1)


def _campaign(root: Path) -> Path:
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "code": "BENCH-MEASURE", "audience": {"all": {"colorectal-cancer-screening": "due"}},
        "channels": ["sms", "email"],
        "vendors": {"sms": {"profile": "twilio", "fields": ["first_name"]},
                    "email": {"profile": "braze", "fields": ["first_name"]}},
        "holdout": {"percent": 10, "seed": "bench", "stratify": ["race"]},
        "costs": {"sms": 0.0079, "email": 0.001}, "ledger": "ledger.sqlite",
    }, sort_keys=False))
    return path


def build(root: Path, n: int, seed: int) -> Path:
    """The working folder and ledger of a sent campaign and a later extract (cached)."""
    work = root / "work"
    done = root / ".built"
    if done.exists():
        return _campaign(root)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = pl.Series("patient_id", [f"P{i:08d}" for i in range(n)])
    races = np.array(["White", "Black", "Asian", "American Indian or Alaska Native", None], dtype=object)
    patients = pl.DataFrame({
        "patient_id": ids,
        "race": races[rng.choice(5, n, p=[0.6, 0.18, 0.07, 0.02, 0.13])],
        "ethnicity": np.array(["Not Hispanic", "Hispanic"], dtype=object)[rng.choice(2, n, p=[0.8, 0.2])],
        "sex": np.array(["F", "M"], dtype=object)[rng.integers(0, 2, n)],
        "birth_date": pl.Series(rng.integers(-5000, 1500, n)).cast(pl.Date),  # aged 50 to 68 in 2025
        "language": np.array(["en", "es", "zh"], dtype=object)[rng.choice(3, n, p=[0.8, 0.15, 0.05])],
        "need_index_quintile": pl.Series(rng.integers(1, 6, n)).cast(pl.Int8),
        "rurality": np.array(["Urban", "Rural"], dtype=object)[rng.choice(2, n, p=[0.8, 0.2])],
    })
    campaign = load_campaign(_campaign(root))
    candidates = patients.select("patient_id", pl.col("race").fill_null("(missing)").alias("s:race"))
    arms = assign_arms(candidates, campaign.holdout, holdout_key(campaign))  # type: ignore[arg-type]
    led = ContactLedger(root / "ledger.sqlite")
    with led.immediate() as tx:
        tx.record_arms(arms, campaign_code=campaign.code, run_id="run1", delivery_id=None, assigned_at=SENT)
    contacted = arms.filter(pl.col("arm") == "contact").select(
        "patient_id", pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("email")).otherwise(pl.lit("sms"))
        .alias("channel"))
    led.record(contacted, campaign_code=campaign.code, run_id="run1", sent_at=SENT)
    # the later extract: 1% left, 0.3% died, 0.5% merged into a new id; completions by arm
    u = rng.random(n)
    arm_of = arms.sort("patient_id")["arm"]
    rate = np.where(arm_of.to_numpy() == "contact", 0.24, 0.20)
    completed = rng.random(n) < rate
    days = rng.integers(1, 91, n)
    later = patients.with_columns(
        pl.Series("deceased_date", np.where(u < 0.003, 30, -1)).cast(pl.Int32),  # died 30 days after the send
        pl.concat_list(pl.col("patient_id")).alias("source_ids"),
    ).with_columns(
        pl.when(pl.col("deceased_date") >= 0).then(pl.lit(SENT.date()) + pl.duration(days=pl.col("deceased_date")))
        .alias("deceased_date"),
    )
    left = (u >= 0.003) & (u < 0.013)
    merged = (u >= 0.013) & (u < 0.018)
    keep = ~(left | merged)
    survivors = later.filter(pl.Series(keep))
    renamed = later.filter(pl.Series(merged)).with_columns(
        (pl.lit("M") + pl.col("patient_id")).alias("patient_id"),
        pl.concat_list(pl.lit("M") + pl.col("patient_id"), pl.col("patient_id")).alias("source_ids"))
    pl.concat([survivors, renamed]).write_parquet(work / "enriched.parquet")
    new_ids = np.where(merged, np.char.add("M", ids.to_numpy().astype(str)), ids.to_numpy().astype(str))
    per = 10  # unrelated events (encounters, conditions, other labs) per patient
    background = pl.DataFrame({
        "patient_id": np.repeat(new_ids, per),
        "event_type": np.array(["encounter", "condition", "observation"], dtype=object)[rng.integers(0, 3, n * per)],
        "code_system": "CPT",
        "code": np.array(["99213", "99214", "80053", "85025", "83036"], dtype=object)[rng.integers(0, 5, n * per)],
        "event_date": pl.Series(rng.integers(19000, 20270, n * per)).cast(pl.Date),
    })
    retest = completed & (rng.random(n) < 0.25)
    fit = pl.DataFrame({
        "patient_id": np.concatenate([new_ids[completed], new_ids[retest]]),
        "event_type": "observation", "code_system": "LOINC", "code": "57905-2",
        "event_date": pl.Series(np.concatenate([days[completed], rng.integers(91, 110, int(retest.sum()))]))
        .cast(pl.Int32),
    }).with_columns((pl.lit(SENT.date()) + pl.duration(days=pl.col("event_date"))).cast(pl.Date).alias("event_date"))
    events = pl.concat([background, fit]).join(
        pl.DataFrame({"patient_id": new_ids[~left]}), on="patient_id", how="semi")
    events.select(
        *[pl.col(c) if c in events.columns else pl.lit(None, t).alias(c) for c, t in EVENT_SCHEMA.items()]
    ).cast(EVENT_SCHEMA).write_parquet(work / "events.parquet")  # type: ignore[arg-type]
    done.touch()
    return _campaign(root)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py measure")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--repeat", type=int, default=2, help="timed measurements (the first is cold)")
    args = parser.parse_args(argv)
    root = args.cache / f"measure-events-{args.patients}-{args.seed}"
    root.mkdir(parents=True, exist_ok=True)
    with measure("build the sent campaign and the later extract (cached)", patients=args.patients):
        campaign = build(root, args.patients, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "measure.html"
        for i in range(args.repeat):
            with measure(f"measure_campaign ({'cold' if i == 0 else 'warm'})", patients=args.patients) as row:
                result = measure_campaign(campaign, root / "work", as_of=LATER, window_days=90, out_html=out)
            itt = result.document["intention_to_treat"]
            row["difference"] = round(itt["difference"]["value"], 4)
            row["groups"] = sum(len(d["groups"]) for d in result.document["dimensions"])
        row["json_kib"] = len(json.dumps(result.document)) // 1024
        row["html_kib"] = out.stat().st_size // 1024
    RESULTS.print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
