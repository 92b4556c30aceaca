"""A tiny synthetic world in the Census Bureau's file formats, for reference and geocode tests.

Two tracts side by side (boundary at lon -71.05), one block group each, and streets:

- ``Main St`` runs east along lat 42.32 in two segments (TLID 1001 west, 1002 east),
  left side odd (1-99, 101-199), right side even (2-98, 100-198), ZIP 02119;
- ``Elm Ave`` runs north ALONG the tract boundary (TLID 2001): left (west, tract 1) odd 1-49,
  right (east, tract 2) even 2-50, ZIP 02119;
- ``Oak Rd`` (TLID 3001) runs east along lat 42.34 with a BACKWARDS left range 99 -> 1
  (odd) and right 98 -> 2 (even), ZIP 02120;
- ``N Pine St`` and ``S Pine St`` (TLIDs 4001, 4002), ZIP 02120, ranges 1-99 both.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
from shapely.geometry import LineString, box

STATE = "25"
COUNTY = "025"
TRACT_W = "25025000100"
TRACT_E = "25025000200"


@dataclass(frozen=True)
class TinyWorld:
    """Paths of the source files."""

    tracts: Path
    block_groups: Path
    addrfeat: Path
    gazetteer: Path


def zip_shapefile(frame: gpd.GeoDataFrame, folder: Path, stem: str) -> Path:
    """Write ``frame`` as ``stem.shp`` (+ sidecars) and zip them like the Census Bureau does."""
    work = folder / f"_{stem}"
    work.mkdir(parents=True, exist_ok=True)
    frame.to_file(work / f"{stem}.shp", engine="pyogrio")
    out = folder / f"{stem}.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(work.iterdir()):
            zf.write(part, part.name)
    return out


def tract_frame(year: int = 2020) -> gpd.GeoDataFrame:
    """The two tracts with TIGER/Line field names of ``year``'s release."""
    sfx = "10" if year == 2010 else ""
    return gpd.GeoDataFrame(
        {
            f"STATEFP{sfx}": [STATE, STATE],
            f"COUNTYFP{sfx}": [COUNTY, COUNTY],
            f"TRACTCE{sfx}": ["000100", "000200"],
            f"GEOID{sfx}": [TRACT_W, TRACT_E],
            f"NAME{sfx}": ["1", "2"],
            f"ALAND{sfx}": [1000, 1000],
            f"INTPTLAT{sfx}": ["+42.3250000", "+42.3250000"],
            f"INTPTLON{sfx}": ["-071.0750000", "-071.0250000"],
        },
        geometry=[box(-71.10, 42.30, -71.05, 42.35), box(-71.05, 42.30, -71.00, 42.35)],
        crs="EPSG:4269",
    )


def addrfeat_frame() -> gpd.GeoDataFrame:
    """ADDRFEAT rows (text house numbers, as TIGER ships them)."""
    rows = [
        # tlid, name, lfrom, lto, rfrom, rto, zipl, zipr, parl, parr, line
        (1001, "Main St", "1", "99", "2", "98", "02119", "02119", "O", "E",
         LineString([(-71.09, 42.32), (-71.05, 42.32)])),
        (1002, "Main St", "101", "199", "100", "198", "02119", "02119", "O", "E",
         LineString([(-71.05, 42.32), (-71.01, 42.32)])),
        (2001, "Elm Ave", "1", "49", "2", "50", "02119", "02119", "O", "E",
         LineString([(-71.05, 42.30), (-71.05, 42.34)])),
        (3001, "Oak Rd", "99", "1", "98", "2", "02120", "02120", "O", "E",
         LineString([(-71.08, 42.34), (-71.02, 42.34)])),
        (4001, "N Pine St", "1", "99", None, None, "02120", None, "O", None,
         LineString([(-71.07, 42.31), (-71.07, 42.33)])),
        (4002, "S Pine St", "1", "99", None, None, "02120", None, "O", None,
         LineString([(-71.03, 42.31), (-71.03, 42.33)])),
    ]
    cols = ["TLID", "FULLNAME", "LFROMHN", "LTOHN", "RFROMHN", "RTOHN", "ZIPL", "ZIPR",
            "PARITYL", "PARITYR"]
    return gpd.GeoDataFrame(
        [dict(zip(cols, r[:-1], strict=True)) for r in rows],
        geometry=[r[-1] for r in rows],
        crs="EPSG:4269",
    )


def build_tiny_world(folder: Path, year: int = 2020) -> TinyWorld:
    """Write the world's source files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sfx = "10" if year == 2010 else ""
    tname = f"tl_{year}_{STATE}_tract{sfx}"
    tracts = zip_shapefile(tract_frame(year), folder, tname)
    bg = tract_frame(year)
    bg[f"GEOID{sfx}"] = [TRACT_W + "1", TRACT_E + "1"]
    bg[f"BLKGRPCE{sfx}"] = ["1", "1"]
    block_groups = zip_shapefile(bg, folder, f"tl_{year}_{STATE}_bg{sfx}")
    addrfeat = zip_shapefile(addrfeat_frame(), folder, f"tl_{year}_{STATE}{COUNTY}_addrfeat")
    gazetteer = folder / f"{year}_Gaz_zcta_national.txt"
    gazetteer.write_text(
        "GEOID\tALAND\tAWATER\tALAND_SQMI\tAWATER_SQMI\tINTPTLAT\tINTPTLONG                    \n"
        "02119\t5000000\t0\t1.9\t0\t42.324\t-71.085                    \n"
        "02120\t3000000\t0\t1.1\t0\t42.332\t-71.096                    \n"
    )
    return TinyWorld(tracts, block_groups, addrfeat, gazetteer)
