from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from geocode.tinyworld import TinyWorld, build_tiny_world
from segment.reference import build_pack
from segment.schema import PATIENT_SCHEMA


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return build_tiny_world(tmp_path_factory.mktemp("tinyworld"))


@pytest.fixture(scope="session")
def tiny_pack(tiny_world: TinyWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "tiny"
    build_pack(out, tracts=tiny_world.tracts, block_groups=tiny_world.block_groups,
               address_ranges=tiny_world.addrfeat, zip_centroids=tiny_world.gazetteer,
               name="tiny", synthetic=True)
    return out


def write_patients(folder: Path, rows: list[dict[str, object]]) -> Path:
    """patients.parquet with PATIENT_SCHEMA + source_lat/lon from partial rows."""
    schema = {**PATIENT_SCHEMA, "source_lat": pl.Float64, "source_lon": pl.Float64}
    full = [{c: r.get(c) for c in schema} for r in rows]
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(full, schema=schema).write_parquet(folder / "patients.parquet")
    return folder
