from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from geocode.conftest import write_patients
from geocode.tinyworld import TRACT_E, TRACT_W
from segment.cli import cli
from segment.config import Settings
from segment.errors import ReferenceDataError, StageInputError
from segment.geocode import geocode, parse_providers
from segment.schema import GEOCODE_SCHEMA

ROWS = [
    {"patient_id": "p1", "first_name": "Ann", "address_line1": "51 Main Street", "city": "Boston",
     "state": "MA", "zip5": "02119"},
    {"patient_id": "p2", "first_name": "Bob", "address_line1": "150 main st apt 2",
     "city": "Boston", "state": "MA", "zip5": "02119"},
    {"patient_id": "p3", "address_line1": "11 Elm Ave", "city": "Boston", "state": "MA",
     "zip5": "02119"},
    {"patient_id": "p4", "address_line1": "PO Box 5", "city": "Boston", "state": "MA",
     "zip5": "02119"},
    {"patient_id": "p5", "address_line1": "7 Nowhere Ln", "city": "Boston", "state": "MA",
     "zip5": "02119"},
    {"patient_id": "p6", "address_line1": "somewhere", "city": "Boston", "state": "MA",
     "zip5": "02119", "source_lat": 42.31, "source_lon": -71.02},
    {"patient_id": "p7", "address_line1": "51 MAIN ST", "city": "Boston", "state": "MA",
     "zip5": "02119"},
    {"patient_id": "p8", "address_line1": "Homeless", "city": None, "state": "MA", "zip5": None},
]


def run(tmp_path: Path, pack: Path, **kw):  # type: ignore[no-untyped-def]
    work = write_patients(tmp_path / "work", ROWS)
    return work, geocode(work, settings=Settings(reference_dir=pack), **kw)


def test_geocode_writes_every_patient_with_precision_and_reason(tmp_path: Path,
                                                                tiny_pack: Path) -> None:
    work, result = run(tmp_path, tiny_pack)
    out = pl.read_parquet(work / "geocoded.parquet")
    assert out["patient_id"].to_list() == [r["patient_id"] for r in ROWS]  # order kept
    for col, dtype in GEOCODE_SCHEMA.items():
        assert out.schema[col] == dtype
    assert "geo_reason" in out.columns and "first_name" in out.columns
    got = {r["patient_id"]: r for r in out.iter_rows(named=True)}
    assert got["p1"]["geo_precision"] == "range_interpolated"
    assert got["p1"]["tract_geoid"] == TRACT_W and got["p1"]["block_group_geoid"] == TRACT_W + "1"
    assert got["p2"]["tract_geoid"] == TRACT_E
    assert got["p3"]["tract_geoid"] == TRACT_W  # odd side of the boundary street
    assert got["p6"]["geo_precision"] == "source_point" and got["p6"]["tract_geoid"] == TRACT_E
    for pid, reason in (("p4", "po_box"), ("p5", "no_street_match")):
        assert got[pid]["geo_precision"] == "zip_centroid"
        assert got[pid]["geo_reason"] == reason
        assert got[pid]["tract_geoid"] is None and got[pid]["block_group_geoid"] is None
    assert got["p8"]["geo_precision"] == "unmatched"
    assert got["p8"]["geo_reason"] == "not_an_address" and got["p8"]["lat"] is None
    report = json.loads((work / "geocode-report.json").read_text())
    assert report["by_precision"]["range_interpolated"] == 4
    assert report["by_precision"]["zip_centroid"] == 2
    assert report["by_reason"] == {"no_street_match": 1, "not_an_address": 1, "po_box": 1}
    assert report["patients"] == len(ROWS) == result.patients
    assert result.geocoded_new["offline"] > 0


def test_cache_reuse_second_run_geocodes_nothing_new(tmp_path: Path, tiny_pack: Path) -> None:
    work, first = run(tmp_path, tiny_pack)
    cache = pl.read_parquet(work / "geocode-cache.parquet")
    assert set(cache.columns) >= {"addr_hash", "provider", "source_id", "lat", "lon"}
    assert not ({"first_name", "last_name", "address_line1", "patient_id"} & set(cache.columns))
    assert cache["addr_hash"].str.len_chars().unique().to_list() == [64]
    before = pl.read_parquet(work / "geocoded.parquet")
    second = geocode(work, settings=Settings(reference_dir=tiny_pack))
    assert sum(second.geocoded_new.values()) == 0
    # every distinct raw address came back whole from the cache: no provider was asked
    assert second.from_cache == {"addresses": first.addresses, "offline": 0, "zip": 0}
    after = pl.read_parquet(work / "geocoded.parquet")
    assert before.equals(after)


def test_provider_order_and_explicit_missing_table(tmp_path: Path, tiny_pack: Path) -> None:
    work, _ = run(tmp_path, tiny_pack, providers=["zip"])
    out = pl.read_parquet(work / "geocoded.parquet")
    assert set(out["geo_precision"].unique()) <= {"zip_centroid", "unmatched"}
    assert out["tract_geoid"].null_count() == out.height
    assert parse_providers(["offline,zip", "source", "zip"]) == ("offline", "zip", "source")
    with pytest.raises(Exception, match="unknown provider 'google'"):
        parse_providers(["google"])


def test_missing_pack_and_missing_input(tmp_path: Path, tiny_pack: Path) -> None:
    with pytest.raises(StageInputError, match="segment ingest"):
        geocode(tmp_path, settings=Settings(reference_dir=tiny_pack))
    work = write_patients(tmp_path / "w", ROWS)
    with pytest.raises(ReferenceDataError, match="reference pack folder not found"):
        geocode(work, settings=Settings(reference_dir=tmp_path / "nopack"))


def test_cli_geocode(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    runner = CliRunner()
    res = runner.invoke(cli, ["geocode", str(work), "--reference", str(tiny_pack)])
    assert res.exit_code == 0, res.output
    assert "range_interpolated" in res.stdout and "po_box" in res.stdout
    for value in ("Main", "Ann", "Nowhere"):  # no patient value on any output
        assert value not in res.output
    bad = runner.invoke(cli, ["geocode", str(work), "--reference", str(tiny_pack),
                              "--provider", "offline,google"])
    assert bad.exit_code == 2
    missing = runner.invoke(cli, ["geocode", str(work), "--reference", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: ") and len(missing.stderr.strip().splitlines()) == 1
