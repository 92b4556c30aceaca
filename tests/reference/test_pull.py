"""`segment reference pull` against a real HTTP server on 127.0.0.1 speaking the Census paths.

The server (``localserver.CensusServer``) serves TIGER/Line zips written here with
geopandas (real field names), a ZCTA gazetteer zip and Census-API-shaped ACS JSON, and
injects the failures a real pull meets: 5xx answers, a connection dropped mid-file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import geopandas as gpd
import pandas as pd
import polars as pl
import pytest
import requests
from click.testing import CliRunner, Result
from geocode.tinyworld import addrfeat_frame, tract_frame, zip_shapefile
from shapely.geometry import LineString, box

from reference.localserver import CensusServer, reply, serve
from segment.cli import cli
from segment.config import Settings
from segment.errors import NetworkError, ReferenceDataError
from segment.reference.http import download, make_session
from segment.reference.indicators import ACS_MEASURES, ACS_VARIABLES
from segment.reference.pull import pull_pack

KEY = "k3y-Sekrit-0123456789abcdef"
YEAR = 2019
TIGER = "/geo/tiger"
TRACTS = f"{TIGER}/TIGER{YEAR}/TRACT/tl_{YEAR}_25_tract.zip"
BGS = f"{TIGER}/TIGER{YEAR}/BG/tl_{YEAR}_25_bg.zip"
AF_SUFFOLK = f"{TIGER}/TIGER{YEAR}/ADDRFEAT/tl_{YEAR}_25025_addrfeat.zip"
AF_MIDDLESEX = f"{TIGER}/TIGER{YEAR}/ADDRFEAT/tl_{YEAR}_25017_addrfeat.zip"
GAZ = f"/geo/docs/maps-data/data/gazetteer/{YEAR}_Gazetteer/{YEAR}_Gaz_zcta_national.zip"
ACS = f"/data/{YEAR}/acs/acs5"
SENTINEL = "-666666666"


@dataclass(frozen=True)
class Served:
    """The bytes the fake Census Bureau serves, by URL path."""

    files: dict[str, bytes]
    acs: dict[tuple[str, str], list[dict[str, str | None]]]


def _tracts() -> gpd.GeoDataFrame:
    """Two Suffolk (025) tracts from the tiny world plus one Middlesex (017) tract."""
    two = tract_frame(YEAR)
    third = two.iloc[[0]].copy()
    third["COUNTYFP"], third["TRACTCE"], third["GEOID"] = "017", "000100", "25017000100"
    third.geometry = [box(-71.10, 42.35, -71.05, 42.40)]
    return gpd.GeoDataFrame(pd.concat([two, third], ignore_index=True), crs="EPSG:4269")


def _acs_rows() -> dict[tuple[str, str], list[dict[str, str | None]]]:
    """ACS values as the API sends them: text, one negative sentinel, one JSON null."""
    def row(tract: str, **over: str | None) -> dict[str, str | None]:
        base: dict[str, str | None] = {v: ("400" if v.endswith("_001E") else "40")
                                       for v in ACS_VARIABLES}
        base.update({"NAME": f"Census Tract {int(tract) / 100:g}", "tract": tract,
                     "B17001_001E": "1000", "B17001_002E": "250", "B19013_001E": "61250"})
        base.update(over)
        return base

    return {
        ("25", "025"): [row("000100", B19013_001E=SENTINEL),
                        row("000200", B17001_002E="100", B08201_002E=None)],
        ("25", "017"): [row("000100", B17001_001E="0", B17001_002E="0")],
    }


def _zip_bytes(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    folder = tmp_path_factory.mktemp("census")
    tracts = zip_shapefile(_tracts(), folder, f"tl_{YEAR}_25_tract")
    bg = _tracts()
    bg["GEOID"] = bg["GEOID"] + "1"
    bg["BLKGRPCE"] = "1"
    bgs = zip_shapefile(bg, folder, f"tl_{YEAR}_25_bg")
    suffolk = zip_shapefile(addrfeat_frame(), folder, f"tl_{YEAR}_25025_addrfeat")
    mid = addrfeat_frame().iloc[[0]].copy()
    mid["TLID"], mid["FULLNAME"] = 9001, "Mystic Ave"
    mid.geometry = [LineString([(-71.09, 42.37), (-71.06, 42.37)])]
    middlesex = zip_shapefile(mid, folder, f"tl_{YEAR}_25017_addrfeat")
    gaz = io.BytesIO()
    with zipfile.ZipFile(gaz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{YEAR}_Gaz_zcta_national.txt",
                    "GEOID\tALAND\tAWATER\tALAND_SQMI\tAWATER_SQMI\tINTPTLAT\tINTPTLONG      \n"
                    "02119\t5000000\t0\t1.9\t0\t42.324\t-71.085      \n"
                    "02145\t3000000\t0\t1.1\t0\t42.390\t-71.090      \n")
    files = {TRACTS: _zip_bytes(tracts), BGS: _zip_bytes(bgs), AF_SUFFOLK: _zip_bytes(suffolk),
             AF_MIDDLESEX: _zip_bytes(middlesex), GAZ: gaz.getvalue()}
    return Served(files, _acs_rows())


@pytest.fixture
def server(served: Served) -> Iterator[tuple[CensusServer, str]]:
    census = CensusServer(files=dict(served.files), acs=served.acs, year=YEAR)
    with serve(census.handle) as url:
        yield census, url


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"SEGMENT_TIGER_URL": url + TIGER, "SEGMENT_CENSUS_API_URL": url + "/data",
            "CENSUS_API_KEY": KEY, **extra}


def _pull(url: str, out: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, ["reference", "pull", "--state", "MA", "--year", str(YEAR),
                                    "--out", str(out), *args], env=_env(url, **env))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _all_bytes(folder: Path) -> Iterator[tuple[Path, bytes]]:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p, p.read_bytes()


def test_pull_cli_retries_resumes_records_checksums_and_builds_the_pack(
        server: tuple[CensusServer, str], served: Served, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    census, url = server
    census.fail[TRACTS] = [503]
    census.fail[ACS] = [500]
    cut_at = len(served.files[AF_SUFFOLK]) // 2
    census.cut[AF_SUFFOLK] = cut_at
    pack = tmp_path / "ma-2019"
    caplog.set_level(logging.DEBUG)

    res = _pull(url, pack)
    assert res.exit_code == 0, res.output + res.stderr

    # a 503 on the tract zip and a 500 on the ACS call: retried, after a backoff
    tract_gets = census.requests_for(TRACTS)
    assert len(tract_gets) == 2
    assert tract_gets[1].at - tract_gets[0].at >= 0.4
    acs_gets = census.requests_for(ACS)
    # per county one call for the estimates and one for their margins of error (under the
    # API's 50-variable limit); Suffolk's first estimates call failed once
    assert len(acs_gets) == 5
    assert acs_gets[1].at - acs_gets[0].at >= 0.4
    assert {s.query["in"] for s in acs_gets} == {"state:25 county:025", "state:25 county:017"}
    assert all(s.query["for"] == "tract:*" for s in acs_gets)
    assert set(acs_gets[0].query["get"].split(",")) == set(ACS_VARIABLES)
    assert set(acs_gets[2].query["get"].split(",")) == {f"{v[:-1]}M" for v in ACS_VARIABLES}
    assert all(len(s.query["get"].split(",")) < 50 for s in acs_gets)

    # the ADDRFEAT zip dropped half way is resumed from where it stopped
    af = census.requests_for(AF_SUFFOLK)
    assert [s.headers.get("Range") for s in af] == [None, f"bytes={cut_at}-"]
    assert all("segment/" in s.headers["User-Agent"] for s in census.seen)

    # every download's SHA-256 is recorded and is the SHA-256 of what the server holds
    manifest = json.loads((pack / "manifest.json").read_text())
    downloads = manifest["pulled"]["downloads"]
    assert set(downloads) == {p.rsplit("/", 1)[-1] for p in served.files}
    for path, body in served.files.items():
        entry = downloads[path.rsplit("/", 1)[-1]]
        assert entry == {"url": url + path, "sha256": _sha(body), "bytes": len(body)}
    cached = pack / ".downloads" / f"tl_{YEAR}_25025_addrfeat.zip"
    assert _sha(cached.read_bytes()) == _sha(served.files[AF_SUFFOLK])
    assert not list((pack / ".downloads").glob("*.part"))
    assert "True" in next(line for line in res.stdout.splitlines() if "25025_addrfeat" in line)

    # the pack: tracts of both counties, block groups, ranges of both counties, ZIPs, ACS
    files = manifest["files"]
    assert files["tracts.parquet"]["rows"] == 3 and manifest["tract_vintage"] == 2010
    assert files["block_groups.parquet"]["rows"] == 3
    assert files["address_ranges.parquet"]["rows"] == len(addrfeat_frame()) + 1
    assert files["address_ranges.parquet"]["vintage"] == str(YEAR)
    assert files["zip_centroids.parquet"]["rows"] == 2
    assert files["indicators.parquet"]["rows"] == 3
    assert files["tracts.parquet"]["source_sha256"] == {
        f"tl_{YEAR}_25_tract.zip": _sha(served.files[TRACTS])}
    ind = pl.read_parquet(pack / "indicators.parquet").sort("tract_geoid")
    assert ind["tract_geoid"].to_list() == ["25017000100", "25025000100", "25025000200"]
    assert ind["econ_poverty_pct"].to_list() == [None, 25.0, 10.0]  # 0 people: no share
    assert ind["econ_median_household_income"].to_list() == [61250.0, None, 61250.0]
    assert ind["transport_no_vehicle_pct"].to_list() == [10.0, 10.0, None]  # JSON null

    # the key came from the environment, went to the API, and nowhere else
    assert all(s.query["key"] == KEY for s in acs_gets)
    assert KEY not in res.stdout and KEY not in res.stderr
    assert KEY not in caplog.text
    for written, data in _all_bytes(pack):
        assert KEY.encode() not in data, written

    verified = CliRunner().invoke(cli, ["reference", "verify", "--reference", str(pack)])
    assert verified.exit_code == 0, verified.stderr


def test_rerun_reuses_finished_downloads(server: tuple[CensusServer, str],
                                         tmp_path: Path) -> None:
    census, url = server
    pack = tmp_path / "p"
    assert _pull(url, pack, "--no-acs").exit_code == 0
    before = len(census.seen)
    again = _pull(url, pack, "--no-acs")
    assert again.exit_code == 0, again.stderr
    assert len(census.seen) == before  # nothing fetched twice
    assert json.loads((pack / "manifest.json").read_text())["files"]["tracts.parquet"]["rows"] == 3


def test_list_columns_shows_the_acs_data_dictionary(server: tuple[CensusServer, str],
                                                    tmp_path: Path) -> None:
    _, url = server
    pack = tmp_path / "ma"
    pulled = _pull(url, pack)
    assert pulled.exit_code == 0, pulled.stderr
    runner = CliRunner()
    plain = runner.invoke(cli, ["reference", "list", "--columns", "--reference", str(pack)])
    assert plain.exit_code == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0] == "columns of ma"
    assert lines[1].split() == ["name", "meaning", "source", "vintage", "geography", "unit"]
    body = "\n".join(lines[2:])
    for m in ACS_MEASURES:
        assert m.name in body
    assert "ACS 2015-2019 5-year" in body and "census tract (2010 boundaries)" in body

    as_json = runner.invoke(cli, ["reference", "list", "--columns", "--log-format", "json",
                                  "--reference", str(pack)])
    assert as_json.exit_code == 0, as_json.stderr
    table = json.loads(as_json.stdout.strip().splitlines()[-1])
    assert table["table"] == "columns of ma"
    rows = {r["name"]: r for r in table["rows"]}
    # every pulled ACS measure, plus the columns enrichment derives from them
    assert {m.name for m in ACS_MEASURES} <= set(rows)
    assert {"need_index", "need_index_quintile", "sdoh_source"} <= set(rows)
    poverty = rows["econ_poverty_pct"]
    assert poverty["vintage"] == "ACS 2015-2019 5-year"
    assert poverty["geography"] == "census tract (2010 boundaries)"
    assert poverty["unit"] == "percent" and "B17001" in poverty["source"]
    assert poverty["meaning"].startswith("People below the poverty level")
    assert all(set(r) == {"name", "meaning", "source", "vintage", "geography", "unit"}
               for r in table["rows"])

    listed = runner.invoke(cli, ["reference", "list", "--reference", str(tmp_path)])
    assert listed.exit_code == 0 and "ma" in listed.stdout and "25" in listed.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_one_line_network_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    res = _pull(url, tmp_path / "p")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: ")
    assert "Traceback" not in res.stderr and KEY not in res.stderr
    assert f"tl_{YEAR}_25_tract.zip" in res.stderr and "127.0.0.1" in res.stderr
    assert "unexpected" not in res.stderr


def test_missing_key_is_refused_before_any_download(server: tuple[CensusServer, str],
                                                    tmp_path: Path) -> None:
    census, url = server
    res = _pull(url, tmp_path / "p", CENSUS_API_KEY="")
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert "CENSUS_API_KEY is not set" in res.stderr and "--no-acs" in res.stderr
    assert census.seen == []


def test_census_api_errors_are_one_line_and_never_show_the_key(
        server: tuple[CensusServer, str], tmp_path: Path) -> None:
    census, url = server

    def echo_error(h: BaseHTTPRequestHandler) -> None:
        # an error page that echoes the request line, key included, over several lines
        if h.path.startswith(ACS + "?"):
            key = h.path.split("key=")[1].split("&")[0]
            reply(h, 400, f"<html>\n<h1>error: unknown variable</h1>\n<p>key={key}</p>\n"
                  f"<p>GET {h.path}</p>\n</html>".encode(), "text/html")
        else:
            census.handle(h)

    with serve(echo_error) as other:
        res = CliRunner().invoke(cli, ["reference", "pull", "--state", "MA", "--year", str(YEAR), "--out",
                                       str(tmp_path / "a")],
                                 env={**_env(url), "SEGMENT_CENSUS_API_URL": other + "/data"})
    assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("Error: Census API error for county 25017, ACS 2019 5-year: "
                                 "error: unknown variable key=*** GET /data/2019/acs/acs5?get=")
    assert "key=***" in res.stderr and "<" not in res.stderr
    assert KEY not in res.stderr and "Traceback" not in res.stderr

    # --verbose prints the traceback, causes included: still no key
    with serve(echo_error) as other:
        verbose = CliRunner().invoke(cli, ["reference", "pull", "--state", "MA", "--year", str(YEAR), "--verbose",
                                           "--out", str(tmp_path / "v")],
                                     env={**_env(url), "SEGMENT_CENSUS_API_URL": other + "/data"})
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr
    assert "CensusException" in verbose.stderr and KEY not in verbose.stderr

    census.acs = {}  # the API answers 204 (no data) for every county
    empty = _pull(url, tmp_path / "b")
    assert empty.exit_code == 1 and "returned no tracts" in empty.stderr


def test_acs_server_down_after_the_tiger_files(served: Served, tmp_path: Path) -> None:
    # TIGER/Line reachable, the Census API not: one line naming the API host, not the key
    census = CensusServer(files=dict(served.files), year=YEAR)
    with serve(census.handle) as url:
        settings = Settings(tiger_base_url=url + TIGER, http_retries=0,
                            census_api_base_url=f"http://127.0.0.1:{_closed_port()}/data")
        with pytest.raises(NetworkError) as info:
            pull_pack(["MA"], year=YEAR, reference_dir=tmp_path / "p", settings=settings, api_key=KEY,
                      address_ranges=False, zip_centroids=False)
    assert str(info.value).startswith("Census API unreachable at 127.0.0.1:")
    assert "county 25017" in str(info.value) and KEY not in str(info.value)
    cause = info.value.__cause__
    assert cause is not None and "ConnectionError" in str(cause) and "key=***" in str(cause)
    assert KEY not in str(cause) and cause.__cause__ is None and cause.__context__ is None
    assert not (tmp_path / "p" / "manifest.json").exists()


def test_invalid_key_is_a_clear_error(server: tuple[CensusServer, str], tmp_path: Path) -> None:
    census, url = server

    def refuse_key(h: BaseHTTPRequestHandler) -> None:
        if h.path.startswith(ACS + "?"):
            reply(h, 200, b"<html><head><title>Invalid Key</title></head>\n<body>"
                  b"A valid <em>key</em> must be included with each data API request."
                  b"</body></html>", "text/html")
        else:
            CensusServer.handle(census, h)

    with serve(refuse_key) as other:
        res = CliRunner().invoke(cli, ["reference", "pull", "--state", "25", "--year", str(YEAR), "--out",
                                       str(tmp_path / "p")],
                                 env={**_env(url), "SEGMENT_CENSUS_API_URL": other + "/data"})
    assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "key" in res.stderr.lower() and "unexpected" not in res.stderr
    assert KEY not in res.stderr


def test_download_resumes_with_range_and_restarts_when_range_is_ignored(
        served: Served, tmp_path: Path) -> None:
    body = served.files[AF_SUFFOLK]
    settings = Settings(http_retries=1)
    session = make_session(settings, backoff=0.01)
    census = CensusServer(files={AF_SUFFOLK: body})
    with serve(census.handle) as url:
        census.cut[AF_SUFFOLK] = 100
        got = download(session, url + AF_SUFFOLK, tmp_path / "a.zip", timeout=5)
        assert got.resumed and got.sha256 == _sha(body) and got.bytes == len(body)
        assert [s.headers.get("Range") for s in census.requests_for(AF_SUFFOLK)] == [
            None, "bytes=100-"]

        # a .part already complete: the server answers 416 and the file is finished
        (tmp_path / "b.zip.part").write_bytes(body)
        done = download(session, url + AF_SUFFOLK, tmp_path / "b.zip", timeout=5)
        assert done.sha256 == _sha(body) and not (tmp_path / "b.zip.part").exists()

        # a server that ignores Range (200): the file restarts instead of being doubled
        census.ignore_range = True
        (tmp_path / "c.zip.part").write_bytes(body[:50])
        restarted = download(session, url + AF_SUFFOLK, tmp_path / "c.zip", timeout=5)
        assert restarted.sha256 == _sha(body) and not restarted.resumed

        with pytest.raises(NetworkError, match="HTTP 404"):
            download(session, url + "/nowhere.zip", tmp_path / "d.zip", timeout=5)


def test_download_gives_up_after_repeated_cuts(served: Served, tmp_path: Path) -> None:
    body = served.files[AF_SUFFOLK]

    class AlwaysCut(CensusServer):
        def _file(self, h: BaseHTTPRequestHandler, path: str) -> None:
            self.cut[path] = 10
            super()._file(h, path)

    census = AlwaysCut(files={AF_SUFFOLK: body}, ignore_range=True)
    session = make_session(Settings(http_retries=0), backoff=0.01)
    with serve(census.handle) as url:
        with pytest.raises(NetworkError, match="3 interrupted attempts") as info:
            download(session, url + AF_SUFFOLK, tmp_path / "x.zip", timeout=5, attempts=3)
    assert "\n" not in str(info.value)
    assert len(census.requests_for(AF_SUFFOLK)) == 3


def test_pull_pack_library_call_needs_a_known_state(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="unknown state"):
        pull_pack(["ZZ"], reference_dir=tmp_path / "p", acs=False)


def test_refused_connection_is_a_network_error_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(NetworkError, match=r"127\.0\.0\.1") as info:
        pull_pack(["MA"], year=YEAR, reference_dir=tmp_path / "p", acs=False,
                  settings=Settings(tiger_base_url=url + TIGER, http_retries=0))
    assert isinstance(info.value.__cause__, requests.RequestException)


def test_html_page_instead_of_a_zip_is_refused_and_not_kept(
        server: tuple[CensusServer, str], served: Served, tmp_path: Path) -> None:
    census, url = server
    census.files[TRACTS] = b"<html><body>Service Unavailable - Zero size object</body></html>"
    pack = tmp_path / "p"
    res = _pull(url, pack, "--no-acs")
    assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "tl_2019_25_tract.zip" in res.stderr and "not a valid zip" in res.stderr
    assert not (pack / ".downloads" / "tl_2019_25_tract.zip").exists()
    census.files[TRACTS] = served.files[TRACTS]  # the server recovers: a rerun succeeds
    again = _pull(url, pack, "--no-acs")
    assert again.exit_code == 0, again.stderr


def test_default_year_is_the_latest_acs_release_on_2020_tracts(
        server: tuple[CensusServer, str], tmp_path: Path) -> None:
    from census.core import ACS5Client

    from segment.reference.pull import latest_acs_year

    latest = max(ACS5Client.years)
    assert latest_acs_year() == latest >= 2022
    census, url = server  # serves 2019 files only: the request names the default year
    res = CliRunner().invoke(cli, ["reference", "pull", "--state", "MA", "--out",
                                   str(tmp_path / "p"), "--no-acs"], env=_env(url))
    assert res.exit_code == 1
    assert f"TIGER{latest}/TRACT/tl_{latest}_25_tract.zip" in res.stderr
    assert census.seen[0].path.endswith(f"tl_{latest}_25_tract.zip")
    bad = CliRunner().invoke(cli, ["reference", "pull", "--state", "MA", "--year", "2008",
                                   "--out", str(tmp_path / "q"), "--no-acs"], env=_env(url))
    assert bad.exit_code == 1 and "--year 2008: the ACS 5-year releases" in bad.stderr
