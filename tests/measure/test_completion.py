"""Completion is the campaign's rules evaluated again, as of each window's end, by the rule engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from segment.cli import cli
from segment.errors import StageInputError
from segment.measure import measure_campaign
from segment.measure.cohort import assignments, cohort, completion_rows
from segment.measure.completion import completions, extract_frames
from segment.rules.loader import load_rules
from segment.rules.run import evaluate
from tests.campaign.test_holdout import _people

from .conftest import COLONOSCOPY, LATER, Measured, day, later_extract, rules_folder


def _windows(rows: list[tuple[str, dt.date]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"patient_id": pl.String, "window_end": pl.Date}, orient="row")


def test_each_window_is_evaluated_as_of_its_end(tmp_path: Path) -> None:
    work = later_extract(tmp_path / "w", _people(4), {}, more=[
        ("H00000", day(10)), ("H00000", day(100)),   # completed in the window, tested again after it
        ("H00001", day(100)),                        # the same event, inside a later cohort's window
        ("H00002", day(-30)),                        # before the send only
        ("H00003", day(95)),                         # belongs to no cohort of H00003's window
    ])
    ruleset = load_rules(rules_folder(tmp_path / "rules"), ["crc"])
    windows = _windows([("H00000", day(90)), ("H00001", day(120)), ("H00002", day(90)), ("H00003", day(90))])
    done = completions(windows, extract_frames(work), ruleset).collect().sort("patient_id")
    expected = pl.DataFrame({"patient_id": ["H00000", "H00001", "H00002"],
                             "window_end": [day(90), day(120), day(90)],
                             "evidence_date": [day(10), day(100), day(-30)]})
    assert_frame_equal(done, expected)
    # only assigned patients are evaluated
    assert completions(windows.head(1), extract_frames(work), ruleset).collect()["patient_id"].to_list() == ["H00000"]


def test_a_second_test_after_the_window_does_not_hide_the_first(measured: Measured, tmp_path: Path) -> None:
    c, h = measured.contact, measured.holdout
    done = {pid: day(10) for pid in c[:30]} | {pid: day(20) for pid in h[:5]}
    # tested again after the window (before --as-of): the rule's evidence as of --as-of is the later test
    again = [(pid, day(100)) for pid in c[:20]] + [(pid, day(110)) for pid in h[:5]]
    # edges: the window's last day counts, the day after does not, the send day and before do not
    edges = [(c[40], day(90)), (c[41], day(91)), (c[42], day(0)), (c[43], day(-1))]
    work = later_extract(tmp_path / "later", _people(400), done, more=[*again, *edges])
    doc = measure_campaign(measured.campaign, work, as_of=LATER, window_days=90).document
    assert doc["intention_to_treat"]["contact"]["completed"] == 31  # c[:30] and c[40]
    assert doc["intention_to_treat"]["holdout"]["completed"] == "<11"
    assert doc["curve"]["holdout"][20] == pytest.approx(5 / 80)
    # the old way (eligibility as of --as-of, its evidence the latest test) missed the 20 + 5 retested
    evaluate(work, measured.campaign.parent / "rules", LATER)
    old = _cohort_from_eligibility(measured, work)
    assert int(old.filter(pl.col("arm") == "contact")["completed"].sum()) == 11
    assert int(old.filter(pl.col("arm") == "holdout")["completed"].sum()) == 0


def _cohort_from_eligibility(m: Measured, work: Path) -> pl.DataFrame:
    """The cohort as measure built it before it evaluated the rules itself: eligibility.parquet as of --as-of."""
    patients = pl.scan_parquet(work / "enriched.parquet")
    assigned = assignments(m.ledger.arms("SPRING-OUTREACH-2025"), m.ledger.contacts("SPRING-OUTREACH-2025"),
                           patients, window_days=90, as_of=LATER)
    return cohort(assigned, patients, completion_rows(pl.scan_parquet(work / "eligibility.parquet"), ["crc"]),
                  window_days=90, as_of=LATER).collect().sort("assigned_id")


def test_same_figures_as_the_eligibility_path_where_it_was_right(measured: Measured, tmp_path: Path) -> None:
    c, h = measured.contact, measured.holdout
    done = {pid: day(5 + i % 80) for i, pid in enumerate(c[:100])} | {pid: day(30) for pid in h[:15]}
    # a colonoscopy also completes the rule; events after the window (no earlier test) count for nobody
    more = [(pid, day(45), COLONOSCOPY) for pid in c[150:160]] + [(pid, day(120)) for pid in c[200:210]]
    work = later_extract(tmp_path / "later", _people(400), done, more=more)  # type: ignore[arg-type]
    assert not (work / "eligibility.parquet").exists()  # measure needs no `segment evaluate`
    new = measure_campaign(measured.campaign, work, as_of=LATER, window_days=90)
    assert not (work / "eligibility.parquet").exists()
    evaluate(work, measured.campaign.parent / "rules", LATER)
    old = _cohort_from_eligibility(measured, work)
    assert int(old["completed"].sum()) == 125
    itt = new.document["intention_to_treat"]
    assert itt["contact"]["completed"] == 110 and itt["holdout"]["completed"] == 15
    assert itt["contact"]["completed"] == int(old.filter(pl.col("arm") == "contact")["completed"].sum())
    from segment.measure.document import curve
    assert new.document["curve"] == curve(old, 90)


def test_screened_then_died_still_completed(measured: Measured, tmp_path: Path) -> None:
    c = measured.contact
    rows = {r["patient_id"]: r for r in _people(400)}
    rows[c[0]] = {**rows[c[0]], "deceased_date": day(20)}  # FIT on day 10, died on day 20
    rows[c[1]] = {**rows[c[1]], "deceased_date": day(20)}  # died without a test
    work = later_extract(tmp_path / "later", list(rows.values()), {c[0]: day(10)})
    doc = measure_campaign(measured.campaign, work, as_of=LATER, window_days=90).document
    assert doc["intention_to_treat"]["contact"]["assigned"] == 319
    assert doc["intention_to_treat"]["contact"]["completed"] == "<11"
    assert doc["lost"]["contact"]["died"] == "<11"
    assert doc["curve"]["contact"][10] == pytest.approx(1 / 319)


def test_measure_says_what_it_needs_without_patients_or_events(measured: Measured, tmp_path: Path) -> None:
    work = tmp_path / "later"
    work.mkdir()
    with pytest.raises(StageInputError, match=r"patients.parquet and events.parquet not found.*segment ingest"):
        measure_campaign(measured.campaign, work, as_of=LATER)
    later_extract(work, _people(10), {})
    (work / "events.parquet").unlink()
    res = CliRunner().invoke(cli, ["measure", str(work), str(measured.campaign), "--as-of", "2025-07-01"])
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "events.parquet not found" in res.output
    assert "patients.parquet" not in res.output  # enriched.parquet holds the patients


def test_rules_option_and_unknown_rule(measured: Measured, tmp_path: Path) -> None:
    work = later_extract(tmp_path / "later", _people(400), {measured.contact[0]: day(3)})
    other = rules_folder(tmp_path / "elsewhere")
    (other / "crc.yaml").write_text((other / "crc.yaml").read_text().replace("id: crc", "id: crc2"))
    (other / "crc.yaml").rename(other / "crc2.yaml")
    res = CliRunner().invoke(cli, ["measure", str(work), str(measured.campaign), "--as-of", "2025-07-01",
                                   "--rules", str(other)])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "crc" in res.output and "crc2" in res.output
    ok = CliRunner().invoke(cli, ["measure", str(work), str(measured.campaign), "--as-of", "2025-07-01",
                                  "--rules", str(measured.campaign.parent / "rules")])
    assert ok.exit_code == 0, ok.output
