"""Probabilistic identity resolution: labelled cases, review file, determinism, pinned models."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from segment.cli import cli
from segment.errors import ConfigError
from segment.ingest import ingest
from segment.ingest.identity import (
    IDENTITY_LINKS,
    IDENTITY_MODEL,
    IDENTITY_REVIEW,
    IdentityOptions,
    Linkage,
    Thresholds,
)
from segment.ingest.identity.summary import identity_report, patient_identity

TODAY = dt.date(2025, 6, 1)
HEADER = "patient_id,first_name,last_name,birth_date,sex,address_line1,city,state,zip5,email,phone_e164,updated_at\n"
EHR = HEADER + """E01,William,Carter,1961-04-12,M,12 Oak St,Boston,MA,02134,,617-555-0101,2024-01-01T00:00:00
E02,Margaret,Lee,1975-03-07,F,5 Pine Rd,Boston,MA,02139,,617-555-0102,2024-01-01T00:00:00
E03,Olivia,Brooks,2001-06-15,F,40 Elm St,Boston,MA,02140,,617-555-0103,2024-01-01T00:00:00
E04,Emma,Brooks,2001-06-15,F,40 Elm St,Boston,MA,02140,,617-555-0103,2024-01-01T00:00:00
E05,John,Smith,1980-01-01,M,1 Main St,Boston,MA,02115,,617-555-0104,2024-01-01T00:00:00
E06,Daniel,Novak,1990-09-09,M,7 Birch Ln,Boston,MA,02141,,617-555-0105,2024-01-01T00:00:00
E07,Sarah,Jones,1985-02-20,F,3 Cedar Ct,Boston,MA,02142,sarah.jones85@example.com,617-555-0106,2024-01-01T00:00:00
E08,Robert,King,1950-05-05,M,9 Maple Ave,Boston,MA,02143,rking@example.com,617-555-0107,2024-01-01T00:00:00
E09,Robert,King,1978-08-21,M,9 Maple Ave,Boston,MA,02143,rking@example.com,617-555-0107,2024-01-01T00:00:00
E10,John,Smith,1980-01-01,M,77 Other St,Boston,MA,02199,,,2024-01-01T00:00:00
E11,Christopher,Reyes,1970-11-30,M,2 Ash St,Boston,MA,02144,,617-555-0108,2024-01-01T00:00:00
"""
CRM = HEADER + """C01,Bill,Carter,04/12/1961,Male,12 Oak Street,Boston,MA,02134,,(617) 555-0101,2025-01-01T00:00:00
C02,Margaret,Lee,07/03/1975,F,5 Pine Road,Boston,MA,02139,,617.555.0102,2025-01-01T00:00:00
C03,Olivia,Brooks,06/15/2001,F,40 Elm Street,Boston,MA,02140,,6175550103,2025-01-01T00:00:00
C05,John,Smith,01/01/1980,M,88 Harbor Dr,Boston,MA,02210,,617-555-0999,2025-01-01T00:00:00
C06,Daniel,Novak,09/09/1990,M,300 New Pl,Boston,MA,02145,,617-555-0105,2025-01-01T00:00:00
C07,Sarah,Whitfield,02/20/1985,F,3 Cedar Ct,Boston,MA,02142,Sarah.Jones85@example.com,617-555-0106,2025-01-01T00:00:00
C11,Christpher,Reyes,11/30/1970,M,2 Ash St,Boston,MA,02144,,617-555-0108,2025-01-01T00:00:00
"""
#: the true people: every other record is a person of its own
SAME_PERSON = [
    {"ehr:E01", "crm:C01"},  # nickname, address spelled out, phone formats
    {"ehr:E02", "crm:C02"},  # birth day and month transposed
    {"ehr:E03", "crm:C03"},  # a twin: her sister E04 shares birth date, home and phone
    {"ehr:E06", "crm:C06"},  # moved
    {"ehr:E07", "crm:C07"},  # married name
    {"ehr:E11", "crm:C11"},  # a typo in the first name
]
PROBABILISTIC = IdentityOptions(linkage=Linkage.PROBABILISTIC)


@pytest.fixture
def extract(tmp_path: Path) -> list[Path]:
    (tmp_path / "ehr-patients.csv").write_text(EHR)
    (tmp_path / "crm-patients.csv").write_text(CRM)
    return [tmp_path / "ehr-patients.csv", tmp_path / "crm-patients.csv"]


def _clusters(work: Path) -> list[set[str]]:
    patients = pl.read_parquet(work / "patients.parquet")
    return [set(ids) for ids in patients["source_ids"].to_list()]


def _run(paths: list[Path], work: Path, options: IdentityOptions = PROBABILISTIC) -> Path:
    ingest(paths, work, as_of=TODAY, identity=options)
    return work


def test_labelled_cases_merge_and_stay_apart(extract: list[Path], tmp_path: Path) -> None:
    work = _run(extract, tmp_path / "work")
    clusters = _clusters(work)
    merged = [c for c in clusters if len(c) > 1]
    assert sorted(map(sorted, merged)) == sorted(map(sorted, SAME_PERSON))
    # twins, namesakes, a father and son, same-source namesakes: each their own patient
    for alone in ("ehr:E04", "ehr:E05", "crm:C05", "ehr:E08", "ehr:E09", "ehr:E10"):
        assert {alone} in clusters
    report = json.loads((work / "ingest-report.json").read_text())["identity"]
    assert report["linkage"] == "probabilistic"
    assert report["m_from"] == "priors" and report["u_from"] == "priors"  # 18 records: too few to train
    assert report["merge_pairs"] == len(SAME_PERSON)


def test_review_file_holds_the_twins_owner_only_without_names(extract: list[Path], tmp_path: Path) -> None:
    work = _run(extract, tmp_path / "work")
    path = work / IDENTITY_REVIEW
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    review = pl.read_csv(path)
    assert review.columns == [
        "record_id_1", "record_id_2", "match_weight", "match_probability", "held_back_because",
        "agreeing_fields", "disagreeing_fields", "missing_fields",
    ]
    pairs = {frozenset(p) for p in review.select("record_id_1", "record_id_2").rows()}
    assert frozenset({"ehr:E03", "ehr:E04"}) in pairs
    twins = review.filter((pl.col("record_id_1") == "ehr:E03") & (pl.col("record_id_2") == "ehr:E04")).row(0, named=True)
    assert twins["held_back_because"] == "first names conflict"
    assert "first_name" in twins["disagreeing_fields"]
    assert "birth_date (exact)" in twins["agreeing_fields"]
    text = path.read_text()
    for value in ("Olivia", "Emma", "Brooks", "2001", "555", "Elm"):  # no names, dates, phones, addresses
        assert value not in text
    # a pair in review is not merged, and the father and son are not merged on a shared home
    assert {"ehr:E04"} in _clusters(work)
    assert stat.S_IMODE(os.stat(work / IDENTITY_LINKS).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(work / IDENTITY_MODEL).st_mode) == 0o600


def test_same_input_same_clusters_and_ids(extract: list[Path], tmp_path: Path) -> None:
    a = pl.read_parquet(_run(extract, tmp_path / "a") / "patients.parquet")
    b = pl.read_parquet(_run(extract, tmp_path / "b") / "patients.parquet")
    assert_frame_equal(a, b)
    assert (tmp_path / "a" / IDENTITY_REVIEW).read_bytes() == (tmp_path / "b" / IDENTITY_REVIEW).read_bytes()
    # the surviving id is the earliest source id: source order, then record id
    assert set(a.filter(pl.col("source_ids").list.contains("crm:C01"))["patient_id"]) == {"ehr:E01"}


def test_pinned_model_gives_the_same_result(extract: list[Path], tmp_path: Path) -> None:
    first = _run(extract, tmp_path / "first")
    pinned = tmp_path / "pinned-model.json"
    pinned.write_bytes((first / IDENTITY_MODEL).read_bytes())
    again = _run(extract, tmp_path / "again", IdentityOptions(linkage=Linkage.AUTO, model=pinned))
    assert_frame_equal(pl.read_parquet(first / "patients.parquet"), pl.read_parquet(again / "patients.parquet"))
    report = json.loads((again / "ingest-report.json").read_text())["identity"]
    assert report["reason"] == "pinned model" and report["model"] == str(pinned)


def test_pinned_model_missing_or_incompatible_is_one_clear_line(extract: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nope.json"
    res = runner.invoke(cli, ["ingest", str(tmp_path / "w"), *map(str, extract), "--linkage-model", str(missing)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: {missing}: linkage model file not found (give a segment-identity-model JSON file written by "
        "`segment ingest` (identity-model.json))"
    ] or "linkage model file not found" in res.output
    assert not (tmp_path / "w" / "patients.parquet").exists()  # checked before any data is read

    first = _run(extract, tmp_path / "first")
    data = json.loads((first / IDENTITY_MODEL).read_text())
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**data, "splink_version": "3.9.14"}))
    with pytest.raises(ConfigError, match=r"written by Splink 3\.9\.14.*retrain"):
        IdentityOptions(model=old).checked()
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**data, "format": 99}))
    with pytest.raises(ConfigError, match="format 99 is not supported"):
        IdentityOptions(model=future).checked()
    other = tmp_path / "other.json"
    other.write_text('{"comparisons": []}')
    with pytest.raises(ConfigError, match="not a linkage model"):
        IdentityOptions(model=other).checked()
    with pytest.raises(ConfigError, match="deterministic"):
        IdentityOptions(linkage=Linkage.DETERMINISTIC, model=pinned_copy(first, tmp_path)).checked()
    # a hand-edited model is refused with the key at fault, not an internal error
    for settings_, pattern in (({"comparisons": ["sex"]}, r"comparisons \[None\]; valid: "),
                               ({"comparisons": 5}, r"comparisons \[\]; valid: ")):
        edited = tmp_path / "edited.json"
        edited.write_text(json.dumps({**data, "splink_settings": settings_}))
        with pytest.raises(ConfigError, match=pattern):
            IdentityOptions(model=edited).checked()
    edited.write_text(json.dumps({**data, "trained_on_records": "many"}))
    with pytest.raises(ConfigError, match="`trained_on_records` is 'many'; expected a whole number"):
        IdentityOptions(model=edited).checked()


def pinned_copy(work: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.json"
    target.write_bytes((work / IDENTITY_MODEL).read_bytes())
    return target


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(ConfigError, match="review <= merge <= same source"):
        Thresholds(merge=0.5, review=0.9).check()
    with pytest.raises(ConfigError, match=r"--merge-threshold is 1\.0"):
        Thresholds(merge=1.0).check()


def test_patient_id_is_kept_when_a_new_record_joins(extract: list[Path], tmp_path: Path) -> None:
    crm_only = extract[1]
    work = tmp_path / "work"
    _run([crm_only], work)
    before = pl.read_parquet(work / "patients.parquet")
    carter = before.filter(pl.col("source_ids").list.contains("crm:C01"))["patient_id"].item()
    assert carter == "crm:C01"
    # the EHR arrives first in source order next night: Carter's id stays crm:C01
    _run(extract, work)
    after = pl.read_parquet(work / "patients.parquet")
    row = after.filter(pl.col("source_ids").list.contains("ehr:E01"))
    assert row["patient_id"].item() == "crm:C01"
    assert sorted(row["source_ids"].item()) == ["crm:C01", "ehr:E01"]
    # a fresh folder names it by the earliest source id
    fresh = _run(extract, tmp_path / "fresh")
    assert "ehr:E01" in pl.read_parquet(fresh / "patients.parquet")["patient_id"].to_list()


def test_auto_is_deterministic_for_tiny_extracts(extract: list[Path], tmp_path: Path) -> None:
    work = _run(extract, tmp_path / "work", IdentityOptions())
    report = json.loads((work / "ingest-report.json").read_text())["identity"]
    assert report["linkage"] == "deterministic" and report["reason"].startswith("auto: fewer than 1,000")
    assert not (work / IDENTITY_REVIEW).exists() and not (work / IDENTITY_MODEL).exists()


def test_identity_report_and_explain_rows(extract: list[Path], tmp_path: Path) -> None:
    work = _run(extract, tmp_path / "work")
    report = identity_report(work)
    assert report.summary["linkage"] == "probabilistic"
    assert report.summary["patients with more than one record"] == len(SAME_PERSON)
    assert report.summary["review pairs (not merged)"] == pl.read_csv(work / IDENTITY_REVIEW).height
    assert {r["records"]: r["patients"] for r in report.cluster_sizes} == {1: 6, 2: 6}
    levels = {(r["comparison"], r["level"]) for r in report.parameters}
    assert ("birth_date", "day and month transposed") in levels and ("first_name", "nickname") in levels
    rows = patient_identity(work, "ehr:E02")
    assert len(rows) == 1
    assert {rows[0]["record"], rows[0]["linked to"]} == {"ehr:E02", "crm:C02"}
    assert "birth_date (day and month transposed)" in rows[0]["agreeing"]
    assert rows[0]["match weight"] > 0

    res = CliRunner().invoke(cli, ["identity", "report", str(work)])
    assert res.exit_code == 0, res.output
    assert "Records per patient" in res.output and "Model parameters" in res.output
    assert "day and month transposed" in res.output


def test_deterministic_linkage_keeps_the_old_matcher(extract: list[Path], tmp_path: Path) -> None:
    work = _run(extract, tmp_path / "work", IdentityOptions(linkage=Linkage.DETERMINISTIC))
    clusters = _clusters(work)
    assert {"ehr:E01", "crm:C01"} in clusters  # Bill = William, same birth date and name
    assert {"ehr:E02"} in clusters  # a transposed birth date is beyond exact keys
    rows = patient_identity(work, "ehr:E01")
    assert {r["record"] for r in rows} == {"ehr:E01", "crm:C01"}
    assert all(r["agreeing"] == "deterministic keys" for r in rows)


def test_audit_reports_the_review_count(extract: list[Path], tmp_path: Path) -> None:
    from segment.audit.document import identity_counts

    work = _run(extract, tmp_path / "work")
    counts = identity_counts(work)
    assert counts is not None
    assert counts["linkage"] == "probabilistic"
    assert counts["review_pairs"] == pl.read_csv(work / IDENTITY_REVIEW).height > 0
    assert counts["merge_pairs"] == len(SAME_PERSON)
    assert identity_counts(tmp_path) is None  # a folder ingest never wrote


def test_campaign_pins_a_linkage_model_relative_to_its_file(tmp_path: Path) -> None:
    from segment.campaign import load_campaign

    root = Path(__file__).resolve().parents[2]
    text = (root / "examples" / "campaigns" / "fall-outreach.yaml").read_text()
    folder = tmp_path / "campaigns"
    folder.mkdir()
    shutil.copytree(root / "examples" / "campaigns" / "suppression", folder / "suppression")
    (folder / "c.yaml").write_text(text + "\nlinkage: probabilistic\nlinkage_model: models/identity.json\n")
    campaign = load_campaign(folder / "c.yaml")
    assert campaign.linkage == "probabilistic"
    assert campaign.linkage_model == (folder / "models" / "identity.json").resolve()
