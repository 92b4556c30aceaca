"""The address cache: whole results of raw addresses reused; only new addresses are geocoded.

Every test compares against a run without any cache (``use_cache=False``): the cache may
save time, never change a result.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from geocode.conftest import write_patients
from segment.config import Settings
from segment.geocode import geocode
from segment.geocode.cache import ADDRESS_ROW, CACHE_SCHEMA

from .test_geocode_run import ROWS

NEW = [
    {"patient_id": "p9", "address_line1": "151 Main Street", "city": "Boston", "state": "MA",
     "zip5": "02119"},
    {"patient_id": "p10", "address_line1": "51 Main Street", "city": "Boston", "state": "MA",
     "zip5": "02119"},  # a new patient at a known address
    {"patient_id": "p11", "address_line1": "51 Main Street", "city": None, "state": "MA",
     "zip5": "02119"},  # the same line without a city is another raw address
]


def _geocode(work: Path, pack: Path, **kw: object) -> tuple[pl.DataFrame, object]:
    result = geocode(work, settings=Settings(reference_dir=pack), **kw)  # type: ignore[arg-type]
    return pl.read_parquet(work / "geocoded.parquet"), result


def _uncached(tmp_path: Path, pack: Path, rows: list[dict[str, object]], name: str,
              **kw: object) -> pl.DataFrame:
    work = write_patients(tmp_path / name, rows)
    out, _ = _geocode(work, pack, use_cache=False, **kw)
    assert not (work / "geocode-cache.parquet").exists()
    return out


def test_new_extract_geocodes_only_new_addresses(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    _, first = _geocode(work, tiny_pack)
    write_patients(work, [*ROWS, *NEW])  # the next night's extract
    out, second = _geocode(work, tiny_pack)
    assert second.from_cache["addresses"] == first.addresses  # type: ignore[attr-defined]
    assert second.addresses == first.addresses + 2  # type: ignore[attr-defined]
    assert sum(second.geocoded_new.values()) <= 2 * 2  # type: ignore[attr-defined]  # 2 addresses, <= 2 providers
    assert_frame_equal(out, _uncached(tmp_path, tiny_pack, [*ROWS, *NEW], "plain"))


def test_cached_and_uncached_results_are_identical(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    cold, _ = _geocode(work, tiny_pack)
    warm, result = _geocode(work, tiny_pack)
    assert result.from_cache["addresses"] == result.addresses  # type: ignore[attr-defined]
    assert_frame_equal(cold, warm)
    assert_frame_equal(warm, _uncached(tmp_path, tiny_pack, ROWS, "plain"))


def test_another_provider_order_is_another_context(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    _geocode(work, tiny_pack)
    out, result = _geocode(work, tiny_pack, providers=["zip"])
    # whole results of the default order do not apply; the zip answers given before do
    assert result.from_cache["addresses"] == 0  # type: ignore[attr-defined]
    assert result.from_cache["zip"] > 0  # type: ignore[attr-defined]
    assert_frame_equal(out, _uncached(tmp_path, tiny_pack, ROWS, "plain", providers=["zip"]))
    again, result = _geocode(work, tiny_pack, providers=["zip"])
    assert result.from_cache["addresses"] == result.addresses  # type: ignore[attr-defined]
    assert_frame_equal(again, out)


def test_a_cache_from_before_address_rows_is_read(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    _, first = _geocode(work, tiny_pack)
    path = work / "geocode-cache.parquet"
    old_columns = ["addr_hash", "provider", "source_id", "lat", "lon", "geo_precision",
                   "geo_score", "geo_reason", "county_fips"]
    pl.read_parquet(path).filter(pl.col("provider") != ADDRESS_ROW).select(old_columns).write_parquet(path)
    out, second = _geocode(work, tiny_pack)
    assert second.from_cache["addresses"] == 0  # type: ignore[attr-defined]
    assert second.from_cache == {"addresses": 0, **first.geocoded_new}  # type: ignore[attr-defined]
    assert sum(second.geocoded_new.values()) == 0  # type: ignore[attr-defined]
    assert_frame_equal(out, _uncached(tmp_path, tiny_pack, ROWS, "plain"))
    assert set(pl.read_parquet(path).columns) == set(CACHE_SCHEMA)  # migrated on write


def test_cache_holds_hashes_not_addresses(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    _geocode(work, tiny_pack)
    cache = pl.read_parquet(work / "geocode-cache.parquet")
    rows = cache.filter(pl.col("provider") == ADDRESS_ROW)
    assert rows.height == len({(r["address_line1"], r["city"], r["state"], r["zip5"])
                               for r in ROWS if "source_lat" not in r})
    assert rows["addr_hash"].str.len_chars().unique().to_list() == [64]
    text = " ".join(str(v) for row in cache.iter_rows() for v in row).lower()
    for r in ROWS:
        assert str(r["address_line1"]).lower() not in text
