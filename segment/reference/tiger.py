"""Readers for the Census Bureau's own file formats: TIGER/Line shapefiles and the ZCTA gazetteer.

Every reader accepts a TIGER/Line zip as the Census Bureau ships it, an unpacked ``.shp``,
or a folder holding several of them, and returns a GeoDataFrame with the pack's column
names (``docs/contracts.md``). Codes are read as text so leading zeros survive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import pandas as pd
import polars as pl
import pyogrio

from segment.errors import ReferenceDataError

PACK_CRS = "EPSG:4269"

_YEAR_IN_NAME = re.compile(r"tl_(\d{4})_")


def expand_sources(paths: Path | str | Sequence[Path | str]) -> list[Path]:
    """Turn one path, several paths or folders into the list of shapefile/zip files to read."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            inner = sorted([*p.glob("*.zip"), *p.glob("*.shp")])
            if not inner:
                raise ReferenceDataError("folder holds no .zip or .shp file", path=p)
            found.extend(inner)
        elif p.exists():
            found.append(p)
        else:
            raise ReferenceDataError("file not found", path=p)
    return found


def _fields(path: Path) -> list[str]:
    try:
        info = pyogrio.read_info(path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise ReferenceDataError(
            f"cannot read as a shapefile ({type(exc).__name__})", path=path
        ) from exc
    return [str(f) for f in info["fields"]]


def _pick(fields: list[str], *names: str) -> str | None:
    upper = {f.upper(): f for f in fields}
    for name in names:
        if name in upper:
            return upper[name]
    return None


def _require(path: Path, fields: list[str], *names: str) -> str:
    found = _pick(fields, *names)
    if found is None:
        raise ReferenceDataError(
            f"missing field {' or '.join(names)}; fields found: {', '.join(fields)}", path=path
        )
    return found


def _read(path: Path, columns: list[str]) -> gpd.GeoDataFrame:
    try:
        frame = pyogrio.read_dataframe(path, columns=columns)
    except Exception as exc:
        raise ReferenceDataError(f"cannot read shapefile ({type(exc).__name__})", path=path) from exc
    if frame.crs is None:
        frame = frame.set_crs(PACK_CRS)
    elif frame.crs.to_epsg() != 4269:
        frame = frame.to_crs(PACK_CRS)
    return frame


def file_year(path: Path) -> int | None:
    """The TIGER/Line release year in a file name (``tl_2019_25_tract.zip`` -> 2019)."""
    m = _YEAR_IN_NAME.search(path.name)
    return int(m.group(1)) if m else None


def tract_vintage_of(path: Path, fields: list[str] | None = None) -> int | None:
    """The decennial tract vintage (2010 or 2020) of a tract/block-group file, if knowable.

    Field suffixes decide first (``GEOID10``/``GEOID20``); otherwise the release year in the
    file name: releases 2010-2019 carry 2010 tracts, 2020-2029 carry 2020 tracts.
    """
    fields = fields if fields is not None else _fields(path)
    upper = {f.upper() for f in fields}
    if "GEOID10" in upper:
        return 2010
    if "GEOID20" in upper:
        return 2020
    year = file_year(path)
    if year is None:
        return None
    return 2010 if 2010 <= year < 2020 else 2020 if 2020 <= year < 2030 else None


def _vintage(paths: list[Path], vintage: int | None, what: str) -> tuple[int, list[list[str]]]:
    all_fields = [_fields(p) for p in paths]
    seen = {p.name: tract_vintage_of(p, f) for p, f in zip(paths, all_fields, strict=True)}
    known = {v for v in seen.values() if v is not None}
    if len(known) > 1:
        detail = ", ".join(f"{name}={v}" for name, v in sorted(seen.items()))
        raise ReferenceDataError(
            f"{what} files mix 2010 and 2020 tract vintages ({detail}); build one pack per vintage"
        )
    if vintage is not None and known and vintage not in known:
        raise ReferenceDataError(
            f"{what} files are {known.pop()} tracts but vintage {vintage} was requested"
        )
    if vintage is None:
        if not known:
            raise ReferenceDataError(
                f"cannot tell the tract vintage of the {what} files from their fields or names; "
                "give the vintage (2010 or 2020) explicitly"
            )
        vintage = known.pop()
    if vintage not in (2010, 2020):
        raise ReferenceDataError(f"tract vintage must be 2010 or 2020, found {vintage}")
    return vintage, all_fields


def _read_geographies(paths: Path | str | Sequence[Path | str], vintage: int | None, what: str,
                      width: int, name: str) -> tuple[gpd.GeoDataFrame, int]:
    """One TIGER/Line layer (tracts or block groups): ``name`` (``width``-digit GEOID), geometry."""
    files = expand_sources(paths)
    vintage, all_fields = _vintage(files, vintage, what)
    parts = []
    for path, fields in zip(files, all_fields, strict=True):
        geoid = _require(path, fields, "GEOID10", "GEOID20", "GEOID")
        frame = _read(path, [geoid])
        parts.append(_with_geoid(frame, geoid, width, path, name))
    return _concat(parts, name), vintage


def read_tracts(
    paths: Path | str | Sequence[Path | str], vintage: int | None = None
) -> tuple[gpd.GeoDataFrame, int]:
    """Read TIGER/Line tract shapefiles: ``tract_geoid``, ``state_fips``, ``county_fips``, geometry.

    Returns the frame and its tract vintage (2010 or 2020). Duplicated tracts across files
    (the same state given twice) are an error.
    """
    tracts, vintage = _read_geographies(paths, vintage, "tract", 11, "tract_geoid")
    tracts["state_fips"] = tracts["tract_geoid"].str[:2]
    tracts["county_fips"] = tracts["tract_geoid"].str[:5]
    return tracts[["tract_geoid", "state_fips", "county_fips", "geometry"]], vintage


def read_block_groups(
    paths: Path | str | Sequence[Path | str], vintage: int | None = None
) -> tuple[gpd.GeoDataFrame, int]:
    """Read TIGER/Line block-group shapefiles: ``block_group_geoid``, ``tract_geoid``, geometry."""
    bgs, vintage = _read_geographies(paths, vintage, "block-group", 12, "block_group_geoid")
    bgs["tract_geoid"] = bgs["block_group_geoid"].str[:11]
    return bgs[["block_group_geoid", "tract_geoid", "geometry"]], vintage


def _with_geoid(frame: gpd.GeoDataFrame, field: str, width: int, path: Path, name: str) -> gpd.GeoDataFrame:
    ids = frame[field].astype("string").str.strip()
    bad = ~ids.str.fullmatch(rf"\d{{{width}}}").fillna(False)
    if bool(bad.any()):
        raise ReferenceDataError(
            f"{int(bad.sum())} rows with a {field} that is not {width} digits", path=path, column=field
        )
    out = gpd.GeoDataFrame({name: ids.astype(object)}, geometry=frame.geometry.values, crs=frame.crs)
    return out


def _concat(parts: list[gpd.GeoDataFrame], key: str) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=PACK_CRS)
    dup = frame[key].duplicated()
    if bool(dup.any()):
        raise ReferenceDataError(
            f"{int(dup.sum())} duplicated {key} values across the input files "
            "(was the same state given twice?)",
            column=key,
        )
    frame = frame[~frame.geometry.isna()].sort_values(key, kind="stable").reset_index(drop=True)
    return frame


ADDRFEAT_FIELDS = (
    "TLID", "FULLNAME", "LFROMHN", "LTOHN", "RFROMHN", "RTOHN", "ZIPL", "ZIPR", "PARITYL", "PARITYR",
)


def read_address_ranges(paths: Path | str | Sequence[Path | str]) -> gpd.GeoDataFrame:
    """Read TIGER/Line ADDRFEAT shapefiles into the pack's ``address_ranges`` columns.

    House numbers stay text here (TIGER ships them as text, sometimes with letters or
    hyphens); the geocoder converts what is numeric. Rows without a name or any range
    are kept out: they cannot match an address.
    """
    files = expand_sources(paths)
    parts = []
    for path in files:
        fields = _fields(path)
        cols = [_require(path, fields, f) for f in ADDRFEAT_FIELDS]
        frame = _read(path, cols)
        frame.columns = [c.lower() if c != frame.geometry.name else c for c in frame.columns]
        parts.append(frame)
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=PACK_CRS)
    frame = frame.rename_geometry("geometry") if frame.geometry.name != "geometry" else frame
    for col in ("fullname", "lfromhn", "ltohn", "rfromhn", "rtohn", "zipl", "zipr", "parityl", "parityr"):
        frame[col] = frame[col].astype("string").str.strip().replace("", pd.NA).astype(object)
    frame["tlid"] = pd.to_numeric(frame["tlid"], errors="coerce").astype("Int64")
    has_range = frame[["lfromhn", "rfromhn"]].notna().any(axis=1)
    frame = frame[frame["fullname"].notna() & has_range & frame["tlid"].notna() & ~frame.geometry.isna()]
    geom_types = set(frame.geometry.geom_type.unique())
    if "MultiLineString" in geom_types:
        frame = frame.explode(index_parts=False)
    frame = frame.sort_values(["tlid", "fullname"], kind="stable").reset_index(drop=True)
    cols = [c.lower() for c in ADDRFEAT_FIELDS]
    return gpd.GeoDataFrame(frame[[*cols, "geometry"]], geometry="geometry", crs=PACK_CRS)


_ZIP_ALIASES = {
    "zip5": ("GEOID", "ZCTA5CE10", "ZCTA5CE20", "ZCTA5", "ZIP5", "ZIP", "ZCTA"),
    "lat": ("INTPTLAT", "INTPTLAT10", "INTPTLAT20", "LAT", "LATITUDE"),
    "lon": ("INTPTLONG", "INTPTLON", "INTPTLON10", "INTPTLON20", "LON", "LNG", "LONGITUDE"),
    "state": ("STATE", "USPS", "STUSAB"),
    "county_fips": ("COUNTY_FIPS", "COUNTYFP", "COUNTY"),
}


def read_zip_centroids(paths: Path | str | Sequence[Path | str]) -> pl.DataFrame:
    """Read ZIP (ZCTA) centroids: ``zip5``, ``lat``, ``lon``, ``state``, optional ``county_fips``.

    Accepts the Census ZCTA gazetteer file (tab-separated, ``GEOID``, ``INTPTLAT``,
    ``INTPTLONG``; header names may carry trailing spaces), a CSV with the same or plain
    ``zip5,lat,lon`` columns, or a ZCTA shapefile (its internal point is used).
    """
    files = expand_sources(paths) if not isinstance(paths, str | Path) or Path(paths).suffix in (
        "", ".zip", ".shp"
    ) else [Path(paths)]
    frames = []
    for path in files:
        if not path.exists():
            raise ReferenceDataError("file not found", path=path)
        if path.suffix.lower() in (".zip", ".shp"):
            raw = pl.from_pandas(pd.DataFrame(pyogrio.read_dataframe(path, read_geometry=False)))
        else:
            sep = "\t" if "\t" in path.open(encoding="latin-1").readline() else ","
            try:
                raw = pl.read_csv(path, separator=sep, infer_schema=False, encoding="utf8-lossy")
            except Exception as exc:
                raise ReferenceDataError(f"cannot read as CSV ({type(exc).__name__})", path=path) from exc
        raw = raw.rename({c: c.strip() for c in raw.columns})
        upper = {c.upper(): c for c in raw.columns}
        picked: dict[str, str] = {}
        for name, aliases in _ZIP_ALIASES.items():
            for alias in aliases:
                if alias in upper:
                    picked[name] = upper[alias]
                    break
        missing = [n for n in ("zip5", "lat", "lon") if n not in picked]
        if missing:
            raise ReferenceDataError(
                f"ZIP centroid file lacks {', '.join(missing)}; columns found: {', '.join(raw.columns)}",
                path=path,
            )
        exprs = [
            pl.col(picked["zip5"]).cast(pl.String).str.strip_chars().str.zfill(5).alias("zip5"),
            pl.col(picked["lat"]).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("lat"),
            pl.col(picked["lon"]).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("lon"),
            (pl.col(picked["state"]).cast(pl.String).str.strip_chars() if "state" in picked
             else pl.lit(None, pl.String)).alias("state"),
            (pl.col(picked["county_fips"]).cast(pl.String).str.strip_chars().str.zfill(5)
             if "county_fips" in picked else pl.lit(None, pl.String)).alias("county_fips"),
        ]
        frames.append(raw.select(exprs))
    out = pl.concat(frames).filter(
        pl.col("zip5").str.contains(r"^\d{5}$") & pl.col("lat").is_between(-90, 90)
        & pl.col("lon").is_between(-180, 180)
    )
    return out.unique("zip5", keep="first", maintain_order=True).sort("zip5")

