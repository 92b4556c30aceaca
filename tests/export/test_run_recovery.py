"""`segment run` after a kill: it reconciles first, removes a dead writer's temporary files,
and recomputes a cached stage file whose bytes changed without its size changing (item 16).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from segment.cli import cli
from tests.export.crash import (
    KILLED,
    assert_invariant,
    assert_visible_only_if_committed,
    run_segment,
    visible,
)


def _run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["--log-format", "plain", *args])
    return r.exit_code, r.stdout, r.stderr


def test_run_killed_after_the_ledger_commit_is_completed_by_the_next_run(demo: dict[str, Path]) -> None:
    code, _, err = run_segment(["run", str(demo["spring"])], crash_at="committed", timeout=300)
    assert code == KILLED, err
    spring = demo["exports"] / "spring"
    assert visible(spring) == set()  # nothing visible yet, though the contacts are committed
    assert_visible_only_if_committed(spring, demo["ledger"])
    code, out, err = _run("run", str(demo["spring"]))
    assert code == 0, err
    assert "reconciled (1)" in out and "found committed; completed" in out
    assert "already delivered" in out  # the reconciled delivery was this very run
    assert_invariant(spring, demo["ledger"])
    assert len(visible(spring)) == 2
    record = json.loads((demo["work"] / "run-log.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "ok" and "completed" in record["reconciled"][0]
    # item 5 at the run level: a run dated before those contacts is refused before any stage
    code, _, err = _run("run", str(demo["spring"]), "--as-of", "2025-12-20")
    assert code == 1 and "--as-of 2025-12-20 is before contacts already in the contact ledger" in err
    record = json.loads((demo["work"] / "run-log.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "failed: CampaignError" and record["stages"] == []
    assert _run("run", str(demo["spring"]), "--as-of", "2025-12-20", "--dry-run")[0] == 0


def test_dead_writers_temp_files_and_a_silently_corrupted_stage_file(demo: dict[str, Path]) -> None:
    assert _run("run", str(demo["spring"]))[0] == 0
    work = demo["work"]
    # a writer killed in the middle of writing a stage file (PHI) leaves its temporary file
    script = (
        "import os, signal, sys; from pathlib import Path; from segment import workdir as wd\n"
        "with wd.atomic_path(Path(sys.argv[1]) / 'patients.parquet') as tmp:\n"
        "    tmp.write_bytes(b'Ana Silva 1965-06-01 ' * 100); print(tmp.name, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(work)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
    assert proc.returncode == KILLED, proc.stderr
    leftover = work / proc.stdout.strip()
    assert leftover.exists() and stat.S_IMODE(leftover.stat().st_mode) == 0o600
    # bit rot in a cached stage output: same size, same time stamp
    geocoded = work / "geocoded.parquet"
    st = geocoded.stat()
    data = bytearray(geocoded.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    geocoded.write_bytes(bytes(data))
    os.utime(geocoded, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert geocoded.stat().st_size == st.st_size and geocoded.stat().st_mtime_ns == st.st_mtime_ns
    code, out, err = _run("run", str(demo["spring"]))
    assert code == 0, err
    assert not leftover.exists() and re.search(r"temporary files removed +1\n", out), out
    record = json.loads((work / "run-log.jsonl").read_text().splitlines()[-1])
    status = {s["stage"]: s["status"] for s in record["stages"]}
    assert status["ingest"] == "reused" and status["geocode"] == "ran"
    assert record["temp_files_removed"] == 1
