"""Item 4: two campaigns exporting at once, from different working folders, into one ledger.

Each process pauses inside its cap check (``SEGMENT_TEST_PAUSE_AT=planned``) so the
two checks would overlap if they were not serialized by the ledger's own lock.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import yaml

from tests.campaign.helpers import campaign_dict
from tests.export.conftest import write_workdir
from tests.export.crash import data_rows, segment_process, visible


def _campaign(folder: Path, code: str, ledger: Path) -> Path:
    folder.mkdir(parents=True)
    data = campaign_dict(
        code=code, ledger=str(ledger), channels=["email"],
        vendors={"email": {"profile": "mailchimp", "fields": ["first_name"]}},
        frequency_caps=[{"per_days": 7, "max": 1}],
    )
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_two_processes_one_ledger_never_break_the_cap(tmp_path: Path) -> None:
    ledger = tmp_path / "shared" / "ledger.sqlite"
    work_a = write_workdir(tmp_path / "work-a", n_extra=232)  # 237 patients
    work_b = tmp_path / "work-b"
    shutil.copytree(work_a, work_b)
    camp_a = _campaign(tmp_path / "a", "SPRING-NOTE", ledger)
    camp_b = _campaign(tmp_path / "b", "SUMMER-NOTE", ledger)
    out_a, out_b = tmp_path / "out-a", tmp_path / "out-b"
    started = time.monotonic()
    procs = [
        segment_process(["export", str(work), str(camp), "--to", str(out), "--as-of", day],
                        pause_at="planned:2")
        for camp, work, out, day in ((camp_a, work_a, out_a, "2025-03-10"), (camp_b, work_b, out_b, "2025-03-10"))
    ]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    # the second cap check waited for the first transaction (2 s pause inside each)
    assert time.monotonic() - started >= 4
    with sqlite3.connect(ledger) as db:
        per_campaign = dict(db.execute("SELECT campaign_code, COUNT(*) FROM contacts GROUP BY 1").fetchall())
        twice = db.execute(
            "SELECT patient_id FROM contacts WHERE channel = 'email' GROUP BY 1 HAVING COUNT(*) > 1"
        ).fetchall()
    assert twice == []
    # 235 of the 237 can be emailed: all go to whichever campaign checked first, none to the other
    assert sorted(per_campaign.values()) == [235]
    sent = [sum(data_rows(o / n) for n in visible(o)) for o in (out_a, out_b)]
    assert sorted(sent) == [0, 235]
