"""Fault injection: `kill -9` of a real `segment export` at every step of a delivery, then a rerun.

After each kill, the destination and the ledger must already satisfy "a vendor file is
visible only if its contacts are committed"; after the rerun, "visible <=> committed",
one complete delivery, no duplicate contacts, no temporary file, and the rerun's report
says what it reconciled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.export.checkpoints import DELIVERY_POINTS
from tests.export.conftest import write_workdir
from tests.export.crash import (
    KILLED,
    assert_invariant,
    assert_visible_only_if_committed,
    journal_states,
    ledger_rows_by_file,
    reservations,
    run_segment,
    temp_files,
    triggers,
    visible,
)
from tests.export.helpers import export_campaign_file
from tests.export.sftpd import FaultySftpServer, sftp_settings, sftpd  # noqa: F401

#: what the next run does about a delivery killed at each point
EXPECTED = {
    "planned": None,  # the ledger transaction died with the process: nothing to reconcile
    "reserved": "withdrawn",
    "staging": "withdrawn",
    "staged": "withdrawn",
    "committed": "completed",
    "publishing": "completed",
    "published": "completed",
    "manifest": "completed",
    "trigger-staged": "completed",
    "triggered": "completed",
}


#: two vendor files per delivery (email and mail: no time-zone look-up, so each process starts fast)
CHANNELS = {
    "channels": ["email", "mail"],
    "vendors": {"email": {"profile": "mailchimp", "fields": ["first_name"]},
                "mail": {"profile": "mail", "fields": ["first_name", "last_name", "address_line1", "city",
                                                       "state", "zip5"]}},
}


def test_every_point_is_covered() -> None:
    assert tuple(EXPECTED) == DELIVERY_POINTS


def _export_args(camp: Path, work: Path, dest: str) -> list[str]:
    return ["export", str(work), str(camp), "--to", dest, "--as-of", "2025-03-10"]


def _rerun(args: list[str]) -> str:
    result = CliRunner().invoke(cli, ["--log-format", "plain", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _check_after_kill(point: str, folder: Path, ledger: Path) -> None:
    assert_visible_only_if_committed(folder, ledger)
    committed = DELIVERY_POINTS.index(point) >= DELIVERY_POINTS.index("committed")
    if not committed:
        assert visible(folder) == set() and ledger_rows_by_file(ledger) == {}
        assert journal_states(ledger) == ([] if point == "planned" else
                                          ["staged" if point == "staged" else "intent"])
        assert reservations(ledger) == (0 if point == "planned" else reservations(ledger))
    else:
        assert sum(ledger_rows_by_file(ledger).values()) > 0
    # anything staged and left behind is owner-only (PHI)
    assert all(mode == 0o600 for mode in temp_files(folder).values()), temp_files(folder)
    if point in ("staging", "staged", "committed"):
        assert temp_files(folder)


def _check_rerun(point: str, out: str, folder: Path, ledger: Path, manifests: Path) -> None:
    expected = EXPECTED[point]
    if expected is None:
        assert "reconciled" not in out
    else:
        assert "reconciled unfinished deliveries" in out and f"; {expected}" in out, out
    assert_invariant(folder, ledger)
    assert len(visible(folder)) == 2 and len(triggers(folder)) == 1
    assert journal_states(ledger)[-1] == "published"
    (manifest,) = manifests.rglob("manifest-*.json")
    assert {f["name"] for f in json.loads(manifest.read_text())["files"]} == visible(folder)


@pytest.mark.parametrize("point", DELIVERY_POINTS)
def test_kill_at_each_step_to_a_folder(point: str, tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work", n_extra=20)
    camp = export_campaign_file(tmp_path / "c", **CHANNELS)
    ledger = tmp_path / "c" / "ledger.sqlite"
    out = tmp_path / "out"
    args = _export_args(camp, work, str(out))
    code, _, err = run_segment(args, crash_at=point)
    assert code == KILLED, err
    _check_after_kill(point, out, ledger)
    _check_rerun(point, _rerun(args), out, ledger, out)
    # and a third run changes nothing: the run is delivered
    again = _rerun(args)
    assert "already delivered" in again
    assert_invariant(out, ledger)


@pytest.mark.parametrize("point", DELIVERY_POINTS)
def test_kill_at_each_step_over_sftp(point: str, tmp_path: Path, sftpd: FaultySftpServer) -> None:  # noqa: F811
    work = write_workdir(tmp_path / "work", n_extra=20)
    camp = export_campaign_file(tmp_path / "c", sftp=sftp_settings(sftpd.known_hosts(tmp_path / "kh")), **CHANNELS)
    ledger = tmp_path / "c" / "ledger.sqlite"
    remote = sftpd.root / "in"
    args = _export_args(camp, work, sftpd.url())
    code, _, err = run_segment(args, crash_at=point)
    assert code == KILLED, err
    _check_after_kill(point, remote, ledger)
    _check_rerun(point, _rerun(args), remote, ledger, work / "exports")
    # no byte of a vendor file was ever written to a file others could read
    assert sftpd.write_modes and all(mode == 0o600 for _, mode in sftpd.write_modes)


@pytest.mark.parametrize("first", ["staging", "committed"])
def test_kill_during_reconciliation_then_run_again(first: str, tmp_path: Path) -> None:
    work = write_workdir(tmp_path / "work", n_extra=20)
    camp = export_campaign_file(tmp_path / "c", **CHANNELS)
    ledger = tmp_path / "c" / "ledger.sqlite"
    out = tmp_path / "out"
    args = _export_args(camp, work, str(out))
    assert run_segment(args, crash_at=first)[0] == KILLED
    # the next run dies while completing or withdrawing the first one
    assert run_segment(args, crash_at="reconciling")[0] == KILLED
    assert_visible_only_if_committed(out, ledger)
    out_text = _rerun(args)
    assert "reconciled unfinished deliveries" in out_text
    assert_invariant(out, ledger)
    assert len(visible(out)) == 2 and len(triggers(out)) == 1
