"""Enum columns on the Spark path: a lake table's own labels are kept, known ones typed back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.schema import GEO_PRECISION, PHONE_TYPE

pytestmark = pytest.mark.spark


def test_lake_labels_outside_the_enums_are_kept_as_text(spark: Any, tmp_path: Path) -> None:
    from segment.spark.io import write_output

    lake = spark.createDataFrame([("p1", "cell", "zip_centroid"), ("p2", "mobile", "unmatched")],
                                 "patient_id string, phone_type string, geo_precision string")
    written = pl.read_parquet(write_output(lake, tmp_path / "a", "geocoded.parquet"))
    assert written.schema["phone_type"] == pl.String  # `cell` is not a PhoneType: kept, not an error
    assert written.schema["geo_precision"] == GEO_PRECISION
    assert written["phone_type"].to_list() == ["cell", "mobile"]

    known = spark.createDataFrame([("p1", "mobile"), ("p2", None)], "patient_id string, phone_type string")
    typed = pl.read_parquet(write_output(known, tmp_path / "b", "geocoded.parquet"))
    assert typed.schema["phone_type"] == PHONE_TYPE and typed["phone_type"].to_list() == ["mobile", None]
