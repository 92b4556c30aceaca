"""Fixtures for enrichment tests: real OEPS tracts for Massachusetts and tiny packs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from segment.reference.loading import load_indicator_files

OEPS_FILES = ("DS03_T", "EC03_T", "EC05_T", "BE01_T", "BE02_RUCA_T", "Access03_T", "Health03_T")


@pytest.fixture(scope="session")
def oeps_dir(reference_data: Path) -> Path:
    return reference_data / "oeps"


@pytest.fixture(scope="session")
def oeps_loaded(oeps_dir: Path) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Every OEPS tract file through the loader (read once per session)."""
    return load_indicator_files([oeps_dir / f"{name}.csv" for name in OEPS_FILES])


@pytest.fixture(scope="session")
def ma_indicators(oeps_loaded: tuple[pl.DataFrame, list[dict[str, Any]]]) -> pl.DataFrame:
    return oeps_loaded[0].filter(pl.col("tract_geoid").str.starts_with("25"))


def write_pack(
    folder: Path,
    indicators: pl.DataFrame,
    columns: list[dict[str, Any]],
    *,
    tract_vintage: int = 2010,
    extra_tables: dict[str, pl.DataFrame] | None = None,
) -> Path:
    """A minimal pack folder: manifest.json and indicators.parquet (plus optional tables)."""
    folder.mkdir(parents=True, exist_ok=True)
    indicators.write_parquet(folder / "indicators.parquet")
    for name, frame in (extra_tables or {}).items():
        frame.write_parquet(folder / name)
    files = {
        "tracts.parquet": {"source": ["test"], "vintage": "", "geography": "tract", "rows": 0,
                           "sha256": "0" * 64},
        "indicators.parquet": {"source": ["test"], "vintage": "", "geography": "tract",
                               "rows": indicators.height, "sha256": "0" * 64},
    }
    manifest = {"format": 1, "name": "test-pack", "synthetic": True, "created": "",
                "tract_vintage": tract_vintage, "states": ["25"], "files": files,
                "columns": columns}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def entry(name: str, unit: str = "percent", vintage: int = 2010) -> dict[str, Any]:
    return {"name": name, "meaning": name, "source": "test", "vintage": "test",
            "geography": f"census tract ({vintage} boundaries)", "unit": unit}
