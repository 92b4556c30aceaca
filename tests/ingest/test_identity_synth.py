"""The synthetic extract's optional SSN tail: twins in sequence, every other column unchanged."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from segment.synth import write_extract


def test_ssn_last4_is_optional_and_changes_nothing_else(tmp_path: Path) -> None:
    write_extract(tmp_path / "with", 3000, seed=3, sources=2, truth=tmp_path / "truth.csv", ssn=True)
    write_extract(tmp_path / "without", 3000, seed=3, sources=2)
    for source in ("ehr", "crm"):
        name = f"{source}-patients.csv"
        plain = (tmp_path / "without" / name).read_bytes()
        assert b"ssn_last4" not in plain
        with_ssn = pl.read_csv(tmp_path / "with" / name, infer_schema=False)
        assert_frame_equal(with_ssn.drop("ssn_last4"), pl.read_csv(tmp_path / "without" / name, infer_schema=False))
        digits = with_ssn["ssn_last4"].drop_nulls()
        assert digits.str.contains(r"^\d{4}$").all()
        assert 0.3 < digits.len() / with_ssn.height < 0.9


def test_twins_ssn_tails_run_in_sequence(tmp_path: Path) -> None:
    write_extract(tmp_path / "x", 20_000, seed=0, sources=2, truth=tmp_path / "truth.csv", ssn=True)
    rows = pl.read_csv(tmp_path / "x" / "ehr-patients.csv", infer_schema=False).select("patient_id", "ssn_last4")
    truth = pl.read_csv(tmp_path / "truth.csv", schema_overrides={"patient_id": pl.String}).filter(
        pl.col("source") == "ehr")
    placed = rows.join(truth, on="patient_id").drop_nulls("ssn_last4").unique("person")
    twins = placed.filter(pl.col("twin_of") >= 0).join(
        placed.select(pl.col("person").alias("twin_of"), pl.col("ssn_last4").alias("sibling")), on="twin_of")
    assert twins.height > 20
    step = (twins["ssn_last4"].cast(pl.Int64) - twins["sibling"].cast(pl.Int64)) % 10_000
    # two adjacent digits swapped in a few records
    assert (step == 1).mean() > 0.97
