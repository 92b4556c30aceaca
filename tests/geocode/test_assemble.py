"""The final join of patients to their address's result (segment/geocode/assemble.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from geocode.conftest import write_patients
from geocode.test_geocode_run import ROWS
from segment.config import Settings
from segment.geocode import assemble, geocode, keys


def test_colliding_row_hashes_fall_back_to_the_address_columns(
        tmp_path: Path, tiny_pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(reference_dir=tiny_pack)
    plain = write_patients(tmp_path / "plain", ROWS)
    geocode(plain, settings=settings, use_cache=False)
    expected = pl.read_parquet(plain / "geocoded.parquet")

    def colliding() -> pl.Expr:  # every address with a 5-character ZIP (or none) hashes alike
        return pl.col("zip5").str.len_bytes().fill_null(0).cast(pl.UInt64).alias(keys.ROW_HASH)

    monkeypatch.setattr(keys, "row_hash", colliding)
    monkeypatch.setattr(assemble, "row_hash", colliding)
    work = write_patients(tmp_path / "work", ROWS)
    geocode(work, settings=settings, use_cache=False)
    got = pl.read_parquet(work / "geocoded.parquet")
    assert got.equals(expected)
    assert got.filter(pl.col("patient_id") == "p3")["address_line1"].item() == "11 Elm Ave"


def test_without_collisions_the_hash_join_gives_the_column_join(tmp_path: Path) -> None:
    lf = pl.LazyFrame({"address_line1": ["1 A St", None, "1 A St", "2 B St"], "city": ["X", "X", "X", None],
                       "state": ["MA"] * 4, "zip5": ["01000", "01000", "01000", None], "n": [0, 1, 2, 3]})
    addresses = lf.select("address_line1", "city", "state", "zip5").unique().collect().with_columns(
        keys.row_hash(), *[pl.lit(i).alias(c) for i, c in enumerate(assemble.PER_ADDRESS)])
    addresses = addresses.with_columns(pl.int_range(pl.len()).alias("lat"))
    by_hash = assemble._with_address_results(lf, addresses).collect()
    by_columns = assemble._with_address_results(lf, addresses.drop(keys.ROW_HASH)).collect()
    assert by_hash.equals(by_columns.select(by_hash.columns))
    assert by_hash["n"].to_list() == [0, 1, 2, 3]
    assert by_hash["_a_lat"][0] == by_hash["_a_lat"][2] != by_hash["_a_lat"][1]
