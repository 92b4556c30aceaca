"""Build a reference pack from local files in the Census Bureau's own formats.

:func:`build_pack` reads TIGER/Line tract (and block-group, ADDRFEAT) shapefiles, a ZCTA
gazetteer and indicator files, writes the pack tables (GeoParquet in EPSG:4269), and
records every file's source, vintage, geography, row count and SHA-256 in
``manifest.json``. The manifest is written last, so a failed build never leaves a pack
that looks complete.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import polars as pl

from segment.errors import ReferenceDataError
from segment.log import get_logger
from segment.reference import tiger
from segment.reference.crosswalk import rekey_mixed
from segment.reference.indicators import tract_vintage_of
from segment.reference.loading import IndicatorTables, load_indicator_sources
from segment.reference.pack import (
    ADDRESS_RANGES,
    BLOCK_GROUP_INDICATORS,
    BLOCK_GROUPS,
    COUNTY_INDICATORS,
    INDICATORS,
    MANIFEST,
    TABLES,
    TRACTS,
    ZIP_CENTROIDS,
    FileEntry,
    Manifest,
    sha256_file,
)
from segment.reference.publishers import Level
from segment.workdir import atomic_path, ensure_private_dir, write_json

PathsArg = Path | str | Sequence[Path | str]
log = get_logger("reference")

#: below this share of indicator tracts found among the pack's tracts, the indicators are
#: taken to be keyed to the other tract vintage
VINTAGE_MATCH_MIN = 0.9


def _paths(value: PathsArg | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


def _write_geo(frame: gpd.GeoDataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd", schema_version="1.0.0")


def _write_plain(frame: pl.DataFrame, target: Path) -> None:
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp, compression="zstd")


def _entry(target: Path, sources: list[Path], vintage: object, geography: str, rows: int,
           **extra: Any) -> FileEntry:
    src_sums = {p.name: sha256_file(p) for p in sources if p.is_file()}
    return FileEntry(
        source=[p.name for p in sources],
        vintage=str(vintage),
        geography=geography,
        rows=rows,
        sha256=sha256_file(target),
        extra={"source_sha256": src_sums, **extra},
    )


@dataclass(frozen=True)
class _Tracts:
    """The pack's tracts as read: the frame, their boundary vintage and their states."""

    frame: gpd.GeoDataFrame
    vintage: int
    states: list[str]


def _write_tracts(out: Path, tracts: PathsArg, vintage: int | None, years: dict[str, object]
                  ) -> tuple[_Tracts, FileEntry]:
    tract_files = tiger.expand_sources(tracts)
    tract_frame, tract_vintage = tiger.read_tracts(tract_files, vintage)
    if tract_frame.empty:
        raise ReferenceDataError("the tract files hold no tracts", path=tract_files[0])
    states = sorted(tract_frame["state_fips"].unique().tolist())
    log.info("read tracts", tracts=len(tract_frame), states=len(states), vintage=tract_vintage)
    _write_geo(tract_frame, out / TRACTS)
    entry = _entry(out / TRACTS, tract_files, years.get("tracts", tract_vintage), "tract",
                   len(tract_frame), tract_vintage=tract_vintage)
    return _Tracts(tract_frame, tract_vintage, states), entry


def _write_block_groups(out: Path, block_groups: PathsArg | None, tracts: _Tracts,
                        years: dict[str, object]) -> FileEntry | None:
    bg_files = tiger.expand_sources(block_groups) if block_groups is not None else []
    if not bg_files:
        return None
    bgs, bg_vintage = tiger.read_block_groups(bg_files, tracts.vintage)
    if bg_vintage != tracts.vintage:  # pragma: no cover - read_block_groups refuses first
        raise ReferenceDataError("block groups and tracts have different vintages")
    orphans = int((~bgs["tract_geoid"].isin(tracts.frame["tract_geoid"])).sum())
    if orphans:
        log.warning("block groups whose tract is not in the pack", block_groups=orphans)
    _write_geo(bgs, out / BLOCK_GROUPS)
    log.info("read block groups", block_groups=len(bgs))
    return _entry(out / BLOCK_GROUPS, bg_files, years.get("block_groups", bg_vintage), "block group", len(bgs))


def _write_address_ranges(out: Path, address_ranges: PathsArg | None, years: dict[str, object]) -> FileEntry | None:
    ar_files = tiger.expand_sources(address_ranges) if address_ranges is not None else []
    if not ar_files:
        return None
    ranges = tiger.read_address_ranges(ar_files)
    _write_geo(ranges, out / ADDRESS_RANGES)
    ar_year = years.get("address_ranges") or _common_year(ar_files) or ""
    log.info("read address ranges", segments=len(ranges), files=len(ar_files))
    return _entry(out / ADDRESS_RANGES, ar_files, ar_year, "street segment side", len(ranges))


def _write_zip_centroids(out: Path, zip_centroids: PathsArg | None, years: dict[str, object]) -> FileEntry | None:
    zc_files = _paths(zip_centroids)
    if not zc_files:
        return None
    zips = tiger.read_zip_centroids(zc_files)
    _write_plain(zips, out / ZIP_CENTROIDS)
    log.info("read ZIP centroids", zips=zips.height)
    return _entry(out / ZIP_CENTROIDS, zc_files, years.get("zip_centroids", ""), "ZCTA", zips.height)


@dataclass(frozen=True)
class _IndicatorOptions:
    """How indicator files are read and fitted to the pack's tracts."""

    keep_columns: dict[str, str] | None = None
    indicator_years: dict[str, int] | None = None
    indicator_vintage: int | None = None
    crosswalk: Path | None = None


def _write_tract_indicators(out: Path, tables: IndicatorTables, ind_files: list[Path], tracts: _Tracts,
                            options: _IndicatorOptions, years: dict[str, object]
                            ) -> tuple[FileEntry, list[dict[str, Any]]]:
    tract_entries = [e for e in tables.entries if e.get("level", "tract") == "tract"]
    frame, columns = _indicators(tables.frames[Level.TRACT], tract_entries, ind_files, tracts.frame,
                                 tracts.vintage, options.indicator_vintage, options.crosswalk, tracts.states)
    _write_plain(frame, out / INDICATORS)
    cw_extra = {"crosswalk": options.crosswalk.name} if options.crosswalk else {}
    ind_vintage = years.get("indicators") or "; ".join(
        sorted({str(c.get("vintage")) for c in columns if c.get("vintage")}))
    entry = _entry(out / INDICATORS, _sources_of(tables, Level.TRACT), ind_vintage, "tract", frame.height,
                   tract_vintage=tracts.vintage, **cw_extra)
    return entry, columns


def _write_level_indicators(out: Path, tables: IndicatorTables, level: Level, table: str, tracts: _Tracts,
                            columns: list[dict[str, Any]]) -> tuple[FileEntry, list[dict[str, Any]]]:
    """Block-group or county indicators: the table's entry and its data-dictionary columns."""
    level_entries = [e for e in tables.entries if e.get("level") == level.value]
    if level is Level.COUNTY:
        alone = [e["name"] for e in level_entries if e["name"] not in {c["name"] for c in columns}]
        if alone:  # a fallback only: say which county columns no patient will get
            log.warning("county indicators without a tract column of the same name are "
                        "not joined (county values serve ZIP-centroid patients only)", columns=len(alone))
    frame = _other_level(tables.frames[level], level, level_entries, tracts.vintage, tracts.states,
                         _sources_of(tables, level))
    _write_plain(frame, out / table)
    entry = _entry(out / table, _sources_of(tables, level),
                   "; ".join(sorted({str(e.get("vintage")) for e in level_entries})), level.value, frame.height)
    return entry, [{**e, "tract_vintage": tracts.vintage} for e in level_entries]


def _write_indicators(out: Path, ind_files: list[Path], tracts: _Tracts, options: _IndicatorOptions,
                      years: dict[str, object]
                      ) -> tuple[dict[str, FileEntry], list[dict[str, Any]], list[dict[str, Any]]]:
    """The indicator tables of every level: (file entries, data-dictionary columns, per-file reports)."""
    if not ind_files:
        return {}, [], []
    tables = _load_indicators(ind_files, options.keep_columns, options.indicator_years)
    reports = tables.reports()
    for r in reports:
        if r["ignored"]:
            log.warning(f"{r['file']}: {len(r['ignored'])} columns ignored (not mapped or "
                        "kept; listed in the manifest's indicator_inputs)",
                        file=r["file"], columns=len(r["ignored"]))
    files: dict[str, FileEntry] = {}
    columns: list[dict[str, Any]] = []
    if Level.TRACT in tables.frames:
        files[INDICATORS], columns = _write_tract_indicators(out, tables, ind_files, tracts, options, years)
    for level, table in ((Level.BLOCK_GROUP, BLOCK_GROUP_INDICATORS), (Level.COUNTY, COUNTY_INDICATORS)):
        if level in tables.frames:
            files[table], level_columns = _write_level_indicators(out, tables, level, table, tracts, columns)
            columns += level_columns
    return files, columns, reports


def build_pack(
    reference_dir: str | Path,
    *,
    tracts: PathsArg,
    block_groups: PathsArg | None = None,
    address_ranges: PathsArg | None = None,
    zip_centroids: PathsArg | None = None,
    indicators: PathsArg | None = None,
    name: str,
    synthetic: bool = False,
    vintage: int | None = None,
    indicator_vintage: int | None = None,
    crosswalk: Path | str | None = None,
    source_years: dict[str, object] | None = None,
    extra: dict[str, Any] | None = None,
    keep_columns: dict[str, str] | None = None,
    indicator_years: dict[str, int] | None = None,
) -> Manifest:
    """Build a reference pack in the folder ``reference_dir`` and return its manifest.

    ``tracts`` (required), ``block_groups`` and ``address_ranges`` are TIGER/Line zips,
    ``.shp`` files or folders of them; ``zip_centroids`` is a ZCTA gazetteer (or CSV /
    shapefile); ``indicators`` are indicator files that
    ``segment.reference.loading.load_indicator_files`` recognizes. ``vintage`` forces
    the tract vintage (2010/2020) when the file names and fields do not tell it.
    Indicators keyed to the other tract vintage are refused unless ``crosswalk`` (a
    Census tract relationship file) is given. ``source_years`` overrides the vintage
    recorded per table (e.g. ``{"address_ranges": 2019}``). ``keep_columns`` passes raw
    indicator columns through under declared names (``{"E_NOINT": "svi_no_internet_count"}``);
    ``indicator_years`` gives a file's publication year when its name does not. What became of
    every indicator column (mapped, kept, ignored) is in the manifest's ``indicator_inputs``.
    """
    out = ensure_private_dir(reference_dir)
    years = dict(source_years or {})
    pack_tracts, tract_entry = _write_tracts(out, tracts, vintage, years)
    files: dict[str, FileEntry] = {TRACTS: tract_entry}
    for table, entry in ((BLOCK_GROUPS, _write_block_groups(out, block_groups, pack_tracts, years)),
                         (ADDRESS_RANGES, _write_address_ranges(out, address_ranges, years)),
                         (ZIP_CENTROIDS, _write_zip_centroids(out, zip_centroids, years))):
        if entry is not None:
            files[table] = entry
    options = _IndicatorOptions(keep_columns, indicator_years, indicator_vintage,
                                Path(crosswalk) if crosswalk else None)
    indicator_files, columns, reports = _write_indicators(out, _paths(indicators), pack_tracts, options, years)
    files.update(indicator_files)
    for stale in TABLES:  # a rebuild without an optional input must not keep the old table
        if stale not in files and (out / stale).exists():
            os.remove(out / stale)
    manifest = Manifest(
        name=name,
        synthetic=synthetic,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tract_vintage=pack_tracts.vintage,
        states=pack_tracts.states,
        files=files,
        columns=columns,
        extra={**dict(extra or {}), **({"indicator_inputs": reports} if reports else {})},
    )
    write_json(out / MANIFEST, manifest.to_dict())
    log.info("pack built", files=len(files), tracts=len(pack_tracts.frame))
    return manifest


def _common_year(paths: list[Path]) -> int | None:
    years = {tiger.file_year(p) for p in paths}
    return years.pop() if len(years) == 1 else None


def _load_indicators(paths: list[Path], keep: dict[str, str] | None,
                     years: dict[str, int] | None) -> IndicatorTables:
    for p in paths:
        if not p.exists():
            raise ReferenceDataError("file not found", path=p)
    return load_indicator_sources(paths, keep=keep, years=years)


def _sources_of(tables: IndicatorTables, level: Level) -> list[Path]:
    return [f.path for f in tables.files if f.level is level]


def _other_level(frame: pl.DataFrame, level: Level, entries: list[dict[str, Any]],
                 tract_vintage: int, states: list[str], paths: list[Path]) -> pl.DataFrame:
    """Block-group or county indicators: refuse another boundary vintage, keep the pack's states."""
    declared = {v for e in entries if (v := tract_vintage_of(str(e.get("geography", ""))))}
    if level is Level.BLOCK_GROUP and declared and declared != {tract_vintage}:
        raise ReferenceDataError(
            f"block-group indicators are keyed to {sorted(declared)[0]} block groups but the "
            f"pack's tracts are {tract_vintage}; block groups cannot be re-keyed through the "
            "tract crosswalk: use an edition on the pack's boundaries", path=paths[0])
    kept = frame.filter(pl.col(level.key).str.slice(0, 2).is_in(states))
    if kept.height == 0:
        raise ReferenceDataError(f"{level.value.replace('_', ' ')} indicator files hold no area "
                                 "of the pack's states", path=paths[0])
    return kept.sort(level.key)


def _indicators(
    frame: pl.DataFrame,
    entries: list[dict[str, Any]],
    paths: list[Path],
    tracts: gpd.GeoDataFrame,
    tract_vintage: int,
    indicator_vintage: int | None,
    crosswalk: Path | None,
    states: list[str],
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Fit tract indicators (already read) to the pack's tracts."""
    if indicator_vintage is None:
        declared = {v for e in entries if (v := tract_vintage_of(str(e.get("geography", ""))))}
        if len(declared) > 1 and crosswalk is None:
            raise ReferenceDataError(
                "indicator files mix 2010 and 2020 tract boundaries "
                f"({_vintage_detail(entries)}); build them separately or give a tract "
                "crosswalk (Census tract relationship file) to re-key the other vintage"
            )
        indicator_vintage = declared.pop() if len(declared) == 1 else None
    if "tract_geoid" not in frame.columns:
        raise ReferenceDataError("indicator files gave no tract_geoid column", path=paths[0])
    frame = frame.filter(pl.col("tract_geoid").str.slice(0, 2).is_in(states))
    pack_ids = pl.Series("tract_geoid", tracts["tract_geoid"].to_numpy(), dtype=pl.String)
    if crosswalk is not None:
        frame, entries = rekey_mixed(frame, crosswalk, entries, target_vintage=tract_vintage,
                                     default_vintage=indicator_vintage)
        frame = frame.filter(pl.col("tract_geoid").str.slice(0, 2).is_in(states))
    else:
        matched = frame.filter(pl.col("tract_geoid").is_in(pack_ids.implode())).height
        share = matched / frame.height if frame.height else 1.0
        if indicator_vintage is not None and indicator_vintage != tract_vintage:
            raise ReferenceDataError(
                f"indicators are keyed to {indicator_vintage} tracts but the pack's tracts are "
                f"{tract_vintage}; give a tract crosswalk (Census tract relationship file)"
            )
        if frame.height and share < VINTAGE_MATCH_MIN:
            raise ReferenceDataError(
                f"only {share:.0%} of {frame.height} indicator tracts in the pack's states are "
                f"{tract_vintage} tracts: the indicators look keyed to the other tract vintage; "
                "give a tract crosswalk (Census tract relationship file) to relate them"
            )
    if frame.height == 0:
        raise ReferenceDataError("indicator files hold no tract of the pack's states", path=paths[0])
    stamped = [{**e, "tract_vintage": tract_vintage} for e in entries]
    return frame.sort("tract_geoid"), stamped


def _vintage_detail(entries: list[dict[str, Any]]) -> str:
    by: dict[int, set[str]] = {}
    for e in entries:
        v = tract_vintage_of(str(e.get("geography", "")))
        if v:
            by.setdefault(v, set()).add(str(e.get("vintage", e.get("name"))))
    return "; ".join(f"{v}: {', '.join(sorted(names))}" for v, names in sorted(by.items()))
