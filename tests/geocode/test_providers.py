"""The provider registry and the geocode stage object (segment/geocode/providers.py, run.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from geocode.conftest import write_patients
from geocode.test_geocode_run import ROWS
from segment.config import Settings
from segment.errors import GeocodeError
from segment.geocode import (
    PROVIDERS,
    GeocodeStage,
    ProviderContext,
    geocode,
    parse_providers,
    providers,
)
from segment.geocode.providers import RESULT_SCHEMA, register
from segment.runstate import stage_key
from segment.schema import GeoPrecision
from segment.stage import StageContext, execute


def test_registry_names_keep_their_order() -> None:
    assert PROVIDERS == ("source", "offline", "census", "zip")
    with pytest.raises(GeocodeError, match="unknown provider 'gps'; valid options are: source, offline, census, zip"):
        parse_providers(["offline,gps"])


def test_a_provider_is_a_name_already_taken_only_once() -> None:
    with pytest.raises(ValueError, match="'zip' is registered already"):
        register(providers.ZipCentroids())


@dataclass(frozen=True)
class TownHall:
    """A test provider: every street address at one point, as an address point."""

    name: str = "townhall"
    best: GeoPrecision = GeoPrecision.ADDRESS_POINT

    @property
    def table(self) -> str | None:
        return None

    def source_id(self, ctx: ProviderContext) -> str:
        return "townhall:1"

    def candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        return keys.filter(pl.col("addr_kind") == "street")

    def locate(self, todo: pl.DataFrame, ctx: ProviderContext) -> pl.DataFrame:
        return todo.select("qid", pl.lit(42.3).alias("lat"), pl.lit(-71.05).alias("lon"),
                           pl.lit("address_point").alias("geo_precision"), pl.lit(0.9).alias("geo_score"),
                           pl.lit(None, pl.String).alias("geo_reason"),
                           pl.lit(None, pl.String).alias("county_fips")).cast(pl.Schema(RESULT_SCHEMA))


def test_a_registered_provider_is_used_by_name_and_beats_less_precise_ones(
        tmp_path: Path, tiny_pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "_REGISTRY", dict(providers._REGISTRY))
    register(TownHall())
    assert "townhall" in providers.provider_names()
    work = write_patients(tmp_path / "work", ROWS)
    result = geocode(work, providers=["source", "offline", "townhall"],
                     settings=Settings(reference_dir=tiny_pack))
    out = pl.read_parquet(work / "geocoded.parquet")
    got = {r["patient_id"]: r for r in out.iter_rows(named=True)}
    # p1 is range-interpolated offline; the address point of the later provider is better
    assert got["p1"]["geo_precision"] == "address_point" and got["p1"]["lat"] == 42.3
    assert got["p4"]["geo_precision"] == "unmatched"  # a PO box is no street address
    assert got["p6"]["geo_precision"] == "source_point"
    assert result.by_provider["townhall"] == 5
    assert result.geocoded_new["townhall"] == 4  # 51 Main Street twice: one normalized address


def test_the_stage_runs_the_entry_function_and_keeps_the_pipeline_key(tmp_path: Path, tiny_pack: Path) -> None:
    work = write_patients(tmp_path / "work", ROWS)
    ctx = StageContext(workdir=work, settings=Settings(reference_dir=tiny_pack))
    stage = GeocodeStage()
    assert stage.inputs(ctx) == [work / "patients.parquet", tiny_pack / "manifest.json"]
    assert stage.outputs(ctx) == [work / "geocoded.parquet", work / "geocode-report.json"]
    assert stage.key(ctx) == stage_key("geocode", [work / "patients.parquet", tiny_pack / "manifest.json"], {})
    assert GeocodeStage(providers=("offline",)).key(ctx) != stage.key(ctx)
    result = execute(stage, ctx)
    staged = pl.read_parquet(work / "geocoded.parquet")
    assert json.loads((work / "geocode-report.json").read_text()) == result.to_dict()
    direct = geocode(work, settings=Settings(reference_dir=tiny_pack), use_cache=False)
    assert pl.read_parquet(work / "geocoded.parquet").equals(staged)
    assert direct.by_precision == result.by_precision and stage.counts(result)["patients"] == 8
