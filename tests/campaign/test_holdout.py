"""Randomized holdouts: reproducible, stratified, stable across runs, never sent, recorded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.campaign import load_campaign, plan_contacts
from segment.campaign.holdout import assign_arms, keyed_hash
from segment.campaign.ledger import ContactLedger
from segment.campaign.model import Holdout
from segment.errors import ConfigError
from segment.export import export_campaign
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign
from tests.export.helpers import export_campaign_file

AS_OF = dt.date(2025, 3, 10)
NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
RACES = ("White", "Black", "Asian", None)


def _people(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"patient_id": f"H{start + i:05d}", "race": RACES[i % 4], "sex": "FM"[i % 2],
         "phone_e164": f"+1617{5000000 + start + i:07d}", "phone_type": "mobile", "sms_consent": True,
         "email": f"p{start + i}@example.org", "email_consent": True}
        for i in range(n)
    ]


def _workdir(folder: Path, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pts = patients(*rows).collect()
    pts.write_parquet(folder / "enriched.parquet")
    pl.DataFrame({"patient_id": pts["patient_id"], "rule_id": "crc", "rule_version": "1", "status": "due",
                  "reason": "r", "evidence_date": None},
                 schema_overrides={"evidence_date": pl.Date}).write_parquet(folder / "eligibility.parquet")
    return folder


HOLDOUT = {"percent": 10, "seed": "spring-2025", "stratify": ["race", "sex"]}


def test_keyed_hash_is_stable_and_keyed() -> None:
    ids = pl.Series("patient_id", ["P001", "P002", "P001"])
    h = keyed_hash(ids, "A\0seed")
    assert h.dtype == pl.UInt64 and h[0] == h[2] and h[0] != h[1]
    # a known value: BLAKE2b-64 keyed with BLAKE2b-256("A\0seed"), big-endian
    import hashlib
    key = hashlib.blake2b(b"A\0seed", digest_size=32).digest()
    assert h[1] == int.from_bytes(hashlib.blake2b(b"P002", key=key, digest_size=8).digest(), "big")
    assert keyed_hash(ids, "A\0other")[0] != h[0]


def test_assignment_is_reproducible_and_keeps_the_percentage_in_every_stratum() -> None:
    n = 4000
    frame = pl.DataFrame({
        "patient_id": [f"P{i:05d}" for i in range(n)],
        "s:race": [RACES[i % 4] or "(missing)" for i in range(n)],
        "s:band": [("young", "old", "older")[i % 3] for i in range(n)],
    })
    h = Holdout(percent=10, seed="x", stratify=["race", "band"])
    a = assign_arms(frame, h, "C\0x")
    b = assign_arms(frame.sample(fraction=1.0, shuffle=True, seed=7), h, "C\0x")
    assert a.equals(b)  # order of the extract does not matter
    assert not a.equals(assign_arms(frame, h, "C\0y"))  # another seed draws differently
    per = a.group_by("stratum").agg(pl.len().alias("n"), (pl.col("arm") == "holdout").sum().alias("h"))
    assert per.height == 12
    for n_s, h_s in per.select("n", "h").rows():
        assert abs(h_s - 0.1 * n_s) <= 1
    assert int(per["h"].sum()) == 400


def test_small_strata_still_add_up_to_the_percentage() -> None:
    # 30 strata of 3: rounding each down would hold out nobody
    frame = pl.DataFrame({"patient_id": [f"P{i:03d}" for i in range(90)], "s:z": [str(i // 3) for i in range(90)]})
    arms = assign_arms(frame, Holdout(percent=10, seed="s", stratify=["z"]), "k")
    assert int((arms["arm"] == "holdout").sum()) == 9
    assert arms.filter(pl.col("arm") == "holdout").group_by("stratum").len()["len"].max() == 1


def test_prior_arms_are_kept_and_new_patients_rebalance_their_stratum() -> None:
    h = Holdout(percent=20, seed="s")
    first = assign_arms(pl.DataFrame({"patient_id": [f"P{i:03d}" for i in range(50)]}), h, "k")
    assert int((first["arm"] == "holdout").sum()) == 10
    both = pl.DataFrame({"patient_id": [f"P{i:03d}" for i in range(100)]})
    second = assign_arms(both, h, "k", prior=first.select("patient_id", "arm"))
    kept = second.join(first, on="patient_id", suffix="_1")
    assert (kept["arm"] == kept["arm_1"]).all()
    assert int((second["arm"] == "holdout").sum()) == 20
    # everyone held out before stays held out even when the stratum is over its share
    flipped = first.with_columns(pl.lit("holdout").alias("arm"))
    third = assign_arms(both, h, "k", prior=flipped.select("patient_id", "arm"))
    assert int((third["arm"] == "holdout").sum()) == 50


def test_holdout_is_after_policy_and_before_caps(tmp_path: Path) -> None:
    rows = _people(200)
    rows[0] = {**rows[0], "sms_consent": False, "email_consent": False}  # no consent: never drawn
    rows[1] = {**rows[1], "do_not_contact": True}
    c = make_campaign(tmp_path, holdout=HOLDOUT)
    plan = plan_contacts(c, patients(*rows), due(200).with_columns(
        pl.format("H{}", pl.col("patient_id").str.slice(1).cast(pl.Int64).sub(1).cast(pl.String).str.zfill(5))
        .alias("patient_id")), None, AS_OF).collect()
    by_id = dict(zip(plan["patient_id"], plan["contact_status"], strict=True))
    assert by_id["H00000"] == "no_consent_or_contact" and by_id["H00001"] == "do_not_contact"
    assert plan.filter(pl.col("patient_id").is_in(["H00000", "H00001"]))["arm"].is_null().all()
    held = plan.filter(pl.col("arm") == "holdout")
    assert held.height == 20 and (held["contact_status"] == "holdout").all() and held["channel"].is_null().all()
    assert (plan.filter(pl.col("arm") == "contact")["contact_status"] == "selected").all()
    # without a holdout nobody gets an arm
    plain = plan_contacts(make_campaign(tmp_path, name="b.yaml"), patients(*rows), due(200), None, AS_OF).collect()
    assert plain["arm"].is_null().all()


def _all_sent_text(out: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(out.rglob("*")) if p.is_file())


def test_held_out_patients_are_in_no_vendor_file_and_keep_their_arm(tmp_path: Path) -> None:
    work = _workdir(tmp_path / "work", _people(300))
    vendors = {"sms": {"profile": "twilio", "fields": ["first_name"]},
               "email": {"profile": "braze", "fields": ["first_name"]},
               "mail": {"profile": "generic", "fields": ["first_name", "address_line1", "city", "state", "zip5"],
                        "options": {}}}
    path = export_campaign_file(tmp_path / "c", holdout=HOLDOUT, channels=["sms", "email"],
                                vendors={k: v for k, v in vendors.items() if k != "mail"})
    led = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    first = export_campaign(path, work, tmp_path / "out1", as_of=AS_OF, run_id="run1", now=NOW)
    arms = led.arms("SPRING-OUTREACH-2025")
    assert arms.height == 300 and int((arms["arm"] == "holdout").sum()) == 30
    held = arms.filter(pl.col("arm") == "holdout")["patient_id"].to_list()
    text = _all_sent_text(tmp_path / "out1")
    people = {r["patient_id"]: r for r in _people(300)}
    for pid in held:
        assert pid not in text and people[pid]["phone_e164"] not in text and people[pid]["email"] not in text
    assert sum(first.sent.values()) == 270 and first.removed["holdout"] == 30
    contacted = set(pl.DataFrame(led.contacts("SPRING-OUTREACH-2025"))["patient_id"].to_list())
    assert contacted.isdisjoint(held) and len(contacted) == 270
    manifest = first.manifest["holdout"]
    assert manifest["assigned"] == {"contact": 270, "holdout": 30}
    assert manifest["percent"] == 10 and manifest["stratify"] == ["race", "sex"]
    assert "spring-2025" not in json.dumps(first.manifest)  # the seed itself is never written
    # a rerun of the same run draws the same arms
    again = export_campaign(path, work, tmp_path / "out1", as_of=AS_OF, run_id="run1", now=NOW)
    assert again.manifest["holdout"]["assigned"] == manifest["assigned"]
    # a later run with 100 new patients: the first 300 keep their arm, the new ones rebalance
    work2 = _workdir(tmp_path / "work2", _people(400))
    later = export_campaign(path, work2, tmp_path / "out2", as_of=AS_OF + dt.timedelta(days=30), run_id="run2",
                            now=NOW + dt.timedelta(days=30))
    arms2 = led.arms("SPRING-OUTREACH-2025")
    kept = arms2.join(arms, on="patient_id", suffix="_1")
    assert kept.height == 300 and (kept["arm"] == kept["arm_1"]).all()
    assert (kept["assigned_at"] == kept["assigned_at_1"]).all()
    assert arms2.height == 400 and int((arms2["arm"] == "holdout").sum()) == 40
    assert later.manifest["holdout"]["kept_from_earlier_runs"] == 300
    text2 = _all_sent_text(tmp_path / "out2")
    for pid in arms2.filter(pl.col("arm") == "holdout")["patient_id"].to_list():
        assert pid not in text2 and people.get(pid, {"email": f"p{pid[1:].lstrip('0')}@"})["email"] not in text2


def test_holdout_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holdout\.percent"):
        make_campaign(tmp_path, holdout={"percent": 60, "seed": "s"})
    with pytest.raises(ConfigError, match=r"holdout\.seed"):
        make_campaign(tmp_path, holdout={"percent": 10})
    c = make_campaign(tmp_path, holdout={"percent": 10, "seed": 42, "stratify": ["shoe_size"]})
    assert c.holdout is not None and c.holdout.seed == "42"
    with pytest.raises(ConfigError, match=r"holdout\.stratify.*'shoe_size'.*valid options are: age_band"):
        plan_contacts(c, patients(*_people(5)), due(5), None, AS_OF).collect()


def test_load_campaign_reads_costs(tmp_path: Path) -> None:
    c = make_campaign(tmp_path, costs={"sms": 0.0079, "email": 0.001})
    assert {str(k): v for k, v in c.costs.items()} == {"sms": 0.0079, "email": 0.001}
    assert load_campaign(tmp_path / "campaign.yaml").costs == c.costs
