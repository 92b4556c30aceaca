"""Helpers for fault-injection tests: run `segment` in a subprocess, read what is delivered."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from segment.export.checkpoints import CRASH_ENV, PAUSE_ENV

KILLED = -signal.SIGKILL


def segment_process(args: Sequence[str], *, crash_at: str | None = None, pause_at: str | None = None,
                    cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``segment ARGS`` in a new Python process (optionally crashing or pausing at a point)."""
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
    if crash_at:
        env[CRASH_ENV] = crash_at
    if pause_at:
        env[PAUSE_ENV] = pause_at
    return subprocess.Popen(
        [sys.executable, "-c", "from segment.cli import main; main()", "--log-format", "plain", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_segment(args: Sequence[str], *, crash_at: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``segment ARGS`` to its end (or its kill); return code, stdout, stderr."""
    proc = segment_process(args, crash_at=crash_at)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def visible(folder: Path) -> set[str]:
    """Vendor files a vendor can see: final names, not manifests or triggers."""
    if not folder.exists():
        return set()
    return {p.name for p in folder.iterdir()
            if p.is_file() and not p.name.startswith((".", "manifest-")) and not p.name.endswith(".done")}


def triggers(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(".done")} if folder.exists() else set()


def temp_files(folder: Path) -> dict[str, int]:
    """Temporary (staged) files and their permission bits."""
    if not folder.exists():
        return {}
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()
            if p.name.startswith(".") and p.name.endswith(".part")}


def ledger_rows_by_file(ledger: Path) -> dict[str, int]:
    """Committed contact rows per vendor file."""
    if not ledger.exists():
        return {}
    with sqlite3.connect(ledger) as db:
        return {str(f): int(n) for f, n in
                db.execute("SELECT file_name, COUNT(*) FROM contacts GROUP BY file_name").fetchall()}


def duplicate_contacts(ledger: Path) -> list[tuple[str, str, str]]:
    """(campaign, patient, channel) contacted more than once."""
    if not ledger.exists():
        return []
    with sqlite3.connect(ledger) as db:
        return db.execute(
            "SELECT campaign_code, patient_id, channel FROM contacts GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"
        ).fetchall()


def journal_states(ledger: Path) -> list[str]:
    if not ledger.exists():
        return []
    with sqlite3.connect(ledger) as db:
        try:
            return [r[0] for r in db.execute("SELECT state FROM deliveries ORDER BY created_at")]
        except sqlite3.OperationalError:
            return []


def reservations(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def data_rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") - 1


def assert_visible_only_if_committed(folder: Path, ledger: Path) -> None:
    """At any instant: a vendor file under its final name has its contacts committed."""
    rows = ledger_rows_by_file(ledger)
    for name in visible(folder):
        assert rows.get(name) == data_rows(folder / name), f"{name} is visible without its ledger rows"


def assert_invariant(folder: Path, ledger: Path) -> None:
    """At rest: files visible <=> ledger rows committed, one trigger, no duplicates, no temp files."""
    rows = ledger_rows_by_file(ledger)
    shown = visible(folder)
    assert set(rows) == shown, (sorted(rows), sorted(shown))
    for name in shown:
        assert rows[name] == data_rows(folder / name)
    assert duplicate_contacts(ledger) == []
    if shown:  # one delivery, complete: its trigger lists exactly the visible files
        (trigger,) = triggers(folder)
        listed = {f["name"] for f in json.loads((folder / trigger).read_text())["files"]}
        assert listed == shown
    assert temp_files(folder) == {}
    assert reservations(ledger) == 0
