"""The nightly journey benchmark behind ``scripts/bench.py run --journey``.

On the run benchmark's working folder (built by a cold run when missing), exports the demo SMS/email
campaign twice per night, each with its own fresh ledger: as written (plain), and with a
three-step journey and five variants. Night 1 starts everyone's journey; night 8 (step 2 due)
reads night 1's journey contacts back from the ledger and decides every patient's step. Prints each export's wall time and the
difference, the figure the issue bounds (at most 10 s at 1M patients).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import yaml

JOURNEY = {
    "variants": [
        {"code": "V-BASE"},
        {"code": "V-ES", "priority": 10, "when": {"column": "language", "op": "eq", "value": "es"}},
        {"code": "V-HIGH-NEED", "priority": 20, "when": {"column": "need_index_quintile", "op": "eq", "value": 5}},
        {"code": "V-OFFLINE", "priority": 30, "when": {"all": [
            {"column": "internet_no_access_pct", "op": "ge", "value": 20}, {"age": {"min": 65}}]}},
        {"code": "V-RURAL", "priority": 40, "when": {"column": "rurality", "op": "eq", "value": "Rural"}},
    ],
    "journey": {"steps": [{"day": 0, "channels": ["sms"]},
                          {"day": 7, "channels": ["email"], "variants": ["V-BASE", "V-ES", "V-HIGH-NEED"]},
                          {"day": 21, "channels": ["sms", "email"]}]},
}


def run(campaign: Path, root: Path, as_of: dt.date) -> None:
    """Time plain and journey exports on nights 1 and 8 (fresh ledgers under ``root/journey``)."""
    from segment.campaign import load_campaign
    from segment.export import export_campaign

    base = load_campaign(campaign)
    assert base.workdir is not None
    out = root / "journey"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data = yaml.safe_load(campaign.read_text(encoding="utf-8"))
    for key in ("sources", "workdir", "reference", "ledger", "destination"):
        data.pop(key, None)
    data["suppression"] = [{**s, "path": str((campaign.parent / s["path"]).resolve())} for s in data["suppression"]]
    plain_path, journey_path = out / "plain.yaml", out / "journey.yaml"
    plain_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    journey_path.write_text(yaml.safe_dump({**data, **JOURNEY}, sort_keys=False), encoding="utf-8")
    plain, journey = load_campaign(plain_path), load_campaign(journey_path)
    print("-- nightly journey (three steps, five variants) vs the plain campaign, fresh ledgers")
    for night in (0, 7):
        day = as_of + dt.timedelta(days=night)
        now = dt.datetime.combine(day, dt.time(9, 0), tzinfo=dt.UTC)
        times = {}
        for name, c in (("plain", plain), ("journey", journey)):
            start = time.perf_counter()
            result = export_campaign(c, base.workdir, out / f"dest-{name}", as_of=day, now=now,
                                     ledger=out / f"{name}.sqlite")
            times[name] = time.perf_counter() - start
            extra = ""
            if name == "journey":
                extra = f"; per step {result.manifest['journey']['sent_per_step']}"
            print(f"   night {night + 1} {name:<8} {times[name]:>7.2f} s  sent {sum(result.sent.values()):>9,}{extra}")
        print(f"   night {night + 1} journey adds {times['journey'] - times['plain']:+.2f} s")
