"""Re-keying tract indicators between 2010 and 2020 tracts through a tract relationship file.

Two layouts are read, each with its own documented weights:

* the Census Bureau's 2020 tract relationship file (``tab20_tract20_tract10_natl.txt``,
  pipe-delimited: ``GEOID_TRACT_20``, ``GEOID_TRACT_10``, ``AREALAND_PART``, ...):
  **area-weighted** by the land area each 2010/2020 tract pair shares;
* IPUMS NHGIS geographic crosswalks (``nhgis_tr2010_tr2020.csv``: ``tr2010ge``,
  ``tr2020ge``, ``wt_pop``, ``wt_hh``, ...): **population-weighted**, the share of the source
  tract's 2010 population (block-based) that lies in each target tract;

and a plain ``from_geoid,to_geoid,weight`` CSV, whose weights are the user's.

Counts (dictionary unit count/people/households) are apportioned by the weight's share of
the source tract; rates, percentages and ranks become the weighted mean over the source
tracts; flags and text take the value of the source with the largest weight. A target
tract whose sources are all missing stays missing, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment.errors import ReferenceDataError

_COUNT_UNITS = {"count", "people", "persons", "households", "housing units"}


@dataclass(frozen=True)
class Crosswalk:
    """A relationship file read: ``tract_geoid`` (source), ``_to`` (target), ``_w``, ``_share``."""

    path: Path
    frame: pl.DataFrame
    layout: str
    method: str


def read_crosswalk(path: Path, *, target_vintage: int) -> Crosswalk:
    """Read a tract relationship file for re-keying onto ``target_vintage`` tracts."""
    if not path.exists():
        raise ReferenceDataError("crosswalk file not found", path=path)
    with path.open(encoding="latin-1") as fh:
        head = fh.readline().lstrip("\ufeff")
    sep = "|" if "|" in head else ("\t" if "\t" in head else ",")
    try:
        raw = pl.read_csv(path, separator=sep, infer_schema=False, encoding="utf8-lossy")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise ReferenceDataError(f"cannot read the crosswalk ({exc})", path=path) from exc
    upper = {c.strip().lstrip("\ufeff").upper(): c for c in raw.columns}
    src_year, dst_year = (10, 20) if target_vintage == 2020 else (20, 10)
    census = (f"GEOID_TRACT_{src_year}", f"GEOID_TRACT_{dst_year}")
    nhgis = (f"TR20{src_year}GE", f"TR20{dst_year}GE")
    if all(c in upper for c in census):
        src, dst = (upper[c] for c in census)
        weight: str | None = upper.get("AREALAND_PART")
        if weight is None:
            raise ReferenceDataError("Census relationship file without AREALAND_PART", path=path)
        layout = "Census Bureau tract relationship file"
        method = ("area-weighted: each source/target pair weighted by the land area it shares "
                  "(AREALAND_PART)")
    elif all(c in upper for c in nhgis):
        src, dst = (upper[c] for c in nhgis)
        weight = upper.get("WT_POP")
        if weight is None:
            raise ReferenceDataError("NHGIS crosswalk without wt_pop", path=path)
        layout = "IPUMS NHGIS tract crosswalk"
        method = ("population-weighted: each pair weighted by the share of the source tract's "
                  "2010 population living in the target tract (NHGIS wt_pop, block-based)")
    elif all(c in upper for c in ("FROM_GEOID", "TO_GEOID")):
        src, dst = upper["FROM_GEOID"], upper["TO_GEOID"]
        weight = upper.get("WEIGHT")
        layout = "from_geoid,to_geoid,weight file"
        method = "weighted by the file's weight column" if weight else "equal weights"
    else:
        raise ReferenceDataError(
            f"crosswalk to {target_vintage} tracts needs {census[0]} and {census[1]} (Census "
            f"relationship file), {nhgis[0].lower()} and {nhgis[1].lower()} (NHGIS) or "
            "from_geoid,to_geoid[,weight] columns; found: " + ", ".join(raw.columns[:8]),
            path=path,
        )
    frame = raw.select(
        pl.col(src).str.strip_chars().str.zfill(11).alias("tract_geoid"),
        pl.col(dst).str.strip_chars().str.zfill(11).alias("_to"),
        (pl.col(weight).str.strip_chars().cast(pl.Float64, strict=False) if weight
         else pl.lit(1.0)).fill_null(0.0).alias("_w"),
    ).filter((pl.col("_w") > 0) & pl.col("_to").str.contains(r"^\d{11}$"))
    frame = frame.with_columns(
        (pl.col("_w") / pl.col("_w").sum().over("tract_geoid")).alias("_share"))
    return Crosswalk(path, frame, layout, method)


def apply_crosswalk(
    frame: pl.DataFrame, path: Path | Crosswalk, entries: list[dict[str, Any]], *,
    target_vintage: int,
) -> pl.DataFrame:
    """Re-key every column of a tract frame onto ``target_vintage`` tracts (see module doc)."""
    cw = path if isinstance(path, Crosswalk) else read_crosswalk(path,
                                                                 target_vintage=target_vintage)
    units = {str(e.get("name")): str(e.get("unit", "")).lower() for e in entries}
    joined = frame.join(cw.frame, on="tract_geoid", how="inner")
    aggs: list[pl.Expr] = []
    for col, dtype in frame.schema.items():
        if col == "tract_geoid":
            continue
        seen = pl.col(col).is_not_null()
        if dtype.is_numeric() and units.get(col) != "code":
            if units.get(col) in _COUNT_UNITS:
                value = (pl.col(col) * pl.col("_share")).sum()
                aggs.append(pl.when(seen.any()).then(value).alias(col))
            else:
                w = pl.when(seen).then(pl.col("_w"))
                aggs.append(pl.when(seen.any()).then((pl.col(col) * w).sum() / w.sum())
                            .alias(col))
        else:
            aggs.append(pl.col(col).sort_by(["_w", "tract_geoid"], descending=[True, False])
                        .first().alias(col))
    return joined.group_by("_to").agg(aggs).rename({"_to": "tract_geoid"}).select(frame.columns)


def rekey_mixed(
    frame: pl.DataFrame, path: Path, entries: list[dict[str, Any]], *, target_vintage: int,
    default_vintage: int | None = None,
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Re-key only the columns keyed to the other tract vintage; record it in their entries.

    Columns already on ``target_vintage`` tracts are kept as they are. Each re-keyed
    column's dictionary entry gains ``rekeyed`` (from, to, crosswalk, layout, method) and a
    geography saying it was interpolated.
    """
    from segment.reference.indicators import tract_geography, tract_vintage_of

    cw = read_crosswalk(path, target_vintage=target_vintage)

    def vintage(e: dict[str, Any]) -> int | None:
        return tract_vintage_of(str(e.get("geography", ""))) or default_vintage

    move = [str(e["name"]) for e in entries
            if vintage(e) not in (None, target_vintage) and e["name"] in frame.columns]
    if not move:
        return frame, entries
    stay = [c for c in frame.columns if c not in move and c != "tract_geoid"]
    moved = apply_crosswalk(frame.select("tract_geoid", *move), cw, entries,
                            target_vintage=target_vintage)
    if stay:
        kept = frame.select("tract_geoid", *stay).filter(
            pl.any_horizontal(pl.col(stay).is_not_null()))
        moved = kept.join(moved, on="tract_geoid", how="full", coalesce=True)
    out_entries = []
    for e in entries:
        if e.get("name") in move:
            source = vintage(e)
            e = {**e, "geography": f"{tract_geography(target_vintage)}, re-keyed from "
                 f"{tract_geography(source or 0)} ({cw.method})",
                 "rekeyed": {"from": source, "to": target_vintage, "crosswalk": path.name,
                             "layout": cw.layout, "method": cw.method}}
        out_entries.append(e)
    return moved.select(frame.columns).sort("tract_geoid"), out_entries
