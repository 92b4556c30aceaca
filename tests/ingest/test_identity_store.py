"""The linkage frame built part by part from spilled records equals the one built whole."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from segment.ingest.identity.features import HOT_BLOCK_VALUE, HOT_SHARED_VALUE, linkage_frame
from segment.ingest.identity.store import linkage_data
from segment.memory import Spill

CLINIC = "+16175550100"


def _records(n: int) -> pl.DataFrame:
    """``n`` records in two sources; a clinic phone on every 10th record, a shelter on every 3rd,
    an email shared by a few, a duplicated record id, names that repeat as first and last names."""
    i = pl.int_range(n, dtype=pl.Int64)
    names = pl.lit(["Ann", "Lee", "James", "Maria", "Grant", "Jim"])
    return pl.select(
        pl.concat_str(pl.when(i % 2 == 0).then(pl.lit("ehr")).otherwise(pl.lit("crm")), pl.lit(":"),
                      (i // 2).cast(pl.String)).alias("_k_id"),
        pl.when(i % 2 == 0).then(pl.lit("ehr")).otherwise(pl.lit("crm")).alias("_source"),
        (i % 2).cast(pl.Int32).alias("_order"),
        names.list.get(i % 6).alias("first_name"),
        names.list.get((i // 6) % 6).alias("last_name"),
        (pl.date(1950, 1, 1) + pl.duration(days=(i * 37) % 9000)).alias("birth_date"),
        pl.when(i % 3 == 0).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"),
        pl.when(i % 3 == 0).then(pl.lit("1 Shelter Way")).otherwise(
            pl.concat_str((i // 4).cast(pl.String), pl.lit(" Main Street Apt 2"))).alias("address_line1"),
        pl.lit("02140").alias("zip5"),
        pl.when(i % 10 == 0).then(pl.lit(CLINIC)).otherwise(
            pl.concat_str(pl.lit("+1617555"), (i // 2 % 10_000).cast(pl.String).str.zfill(4))).alias("phone_e164"),
        pl.when(i % 7 == 0).then(pl.concat_str(pl.lit("x"), (i // 35).cast(pl.String), pl.lit("@Example.org")))
        .alias("email"),
    )


def test_the_frame_in_parts_is_the_frame_whole(tmp_path: Path) -> None:
    records = _records(1_200)
    # one id twice, in another chunk; and a phone on exactly HOT_BLOCK_VALUE records, one of
    # them twice (in another chunk): counted once, as in memory, it is still a blocking value
    shared = pl.int_range(100, 100 + HOT_BLOCK_VALUE * 11, 11, eager=True)
    records = records.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(shared.implode())).then(pl.lit("+15085550199"))
        .otherwise(pl.col("phone_e164")).alias("phone_e164"))
    records = pl.concat([records, records.slice(5, 1), records.slice(100, 1)])
    spill = Spill(tmp_path, "records")
    for chunk in records.iter_slices(250):
        spill.add(chunk)
    whole = linkage_frame(records)
    data = linkage_data(spill, tmp_path)
    try:
        assert data.parts is not None and len(data.parts.files) == 5 and data.rows == whole.height == 1_200
        assert_frame_equal(data.lazy().collect(), whole)
        # a phone on more than HOT_BLOCK_VALUE records, but on fewer in every part: hot all the same
        clinic = whole.filter(pl.col("phone") == CLINIC)
        assert clinic.height > HOT_SHARED_VALUE and clinic["_b_phone"].null_count() == clinic.height
        assert clinic["_b_phone_shared"].null_count() == clinic.height
        family = whole.filter(pl.col("phone") == "+15085550199")
        assert family.height == HOT_BLOCK_VALUE and family["_b_phone"].null_count() == 0
        shelter = whole.filter(pl.col("address") == "1 SHELTER WAY")
        assert shelter.height > HOT_SHARED_VALUE and shelter["_b_address"].null_count() == shelter.height
        shared_email = whole.filter(pl.col("email").is_not_null()).group_by("email").len()
        assert shared_email["len"].max() <= HOT_BLOCK_VALUE  # cold: every email is a blocking code
        assert whole.filter(pl.col("email").is_not_null())["_b_email"].null_count() == 0
        # DuckDB reads the parts as one view, with the same rows (records by number, ids left out)
        con = duckdb.connect()
        data.register(con, "records")
        assert con.sql("SELECT count(*), count(DISTINCT _record_number) FROM records").fetchone() == (1_200, 1_200)
    finally:
        data.remove()
        spill.remove()
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_no_records_spilled(tmp_path: Path) -> None:
    data = linkage_data(Spill(tmp_path, "records"), tmp_path)
    assert data.rows == 0 and data.lazy().collect().height == 0
