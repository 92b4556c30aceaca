"""Small files in publishers' documented layouts, for the files the reference folder lacks.

Each writer says which real file it stands for. Values are invented but shaped like the
real ones (FIPS widths, missing-value and suppression codes from the data dictionaries).
The 2010->2020 crosswalk is computed from the real 2010 and 2020 TIGER polygons of
Cambridge, MA, and written in the Census Bureau's relationship-file layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd

SDOH = "sdoh2020"
CAMBRIDGE = "cambridge_ma_2020_tiger_subset"
FARA = "food_access_research_atlas_ma/Massachusetts Food Access Data - Sheet1.csv"
SVI_COUNTY = "svi_2018_ma_county/MA_SVI_County.csv"

#: a 2010 Cambridge tract split in two in 2020 (354600 -> 354601 and 354602)
SPLIT_2010 = "25017354600"
SPLIT_2020 = ("25017354601", "25017354602")


def cambridge_tract_ids(reference: Path) -> list[str]:
    """The 33 real 2020 tract GEOIDs of Cambridge."""
    path = reference / SDOH / CAMBRIDGE / "DEMOGRAPHICS_Tracts2020.geojson"
    return sorted(f["properties"]["GEOID20"] for f in json.loads(path.read_text())["features"])


def cambridge_bg_ids(reference: Path) -> list[str]:
    """The 87 real 2020 block-group GEOIDs of Cambridge."""
    path = reference / SDOH / CAMBRIDGE / "DEMOGRAPHICS_BlockGroups2020.geojson"
    return sorted(f["properties"]["GEOID20"] for f in json.loads(path.read_text())["features"])


def write_svi_2022(folder: Path, tract_ids: list[str]) -> Path:
    """Stands for CDC/ATSDR ``SVI_2022_US.csv`` (tract level; data dictionary 2022).

    The first tract is unpopulated: CDC writes -999 in every estimate and rank.
    """
    cols = ["ST", "STATE", "ST_ABBR", "STCNTY", "COUNTY", "FIPS", "LOCATION", "AREA_SQMI",
            "E_TOTPOP", "M_TOTPOP", "E_NOINT", "M_NOINT", "EP_POV150", "MP_POV150", "EP_UNEMP",
            "EP_HBURD", "EP_NOHSDP", "EP_UNINSUR", "EP_AGE65", "EP_AGE17", "EP_DISABL",
            "EP_SNGPNT", "EP_LIMENG", "EP_MINRTY", "EP_MUNIT", "EP_MOBILE", "EP_CROWD",
            "EP_NOVEH", "EP_GROUPQ", "EP_NOINT", "EPL_POV150", "SPL_THEME1", "RPL_THEME1",
            "RPL_THEME2", "RPL_THEME3", "RPL_THEME4", "SPL_THEMES", "RPL_THEMES", "F_TOTAL"]
    lines = [",".join(cols)]
    for i, geoid in enumerate(tract_ids):
        if i == 0:
            vals = ["-999"] * (len(cols) - 8)
            pop = "0"
        else:
            r = round(0.1 + 0.8 * i / len(tract_ids), 4)
            pop = str(3000 + 10 * i)
            vals = [str(120 + i), "35", f"{10 + i / 10:.1f}", "3.1", f"{4 + i / 20:.1f}",
                    "25.0", "5.5", "2.2", "13.0", "16.0", "9.0", "4.4", "3.3", "45.0",
                    "55.0", "0.0", "1.5", "30.0", "8.0", f"{5 + i / 10:.1f}", "0.5", "1.9",
                    str(r), str(r), str(r), str(r), "6.1", str(r), "2"]
        lines.append(",".join(["25", "Massachusetts", "MA", "25017", "Middlesex County",
                               geoid, f'"Census Tract {geoid[5:]}; Middlesex County"',
                               "0.3", pop, "50", *vals]))
    path = folder / "SVI_2022_US.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_adi_2020(folder: Path, bg_ids: list[str]) -> Path:
    """Stands for the Neighborhood Atlas ``MA_2020_ADI_Census Block Group_v3.2.csv``.

    Columns GISJOIN, FIPS, ADI_NATRANK, ADI_STATERNK; the first four block groups carry the
    suppression codes GQ, PH, GQ-PH and QDI instead of ranks.
    """
    codes = ["GQ", "PH", "GQ-PH", "QDI"]
    lines = ['"GISJOIN","FIPS","ADI_NATRANK","ADI_STATERNK"']
    for i, bg in enumerate(bg_ids):
        gisjoin = f"G{bg[:2]}0{bg[2:5]}0{bg[5:]}"
        nat, state = (codes[i], codes[i]) if i < len(codes) else (str(1 + i % 100),
                                                                 str(1 + i % 10))
        lines.append(f'"{gisjoin}",{bg},"{nat}","{state}"')
    path = folder / "MA_2020_ADI_Census Block Group_v3.2.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_census_crosswalk(folder: Path, reference: Path) -> Path:
    """Stands for the Census Bureau's ``tab20_tract20_tract10_natl.txt`` (Cambridge rows).

    Pipe-delimited, the relationship file's 16 columns. AREALAND_PART is the land each
    2010/2020 tract pair shares, measured here on the real TIGER polygons (square metres,
    Massachusetts State Plane), so a split tract's parts carry their real proportions.
    """
    t20 = gpd.read_file(reference / SDOH / CAMBRIDGE / "DEMOGRAPHICS_Tracts2020.geojson")
    t10 = gpd.read_file(reference / "tiger2010" / "tl_2010_25_tract10.zip")
    t10 = t10[t10["COUNTYFP10"] == "017"]
    t20, t10 = t20.to_crs(26986), t10.to_crs(26986)
    parts = gpd.overlay(t20[["GEOID20", "geometry"]], t10[["GEOID10", "geometry"]],
                        how="intersection", keep_geom_type=True)
    parts["part"] = parts.area.round()
    parts = parts[parts["part"] >= 1000]
    area20 = dict(zip(t20["GEOID20"], t20.area.round(), strict=True))
    area10 = dict(zip(t10["GEOID10"], t10.area.round(), strict=True))
    header = ("OID_TRACT_20|GEOID_TRACT_20|NAMELSAD_TRACT_20|AREALAND_TRACT_20|"
              "AREAWATER_TRACT_20|MTFCC_TRACT_20|FUNCSTAT_TRACT_20|OID_TRACT_10|GEOID_TRACT_10|"
              "NAMELSAD_TRACT_10|AREALAND_TRACT_10|AREAWATER_TRACT_10|MTFCC_TRACT_10|"
              "FUNCSTAT_TRACT_10|AREALAND_PART|AREAWATER_PART")
    lines = [header]
    for i, row in enumerate(parts.sort_values(["GEOID20", "GEOID10"]).itertuples()):
        g20, g10 = str(row.GEOID20), str(row.GEOID10)
        lines.append("|".join([
            str(207000 + i), g20, f"Census Tract {int(g20[5:]) / 100:g}", str(int(area20[g20])),
            "0", "G5020", "S", str(208000 + i), g10, f"Census Tract {int(g10[5:]) / 100:g}",
            str(int(area10[g10])), "0", "G5020", "S", str(int(row.part)), "0"]))
    path = folder / "tab20_tract20_tract10_natl.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_nhgis_crosswalk(folder: Path) -> Path:
    """Stands for IPUMS NHGIS ``nhgis_tr2010_tr2020.csv`` (the split tract's rows).

    The weights are illustrative: 58% of 354600's 2010 population in 354601, 42% in 354602.
    """
    path = folder / "nhgis_tr2010_tr2020.csv"
    path.write_text(
        "tr2010gj,tr2010ge,tr2020gj,tr2020ge,wt_pop,wt_adult,wt_fam,wt_hh,wt_hu,wt_ownhu,"
        "wt_renthu,parea\n"
        f"G2501700354600,{SPLIT_2010},G2501700354601,{SPLIT_2020[0]},0.58,0.57,0.6,0.58,0.58,"
        "0.6,0.55,0.51\n"
        f"G2501700354600,{SPLIT_2010},G2501700354602,{SPLIT_2020[1]},0.42,0.43,0.4,0.42,0.42,"
        "0.4,0.45,0.49\n",
        encoding="utf-8")
    return path
