"""PHI hygiene end to end: nothing identifying in messages or logs; owner-only files."""

from __future__ import annotations

import csv
import os
import re
import stat
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from segment.cli import cli


def _mark_names(extract: Path) -> None:
    """Give every person unmistakable marker names, so a leak cannot hide in common words."""
    for path in sorted(extract.glob("*-patients.csv")):
        frame = pl.read_csv(path, infer_schema_length=0)
        frame = frame.with_columns(
            (pl.lit("Qzfirst") + pl.int_range(pl.len()).cast(pl.String)).alias("first_name"),
            (pl.lit("Qzlast") + pl.int_range(pl.len()).cast(pl.String)).alias("last_name"),
        )
        frame.write_csv(path)


def _identifiers(extract: Path) -> set[str]:
    values: set[str] = set()
    for path in sorted(extract.glob("*-patients.csv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                for column in ("first_name", "last_name", "email", "address_line1"):
                    value = (row.get(column) or "").strip()
                    if len(value) >= 6:
                        values.add(value)
                digits = re.sub(r"\D", "", row.get("phone_e164") or "")
                if len(digits) >= 10:
                    values.add(digits[-10:])
    return values


def test_no_identifier_in_stdout_stderr_or_run_log(demo: dict[str, Path], tmp_path: Path) -> None:
    # a private copy of the extract with marker names (the shared world stays untouched)
    world = demo["root"] / "world"
    private = tmp_path / "private-world"
    private.mkdir()
    for child in world.iterdir():
        (private / child.name).symlink_to(child.resolve())
    (private / "extract").unlink()
    (private / "extract").mkdir()
    for p in (world / "extract").iterdir():
        (private / "extract" / p.name).write_bytes(p.read_bytes())
    _mark_names(private / "extract")
    (demo["root"] / "world").unlink()
    (demo["root"] / "world").symlink_to(private)

    identifiers = _identifiers(private / "extract")
    assert len(identifiers) > 500
    result = CliRunner().invoke(cli, ["--log-format", "json", "--verbose", "run", str(demo["spring"])])
    assert result.exit_code == 0, result.stderr
    explain = CliRunner().invoke(cli, ["explain", str(demo["work"]), "no-such-patient"])
    written = "\n".join([result.stdout, result.stderr, explain.stdout, explain.stderr,
                         (demo["work"] / "run-log.jsonl").read_text()])
    digits_only = re.sub(r"\D", "", written)
    leaked = sorted(v for v in identifiers if (v in written) or (v.isdigit() and v in digits_only))
    assert leaked == []
    # the vendor files do carry contact data; the reports next to them must not
    for report in demo["work"].glob("*-report.json"):
        text = report.read_text()
        assert not [v for v in identifiers if not v.isdigit() and v in text], report.name


def test_everything_written_is_owner_only(demo: dict[str, Path]) -> None:
    old = os.umask(0o022)  # a permissive user umask must not matter
    try:
        result = CliRunner().invoke(cli, ["run", str(demo["spring"])])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    checked = 0
    for top in (demo["work"], demo["exports"]):
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            expected = 0o700 if path.is_dir() else 0o600
            assert mode == expected, f"{path.relative_to(demo['root'])} has mode {oct(mode)}"
            checked += 1
    ledger = demo["ledger"]
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert checked > 10
