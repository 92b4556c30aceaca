"""Read several indicator files into one table per geography, with every column accounted for.

:func:`load_indicator_sources` reads each file with its publisher's reader
(:func:`segment.reference.indicators.load_one`), passes through the raw columns the user
declared (``--keep-columns RAW=NAME``), and returns one frame per level (tract, block group,
county) plus each file's column report: mapped, kept, or ignored. The pack builder writes
those reports into the manifest and the build output, so no column disappears silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from segment.errors import ReferenceDataError
from segment.reference.indicators import load_one
from segment.reference.publishers import CAUTION, Level, Loaded, geoid_column, year_in_name

#: missing-value codes of every supported publisher, applied to passed-through columns
KEEP_NULLS = ["", "NA", "N/A", "NULL", "NaN", "nan", "-999", "-999.0"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class IndicatorTables:
    """Indicator files read: one frame per level, dictionary entries and per-file reports."""

    frames: dict[Level, pl.DataFrame]
    entries: list[dict[str, Any]]
    files: list[Loaded]

    def reports(self) -> list[dict[str, Any]]:
        """Per-file column reports (mapped / kept / ignored) for the manifest."""
        return [f.report() for f in self.files]


def parse_pairs(values: Sequence[str], *, what: str) -> dict[str, str]:
    """``RAW=NAME`` (or ``RAW``, named in lower case) option values -> ``{RAW: NAME}``."""
    out: dict[str, str] = {}
    for value in values:
        raw, _, name = value.partition("=")
        raw, name = raw.strip(), (name.strip() or raw.strip().lower())
        if not raw:
            raise ReferenceDataError(f"{what}: {value!r} names no column; use RAW=NAME")
        out[raw] = name
    return out


def parse_years(values: Sequence[str]) -> dict[str, int]:
    """``FILE=YEAR`` option values -> ``{file name: year}`` (a path's name is used)."""
    out: dict[str, int] = {}
    for value in values:
        name, _, year = value.rpartition("=")
        if not name or not year.strip().isdigit() or len(year.strip()) != 4:
            raise ReferenceDataError(f"--source-year {value!r}: expected FILE=YEAR, e.g. "
                                     "SVI_US.csv=2022")
        out[Path(name.strip()).name] = int(year.strip())
    return out


def _kept_column(path: Path, loaded: Loaded, raw: str, name: str) -> tuple[pl.DataFrame, str]:
    key_raw = loaded.key_columns[0]
    lf = pl.scan_csv(path, infer_schema=False, null_values=KEEP_NULLS, encoding="utf8-lossy")
    first = lf.collect_schema().names()[0]
    if first.startswith("\ufeff"):
        lf = lf.rename({first: first.lstrip("\ufeff")})
    if loaded.level is Level.TRACT and key_raw == "geoid":  # OEPS Health03_T: state + tract
        key = pl.col(key_raw).str.strip_chars().str.zfill(13).str.slice(2, 11).alias("__k")
    elif loaded.level is Level.TRACT and key_raw in ("state", "GEO_ID"):
        key = (pl.col("GEO_ID").str.slice(-11) if key_raw == "GEO_ID" else
               pl.concat_str(pl.col("state").str.zfill(2), pl.col("county").str.zfill(3),
                             pl.col("tract").str.zfill(6))).alias("__k")
    else:
        key = geoid_column(key_raw, loaded.level).alias("__k")
    text = pl.col(raw).str.strip_chars()
    frame = lf.select(key, text.alias("__t"), text.cast(pl.Float64, strict=False).alias("__n")).collect()
    numeric = frame.get_column("__t").null_count() == frame.get_column("__n").null_count()
    value = pl.col("__n") if numeric else pl.col("__t")
    out = frame.select(pl.col("__k").alias(loaded.level.key), value.alias(name))
    return out, "number" if numeric else "text"


def _with_kept(loaded: Loaded, keep: Mapping[str, str], used: set[str]) -> Loaded:
    wanted = {raw: name for raw, name in keep.items() if raw in loaded.ignored}
    for raw in keep:
        if raw in loaded.key_columns:
            raise ReferenceDataError(
                f"--keep-columns {raw}: the column is the file's key ({loaded.level.key})",
                path=loaded.path)
        if raw in loaded.mapped:
            raise ReferenceDataError(
                f"--keep-columns {raw}: the column is already mapped to {loaded.mapped[raw]}",
                path=loaded.path)
    if not wanted:
        return loaded
    frame, entries = loaded.frame, list(loaded.entries)
    for raw, name in wanted.items():
        if not _NAME.match(name):
            raise ReferenceDataError(
                f"--keep-columns {raw}={name}: a column name is lower case letters, digits and "
                "_, starting with a letter", path=loaded.path)
        if name in frame.columns:
            raise ReferenceDataError(f"--keep-columns {raw}={name}: {name} is already a column "
                                     "of this file's table", path=loaded.path)
        column, kind = _kept_column(loaded.path, loaded, raw, name)
        frame = frame.join(column, on=loaded.level.key, how="left")
        year = year_in_name(loaded.path)
        entries.append({
            "name": name,
            "meaning": f"Column {raw} of {loaded.path.name}, passed through unchanged "
                       f"({kind}; the publisher's missing-value codes become null). {CAUTION}",
            "source": f"{loaded.reader} ({loaded.path.name})",
            "vintage": next((str(e.get("vintage")) for e in loaded.entries),
                            str(year) if year else "as the source file"),
            "geography": next((str(e.get("geography")) for e in loaded.entries),
                              loaded.level.geography(None)),
            "unit": "as published", "level": loaded.level.value, "raw": raw, "kept": True,
        })
        used.add(raw)
    return replace(loaded, frame=frame, entries=entries, kept=wanted,
                   ignored=[c for c in loaded.ignored if c not in wanted])


def load_indicator_sources(
    paths: Sequence[Path | str],
    *,
    keep: Mapping[str, str] | None = None,
    years: Mapping[str, int] | None = None,
) -> IndicatorTables:
    """Read indicator files into one frame per level, keyed by that level's GEOID column.

    ``keep`` maps raw column names to the names they are passed through under (any file
    holding the raw column); ``years`` maps a file name to its publication year when the
    name does not tell it. Files of the same level are outer-joined on the key: an area
    missing from one file keeps nulls in its columns. Raises :class:`ReferenceDataError` for
    an unrecognized file, a column given by two files, or a ``keep`` column no file has.
    """
    if not paths:
        raise ReferenceDataError("no indicator files given")
    keep = dict(keep or {})
    years = dict(years or {})
    unknown_years = set(years) - {Path(p).name for p in paths}
    if unknown_years:
        raise ReferenceDataError(f"--source-year names {', '.join(sorted(unknown_years))}, "
                                 "which is not one of the indicator files")
    frames: dict[Level, pl.DataFrame] = {}
    entries: list[dict[str, Any]] = []
    files: list[Loaded] = []
    seen: dict[str, Path] = {}
    used: set[str] = set()
    for path in map(Path, paths):
        loaded = _with_kept(load_one(path, years.get(path.name)), keep, used)
        key = loaded.level.key
        for col in loaded.frame.columns:
            if col == key:
                continue
            if col in seen:
                raise ReferenceDataError(
                    f"column {col} is supplied by both {seen[col].name} and {path.name}",
                    path=path)
            seen[col] = path
        files.append(loaded)
        entries.extend(loaded.entries)
        prior = frames.get(loaded.level)
        frames[loaded.level] = (loaded.frame if prior is None else
                                prior.join(loaded.frame, on=key, how="full", coalesce=True))
    missing = sorted(set(keep) - used)
    if missing:
        raise ReferenceDataError(f"--keep-columns {', '.join(missing)}: no indicator file has "
                                 "such a column (names are case-sensitive)")
    return IndicatorTables({lvl: f.sort(lvl.key) for lvl, f in frames.items()}, entries, files)


def load_indicator_files(paths: list[Path]) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Read tract indicator files into one row per tract on themed column names.

    Files are recognized by their columns; GEOIDs are zero-padded to 11 characters and
    ``NA`` becomes null. Several files are outer-joined on ``tract_geoid``: a tract missing
    from one file keeps nulls in that file's columns. Returns the frame (sorted by
    ``tract_geoid``) and one data-dictionary entry per indicator column. Block-group and
    county files, kept columns and the column report are in :func:`load_indicator_sources`.

    Raises :class:`ReferenceDataError` naming the file for an unrecognized file, GEOIDs that
    are not tracts, duplicated tracts, or a column supplied by two files.
    """
    tables = load_indicator_sources(paths)
    other = [f.path.name for f in tables.files if f.level is not Level.TRACT]
    if other:
        raise ReferenceDataError(f"not tract-level files: {', '.join(other)}; read them with "
                                 "load_indicator_sources")
    return tables.frames[Level.TRACT], tables.entries
