"""`segment purge` removes only what segment's records say it wrote; shared folders keep their mode.

The faults: purge deleted any file named ``manifest.json`` or ``audit.html`` (or a stage
file name) anywhere below the folder, and every folder segment wrote into was chmod-ed
0700, including an existing shared ledger folder and a vendor drop folder.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from segment import workdir as wd
from segment.campaign import ContactLedger
from segment.cli import cli
from segment.retention import parse_duration, purge
from segment.written import RECORD_NAME
from tests.campaign.helpers import campaign_dict
from tests.export.conftest import write_workdir

OLD = time.time() - 90 * 86400
PATIENTS = "patient_id,first_name,last_name,birth_date,sex\nP1,Ana,Silva,1970-01-01,F\n"


def _age(*paths: Path) -> None:
    for p in paths:
        os.utime(p, (OLD, OLD))


def _ingest(work: Path, tmp_path: Path) -> None:
    extract = tmp_path / "ehr-patients.csv"
    extract.write_text(PATIENTS)
    result = CliRunner().invoke(cli, ["ingest", str(work), str(extract)])
    assert result.exit_code == 0, result.stderr


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_user_files_with_product_names_are_never_removed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _ingest(work, tmp_path)
    # the user's own files, named like segment's, in the folder and below it
    mine = [work / "manifest.json", work / "notes" / "audit.html", work / "runs" / "old" / "audit.html",
            work / "exports" / "manifest.json", work / "backup" / "patients.parquet", work / "audit.json"]
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("mine")
    written = [work / n for n in ("patients.parquet", "events.parquet", "rejects.csv", "ingest-report.json",
                                  "identity-report.json")]
    _age(*mine, *written)
    result = purge(work, parse_duration("30d"))
    assert result.removed == sorted(p.name for p in written)
    assert all(p.read_text() == "mine" for p in mine)
    assert not any(p.exists() for p in written)
    assert not (work / RECORD_NAME).exists()  # nothing of segment's left to record


def test_only_old_files_go_and_the_record_keeps_the_rest(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _ingest(work, tmp_path)
    _age(work / "patients.parquet")
    dry = purge(work, parse_duration("30d"), dry_run=True)
    assert dry.removed == ["patients.parquet"] and (work / "patients.parquet").exists()
    result = purge(work, parse_duration("30d"))
    assert result.removed == ["patients.parquet"] and result.kept == 4  # events, rejects, both reports
    # later files are still recorded, so a later purge still finds them
    _age(work / "events.parquet")
    assert purge(work, parse_duration("30d")).removed == ["events.parquet"]


def test_a_file_replaced_since_segment_wrote_it_is_kept(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _ingest(work, tmp_path)
    (work / "rejects.csv").unlink()
    (work / "rejects.csv").write_text("the user's own rejects, same name\n")
    _age(work / "rejects.csv")
    assert purge(work, parse_duration("0s")).removed == [
        "events.parquet", "identity-report.json", "ingest-report.json", "patients.parquet"]
    assert (work / "rejects.csv").read_text().startswith("the user's own")


def test_audit_files_of_a_run_are_removed_with_their_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _ingest(work, tmp_path)
    with wd.atomic_open(work / "runs" / "abc123" / "audit.html", "w") as fh:
        fh.write("<html>")
    wd.write_json(work / "runs" / "abc123" / "audit.json", {"n": 1})
    (work / "runs" / "keep.txt").write_text("mine")
    result = purge(work, parse_duration("0s"))
    assert "runs/abc123/audit.html" in result.removed and "runs/abc123/audit.json" in result.removed
    assert not (work / "runs" / "abc123").exists()
    assert _tree(work) == ["runs/keep.txt"]


def test_records_never_lead_outside_the_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    outside = tmp_path / "outside"
    outside.mkdir()
    wd.write_json(work / wd.INGEST_REPORT, {})          # starts the folder's record
    with wd.atomic_open(work / "cache" / "lookup.parquet", "wb") as fh:
        fh.write(b"x")                                   # noted in it as cache/lookup.parquet
    # the recorded file moved out (same inode) and its folder swapped for a link to it
    (work / "cache" / "lookup.parquet").rename(outside / "lookup.parquet")
    (work / "cache").rmdir()
    (work / "cache").symlink_to(outside)
    # and a tampered entry pointing out of the folder at a file's true identity
    (outside / "audit.json").write_text("precious")
    st = os.stat(outside / "audit.json")
    with open(work / RECORD_NAME, "a") as fh:
        fh.write(f'{{"path": "../outside/audit.json", "dev": {st.st_dev}, "ino": {st.st_ino}, "size": {st.st_size}}}\n')
    result = purge(work, parse_duration("0s"))
    assert result.removed == [wd.INGEST_REPORT]
    assert sorted(os.listdir(outside)) == ["audit.json", "lookup.parquet"]


def test_files_segment_writes_outside_a_working_folder_add_no_record(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    wd.write_json(drop / "manifest-SPRING-r1.json", {})
    assert sorted(os.listdir(drop)) == ["manifest-SPRING-r1.json"]


def test_existing_shared_folders_keep_their_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        shared = tmp_path / "shared-ledger"
        shared.mkdir()
        os.chmod(shared, 0o2775)
        ContactLedger(shared / "contacts.sqlite").history(None)
        assert stat.S_IMODE(shared.stat().st_mode) == 0o2775
        # folders segment creates, parents included, are owner-only whatever the umask
        created = wd.ensure_private_dir(tmp_path / "new" / "deeper" / "leaf")
        for folder in (tmp_path / "new", tmp_path / "new" / "deeper", created):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        os.umask(old_umask)


def test_export_into_an_existing_drop_folder_keeps_its_mode(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    drop = tmp_path / "drop"
    drop.mkdir()
    os.chmod(drop, 0o2770)  # the vendor's pickup account reads it through the group
    campaign = tmp_path / "c.yaml"
    campaign.write_text(yaml.safe_dump(campaign_dict(ledger=str(tmp_path / "ledger.sqlite"))))
    result = CliRunner().invoke(cli, ["export", str(work), str(campaign), "--to", str(drop),
                                      "--as-of", "2025-03-10"])
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(drop.stat().st_mode) == 0o2770
    assert any(name.endswith(".csv") for name in os.listdir(drop))
    assert RECORD_NAME not in os.listdir(drop)
