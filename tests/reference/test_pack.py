from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from geocode.tinyworld import build_tiny_world

from segment.cli import cli
from segment.errors import ReferenceDataError
from segment.reference import build_pack, open_pack, verify_pack


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return build_tiny_world(tmp_path_factory.mktemp("w"))


def test_build_records_sources_vintage_rows_and_checksums(tmp_path: Path, world) -> None:  # type: ignore[no-untyped-def]
    m = build_pack(tmp_path / "p", tracts=world.tracts, block_groups=world.block_groups,
                   address_ranges=world.addrfeat, zip_centroids=world.gazetteer, name="tiny",
                   synthetic=True)
    raw = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert raw["format"] == 1 and raw["synthetic"] is True and raw["tract_vintage"] == 2020
    assert raw["states"] == ["25"]
    files = raw["files"]
    assert files["tracts.parquet"]["rows"] == 2
    assert files["tracts.parquet"]["source"] == ["tl_2020_25_tract.zip"]
    assert files["address_ranges.parquet"]["rows"] == 6
    assert files["address_ranges.parquet"]["vintage"] == "2020"
    assert files["zip_centroids.parquet"]["rows"] == 2
    assert all(len(f["sha256"]) == 64 for f in files.values())
    zips = pl.read_parquet(tmp_path / "p" / "zip_centroids.parquet")
    assert zips["zip5"].to_list() == ["02119", "02120"] and zips["lon"][0] == -71.085
    assert open_pack(tmp_path / "p").pack_id == m.pack_id
    assert verify_pack(tmp_path / "p").files == 4


def test_real_massachusetts_tracts_with_oeps_indicators(tmp_path: Path,
                                                        reference_data: Path) -> None:
    m = build_pack(tmp_path / "ma", tracts=reference_data / "tiger2010" / "tl_2010_25_tract10.zip",
                   indicators=[reference_data / "oeps" / "DS03_T.csv"], name="ma-2010")
    assert m.tract_vintage == 2010 and m.files["tracts.parquet"].rows == 1478
    ind = pl.read_parquet(tmp_path / "ma" / "indicators.parquet")
    assert ind["tract_geoid"].str.starts_with("25").all() and ind.height <= 1478
    assert {c["name"] for c in m.columns} >= {"svi_overall_rank"}
    assert all(c["tract_vintage"] == 2010 for c in m.columns)


def test_indicators_of_the_other_vintage_are_refused(tmp_path: Path, world) -> None:  # type: ignore[no-untyped-def]
    ind = tmp_path / "themed.csv"
    # a themed file keyed to tracts that are not the pack's (2020 pack, unknown ids)
    pl.DataFrame({"tract_geoid": ["25025990100", "25025990200"],
                  "svi_overall_rank": [0.1, 0.9]}).write_csv(ind)
    with pytest.raises(ReferenceDataError, match="crosswalk"):
        build_pack(tmp_path / "p", tracts=world.tracts, indicators=[ind], name="x")
    with pytest.raises(ReferenceDataError, match="2010 tracts but the pack's tracts are 2020"):
        build_pack(tmp_path / "p", tracts=world.tracts, indicators=[ind], name="x",
                   indicator_vintage=2010)
    xwalk = tmp_path / "rel.txt"
    xwalk.write_text("GEOID_TRACT_20|GEOID_TRACT_10|AREALAND_PART\n"
                     "25025000100|25025990100|30\n25025000100|25025990200|10\n"
                     "25025000200|25025990200|50\n")
    build_pack(tmp_path / "p", tracts=world.tracts, indicators=[ind], name="x",
               indicator_vintage=2010, crosswalk=xwalk)
    got = pl.read_parquet(tmp_path / "p" / "indicators.parquet").sort("tract_geoid")
    assert got["tract_geoid"].to_list() == ["25025000100", "25025000200"]
    assert got["svi_overall_rank"].to_list() == pytest.approx([(0.1 * 30 + 0.9 * 10) / 40, 0.9])


def test_mixed_tract_vintages_refused(tmp_path: Path, world) -> None:  # type: ignore[no-untyped-def]
    old = build_tiny_world(tmp_path / "old", year=2010)
    with pytest.raises(ReferenceDataError, match="mix 2010 and 2020"):
        build_pack(tmp_path / "p", tracts=[world.tracts, old.tracts], name="x")


def test_verify_cli_tampered_and_missing_file(tmp_path: Path, world) -> None:  # type: ignore[no-untyped-def]
    pack = tmp_path / "p"
    build_pack(pack, tracts=world.tracts, zip_centroids=world.gazetteer, name="tiny")
    runner = CliRunner()
    ok = runner.invoke(cli, ["reference", "verify", "--reference", str(pack)])
    assert ok.exit_code == 0, ok.output
    with (pack / "zip_centroids.parquet").open("ab") as fh:
        fh.write(b"x")
    bad = runner.invoke(cli, ["reference", "verify", "--reference", str(pack)])
    assert bad.exit_code == 1
    assert bad.stderr.count("\n") == 1 and "zip_centroids.parquet" in bad.stderr
    assert "does not match its checksum" in bad.stderr
    (pack / "zip_centroids.parquet").unlink()
    gone = runner.invoke(cli, ["reference", "verify", "--reference", str(pack)])
    assert gone.exit_code == 1 and "zip_centroids.parquet is missing" in gone.stderr


def test_build_and_list_cli(tmp_path: Path, world, reference_data: Path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    res = runner.invoke(cli, [
        "reference", "build", "--out", str(tmp_path / "packs" / "ma"), "--tracts",
        str(reference_data / "tiger2010" / "tl_2010_25_tract10.zip"), "--indicators",
        str(reference_data / "oeps" / "EC03_T.csv")])
    assert res.exit_code == 0, res.output
    assert "tracts.parquet" in res.stdout and "1,478" in res.stdout
    listed = runner.invoke(cli, ["reference", "list", "--reference", str(tmp_path / "packs")])
    assert listed.exit_code == 0 and "ma" in listed.stdout and "2010" in listed.stdout
    cols = runner.invoke(cli, ["reference", "list", "--columns", "--reference",
                               str(tmp_path / "packs" / "ma")])
    assert cols.exit_code == 0 and "census tract (2010 boundaries)" in cols.stdout
    nofile = runner.invoke(cli, ["reference", "build", "--out", str(tmp_path / "x"),
                                 "--tracts", str(world.gazetteer)])
    assert nofile.exit_code == 1 and nofile.stderr.startswith("Error: ")
