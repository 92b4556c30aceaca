"""Crafted input: ingest never crashes with a traceback, and reconciles when it succeeds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment.cli import cli

PATIENT_HEADER = ["patient_id", "first_name", "last_name", "birth_date", "sex", "address_line1",
                  "city", "state", "zip5", "email", "phone_e164", "sms_consent"]

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=400),
    st.sampled_from(["=cmd|' /C calc'!A0", "\x00\x00", "line1\nline2", "\r\n", '"', '""x"', "NA",
                     "1900-02-30", "99/99/9999", "+1 (617) 555-0100", "ä@ö.de", "\ufeff"]),
)


def _invoke(paths: list[Path], out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ingest", str(out), *map(str, paths)])
    return result.exit_code, result.stderr


def _assert_contract(code: int, stderr: str, out: Path) -> None:
    assert code in (0, 1), f"exit {code}: {stderr}"
    assert "Traceback" not in stderr
    if code == 1:
        errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, stderr
        assert "unexpected internal error" not in errors[0], errors[0]
        return
    report = json.loads((out / "ingest-report.json").read_text())
    for entry in report["files"]:
        assert entry["rows_read"] == entry["rows_kept"] + entry["rows_rejected"], entry


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ehr-patients.csv"
        src.write_bytes(data)
        code, stderr = _invoke([src], Path(tmp) / "out")
        _assert_contract(code, stderr, Path(tmp) / "out")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.lists(hostile_text, min_size=len(PATIENT_HEADER), max_size=len(PATIENT_HEADER)),
                min_size=0, max_size=8),
       st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_hostile_csv_values(rows: list[list[str]], encoding: str) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PATIENT_HEADER)
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ehr-patients.csv"
        src.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))
        code, stderr = _invoke([src], Path(tmp) / "out")
        _assert_contract(code, stderr, Path(tmp) / "out")


def test_very_long_field_and_embedded_nul(tmp_path: Path) -> None:
    row = ["P1", "A" * 1_000_000, "Lee\x00x", "1970-01-02", "F", "1 Main St\nApt 2", "Boston", "MA",
           "02110", "", "", ""]
    src = tmp_path / "ehr-patients.csv"
    import csv

    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([PATIENT_HEADER, row])
    code, stderr = _invoke([src], tmp_path / "out")
    _assert_contract(code, stderr, tmp_path / "out")


def test_ten_thousand_columns(tmp_path: Path) -> None:
    header = PATIENT_HEADER + [f"extra_{i}" for i in range(10_000 - len(PATIENT_HEADER))]
    row = ["P1", "Ann", "Lee", "1970-01-02", "F", "1 Main St", "Boston", "MA", "02110", "", "", ""]
    row += ["x"] * (len(header) - len(row))
    src = tmp_path / "ehr-patients.csv"
    src.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    code, stderr = _invoke([src], tmp_path / "out")
    _assert_contract(code, stderr, tmp_path / "out")


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    json_value,
    st.fixed_dictionaries({"resourceType": st.just("Patient"), "id": st.text(max_size=8)},
                          optional={"birthDate": st.text(max_size=12), "gender": json_value,
                                    "name": json_value, "telecom": json_value, "address": json_value}),
    st.fixed_dictionaries({"resourceType": st.sampled_from(["Condition", "Procedure", "Observation"]),
                           "subject": json_value}, optional={"code": json_value}),
), min_size=1, max_size=6))
def test_random_fhir_json(resources: list[object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "Patient.ndjson"
        src.write_text("\n".join(json.dumps(r) for r in resources) + "\n")
        code, stderr = _invoke([src], Path(tmp) / "out")
        _assert_contract(code, stderr, Path(tmp) / "out")
