"""export_campaign end to end on a folder: determinism, delta, manifest, failures, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.campaign import ContactLedger
from segment.cli import cli
from segment.errors import DeliveryError
from segment.export import export_campaign
from tests.export.conftest import AS_OF, write_workdir
from tests.export.helpers import export_campaign_file


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_same_inputs_give_identical_files(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    a = export_campaign(camp, workdir, tmp_path / "a", as_of=AS_OF, ledger=tmp_path / "la.sqlite")
    b = export_campaign(camp, workdir, tmp_path / "b", as_of=AS_OF, ledger=tmp_path / "lb.sqlite")
    assert a.run_id == b.run_id and a.run_id.startswith("r")
    assert listing(tmp_path / "a") == listing(tmp_path / "b")
    for f in a.files:
        assert (tmp_path / "a" / f.name).read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    names = listing(tmp_path / "a")
    assert names == sorted([
        f"SPRING-OUTREACH-2025_email_mailchimp_20250310_{a.run_id}.csv",
        f"SPRING-OUTREACH-2025_sms_twilio_20250310_{a.run_id}.csv",
        f"SPRING-OUTREACH-2025_20250310_{a.run_id}.done",
        f"manifest-SPRING-OUTREACH-2025-{a.run_id}.json",
    ])
    for name in names:
        assert stat.S_IMODE(os.stat(tmp_path / "a" / name).st_mode) == 0o600
    # rerunning the same run into the same folder reproduces it, ledger unchanged
    again = export_campaign(camp, workdir, tmp_path / "a", as_of=AS_OF, ledger=tmp_path / "la.sqlite")
    assert again.sent == a.sent and again.ledger_rows == 0


def test_manifest_records_everything(workdir: Path, tmp_path: Path) -> None:
    (workdir / "enrich-report.json").write_text(json.dumps(
        {"pack": "ma-2020", "tract_vintage": 2020, "indicator_tract_vintage": 2020}))
    camp = export_campaign_file(
        tmp_path / "c",
        vendors={"sms": {"profile": "twilio", "fields": ["first_name"]},
                 "email": {"profile": "mailchimp", "fields": ["first_name", "birth_date"]}},
        allow_phi={"birth_date": "Vendor matches existing CRM profiles on date of birth under the BAA"},
    )
    out = tmp_path / "out"
    res = export_campaign(camp, workdir, out, as_of=AS_OF, run_id="run1")
    assert res.manifest_path == out / "manifest-SPRING-OUTREACH-2025-run1.json"
    m = json.loads(res.manifest_path.read_text())
    assert m["campaign_code"] == "SPRING-OUTREACH-2025" and m["run_id"] == "run1"
    assert m["as_of"] == "2025-03-10" and m["mode"] == "full"
    assert m["counts"]["per_channel"] == {"sms": 2, "email": 2}
    assert m["counts"]["removed"]["no_consent_or_contact"] == 1
    assert m["rules"] == [{"rule_id": "crc", "rule_version": "1"}]
    assert m["reference"] == {
        "enrich": {"name": "ma-2020", "tract_vintage": 2020, "indicator_tract_vintage": 2020}}
    assert m["allow_phi"] == {"birth_date": "Vendor matches existing CRM profiles on date of birth under the BAA"}
    assert set(m["inputs"]["files"]) >= {"enriched.parquet", "eligibility.parquet", "campaign:campaign.yaml"}
    for entry in m["files"]:
        data = (out / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        assert data.count(b"\n") - 1 == entry["rows"]
    trigger = json.loads((out / m["trigger"]).read_text())
    assert [f["sha256"] for f in trigger["files"]] == [f["sha256"] for f in m["files"]]
    assert "crc" not in (out / m["trigger"]).read_text()  # the trigger goes to the vendor: neutral
    assert res.ledger_rows == 4
    email = (out / res.files[1].name).read_text()
    assert email.splitlines()[0] == "Email Address,First Name,Tags,birth_date"
    assert ",1965-06-01" in email


def test_delta_after_full(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    camp = export_campaign_file(tmp_path / "c")
    ledger = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    full = export_campaign(camp, work, tmp_path / "o1", as_of=AS_OF)
    assert sum(full.sent.values()) == 4 and ledger.count() == 4
    # new patients arrive; the next day's delta sends only them
    work2 = write_workdir(tmp_path / "work2", n_extra=2)
    delta = export_campaign(camp, work2, tmp_path / "o2", as_of=AS_OF.replace(day=11), mode="delta")
    assert delta.removed["already_sent"] == 4
    assert delta.sent == {"sms": 2, "email": 0}
    assert ledger.count() == 6
    # a full export the same day re-selects everyone eligible (no caps in this campaign)
    full2 = export_campaign(camp, work2, tmp_path / "o3", as_of=AS_OF.replace(day=11), mode="full")
    assert sum(full2.sent.values()) == 6


def test_dry_run_writes_nothing(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    res = export_campaign(camp, workdir, tmp_path / "out", as_of=AS_OF, dry_run=True)
    assert res.sent == {"sms": 2, "email": 2} and res.files
    assert not (tmp_path / "out").exists()
    assert ContactLedger(tmp_path / "c" / "ledger.sqlite").count() == 0


def test_failure_in_ledger_leaves_nothing(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    ledger = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    with ledger.connect() as conn:  # inject a failure at the very last step: the ledger insert
        conn.execute("CREATE TRIGGER boom BEFORE INSERT ON contacts "
                     "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    out = tmp_path / "out"
    with pytest.raises(DeliveryError, match="nothing was delivered"):
        export_campaign(camp, workdir, out, as_of=AS_OF)
    assert listing(out) == []  # files were renamed into place, then removed with the manifest
    assert ledger.count() == 0


def test_rerun_of_a_delivered_run_sends_nothing_and_touches_nothing(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    out = tmp_path / "out"
    first = export_campaign(camp, workdir, out, as_of=AS_OF)
    delivered = {p.name: p.read_bytes() for p in out.iterdir()}
    ledger = ContactLedger(tmp_path / "c" / "ledger.sqlite")
    rows = ledger.count()
    assert rows == sum(first.sent.values()) > 0
    with ledger.connect() as conn:  # any write to the contacts would now fail
        conn.execute("CREATE TRIGGER boom BEFORE INSERT ON contacts "
                     "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    # the vendor took the files away: the same run is still not sent again
    for p in out.iterdir():
        if p.suffix == ".csv":
            p.unlink()
    again = export_campaign(camp, workdir, out, as_of=AS_OF)
    assert again.already_delivered and again.ledger_rows == 0 and again.sent == first.sent
    assert again.manifest_path == first.manifest_path
    assert {p.name for p in out.iterdir()} == {n for n in delivered if not n.endswith(".csv")}
    assert ledger.count() == rows


def test_failure_renaming_second_file_leaves_nothing(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    out = tmp_path / "out"
    probe = export_campaign(camp, workdir, out, as_of=AS_OF, dry_run=True)
    # inject a failure: a non-empty folder occupies the second file's final name
    blocker = out / probe.files[1].name
    (blocker / "x").mkdir(parents=True)
    with pytest.raises(DeliveryError, match="nothing was delivered"):
        export_campaign(camp, workdir, out, as_of=AS_OF)
    assert listing(out) == [probe.files[1].name]  # only the blocker
    assert ContactLedger(tmp_path / "c" / "ledger.sqlite").count() == 0


def test_split_at_tiny_size(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work", n_extra=30)
    camp = export_campaign_file(
        tmp_path / "c", channels=["email"],
        profiles={"braze-small": {"base": "braze", "max_file_bytes": 300}},
        vendors={"email": {"profile": "braze-small", "fields": ["first_name"]}},
    )
    out = tmp_path / "out"
    res = export_campaign(camp, work, out, as_of=AS_OF, run_id="run1")
    assert len(res.files) > 3
    header = None
    rows = []
    for i, f in enumerate(res.files, start=1):
        assert f.name.endswith(f"_part{i:03d}.csv") and f.size <= 300
        lines = (out / f.name).read_text().splitlines()
        header = header or lines[0]
        assert lines[0] == header
        rows += lines[1:]
    assert len(rows) == sum(f.rows for f in res.files) == res.sent["email"] == 33
    assert rows == sorted(rows, key=lambda r: r.split(",")[0])


def test_overlong_email_rejected_not_truncated(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    pts = pl.read_parquet(work / "enriched.parquet").with_columns(
        pl.when(pl.col("patient_id") == "P005").then(pl.lit("e" * 250 + "@example.org"))
        .otherwise(pl.col("email")).alias("email")
    )
    pts.write_parquet(work / "enriched.parquet")
    camp = export_campaign_file(tmp_path / "c")
    res = export_campaign(camp, work, tmp_path / "out", as_of=AS_OF)
    assert res.sent["email"] == 1 and res.removed["field_too_long"] == 1
    assert ContactLedger(tmp_path / "c" / "ledger.sqlite").count() == 3  # P005 never recorded


@pytest.mark.parametrize("run_id", ["../x", "/abs", "a\x00b", ".hidden"])
def test_run_id_cannot_escape(workdir: Path, tmp_path: Path, run_id: str) -> None:
    camp = export_campaign_file(tmp_path / "c")
    with pytest.raises(DeliveryError):
        export_campaign(camp, workdir, tmp_path / "out", as_of=AS_OF, run_id=run_id)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_patients_fallback_and_missing_eligibility(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    (work / "enriched.parquet").rename(work / "geocoded.parquet")
    camp = export_campaign_file(tmp_path / "c")
    res = export_campaign(camp, work, tmp_path / "out", as_of=AS_OF, dry_run=True)
    assert "geocoded.parquet" in res.manifest["inputs"]["files"]
    (work / "eligibility.parquet").unlink()
    runner = CliRunner()
    r = runner.invoke(cli, ["export", str(work), str(camp), "--to", str(tmp_path / "o")])
    assert r.exit_code == 1 and "run `segment evaluate` first" in r.output


def test_cli_export(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    runner = CliRunner()
    out = tmp_path / "out"
    r = runner.invoke(cli, ["export", str(workdir), str(camp), "--to", str(out),
                            "--as-of", "2025-03-10", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "would send (sms)" in r.output and not out.exists()
    r = runner.invoke(cli, ["export", str(workdir), str(camp), "--to", str(out),
                            "--as-of", "2025-03-10", "--delta"])
    assert r.exit_code == 0, r.output
    assert any(n.startswith("manifest-SPRING-OUTREACH-2025-") for n in listing(out))
    assert "ana@example.org" not in r.output and "Silva" not in r.output
    r = runner.invoke(cli, ["export", str(workdir), str(camp), "--to", str(out), "--as-of", "03/10/2025"])
    assert r.exit_code == 2
    bad = export_campaign_file(tmp_path / "c", "bad.yaml", code="MAMMOGRAM-Q1")
    r = runner.invoke(cli, ["export", str(workdir), str(bad), "--to", str(out)])
    assert r.exit_code == 1 and "bad.yaml:2" in r.output and "mammogram" in r.output
