"""Errors and ``--verbose`` tracebacks carry counts, column names and line numbers, never values.

The faults: a suppression file's address appeared in an ``Error:`` line (a data row taken
for a header was listed as "columns"); ``--verbose`` printed the raw row a Polars parse
error quotes; disk full, a corrupt ledger and other machine conditions were "unexpected
internal error".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from segment.cli import cli, known_failure
from segment.errors import InputDataError
from segment.report import scrubbed_traceback
from tests.campaign.helpers import campaign_dict
from tests.export.conftest import write_workdir

SECRET = "Qzsecret"


def _export(tmp_path: Path, *extra: str, **campaign: Any) -> Any:
    work = write_workdir(tmp_path / "work")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(campaign_dict(**campaign), sort_keys=False))
    return CliRunner().invoke(cli, [*extra, "export", str(work), str(path),
                                    "--to", str(tmp_path / "out"), "--as-of", "2025-03-10"])


@pytest.mark.parametrize("content, spec", [
    # a headerless list whose first row has no phone: taken for a header, then no column fits
    (f"{SECRET} Ana,{SECRET} 1 Main St\n6175550101,{SECRET} Bo\n", {"kind": "phone"}),
    # `column:` names a header the (headerless) file does not have
    (f"ana.{SECRET}@example.org,{SECRET} Ana\n", {"kind": "email", "column": "Email"}),
    # nothing in the file reads as an address
    (f"email\n{SECRET} Ana <ana at example dot org>\n{SECRET}\n", {"kind": "email"}),
])
def test_suppression_values_never_reach_the_error_line(
    tmp_path: Path, content: str, spec: dict[str, str]
) -> None:
    (tmp_path / "list.csv").write_text(content)
    result = _export(tmp_path, suppression=[{"path": "list.csv", **spec}])
    assert result.exit_code == 1
    assert "Error: " in result.stderr and "list.csv" in result.stderr
    assert SECRET not in result.stderr and "example.org" not in result.stderr
    assert "unexpected internal error" not in result.stderr


def test_verbose_traceback_withholds_library_messages(tmp_path: Path) -> None:
    # an unclosed quote: Polars' parse error quotes the raw rows that follow it
    extract = tmp_path / "ehr-patients.csv"
    extract.write_text(
        "patient_id,first_name,birth_date\n"
        f'P1,{SECRET}first,1970-01-01\nP2,"{SECRET}open,1980-01-01\nP3,{SECRET}third,1990-01-01\n'
    )
    result = CliRunner().invoke(cli, ["--verbose", "ingest", str(tmp_path / "w"), str(extract)])
    assert result.exit_code == 1
    assert SECRET not in result.stderr
    assert "Traceback (most recent call last; values withheld)" in result.stderr
    assert "polars.exceptions.ComputeError (message withheld" in result.stderr
    assert "segment.errors.InputDataError: malformed CSV" in result.stderr
    assert 'frames.py", line' in result.stderr


def test_scrubbed_traceback_has_frames_but_no_locals_or_values() -> None:
    def parse(row: str) -> None:
        secret_local = row  # noqa: F841 - a local a locals-dumping traceback would print
        raise ValueError(f"could not parse {row!r}")

    try:
        try:
            parse(f"{SECRET},1 Main St")
        except ValueError as exc:
            raise InputDataError("2 rows could not be read", path="x.csv", line=3) from exc
    except InputDataError as outer:
        text = scrubbed_traceback(outer)
    assert SECRET not in text  # neither the message nor the local holding the row
    assert "in parse" in text and "builtins.ValueError (message withheld" in text
    assert text.rstrip().endswith("segment.errors.InputDataError: x.csv:3: 2 rows could not be read")


def test_disk_full_is_one_specific_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every Parquet write lands on /dev/full: the real error Polars raises on a full disk
    sink, write = pl.LazyFrame.sink_parquet, pl.DataFrame.write_parquet
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", lambda self, _p, *a, **k: sink(self, "/dev/full", *a, **k))
    monkeypatch.setattr(pl.DataFrame, "write_parquet", lambda self, _p, *a, **k: write(self, "/dev/full", *a, **k))
    extract = tmp_path / "ehr-patients.csv"
    extract.write_text("patient_id,first_name,birth_date\nP1,Ana,1970-01-01\n")
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "w"), str(extract)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: disk full: no space left on the device; free some space (or write to another disk) and rerun"
    )


def test_corrupt_ledger_is_one_specific_line(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    ledger.write_bytes(b"not an SQLite file " * 200)
    result = _export(tmp_path, ledger=str(ledger))
    assert result.exit_code == 1
    assert "unexpected internal error" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and ("corrupt" in last or "not a database" in last)
    assert str(ledger) in last  # the message names the file to restore


def test_locked_sqlite_and_other_conditions_are_named(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            other.execute("SELECT * FROM t")
    finally:
        other.close()
        holder.close()
    assert "is locked by another process" in (known_failure(info.value) or "")
    assert known_failure(PermissionError(13, "Permission denied", "/w/x.parquet")) == (
        "permission denied (/w/x.parquet): check the owner and mode of the file or folder")
    assert "out of memory" in (known_failure(MemoryError()) or "")
    assert "nested too deeply" in (known_failure(RecursionError()) or "")
    assert known_failure(KeyError("x")) is None
