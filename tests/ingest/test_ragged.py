"""Rows that do not fit their header, CR-only line ends and ambiguous headers (nothing lost silently)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment.errors import InputDataError
from segment.ingest import ingest
from segment.ingest.readers.files import _lines_if_all_hold, ragged_rows, ragged_rows_unquoted

TODAY = dt.date(2026, 2, 1)
HEADER = "patient_id,first_name,last_name,birth_date,sex,do_not_contact"


def _ingest(tmp_path: Path, text: str | bytes, name: str = "clinic-patients.csv") -> tuple[dict, pl.DataFrame]:
    src = tmp_path / "in" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    ingest([src], tmp_path / "w", as_of=TODAY)
    report = json.loads((tmp_path / "w" / "ingest-report.json").read_text())
    return report, pl.read_csv(tmp_path / "w" / "rejects.csv", infer_schema=False)


def test_cut_off_and_long_rows_are_rejected_with_their_reason(tmp_path: Path) -> None:
    text = "\n".join([
        HEADER,
        "P1,Ann,Lee,1960-01-02,F,Y",
        'P2,"Park, Jr.",Bo,1970-03-04,M,N',   # a quoted comma is one field
        "P3,Cy,Cho,1980-05-06,F",             # cut off: do_not_contact missing
        "P4,Di,Dee,1990-07-08,F,N,extra",     # one field too many
        "P5,Ed,Eng,1955-09-10,M,",            # empty last field: fine
    ]) + "\n"
    report, rejects = _ingest(tmp_path, text)
    assert report["reconciled"] is True
    f = report["files"][0]
    assert (f["rows_read"], f["rows_kept"], f["rows_rejected"]) == (5, 3, 2)
    ragged = rejects.filter(pl.col("column") == "row").sort("row")
    assert ragged["row"].to_list() == ["3", "4"]
    assert ragged["reason"].to_list() == [
        "row has 5 fields, the header has 6 (cut off or misaligned)",
        "row has 7 fields, the header has 6 (cut off or misaligned)",
    ]
    kept = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert sorted(kept["patient_id"].to_list()) == ["clinic:P1", "clinic:P2", "clinic:P5"]


def test_cr_only_line_ends_keep_every_row(tmp_path: Path) -> None:
    text = "\r".join([HEADER, "P1,Ann,Lee,1960-01-02,F,Y", "P2,Bo,Park,1970-03-04,M,N"]) + "\r"
    report, _rejects = _ingest(tmp_path, text)
    assert report["files"][0]["rows_read"] == 2 and report["files"][0]["rows_kept"] == 2
    assert pl.read_parquet(tmp_path / "w" / "patients.parquet")["do_not_contact"].to_list() == [True, False]


def test_duplicate_header_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="column `birth_date` appears twice"):
        _ingest(tmp_path, "patient_id,birth_date,birth_date\nP1,1960-01-02,1970-01-01\n")


def test_line_break_inside_quotes_is_read_as_one_row(tmp_path: Path) -> None:
    text = HEADER + '\nP1,"Ann\nMarie",Lee,1960-01-02,F,Y\nP2,Bo,Park,1970-03-04,M,N\n'
    report, _rejects = _ingest(tmp_path, text)
    assert report["files"][0]["rows_read"] == 2 and report["files"][0]["rows_rejected"] == 0


def test_unquoted_file_rows_cut_off_or_long_are_rejected_too(tmp_path: Path) -> None:
    """A file with no quote at all takes the threaded byte-count path: same rejects."""
    text = "\n".join([
        HEADER,
        "P1,Ann,Lee,1960-01-02,F,Y",
        "P3,Cy,Cho,1980-05-06,F",
        "",
        "P4,Di,Dee,1990-07-08,F,N,extra",
        "P5,Ed,Eng,1955-09-10,M,",
    ])  # no final line break
    report, rejects = _ingest(tmp_path, text.replace("\n", "\r\n"))
    assert report["reconciled"] is True
    ragged = rejects.filter(pl.col("column") == "row").sort("row")
    assert ragged["row"].to_list() == ["2", "4"]
    assert ragged["value"].to_list() == ["5 fields", "7 fields"]


_FIELD = st.text(alphabet="ab1 ;\t", max_size=3)
_LINE = st.lists(_FIELD, min_size=0, max_size=6).map(",".join)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_LINE, max_size=30), n=st.integers(1, 5), crlf=st.booleans(), final=st.booleans())
def test_unquoted_byte_count_agrees_with_the_line_reader(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], n: int, crlf: bool, final: bool
) -> None:
    """The NumPy count of fields per line equals the Polars line reader's (the general path)."""
    path = tmp_path_factory.mktemp("r") / "x.csv"
    end = "\r\n" if crlf else "\n"
    path.write_text(end.join(["h", *lines]) + (end if final else ""), encoding="utf-8")
    fast = ragged_rows_unquoted(path, n)
    slow = ragged_rows(path, n)
    assert slow is not None and fast is not None
    assert fast.equals(slow.cast(fast.schema))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(alphabet=",a\r", max_size=6), max_size=20), k=st.integers(0, 3), final=st.booleans())
def test_block_fast_check_passes_exactly_the_blocks_whose_lines_hold_k_commas(
    lines: list[str], k: int, final: bool
) -> None:
    """The one-pass check gives the line count when, and only when, every line holds k commas
    and the block ends with a line break; else None (the lines are then counted one by one)."""
    data = "\n".join(lines) + ("\n" if final else "")
    block = np.frombuffer(data.encode(), dtype=np.uint8)
    whole = data.endswith("\n")
    held = whole and all(line.count(",") == k for line in data[:-1].split("\n"))
    assert _lines_if_all_hold(block, k) == (data.count("\n") if held else None)


@pytest.mark.parametrize(("rows", "bad"), [
    (["a,b,c"] * 50, []),
    # one row long and one cut off: the block's comma total is that of all-good rows
    (["a,b,c"] * 10 + ["a,b,c,d", "a,b"] + ["a,b,c"] * 10, [(11, 4), (12, 2)]),
    (["a,b,c", "a,b", "a,b,c,d", "a,b,c"], [(2, 2), (3, 4)]),
    # a blank line is no row; the rest are whole
    (["a,b,c"] * 5 + [""] + ["a,b,c"] * 5, []),
])
def test_unquoted_rows_whose_commas_even_out_are_still_found(
    tmp_path: Path, rows: list[str], bad: list[tuple[int, int]]
) -> None:
    """The fast check (every line holds its own k commas) never passes a block with a long
    row and a short one whose commas make up the expected total."""
    path = tmp_path / "x.csv"
    path.write_text("\n".join(["h1,h2,h3", *rows]) + "\n", encoding="utf-8")
    found = ragged_rows_unquoted(path, 3)
    assert found is not None
    assert list(zip(found["_row"].to_list(), found["_fields"].to_list(), strict=True)) == bad


def test_ragged_rows_of_unquoted_files_are_dropped_after_the_read(tmp_path: Path) -> None:
    """No double quote: the row-length check runs beside the read and its rows are dropped after it."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "clinic-patients.csv").write_text("\n".join([
        HEADER, "P1,Ann,Lee,1960-01-02,F,Y", "P3,Cy,Cho,1980-05-06,F", "P4,Di,Dee,1990-07-08,F,N,extra",
        "P5,Ed,Eng,1955-09-10,M,",
    ]) + "\n")
    (src / "clinic-events.csv").write_text("\n".join([
        "patient_id,event_type,code_system,code,event_date",
        "P1,condition,ICD10CM,E11.9,2020-01-01", "P1,condition,ICD10CM,I10", "P5,procedure,CPT,77067,2021-02-02,x",
        "P5,procedure,CPT,45378,2021-03-03",
    ]) + "\n")
    result = ingest(sorted(src.iterdir()), tmp_path / "w", as_of=TODAY)
    assert result.reconciled
    files = {Path(f.file).name: (f.rows_read, f.rows_kept, f.rows_rejected) for f in result.files}
    assert files == {"clinic-patients.csv": (4, 2, 2), "clinic-events.csv": (4, 2, 2)}
    patients = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert sorted(patients["patient_id"].to_list()) == ["clinic:P1", "clinic:P5"]
    events = pl.read_parquet(tmp_path / "w" / "events.parquet")
    assert events.select("patient_id", "code").rows() == [("clinic:P1", "E11.9"), ("clinic:P5", "45378")]


def _late_quotes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str]) -> tuple[dict, pl.DataFrame]:
    """Ingest a patients file whose first double quote comes after the quote probe (made tiny)."""
    from segment.ingest.readers import files

    monkeypatch.setattr(files, "_QUOTE_PROBE", 64)
    head = [HEADER, *[f"Q{i},Ann,Lee,1960-01-02,F,Y" for i in range(5)]]
    assert '"' not in "\n".join(head) and len("\n".join(head)) > 64
    return _ingest(tmp_path, "\n".join([*head, *rows]) + "\n")


def test_quotes_after_the_probe_are_read_and_checked_as_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file opened on the unquoted path whose quotes come later: its quoted commas are one
    field, and its cut-off and long rows are rejected as the quoted path rejects them."""
    report, rejects = _late_quotes(tmp_path, monkeypatch, [
        'P2,"Park, Jr.",Bo,1970-03-04,M,N',
        "P3,Cy,Cho,1980-05-06,F",
        'P4,"Dee, Di",Dee,1990-07-08,F,N,extra',
    ])
    f = report["files"][0]
    assert report["reconciled"] is True
    assert (f["rows_read"], f["rows_kept"], f["rows_rejected"]) == (8, 6, 2)
    assert rejects.filter(pl.col("column") == "row").sort("row")["row"].to_list() == ["7", "8"]
    kept = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert kept.filter(pl.col("patient_id") == "clinic:P2")["first_name"].to_list() == ["Park, Jr."]


def test_line_breaks_in_quotes_after_the_probe_still_reject_long_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with a line break inside a quoted field (no line-by-line count): a CSV parser
    counts the fields, so the long row is rejected with its reason, not cut short silently."""
    report, rejects = _late_quotes(tmp_path, monkeypatch, [
        'P2,"Park\nJr.",Bo,1970-03-04,M,N',
        "P4,Di,Dee,1990-07-08,F,N,extra",
        "P5,Ed,Eng,1955-09-10,M,",
    ])
    f = report["files"][0]
    assert report["reconciled"] is True
    assert (f["rows_read"], f["rows_kept"], f["rows_rejected"]) == (8, 7, 1)
    ragged = rejects.filter(pl.col("column") == "row")
    assert ragged["row"].to_list() == ["7"]
    assert ragged["reason"].to_list() == ["row has 7 fields, the header has 6 (cut off or misaligned)"]
    kept = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert kept.filter(pl.col("patient_id") == "clinic:P2")["first_name"].to_list() == ["Park Jr."]  # one row (the name normalized)
