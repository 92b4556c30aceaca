"""segment measure end to end: a real export with a holdout, a later extract, exact figures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.errors import CampaignError, ConfigError
from segment.measure import measure_campaign, parse_window
from segment.measure.stats import newcombe_interval
from tests.campaign.test_holdout import _people

from .conftest import AS_OF, LATER, Measured, day, exported, later_extract


def _later(m: Measured, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    rows = {r["patient_id"]: r for r in _people(400)}
    c, h = m.contact, m.holdout
    done = {pid: day(10) for pid in c[:96]} | {pid: day(10) for pid in h[:14]}
    # window edges (90 days): the last day counts, the day after does not, nor the send day or before
    done |= {c[100]: day(90), c[101]: day(91), c[102]: day(0), c[103]: day(-5)}
    # lost: two contacted patients left the extract; one died in the window; one held-out id was
    # merged by the linkage model into a new record that completed
    for pid in (c[110], c[111], h[20]):
        rows.pop(pid)
    rows[c[112]] = {**rows[c[112]], "deceased_date": day(20)}
    rows["NEW0001"] = {**_people(1, 9000)[0], "patient_id": "NEW0001", "source_ids": ["NEW0001", h[20]]}
    done["NEW0001"] = day(5)
    work = later_extract(tmp_path / "later", list(rows.values()), done)
    return work, {"contact_completed": 97, "holdout_completed": 15}


def test_measure_counts_compares_and_reports(measured: Measured, tmp_path: Path) -> None:
    m = measured
    assert (len(m.contact), len(m.holdout)) == (320, 80)
    work, _ = _later(m, tmp_path)
    result = measure_campaign(m.campaign, work, as_of=LATER, window_days=90)
    doc = result.document
    assert json.loads(result.json_path.read_text()) == doc  # type: ignore[union-attr]
    itt = doc["intention_to_treat"]
    # 320 contacted - 2 not in the extract - 1 died = 317; 80 held out, one followed through a merge
    assert itt["contact"]["assigned"] == 317 and itt["contact"]["completed"] == 97
    assert itt["contact"]["reached"] == 317
    assert itt["holdout"]["assigned"] == 80 and itt["holdout"]["completed"] == 15
    assert itt["difference"]["value"] == pytest.approx(97 / 317 - 15 / 80)
    low, high = newcombe_interval(97, 317, 15, 80)  # type: ignore[misc]
    assert (itt["difference"]["ci_low"], itt["difference"]["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert itt["relative_lift"]["value"] == pytest.approx((97 / 317) / (15 / 80) - 1)
    assert itt["number_needed_to_contact"]["value"] == pytest.approx(1 / (97 / 317 - 15 / 80))
    assert doc["lost"]["contact"] == {"not_in_extract": "<11", "died": "<11", "merged_duplicate": 0}
    assert doc["lost"]["holdout"] == {"not_in_extract": 0, "died": 0, "merged_duplicate": 0}
    assert doc["lost"]["merged_followed"] == "<11"
    assert doc["follow_up"] == {"incomplete": 0, "complete": True}
    # cost: one SMS per contacted patient (320, including those lost later) at 0.01
    cost = doc["cost"]
    assert cost["messages"] == {"sms": 320} and cost["total"] == pytest.approx(3.2)
    extra = (97 / 317 - 15 / 80) * 317
    assert cost["per_additional_completion"]["value"] == pytest.approx(3.2 / extra)
    assert cost["per_additional_completion"]["ci_low"] == pytest.approx(3.2 / (high * 317))
    # by group, with small-cell suppression and a heterogeneity test
    race = next(d for d in doc["dimensions"] if d["name"] == "race")
    groups = {g["group"]: g for g in race["groups"]}
    assert set(groups) == {"White", "Black", "Asian", "(missing)"}
    assert sum(g["holdout"]["assigned"] for g in groups.values()) == 80
    assert race["heterogeneity"] is not None and 0 <= race["heterogeneity"]["p_value"] <= 1
    assert doc["design"]["assigned"] == {"contact": 320, "holdout": 80}
    curve = doc["curve"]
    assert curve["days"][0] == 0 and curve["days"][-1] == 90
    assert curve["contact"][9] == 0 and curve["contact"][10] == pytest.approx(96 / 317)
    assert curve["contact"][-1] == pytest.approx(97 / 317) and curve["holdout"][-1] == pytest.approx(15 / 80)
    assert curve["holdout"][5] == pytest.approx(1 / 80)  # the merged record completed on day 5
    html = result.html_path.read_text()  # type: ignore[union-attr]
    assert "Did it work? Campaign measurement: SPRING-OUTREACH-2025" in html
    assert 'class="arm-contact"' in html and "Patients lost between extracts" in html


def test_a_window_edge_moves_with_the_window(measured: Measured, tmp_path: Path) -> None:
    work, _ = _later(measured, tmp_path)
    short = measure_campaign(measured.campaign, work, as_of=LATER, window_days=89).document
    assert short["intention_to_treat"]["contact"]["completed"] == 96  # day 90 now outside
    long = measure_campaign(measured.campaign, work, as_of=LATER, window_days=91).document
    assert long["intention_to_treat"]["contact"]["completed"] == 98  # day 91 inside
    early = measure_campaign(measured.campaign, work, as_of=day(60), window_days=90).document
    assert early["intention_to_treat"]["contact"]["completed"] == 96  # the day-90 event is after as-of
    assert early["follow_up"]["complete"] is False and early["follow_up"]["incomplete"] == 397


def test_feedback_makes_reached_delivered(measured: Measured, tmp_path: Path) -> None:
    import sqlite3

    work, _ = _later(measured, tmp_path)
    with sqlite3.connect(measured.ledger.path) as conn:
        conn.executemany(
            "INSERT INTO feedback (event_key, vendor, patient_id, campaign_code, channel, run_id, outcome, code, "
            "suppress, event_at, imported_at, source_file) VALUES (?, 'twilio', ?, 'SPRING-OUTREACH-2025', 'sms', "
            "'run1', ?, NULL, 0, '2025-03-10T15:00:00Z', '2025-03-11T00:00:00Z', 'log.csv')",
            [(f"k{i}", pid, "failed" if i < 40 else "delivered") for i, pid in enumerate(measured.contact[:200])],
        )
    doc = measure_campaign(measured.campaign, work, as_of=LATER).document
    assert doc["intention_to_treat"]["contact"]["reached"] == 157  # delivered: c[40:200] less 3 lost
    pp = doc["per_protocol"]
    assert pp["reached"]["assigned"] == 157
    assert pp["reached"]["completed"] == 57  # delivered c[40:96] and c[100] (day 90) completed


def test_measure_refuses_without_holdout_or_assignments(tmp_path: Path) -> None:
    m = exported(tmp_path, n=50, holdout=None)
    with pytest.raises(CampaignError, match=r"no `holdout:`"):
        measure_campaign(m.campaign, m.work, as_of=LATER)
    with pytest.raises(ConfigError, match=r"--window.*'3 months'.*valid options are"):
        parse_window("3 months")
    assert parse_window("12w") == 84 and parse_window("90d") == 90 and parse_window("30") == 30


def test_cli_measure_plan_and_errors(measured: Measured, tmp_path: Path) -> None:
    work, _ = _later(measured, tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["measure", str(work), str(measured.campaign), "--as-of", "2025-07-01",
                              "--window", "90d"])
    assert res.exit_code == 0, res.output
    assert (work / "measure.json").exists() and (work / "measure.html").exists()
    assert "+11.8 points" in res.output  # 97/317 - 15/80
    plan = runner.invoke(cli, ["measure", str(measured.work), str(measured.campaign), "--plan",
                               "--as-of", AS_OF.isoformat()])
    assert plan.exit_code == 0, plan.output
    assert "too small to detect a 3-point difference" in plan.output
    bad = runner.invoke(cli, ["measure", str(work), str(measured.campaign), "--window", "soon"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "--window" in bad.output


def test_measuring_twice_gives_the_same_document(measured: Measured, tmp_path: Path) -> None:
    work, _ = _later(measured, tmp_path)
    a = measure_campaign(measured.campaign, work, as_of=LATER).document
    b = measure_campaign(measured.campaign, work, as_of=LATER).document
    assert a == b
    assert dt.date.fromisoformat(a["as_of"]) == LATER
