"""`reference pull`: download TIGER/Line files and ACS 5-year tract data, then build a pack.

TIGER/Line comes over HTTPS from ``Settings.tiger_base_url`` at the Census Bureau's own
paths (``TIGER2019/TRACT/tl_2019_25_tract.zip``, ``TIGER2019/BG/...``, one
``TIGER2019/ADDRFEAT/tl_2019_25025_addrfeat.zip`` per county); ZCTA centroids from the
gazetteer beside it; ACS 5-year tract variables through the ``census`` package with its
base URL pointed at ``Settings.census_api_base_url``. Every download goes through
:func:`segment.reference.http.download` (timeouts, retries with backoff, resume from a
``.part`` file) and its SHA-256 is recorded in the manifest.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import requests

from segment import progress
from segment.config import Settings
from segment.errors import NetworkError, ReferenceDataError
from segment.log import get_logger
from segment.reference.build import build_pack
from segment.reference.http import Download, download, host_of, make_session, redact
from segment.reference.pack import Manifest
from segment.reference.tiger import read_tracts
from segment.workdir import ensure_private_dir, write_csv

log = get_logger("reference")
DOWNLOADS = ".downloads"

STATE_FIPS = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09",
    "DE": "10", "DC": "11", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17",
    "IN": "18", "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24",
    "MA": "25", "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31",
    "NV": "32", "NH": "33", "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38",
    "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44", "SC": "45", "SD": "46",
    "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54",
    "WI": "55", "WY": "56", "PR": "72",
}


def state_fips(state: str) -> str:
    """Two-digit FIPS for a USPS code or FIPS code; unknown values are an error."""
    s = state.strip().upper()
    if s in STATE_FIPS:
        return STATE_FIPS[s]
    if s.isdigit() and s.zfill(2) in STATE_FIPS.values():
        return s.zfill(2)
    raise ReferenceDataError(
        f"unknown state {state!r}; give a USPS code (e.g. MA) or a 2-digit FIPS code")


def tiger_paths(year: int, fips: str) -> dict[str, str]:
    """Paths under the TIGER base URL of a state's tract and block-group zips."""
    if year == 2010:
        return {"tracts": f"TIGER2010/TRACT/2010/tl_2010_{fips}_tract10.zip",
                "block_groups": f"TIGER2010/BG/2010/tl_2010_{fips}_bg10.zip"}
    return {"tracts": f"TIGER{year}/TRACT/tl_{year}_{fips}_tract.zip",
            "block_groups": f"TIGER{year}/BG/tl_{year}_{fips}_bg.zip"}


def addrfeat_path(year: int, county5: str) -> str:
    """Path of a county's ADDRFEAT zip under the TIGER base URL."""
    return f"TIGER{year}/ADDRFEAT/tl_{year}_{county5}_addrfeat.zip"


def gazetteer_url(settings: Settings, year: int) -> str:
    """The ZCTA gazetteer zip, beside the TIGER folder on the Census Bureau's server."""
    root = settings.tiger_base_url.rstrip("/").removesuffix("/tiger")
    return f"{root}/docs/maps-data/data/gazetteer/{year}_Gazetteer/{year}_Gaz_zcta_national.zip"


@dataclass(frozen=True)
class PullResult:
    """What was downloaded and the pack built from it."""

    path: Path
    manifest: Manifest
    downloads: list[Download]


@dataclass
class _Fetcher:
    """Downloads into the pack's download cache, remembering every download."""

    session: Any
    cache: Path
    timeout: float
    got: list[Download] = field(default_factory=list)

    def __call__(self, url: str) -> Download:
        name = url.rsplit("/", 1)[-1]
        log.info("downloading", file=name)
        progress.step("reference", f"downloading {name}")
        d = download(self.session, url, self.cache / name, timeout=self.timeout)
        if name.endswith(".zip"):
            _check_zip(d)
        self.got.append(d)
        return d


def _checked_year(year: int | None) -> int:
    year = year or latest_acs_year()
    if year < 2010 or year not in acs_years():
        raise ReferenceDataError(
            f"--year {year}: the ACS 5-year releases the census package supports are "
            f"{min(acs_years())}-{max(acs_years())}")
    return year


def _census_api_key(api_key: str | None) -> str:
    api_key = api_key or os.environ.get("CENSUS_API_KEY", "").strip() or None
    if not api_key:
        raise ReferenceDataError(
            "CENSUS_API_KEY is not set: the ACS needs a Census API key "
            "(https://api.census.gov/data/key_signup.html), or pull with --no-acs")
    return api_key


def _fetch_tiger(fetch: _Fetcher, base: str, year: int, fips: Sequence[str], *, address_ranges: bool
                 ) -> tuple[list[Path], list[Path], list[Path], list[str]]:
    """Tract and block-group files per state, then address ranges per county: (tracts, bgs, ranges, counties)."""
    tract_files, bg_files, ar_files = [], [], []
    for ss in fips:
        paths = tiger_paths(year, ss)
        tract_files.append(fetch(f"{base}/{paths['tracts']}").path)
        try:
            bg_files.append(fetch(f"{base}/{paths['block_groups']}").path)
        except NetworkError as exc:
            log.warning(f"no block groups ({exc.message})")
    tracts, _ = read_tracts(tract_files)
    counties = sorted(tracts["county_fips"].unique().tolist())
    if address_ranges:
        ar_files = [fetch(f"{base}/{addrfeat_path(year, county)}").path for county in counties]
    return tract_files, bg_files, ar_files, counties


def _fetch_zip_centroids(fetch: _Fetcher, settings: Settings, year: int) -> list[Path]:
    try:
        return [_unzip_text(fetch(gazetteer_url(settings, year)).path)]
    except NetworkError as exc:
        log.warning(f"no ZIP centroids ({exc.message})")
        return []


def pull_pack(
    states: Sequence[str],
    *,
    year: int | None = None,
    reference_dir: str | Path,
    settings: Settings | None = None,
    acs: bool = True,
    address_ranges: bool = True,
    zip_centroids: bool = True,
    api_key: str | None = None,
) -> PullResult:
    """Download a state's TIGER/Line files (and ACS 5-year tract variables) and build a pack in ``reference_dir``.

    ``year`` is the TIGER/Line release and the ACS 5-year end year; by default the latest
    ACS 5-year release the ``census`` package supports (2020 tracts from ACS 2020 on).
    """
    settings = settings or Settings.from_env()
    year = _checked_year(year)
    out = ensure_private_dir(reference_dir)
    cache = ensure_private_dir(out / DOWNLOADS)
    fips = sorted({state_fips(s) for s in states})
    key = _census_api_key(api_key) if acs else None
    fetch = _Fetcher(make_session(settings), cache, settings.http_timeout_s)
    base = settings.tiger_base_url.rstrip("/")
    tract_files, bg_files, ar_files, counties = _fetch_tiger(fetch, base, year, fips, address_ranges=address_ranges)
    zc_files = _fetch_zip_centroids(fetch, settings, year) if zip_centroids else []
    indicators = [pull_acs(counties, year=year, api_key=key, settings=settings,
                           target=cache / f"acs5_{year}_{'_'.join(fips)}.csv")] if key is not None else []
    manifest = build_pack(
        out, tracts=tract_files, block_groups=bg_files or None,
        address_ranges=ar_files or None, zip_centroids=zc_files or None,
        indicators=indicators or None, name=out.name, synthetic=False,
        source_years={"tracts": year, "block_groups": year, "address_ranges": year,
                      "zip_centroids": year},
        extra={"pulled": {"year": year, "states": fips,
                          "downloads": {d.path.name: {"url": d.url, "sha256": d.sha256,
                                                      "bytes": d.bytes} for d in fetch.got}}},
    )
    return PullResult(out, manifest, fetch.got)


def acs_years() -> tuple[int, ...]:
    """ACS 5-year end years the installed ``census`` package can query."""
    from census.core import ACS5Client

    return tuple(sorted(int(y) for y in ACS5Client.years))


def latest_acs_year() -> int:
    """The latest ACS 5-year release the ``census`` package supports (the pull default)."""
    return max(acs_years())


def _check_zip(d: Download) -> None:
    """Refuse (and delete) a download that is not an intact zip: an error page, a bad resume.

    The Census Bureau publishes no checksums; the CRC of every member is the check that a
    resumed file was put together right. A bad file is removed so a rerun fetches it again.
    """
    reason: str | None = None
    try:
        with zipfile.ZipFile(d.path) as zf:
            broken = zf.testzip()
            if broken is not None:
                reason = f"member {broken} fails its CRC check"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        reason = type(exc).__name__
    if reason is not None:
        d.path.unlink(missing_ok=True)
        raise NetworkError(f"{d.path.name} from {d.url} is not a valid zip ({reason}); "
                           "it was removed, rerun to download it again")


def _unzip_text(path: Path) -> Path:
    """The gazetteer ships as a zip holding one text file; extract it beside the zip."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".txt")]
        if not names:
            raise ReferenceDataError("gazetteer zip holds no .txt file", path=path)
        target = path.with_suffix(".txt")
        target.write_bytes(zf.read(names[0]))
    return target


def acs_client(api_key: str, settings: Settings, session: requests.Session) -> Any:
    """A ``census`` ACS 5-year client whose URLs start at ``Settings.census_api_base_url``.

    The package hard-codes ``https://api.census.gov/data`` and resets its URLs on every
    call (``_switch_endpoints``), so the override lives in that method of a subclass.
    """
    from census.core import ACS5Client

    root = settings.census_api_base_url.rstrip("/")

    class _Client(ACS5Client):
        def _switch_endpoints(self, year: int) -> None:
            self.endpoint_url = root + "/%s/acs/%s"
            self.definitions_url = root + "/%s/acs/%s/variables.json"
            self.definition_url = root + "/%s/acs/%s/variables/%s.json"
            self.groups_url = root + "/%s/acs/%s/groups.json"

    return _Client(api_key, session=session)


def pull_acs(counties: Sequence[str], *, year: int, api_key: str, settings: Settings,
             target: Path) -> Path:
    """ACS 5-year tract variables for every county (the API wants one county per call)."""
    from census.core import APIKeyError, CensusException

    from segment.reference.indicators import ACS_VARIABLES

    session = make_session(settings)
    session.request = _with_timeout(session.request, settings.http_timeout_s)  # type: ignore[method-assign]
    client = acs_client(api_key, settings, session)
    # estimates and their margins of error in two calls of under 50 variables each (the API's
    # limit), joined on the tract; the package's own chunking needs GEO_ID in every answer
    estimates = sorted(ACS_VARIABLES)
    moes = [f"{v[:-1]}M" for v in estimates]
    rows: list[dict[str, Any]] = []
    moe_rows: list[dict[str, Any]] = []
    for county in counties:
        where = f"county {county}, ACS {year} 5-year"
        try:
            rows.extend(client.state_county_tract(estimates, county[:2], county[2:], "*",
                                                  year=year))
            moe_rows.extend(client.state_county_tract(moes, county[:2], county[2:], "*",
                                                      year=year))
        except APIKeyError as exc:
            raise NetworkError("the Census API refused the API key (CENSUS_API_KEY): "
                               "check the key, or pull with --no-acs"
                               ) from _masked(exc, api_key)
        except CensusException as exc:
            raise NetworkError(f"Census API error for {where}: "
                               f"{_server_text(str(exc), api_key)}") from _masked(exc, api_key)
        except requests.RequestException as exc:
            raise NetworkError(f"Census API unreachable at {host_of(settings.census_api_base_url)} "
                               f"for {where} ({type(exc).__name__})") from _masked(exc, api_key)
        except ValueError as exc:  # a non-JSON answer
            raise NetworkError(f"Census API answered with something that is not JSON for "
                               f"{where}") from _masked(exc, api_key)
    if not rows:
        raise ReferenceDataError(f"the Census API returned no tracts for ACS {year}")
    geo = ["state", "county", "tract"]
    text = pl.all().cast(pl.String)
    frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(text)
    if moe_rows:
        margins = pl.DataFrame(moe_rows, infer_schema_length=None).with_columns(text)
        frame = frame.join(margins.select([*geo, *[c for c in moes if c in margins.columns]]),
                           on=geo, how="left")
    frame = frame.with_columns(pl.lit(str(year)).alias("year"))
    write_csv(frame, target)
    log.info("ACS tracts downloaded", tracts=frame.height, counties=len(counties))
    return target


class MaskedError(Exception):
    """Stands in for an exception whose text carried the API key (``--verbose`` shows it)."""


def _masked(exc: BaseException, secret: str) -> MaskedError:
    """``exc``'s type and text with the key masked; its own chain is dropped (it has URLs)."""
    text = redact(str(exc).replace(secret, "***")) if secret else redact(str(exc))
    return MaskedError(f"{type(exc).__module__}.{type(exc).__name__}: {text[:2000]}")


def _server_text(text: str, secret: str) -> str:
    """A server's error text as one short line: tags dropped, any key masked."""
    plain = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    plain = redact(plain.replace(secret, "***")) if secret else redact(plain)
    return (plain[:200] + "...") if len(plain) > 200 else (plain or "no details")


def _with_timeout(request: Any, timeout: float) -> Any:
    """Give every request of the ``census`` package a timeout (it sets none)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    return wrapped
