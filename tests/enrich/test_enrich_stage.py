"""EnrichStage: what it declares for `segment run`, and that it runs the same enrichment."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.config import Settings
from segment.enrich import EnrichStage, enrich_workdir
from segment.stage import StageContext, execute
from segment.workdir import ENRICH_REPORT, ENRICHED, GEOCODED
from tests.enrich.conftest import entry, write_pack

TRACTS = pl.DataFrame({
    "tract_geoid": ["25025000100", "25025000200", "25025000300"],
    "econ_poverty_pct": [30.0, 10.0, 5.0],
    "econ_unemployment_pct": [9.0, 4.0, 2.0],
})


def _work(root: Path) -> Path:
    work = root / "work"
    work.mkdir(parents=True)
    pl.DataFrame({
        "patient_id": ["a", "b", "c"],
        "geo_precision": ["address_point", "zip_centroid", "unmatched"],
        "tract_geoid": ["25025000100", None, None],
        "county_fips": ["25025", "25025", None],
    }).write_parquet(work / GEOCODED)
    return work


@pytest.fixture()
def pack(tmp_path: Path) -> Path:
    return write_pack(tmp_path / "pack", TRACTS, [entry("econ_poverty_pct"), entry("econ_unemployment_pct")])


def test_stage_declares_the_files_segment_run_keys_on(tmp_path: Path, pack: Path) -> None:
    ctx = StageContext(workdir=tmp_path / "work", settings=Settings(reference_dir=pack))
    stage = EnrichStage()
    assert stage.name == "enrich"
    assert list(stage.inputs(ctx)) == [tmp_path / "work" / GEOCODED, pack / "manifest.json"]
    assert list(stage.outputs(ctx)) == [tmp_path / "work" / ENRICHED, tmp_path / "work" / ENRICH_REPORT]
    assert dict(stage.params(ctx)) == {}
    crosswalk = tmp_path / "crosswalk.txt"
    assert list(EnrichStage(crosswalk=crosswalk).inputs(ctx))[-1] == crosswalk


def test_stage_runs_enrich_workdir_with_the_context_pack(tmp_path: Path, pack: Path) -> None:
    staged, direct = _work(tmp_path / "staged"), _work(tmp_path / "direct")
    report = execute(EnrichStage(), StageContext(workdir=staged, settings=Settings(reference_dir=pack)))
    expected = enrich_workdir(direct, pack)
    assert report.to_dict() == expected.to_dict()
    assert_frame_equal(pl.read_parquet(staged / ENRICHED), pl.read_parquet(direct / ENRICHED))
    assert report.sdoh_source == {"tract": 1, "zip_centroid_no_tract": 1, "no_tract_unmatched": 1}
    # the run log's figures, as `segment run` recorded them before the stage objects
    assert EnrichStage().counts(report) == {"patients": 3, "tract_vintage": 2010, "indicator_tract_vintage": 2010,
                                              "batches": 1}
    assert json.loads((staged / ENRICH_REPORT).read_text())["patients"] == 3


def test_key_changes_with_the_geocoded_file_and_the_pack(tmp_path: Path, pack: Path) -> None:
    work = _work(tmp_path)
    ctx = StageContext(workdir=work, settings=Settings(reference_dir=pack))
    stage = EnrichStage()
    first = stage.key(ctx)
    assert stage.key(ctx) == first
    pl.read_parquet(work / GEOCODED).head(2).write_parquet(work / GEOCODED)
    second = stage.key(ctx)
    assert second != first
    manifest = json.loads((pack / "manifest.json").read_text())
    (pack / "manifest.json").write_text(json.dumps({**manifest, "name": "another"}))
    assert stage.key(ctx) != second
