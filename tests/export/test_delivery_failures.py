"""Failures inside a delivery: what is withdrawn, what is left, and what the error says.

Item by item of "Crash-safe delivery and a contact ledger that never lies":
1. files are renamed into place only after their contacts are committed;
2. an SFTP drop while uploading `.done` withdraws everything it can and names what is left;
6. manifests are per campaign and run; a failed run never removes another's.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from segment.campaign import ContactLedger
from segment.errors import DeliveryError
from segment.export import export_campaign
from tests.export.conftest import AS_OF, write_workdir
from tests.export.crash import (
    KILLED,
    assert_invariant,
    data_rows,
    journal_states,
    ledger_rows_by_file,
    run_segment,
    temp_files,
    visible,
)
from tests.export.helpers import export_campaign_file
from tests.export.sftpd import FaultySftpServer, sftp_settings, sftpd  # noqa: F401


def _break_contact_inserts(ledger: Path) -> None:
    with ContactLedger(ledger).connect() as conn:
        conn.execute("CREATE TRIGGER boom BEFORE INSERT ON contacts "
                     "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")


def _heal(ledger: Path) -> None:
    with sqlite3.connect(ledger) as db:
        db.execute("DROP TRIGGER boom")


# -- item 1 -------------------------------------------------------------------------
def test_files_appear_only_after_the_ledger_commit(tmp_path: Path) -> None:
    """Killed just before the commit: nothing visible, nothing recorded; the next run withdraws."""
    work = write_workdir(tmp_path / "work")
    camp = export_campaign_file(tmp_path / "c")
    ledger = tmp_path / "c" / "ledger.sqlite"
    out = tmp_path / "out"
    args = ["export", str(work), str(camp), "--to", str(out), "--as-of", "2025-03-10"]
    code, _, _ = run_segment(args, crash_at="staged")
    assert code == KILLED
    # every file is at the destination, complete, but only under a hidden temporary name
    assert visible(out) == set() and ledger_rows_by_file(ledger) == {}
    assert sorted(temp_files(out).values()) == [0o600, 0o600]
    assert journal_states(ledger) == ["staged"]
    res = export_campaign(camp, work, out, as_of=AS_OF)
    (found,) = res.reconciled
    assert found.found == "staged" and found.action == "withdrawn"
    assert "nothing was delivered and no contacts were recorded" in found.detail
    assert_invariant(out, ledger)
    assert ContactLedger(ledger).count() == sum(res.sent.values()) == 4


def test_ledger_failure_at_commit_leaves_nothing_and_says_so(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c")
    ledger = tmp_path / "c" / "ledger.sqlite"
    _break_contact_inserts(ledger)
    out = tmp_path / "out"
    with pytest.raises(DeliveryError, match=r"injected failure.*nothing was delivered and no contacts were recorded"):
        export_campaign(camp, workdir, out, as_of=AS_OF)
    assert list(out.iterdir()) == []
    assert journal_states(ledger) == ["withdrawn"]
    _heal(ledger)
    res = export_campaign(camp, workdir, out, as_of=AS_OF)  # the same run, delivered once now
    assert res.reconciled == [] and res.ledger_rows == 4
    assert_invariant(out, ledger)


# -- item 2 -------------------------------------------------------------------------
def _sftp_campaign(tmp_path: Path, server: FaultySftpServer) -> Path:
    return export_campaign_file(tmp_path / "c", sftp=sftp_settings(server.known_hosts(tmp_path / "kh")))


def test_sftp_drop_while_uploading_the_trigger_withdraws_everything(
    tmp_path: Path, sftpd: FaultySftpServer  # noqa: F811
) -> None:
    work = write_workdir(tmp_path / "work")
    camp = _sftp_campaign(tmp_path, sftpd)
    ledger = tmp_path / "c" / "ledger.sqlite"
    remote = sftpd.root / "in"
    sftpd.drop_uploads_matching = re.compile(r"\.done")
    with pytest.raises(DeliveryError) as caught:
        export_campaign(camp, work, sftpd.url(), as_of=AS_OF)
    message = caught.value.message
    assert re.search(r"SFTP upload of SPRING-OUTREACH-2025_20250310_r\w+\.done failed", message), message
    assert message.endswith("nothing was delivered and no contacts were recorded"), message
    assert sftpd.drops >= 2  # every retry was dropped too
    assert sorted(p.name for p in remote.iterdir()) == []  # files renamed into place, then removed
    assert ContactLedger(ledger).count() == 0
    assert journal_states(ledger) == ["withdrawn"]
    assert not list((work / "exports").rglob("manifest-*.json"))
    sftpd.drop_uploads_matching = None
    res = export_campaign(camp, work, sftpd.url(), as_of=AS_OF)
    assert res.reconciled == [] and res.ledger_rows == 4
    assert_invariant(remote, ledger)


def test_sftp_drop_during_trigger_and_cleanup_reports_exactly_what_remains(
    tmp_path: Path, sftpd: FaultySftpServer  # noqa: F811
) -> None:
    work = write_workdir(tmp_path / "work")
    camp = _sftp_campaign(tmp_path, sftpd)
    ledger = tmp_path / "c" / "ledger.sqlite"
    remote = sftpd.root / "in"
    sftpd.drop_uploads_matching = re.compile(r"\.done")
    sftpd.refuse_removes_after_drop = True  # the server goes on dropping: nothing can be removed
    with pytest.raises(DeliveryError) as caught:
        export_campaign(camp, work, sftpd.url(), as_of=AS_OF)
    message = caught.value.message
    left = sorted(visible(remote))
    assert len(left) == 2
    rows = ledger_rows_by_file(ledger)
    # what is still on the server is exactly what the ledger records as sent, file by file
    assert sorted(rows) == left and all(rows[n] == data_rows(remote / n) for n in left)
    head = "still at the destination without a trigger and recorded in the ledger as sent: "
    assert head in message
    listed = message.split(head, 1)[1].split(" (the next run removes them", 1)[0]
    assert sorted(listed.split(", ")) == [f"{n} ({rows[n]} rows)" for n in left]
    assert "temporary files (hidden from the vendor) could not be removed: .SPRING-OUTREACH-2025_20250310_" in message
    assert "nothing was delivered" not in message
    assert journal_states(ledger) == ["withdrawing"]
    # the server recovers: the next run first finishes the withdrawal, then delivers once
    sftpd.drop_uploads_matching = None
    sftpd.refuse_removes = False
    res = export_campaign(camp, work, sftpd.url(), as_of=AS_OF)
    (found,) = res.reconciled
    assert found.found == "withdrawing" and found.action == "withdrawn"
    assert found.detail.startswith("nothing was delivered and no contacts were recorded")
    assert res.ledger_rows == 4
    assert_invariant(remote, ledger)


# -- item 6 -------------------------------------------------------------------------
def test_manifests_are_per_campaign_and_run_and_survive_a_failed_run(workdir: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    spring = export_campaign_file(tmp_path / "c", "spring.yaml")
    other = export_campaign_file(tmp_path / "c", "other.yaml", code="OTHER-NOTE")
    a = export_campaign(spring, workdir, shared, as_of=AS_OF)
    b = export_campaign(other, workdir, shared, as_of=AS_OF)
    assert a.manifest_path == shared / f"manifest-SPRING-OUTREACH-2025-{a.run_id}.json"
    assert b.manifest_path == shared / f"manifest-OTHER-NOTE-{b.run_id}.json"
    before = {p.name: p.read_bytes() for p in shared.glob("manifest-*.json")}
    assert len(before) == 2
    for res in (a, b):
        assert res.manifest_path is not None
        m = json.loads(res.manifest_path.read_text())
        assert [f["name"] for f in m["files"]] == [f.name for f in res.files]
    # a later run of the first campaign fails at its ledger commit
    _break_contact_inserts(tmp_path / "c" / "ledger.sqlite")
    with pytest.raises(DeliveryError, match="nothing was delivered"):
        export_campaign(spring, workdir, shared, as_of=AS_OF.replace(day=11))
    assert {p.name: p.read_bytes() for p in shared.glob("manifest-*.json")} == before


def test_a_symlink_planted_in_the_drop_folder_is_refused_not_followed(tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work")
    first = export_campaign(export_campaign_file(tmp_path / "a"), work, tmp_path / "probe", as_of=AS_OF)
    names = sorted(p.name for p in (tmp_path / "probe").iterdir() if p.name.endswith(".csv"))
    assert names and first.sent
    camp = export_campaign_file(tmp_path / "c")
    ledger = tmp_path / "c" / "ledger.sqlite"
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the vendor's\n")
    (out / names[0]).symlink_to(target)
    with pytest.raises(DeliveryError, match="symbolic link"):
        export_campaign(camp, work, out, as_of=AS_OF)
    assert target.read_text() == "not the vendor's\n"  # never written through
    assert (out / names[0]).is_symlink()
    (out / names[0]).unlink()  # the planted link is not ours; without it the folder is empty
    assert_invariant(out, ledger)  # nothing visible without its ledger rows, no rows without files
    assert ledger_rows_by_file(ledger) == {}
