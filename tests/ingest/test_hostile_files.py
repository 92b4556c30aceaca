"""Extracts that are not what their name says get a message naming what they are.

The faults: a Parquet list column was an "unexpected internal error"; a corrupt Parquet
file was called "malformed CSV"; a tab-separated file and a UTF-16 file without a
byte-order mark were read as one-column CSVs and reported as "missing required column".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.errors import InputDataError
from segment.ingest import ingest

TODAY = dt.date(2026, 3, 1)
PATIENTS = "patient_id,first_name,last_name,birth_date,sex\nP1,Ana,Silva,1970-01-01,F\nP2,Bo,Li,1980-02-02,M\n"


def test_parquet_list_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ehr-patients.parquet"
    pl.DataFrame({
        "patient_id": ["P1", "P2"], "birth_date": ["1970-01-01", "1980-02-02"],
        "email": [["a@example.org", "b@example.org"], ["c@example.org"]],
    }).write_parquet(path)
    with pytest.raises(InputDataError) as info:
        ingest([path], tmp_path / "w", as_of=TODAY)
    err = info.value
    assert (err.path, err.column) == (path, "email")
    assert err.message.startswith("Parquet column `email` holds a list in each cell (List(String))")
    assert "example.org" not in err.one_line()
    # through the CLI: one specific line, not "unexpected internal error"
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "w2"), str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: {path}: Parquet column `email` holds a list")


def test_parquet_list_column_that_is_not_read_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ehr-patients.parquet"
    pl.DataFrame({
        "patient_id": ["P1"], "birth_date": ["1970-01-01"], "tags": [["x", "y"]],
    }).write_parquet(path)
    assert ingest([path], tmp_path / "w", as_of=TODAY).patients == 1


def test_corrupt_parquet_is_not_called_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "ehr-patients.parquet"
    n = 20_000
    pl.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "birth_date": ["1970-01-01"] * n}).write_parquet(
        path, compression="zstd", statistics=False)
    data = bytearray(path.read_bytes())
    data[30:200] = b"Z" * 170  # a damaged data page; the footer (schema) still reads
    path.write_bytes(bytes(data))
    with pytest.raises(InputDataError) as info:
        ingest([path], tmp_path / "w", as_of=TODAY)
    assert "cannot read Parquet data (a corrupt or truncated file)" in info.value.message
    assert "CSV" not in info.value.message


@pytest.mark.parametrize("name", ["ehr-patients.tsv", "ehr-patients.csv"])
def test_tab_separated_file_is_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(PATIENTS.replace(",", "\t"))
    with pytest.raises(InputDataError) as info:
        ingest([path], tmp_path / "w", as_of=TODAY)
    assert (info.value.path, info.value.line) == (path, 1)
    assert "tab-separated (TSV), not comma-separated" in info.value.message


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark_is_named(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "ehr-patients.csv"
    path.write_bytes(PATIENTS.encode(codec))
    with pytest.raises(InputDataError) as info:
        ingest([path], tmp_path / "w", as_of=TODAY)
    assert info.value.message == "file is UTF-16 text without a byte-order mark, not UTF-8: re-save it as UTF-8"
