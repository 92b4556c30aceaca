"""The demo world: a fictional county placed on real longitudes and latitudes.

The region is a rectangle in central Massachusetts (state FIPS 25) with the county
FIPS ``901``, which no real county uses, so its tracts (``25901xxxxxx``) cannot be
mistaken for real ones. Tracts tile the rectangle on a non-uniform grid (small tracts
in an urban core, large ones at the rural edge); each has 2-4 block groups; a street
grid carries TIGER ADDRFEAT-shaped address ranges (odd/even sides, some digitized
backwards); ZIP areas group tracts; tract indicators have realistic spreads and
correlations (poverty with unemployment and income, no internet with poverty and
rurality, distance to hospital with rurality).

Everything is generated with vectorized NumPy/Shapely calls and is deterministic for
a seed. :func:`write_geography_sources` writes it in the Census Bureau's own file
formats (TIGER/Line shapefile zips, a ZCTA gazetteer file) and the OEPS indicator CSV
layouts, so the reference-pack builder reads it exactly as it reads real files.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from segment.synth import vocab
from segment.workdir import atomic_open, atomic_path, ensure_private_dir

STATE_FIPS = "25"
STATE = "MA"
COUNTY_FIPS3 = "901"  # no real county has this code
COUNTY_FIPS = STATE_FIPS + COUNTY_FIPS3
CRS = "EPSG:4269"
#: the region: west, south, east, north (degrees, NAD83)
BOUNDS = (-71.95, 42.15, -71.45, 42.45)
_UTM = "EPSG:26919"  # NAD83 / UTM zone 19N, for areas in square metres
_FIXED_DATE = dt.date(2026, 1, 1)  # stamped into zip entries and DBF headers

TRACT_ZIP = "tl_2020_25_tract.zip"
BLOCK_GROUP_ZIP = "tl_2020_25_bg.zip"
#: the fictional county's tracts did not change in 2020: a one-to-one 2010 -> 2020 relationship
CROSSWALK_FILE = "tract_relationship_2010_2020.csv"
SVI_FILE = "SVI_2022_US.csv"
ACS_FILE = "acs5_2022_tract.csv"
ADDRFEAT_ZIP = f"tl_2010_{COUNTY_FIPS}_addrfeat.zip"
ZCTA_GAZETTEER = "2020_Gaz_zcta_national.txt"
OEPS_FILES = (
    SVI_FILE,
    ACS_FILE,
    "BE01_T.csv",
    "BE02_RUCA_T.csv",
    "Access03_T.csv",
    "Health03_T.csv",
)


@dataclass(frozen=True)
class AddressSlots:
    """One row per street side, with what is needed to draw addresses on it."""

    street: np.ndarray  # index into DemoGeography.streets rows
    low: np.ndarray  # lowest house number on the side
    high: np.ndarray  # highest house number on the side (same parity as low)
    cdf: np.ndarray  # cumulative sampling weight (people live where tracts are)


@dataclass(frozen=True, eq=False)
class DemoGeography:
    """The generated geography, in memory.

    ``tracts`` and ``block_groups`` carry the TIGER 2010 field names; ``streets`` the
    ADDRFEAT fields (plus ``tract_index``); ``zips`` is a Polars frame of ``zip5``,
    ``city``, ``lat``, ``lon``, ``aland``; ``indicators`` one row per tract keyed by
    ``GEOID`` with the OEPS column names.
    """

    seed: int
    tracts: gpd.GeoDataFrame
    block_groups: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    zips: pl.DataFrame
    indicators: pl.DataFrame
    tract_weight: np.ndarray = field(repr=False)

    @property
    def county_fips(self) -> str:
        """The fictional county's 5-digit FIPS code."""
        return COUNTY_FIPS

    @cached_property
    def slots(self) -> AddressSlots:
        """Street sides weighted so that each tract gets its share of residents."""
        st = self.streets
        n = len(st)
        lo = np.concatenate([np.minimum(st["_lfrom"], st["_lto"]), np.minimum(st["_rfrom"], st["_rto"])])
        hi = np.concatenate([np.maximum(st["_lfrom"], st["_lto"]), np.maximum(st["_rfrom"], st["_rto"])])
        street = np.concatenate([np.arange(n), np.arange(n)])
        tract = st["tract_index"].to_numpy()[street]
        size = (hi - lo) // 2 + 1
        per_tract = np.bincount(tract, weights=size, minlength=len(self.tracts))
        weight = self.tract_weight[tract] * size / per_tract[tract]
        cdf = np.cumsum(weight)
        return AddressSlots(street=street, low=lo, high=hi, cdf=cdf / cdf[-1])


def _edges(n: int, lo: float, hi: float, spread: float) -> np.ndarray:
    """Cell edges, narrow at the centre and ``1 + spread`` times wider at the ends."""
    i = np.arange(n)
    c = (n - 1) / 2
    w = 1 + spread * np.abs(i - c) / c
    e = np.concatenate([[0.0], np.cumsum(w)])
    return np.asarray(lo + (hi - lo) * e / e[-1])


def _rank01(values: np.ndarray) -> np.ndarray:
    """Percentile rank scaled to 0..1 (ties broken by order), as SVI reports them."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return np.asarray(np.round(ranks / max(len(values) - 1, 1), 4))


def _smooth(grid: np.ndarray, passes: int = 2) -> np.ndarray:
    """Average each cell with its four neighbours (a cheap spatially correlated field)."""
    for _ in range(passes):
        p = np.pad(grid, 1, mode="edge")
        grid = (p[1:-1, 1:-1] * 2 + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 6
    return grid / grid.std()


def build_geography(patients: int = 10_000, seed: int = 0) -> DemoGeography:
    """Generate the demo region: 64-144 tracts depending on ``patients``, deterministic."""
    rng = np.random.default_rng([seed, 3])
    side = int(np.clip(round(np.sqrt(max(patients, 1) / 3000)), 8, 12))
    west, south, east, north = BOUNDS
    xe = _edges(side, west, east, 1.8)
    ye = _edges(side, south, north, 1.8)
    core_x = (west + east) / 2 + rng.uniform(-0.03, 0.03)
    core_y = (south + north) / 2 + rng.uniform(-0.02, 0.02)

    # -- tracts ----------------------------------------------------------------------
    grid_col, grid_row = np.meshgrid(np.arange(side), np.arange(side))
    col, row = grid_col.ravel(), grid_row.ravel()
    x0, x1, y0, y1 = xe[col], xe[col + 1], ye[row], ye[row + 1]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    r = np.hypot((cx - core_x) / ((east - west) / 2), (cy - core_y) / ((north - south) / 2))
    urban = np.clip(1 - r / np.sqrt(2), 0, 1) ** 1.3
    urban = (urban - urban.min()) / (urban.max() - urban.min())
    n_tracts = len(col)
    tract_ce = np.array([f"{7001 + i:04d}00" for i in range(n_tracts)])
    geoid = np.char.add(COUNTY_FIPS, tract_ce)
    tract_geom = shapely.box(x0, y0, x1, y1)
    population = np.clip(rng.normal(4300, 900, n_tracts) * (0.85 + 0.3 * urban), 1500, 8000)

    # -- ZIP areas: groups of tract columns and rows ---------------------------------
    zgroups = 4 if side >= 10 else 3
    col_group = np.concatenate([np.full(len(a), k) for k, a in enumerate(np.array_split(np.arange(side), zgroups))])
    tract_zip = col_group[row] * zgroups + col_group[col]
    n_zips = zgroups * zgroups
    zip_codes = np.array([f"01{v:03d}" for v in np.sort(rng.choice(np.arange(500, 800), n_zips, replace=False))])
    zip_urban = np.bincount(tract_zip, weights=urban, minlength=n_zips) / np.bincount(tract_zip, minlength=n_zips)
    towns = np.array(vocab.TOWNS)[rng.permutation(len(vocab.TOWNS))]
    zip_city = np.where(zip_urban >= np.sort(zip_urban)[-max(2, n_zips // 5)], vocab.CORE_CITY, towns[:n_zips])

    tracts = gpd.GeoDataFrame(
        {
            "STATEFP10": STATE_FIPS,
            "COUNTYFP10": COUNTY_FIPS3,
            "TRACTCE10": tract_ce,
            "GEOID10": geoid,
            "NAME10": [str(int(c[:4])) for c in tract_ce],
            "NAMELSAD10": [f"Census Tract {int(c[:4])}" for c in tract_ce],
            "MTFCC10": "G5020",
            "FUNCSTAT10": "S",
        },
        geometry=tract_geom,
        crs=CRS,
    )
    _add_area_fields(tracts, rng, "10")

    # -- block groups: 2-4 strips per tract ---------------------------------------------
    k = rng.integers(2, 5, n_tracts)
    bt = np.repeat(np.arange(n_tracts), k)
    j = np.arange(len(bt)) - np.repeat(np.cumsum(k) - k, k)
    f0, f1 = j / k[bt], (j + 1) / k[bt]
    wide = (x1 - x0)[bt] * np.cos(np.radians(cy[bt])) > (y1 - y0)[bt]
    bx0 = np.where(wide, x0[bt] + (x1 - x0)[bt] * f0, x0[bt])
    bx1 = np.where(wide, x0[bt] + (x1 - x0)[bt] * f1, x1[bt])
    by0 = np.where(wide, y0[bt], y0[bt] + (y1 - y0)[bt] * f0)
    by1 = np.where(wide, y1[bt], y0[bt] + (y1 - y0)[bt] * f1)
    blkgrp = (j + 1).astype(str)
    block_groups = gpd.GeoDataFrame(
        {
            "STATEFP10": STATE_FIPS,
            "COUNTYFP10": COUNTY_FIPS3,
            "TRACTCE10": tract_ce[bt],
            "BLKGRPCE10": blkgrp,
            "GEOID10": np.char.add(geoid[bt], blkgrp),
            "NAMELSAD10": np.char.add("Block Group ", blkgrp),
            "MTFCC10": "G5030",
            "FUNCSTAT10": "S",
        },
        geometry=shapely.box(bx0, by0, bx1, by1),
        crs=CRS,
    )
    _add_area_fields(block_groups, rng, "10")

    streets = _streets(rng, xe, ye, side, urban, tract_zip, zip_codes, core_x, core_y)

    # -- ZIP centroids (gazetteer-style internal points) --------------------------------
    zx0 = np.array([x0[tract_zip == z].min() for z in range(n_zips)])
    zx1 = np.array([x1[tract_zip == z].max() for z in range(n_zips)])
    zy0 = np.array([y0[tract_zip == z].min() for z in range(n_zips)])
    zy1 = np.array([y1[tract_zip == z].max() for z in range(n_zips)])
    zip_area = gpd.GeoSeries(shapely.box(zx0, zy0, zx1, zy1), crs=CRS).to_crs(_UTM).area
    zips = pl.DataFrame(
        {
            "zip5": zip_codes,
            "city": zip_city,
            "lat": np.round((zy0 + zy1) / 2, 6),
            "lon": np.round((zx0 + zx1) / 2, 6),
            "aland": np.round(zip_area.to_numpy()).astype(np.int64),
        }
    )

    indicators = _indicators(rng, tracts, urban, row, col, side, core_x, core_y, cx, cy)
    # as in real SVI files, the tracts without ranks are the ones where nobody lives
    population = np.where(indicators["SVIS"].is_null().to_numpy(), 0.0, population)
    return DemoGeography(
        seed=seed,
        tracts=tracts.assign(tract_zip=zip_codes[tract_zip], urbanicity=np.round(urban, 4)),
        block_groups=block_groups,
        streets=streets,
        zips=zips,
        indicators=indicators,
        tract_weight=population / population.sum(),
    )


def _add_area_fields(frame: gpd.GeoDataFrame, rng: np.random.Generator, suffix: str) -> None:
    """ALAND/AWATER (m², water a small random share) and signed, padded internal points."""
    area = frame.geometry.to_crs(_UTM).area.to_numpy()
    water = np.where(rng.random(len(frame)) < 0.25, rng.uniform(0.0, 0.08, len(frame)), 0.0)
    frame[f"ALAND{suffix}"] = np.round(area * (1 - water)).astype(np.int64)
    frame[f"AWATER{suffix}"] = np.round(area * water).astype(np.int64)
    pt = shapely.point_on_surface(frame.geometry.to_numpy())
    frame[f"INTPTLAT{suffix}"] = [f"{v:+011.7f}" for v in shapely.get_y(pt)]
    frame[f"INTPTLON{suffix}"] = [f"{v:+012.7f}" for v in shapely.get_x(pt)]


def _street_lines(
    rng: np.random.Generator, edges: np.ndarray, urban_line: np.ndarray
) -> np.ndarray:
    """Positions of streets running across the cells between ``edges`` (more in town)."""
    out = []
    for i in range(len(edges) - 1):
        m = 2 + round(float(4 * urban_line[i]))
        frac = (np.arange(1, m + 1) + rng.uniform(-0.2, 0.2, m)) / (m + 1)
        out.append(edges[i] + (edges[i + 1] - edges[i]) * frac)
    return np.concatenate(out)


def _streets(
    rng: np.random.Generator,
    xe: np.ndarray,
    ye: np.ndarray,
    side: int,
    urban: np.ndarray,
    tract_zip: np.ndarray,
    zip_codes: np.ndarray,
    core_x: float,
    core_y: float,
) -> gpd.GeoDataFrame:
    """Street segments with ADDRFEAT fields, cut at crossings and tract edges."""
    c = (side - 1) / 2
    line_urban = 1 - np.abs(np.arange(side) - c) / c
    vx = _street_lines(rng, xe, line_urban)  # north-south streets
    hy = _street_lines(rng, ye, line_urban)  # east-west streets
    ycuts = np.unique(np.concatenate([hy, ye]))
    xcuts = np.unique(np.concatenate([vx, xe]))

    # vertical: every line x between consecutive y cuts, digitized south to north
    nv, nyc = len(vx), len(ycuts) - 1
    v_line = np.repeat(np.arange(nv), nyc)
    v_ord = np.tile(np.arange(nyc), nv)
    v_a = np.stack([vx[v_line], ycuts[v_ord]], axis=1)
    v_b = np.stack([vx[v_line], ycuts[v_ord + 1]], axis=1)
    # horizontal: every line y between consecutive x cuts, digitized west to east
    nh, nxc = len(hy), len(xcuts) - 1
    h_line = np.repeat(np.arange(nh), nxc)
    h_ord = np.tile(np.arange(nxc), nh)
    h_a = np.stack([xcuts[h_ord], hy[h_line]], axis=1)
    h_b = np.stack([xcuts[h_ord + 1], hy[h_line]], axis=1)

    a = np.concatenate([v_a, h_a])
    b = np.concatenate([v_b, h_b])
    line = np.concatenate([v_line, nv + h_line])
    ordinal = np.concatenate([v_ord, h_ord])
    vertical = np.arange(len(a)) < len(v_a)
    mid = (a + b) / 2
    tcol = np.clip(np.searchsorted(xe, mid[:, 0]) - 1, 0, side - 1)
    trow = np.clip(np.searchsorted(ye, mid[:, 1]) - 1, 0, side - 1)
    tract = trow * side + tcol
    keep = rng.random(len(a)) < 0.45 + 0.55 * urban[tract]

    # names: one per line, a few with directionals split at the core, two numbered routes
    n_lines = nv + nh
    bases = np.array(vocab.STREET_BASES)[rng.permutation(len(vocab.STREET_BASES))]
    bases = np.resize(bases, n_lines)
    types = np.array(vocab.STREET_TYPES)[rng.choice(len(vocab.STREET_TYPES), n_lines, p=_TYPE_P)]
    names = np.char.add(np.char.add(bases, " "), types)
    names[int(np.argmin(np.abs(vx - core_x)))] = "Main St"
    names[nv + int(np.argmin(np.abs(hy - core_y)))] = "Washington St"
    names[nv + int(np.argmin(np.abs(hy - (ye[0] + (ye[-1] - ye[0]) * 0.3))))] = "State Rte 9"
    names[int(np.argmin(np.abs(vx - (xe[0] + (xe[-1] - xe[0]) * 0.8))))] = "US Hwy 20"
    directional = rng.random(n_lines) < 0.25
    directional[np.isin(names, ["Main St", "State Rte 9", "US Hwy 20"])] = False
    seg_name = names[line]
    pre = np.where(
        vertical,
        np.where(mid[:, 1] >= core_y, "N ", "S "),
        np.where(mid[:, 0] >= core_x, "E ", "W "),
    )
    seg_name = np.where(directional[line], np.char.add(pre, seg_name), seg_name)
    # numbered routes are never residential-only: keep them whole
    keep |= np.isin(seg_name, ["State Rte 9", "US Hwy 20"])

    # address ranges: block numbers increase along the line, 100 per segment
    base = (ordinal + 1) * 100
    left_odd = (rng.random(n_lines) < 0.5)[line]
    m_odd = rng.integers(4, 50, len(a))
    m_even = rng.integers(4, 50, len(a))
    odd = (base + 1, base + 1 + 2 * (m_odd - 1))
    even = (base + 2, base + 2 * m_even)
    lfrom = np.where(left_odd, odd[0], even[0])
    lto = np.where(left_odd, odd[1], even[1])
    rfrom = np.where(left_odd, even[0], odd[0])
    rto = np.where(left_odd, even[1], odd[1])
    parl = np.where(left_odd, "O", "E")
    parr = np.where(left_odd, "E", "O")
    # a share of edges is digitized the other way: sides swap and ranges run backwards
    back = rng.random(len(a)) < 0.2
    a2, b2 = np.where(back[:, None], b, a), np.where(back[:, None], a, b)
    lfrom, lto, rfrom, rto = (
        np.where(back, rto, lfrom),
        np.where(back, rfrom, lto),
        np.where(back, lto, rfrom),
        np.where(back, lfrom, rto),
    )
    parl, parr = np.where(back, parr, parl), np.where(back, parl, parr)

    sel = np.flatnonzero(keep)
    n = len(sel)
    tlid = 600_000_000 + np.arange(n) * 7 + 3
    seg_zip = zip_codes[tract_zip[tract[sel]]]
    road = np.where(np.isin(seg_name[sel], ["State Rte 9", "US Hwy 20"]), "S1200", "S1400")
    geometry = shapely.linestrings(np.stack([a2[sel], b2[sel]], axis=1))
    streets = gpd.GeoDataFrame(
        {
            "TLID": tlid.astype(np.int64),
            "TFIDL": (200_000_000 + 2 * np.arange(n)).astype(np.int64),
            "TFIDR": (200_000_001 + 2 * np.arange(n)).astype(np.int64),
            "ARIDL": [f"40{t:020d}" for t in tlid],
            "ARIDR": [f"41{t:020d}" for t in tlid],
            "LINEARID": [f"1104{v:09d}" for v in line[sel]],
            "FULLNAME": seg_name[sel],
            "LFROMHN": lfrom[sel].astype(str),
            "LTOHN": lto[sel].astype(str),
            "RFROMHN": rfrom[sel].astype(str),
            "RTOHN": rto[sel].astype(str),
            "ZIPL": seg_zip,
            "ZIPR": seg_zip,
            "EDGE_MTFCC": road,
            "ROAD_MTFCC": road,
            "PARITYL": parl[sel],
            "PARITYR": parr[sel],
            "PLUS4L": None,
            "PLUS4R": None,
            "LFROMTYP": None,
            "LTOTYP": None,
            "RFROMTYP": None,
            "RTOTYP": None,
            "OFFSETL": "N",
            "OFFSETR": "N",
            "tract_index": tract[sel],
            "_lfrom": lfrom[sel],
            "_lto": lto[sel],
            "_rfrom": rfrom[sel],
            "_rto": rto[sel],
        },
        geometry=geometry,
        crs=CRS,
    )
    return streets


_TYPE_P = np.array([30, 14, 14, 8, 8, 4, 4, 4, 4, 3, 3, 4], dtype=float)
_TYPE_P /= _TYPE_P.sum()


def _indicators(
    rng: np.random.Generator,
    tracts: gpd.GeoDataFrame,
    urban: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    side: int,
    core_x: float,
    core_y: float,
    cx: np.ndarray,
    cy: np.ndarray,
) -> pl.DataFrame:
    """Tract indicators with OEPS column names, correlated through a deprivation field."""
    n = len(urban)
    field_ = _smooth(rng.normal(size=(side, side)))[row, col]
    # deprivation: pockets in the urban core, affluent suburbs, a poorer rural edge
    dep = 0.8 * field_ + 1.6 * np.exp(-(((1 - urban) / 0.22) ** 2)) + 0.5 * (1 - urban) ** 2 - 0.6
    pov = np.clip(100 / (1 + np.exp(-(0.9 * dep - 1.9))) + rng.normal(0, 2.0, n), 1.0, 68.0)
    unemp = np.clip(2.2 + 0.16 * pov + rng.normal(0, 1.1, n), 0.6, 28.0)
    pci = np.clip(56_000 * np.exp(-0.32 * dep) + rng.normal(0, 3_500, n), 11_000, 140_000)
    noint = np.clip(5 + 0.42 * pov + 9 * (1 - urban) + rng.normal(0, 2.5, n), 1.0, 62.0)
    vacant = np.clip(3 + 0.12 * pov + 6 * (1 - urban) ** 2 + rng.gamma(1.5, 1.2, n), 0.3, 45.0)
    rental = np.clip(12 + 55 * urban**1.5 + 0.35 * pov + rng.normal(0, 6, n), 2.0, 96.0)
    units = np.round(np.clip(rng.normal(1800, 350, n) * (0.8 + 0.5 * urban), 500, 4000))
    aland_km2 = tracts["ALAND10"].to_numpy() / 1e6

    ruca1 = np.select([urban > 0.55, urban > 0.38, urban > 0.22, urban > 0.1], [1, 2, 4, 5], 7)
    ruca1 = np.where((ruca1 == 7) & (rng.random(n) < 0.4), 10, ruca1)
    ruca2 = ruca1.astype(float) + np.where(rng.random(n) < 0.15, 0.1, 0.0)
    rurality = np.where(
        np.isin(ruca2, [1.0, 1.1]), "Urban", np.where(np.isin(ruca2, [2.0, 2.1, 4.0, 4.1]), "Suburban", "Rural")
    )

    # two hospitals: one in the core, one in a market town at the edge
    hx = np.array([core_x, cx[int(np.argmin(np.abs(urban - 0.25)))]])
    hy = np.array([core_y, cy[int(np.argmin(np.abs(urban - 0.25)))]])
    miles = np.hypot(
        (cx[:, None] - hx[None, :]) * 69.17 * np.cos(np.radians(42.3)), (cy[:, None] - hy[None, :]) * 69.0
    ).min(axis=1)
    drive_min = miles * (2.2 - 0.8 * urban) + 2
    pcp = rng.poisson(0.4 + 7 * urban**2 + 4 * (miles < 2))

    th1 = _rank01(pov / pov.std() + unemp / unemp.std() - pci / pci.std() + rng.normal(0, 0.3, n))
    th2 = _rank01(0.6 * dep + rng.normal(0, 0.8, n))
    th3 = _rank01(0.7 * dep + 0.6 * urban + rng.normal(0, 0.6, n))
    th4 = _rank01(rental / rental.std() + vacant / vacant.std() + rng.normal(0, 0.5, n))
    svis = _rank01(th1 + th2 + th3 + th4)
    # like real SVI files, a tract or two without population has no ranks
    no_svi = np.zeros(n, dtype=bool)
    no_svi[rng.choice(n, 2, replace=False)] = True

    geoid = tracts["GEOID10"].to_numpy()
    total = np.round(units * (1 - vacant / 100)).astype(np.int64)
    no_int = np.round(total * noint / 100).astype(np.int64)
    sub = np.round((total - no_int) * 0.93).astype(np.int64)
    return pl.DataFrame(
        {
            "GEOID": geoid,
            "povP": np.round(pov, 2),
            "unempP": np.round(unemp, 1),
            "pciE": np.round(pci).astype(np.int64),
            "total": total,
            "IntSub": sub,
            "IntNoSub": total - no_int - sub,
            "noInt": no_int,
            "NoIntPct": np.round(noint, 2),
            "totUnits": units.astype(np.int64),
            "vacantP": np.round(vacant, 2),
            "rentalP": np.round(rental, 2),
            "unitDens": np.round(units / np.maximum(aland_km2 / 2.59, 1e-6), 4),
            "RUCA1": ruca1.astype(np.int64),
            "RUCA2": ruca2,
            "rurality": rurality,
            "minDisHosp": np.round(miles, 2),
            "timeDrive": np.round(drive_min, 2),
            "countDrive": np.clip(np.round(7 - miles / 4), 0, 7).astype(np.int64),
            "pcp_total": pcp.astype(np.int64),
            "sp_total": rng.poisson(0.2 + 10 * urban**3).astype(np.int64),
            "SVIth1": np.where(no_svi, np.nan, th1),
            "SVIth2": np.where(no_svi, np.nan, th2),
            "SVIth3": np.where(no_svi, np.nan, th3),
            "SVIth4": np.where(no_svi, np.nan, th4),
            "SVIS": np.where(no_svi, np.nan, svis),
        }
    ).with_columns(pl.col(c).fill_nan(None) for c in ("SVIth1", "SVIth2", "SVIth3", "SVIth4", "SVIS"))


# -- writing the sources --------------------------------------------------------------


def write_geography_sources(geo: DemoGeography, out: Path) -> dict[str, Path]:
    """Write the geography as Census-format source files under ``out``.

    Returns a mapping ``{"tracts", "block_groups", "address_ranges", "zip_centroids",
    "indicators"}`` to paths (``indicators`` is the folder of OEPS-shaped CSVs).
    """
    out = ensure_private_dir(out)
    # TIGER/Line 2020 field names (GEOID, TRACTCE, ALAND, ...), as the 2020 files carry them
    def tiger2020(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        return frame.rename(columns={c: c[:-2] for c in frame.columns if c.endswith("10")})

    tiger_tracts = tiger2020(geo.tracts.drop(columns=["tract_zip", "urbanicity"]))
    addrfeat = geo.streets.drop(columns=["tract_index", "_lfrom", "_lto", "_rfrom", "_rto"])
    paths = {
        "tracts": _write_shapefile_zip(tiger_tracts, out / TRACT_ZIP),
        "block_groups": _write_shapefile_zip(tiger2020(geo.block_groups), out / BLOCK_GROUP_ZIP),
        "address_ranges": _write_shapefile_zip(addrfeat, out / ADDRFEAT_ZIP),
        "zip_centroids": _write_gazetteer(geo.zips, out / ZCTA_GAZETTEER),
    }
    paths["indicators"] = _write_oeps(geo.indicators, ensure_private_dir(out / "oeps"))
    crosswalk = geo.indicators.select(
        pl.col("GEOID").alias("from_geoid"), pl.col("GEOID").alias("to_geoid"), pl.lit(1.0).alias("weight")
    )
    with atomic_open(out / CROSSWALK_FILE, "w", encoding="utf-8", newline="") as fh:
        crosswalk.write_csv(fh)
    paths["crosswalk"] = out / CROSSWALK_FILE
    return paths


def _write_shapefile_zip(frame: gpd.GeoDataFrame, target: Path) -> Path:
    """A TIGER/Line-style shapefile zip, with fixed timestamps so bytes are reproducible."""
    stem = target.name.removesuffix(".zip")
    with tempfile.TemporaryDirectory(prefix=".synth-", dir=target.parent) as tmp:
        shp = Path(tmp) / f"{stem}.shp"
        frame.to_file(shp, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
        dbf = shp.with_suffix(".dbf")
        with open(dbf, "r+b") as fh:  # DBF header bytes 1-3: date of last update
            fh.seek(1)
            d = _FIXED_DATE
            fh.write(bytes([d.year - 1900, d.month, d.day]))
        with atomic_path(target) as tmp_zip, zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
            for member in sorted(Path(tmp).iterdir()):
                info = zipfile.ZipInfo(member.name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                zf.writestr(info, member.read_bytes())
    return target


def _write_gazetteer(zips: pl.DataFrame, target: Path) -> Path:
    """A ZCTA gazetteer file (tab-separated, as the Census Bureau publishes it)."""
    lines = ["GEOID\tALAND\tAWATER\tALAND_SQMI\tAWATER_SQMI\tINTPTLAT\tINTPTLONG"]
    for z in zips.iter_rows(named=True):  # one line per ZIP: a handful of rows
        sqmi = z["aland"] / 2_589_988.11
        lines.append(
            f"{z['zip5']}\t{z['aland']}\t0\t{sqmi:.3f}\t0.000\t{z['lat']:.6f}\t{z['lon']:.6f}"
        )
    with atomic_open(target, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")
    return target


def _write_oeps(ind: pl.DataFrame, folder: Path) -> Path:
    """The indicators split into the OEPS v1 tract files, same names, columns and quirks."""
    g = pl.col("GEOID")
    gg = pl.concat_str(pl.lit("G"), g).alias("G_GEOID")

    def write(name: str, frame: pl.DataFrame, *, quote: bool = False) -> None:
        with atomic_open(folder / name, "w", encoding="utf-8", newline="") as fh:
            frame.write_csv(fh, null_value="NA", quote_style="non_numeric" if quote else "necessary")

    # CDC/ATSDR SVI 2022 tract file layout: 11-digit FIPS, RPL_THEME1..4, RPL_THEMES, -999
    # where a tract has no ranks (no population)
    svi = ind.select(
        pl.lit(STATE_FIPS).alias("ST"),
        pl.lit("Massachusetts").alias("STATE"),
        pl.lit(STATE).alias("ST_ABBR"),
        g.str.slice(0, 5).alias("STCNTY"),
        g.alias("FIPS"),
        *(pl.col(src).round(4).fill_null(-999).alias(dst) for src, dst in (
            ("SVIth1", "RPL_THEME1"), ("SVIth2", "RPL_THEME2"), ("SVIth3", "RPL_THEME3"),
            ("SVIth4", "RPL_THEME4"), ("SVIS", "RPL_THEMES"))),
    )
    write(SVI_FILE, svi)
    # an ACS 2018-2022 5-year pull as the Census Data API returns it (state, county, tract and
    # the estimate variables), counts derived from the synthetic shares
    pop = (pl.col("total") * 2.4).round().cast(pl.Int64)
    labour = (pop * 0.62).round().cast(pl.Int64)
    acs = ind.select(
        pl.lit(STATE_FIPS).alias("state"),
        g.str.slice(2, 3).alias("county"),
        g.str.slice(5, 6).alias("tract"),
        pl.lit(2022).alias("year"),
        pop.alias("B17001_001E"),
        (pop * pl.col("povP") / 100).round().cast(pl.Int64).alias("B17001_002E"),
        labour.alias("B23025_003E"),
        (labour * pl.col("unempP") / 100).round().cast(pl.Int64).alias("B23025_005E"),
        (pl.col("pciE") * 2.4).round().cast(pl.Int64).alias("B19013_001E"),
        pl.col("total").alias("B28002_001E"),
        pl.col("IntSub").alias("B28002_004E"),
        pl.col("noInt").alias("B28002_013E"),
    )
    write(ACS_FILE, acs)
    be01 = ind.select(
        g.str.strip_chars_start("0").alias("GEOID"),  # this OEPS file drops leading zeros
        "totUnits",
        (100 - pl.col("vacantP")).round(2).alias("occP"),
        "vacantP",
        pl.lit(0.0).alias("mobileP"),
        (pl.col("vacantP") * 2.1 + 18).round(2).alias("lngTermP"),
        "rentalP",
        "unitDens",
    )
    write("BE01_T.csv", be01)
    write("BE02_RUCA_T.csv", ind.select(gg, g, "RUCA1", "RUCA2", "rurality"))
    write("Access03_T.csv", ind.select(gg, g, "minDisHosp", "timeDrive", "countDrive"))
    health = ind.select(
        pl.int_range(1, pl.len() + 1).cast(pl.String).alias(""),
        pl.concat_str(pl.lit(STATE_FIPS), g).alias("geoid"),
        pl.lit(STATE_FIPS).alias("state"),
        g.str.slice(0, 5).alias("county"),
        g.str.slice(5, 6).alias("tract"),
        "pcp_total",
        "sp_total",
    )
    write("Health03_T.csv", health, quote=True)
    return folder
