"""Benchmark geocoding.

``python scripts/bench.py geocode --patients 1000000``: point-in-polygon of N points
against MA tracts and offline interpolation of N addresses. Synthetic addresses come from
a street grid generated here (ADDRFEAT-shaped ranges), with 5% typos, 3% numbers out of
range and 2% unknown streets, so the match rate is meaningful.

``python scripts/bench.py geocode --stage --patients 1000000``: the whole ``geocode`` stage
over the patients of a ``bench.py run`` folder (run that first) and its demo pack: cold
(no cache), warm (every address cached: an unchanged extract) and a next night's extract
(2% of the patients moved to a new house number), each checked equal to an uncached run.
"""

from __future__ import annotations

import argparse
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
from benchlib import RESULTS, measure
from shapely import linestrings

from segment.addresses.parse import parse_addresses
from segment.geocode.interpolate import interpolate, prepare_ranges
from segment.geocode.pip import assign_polygons
from segment.reference.tiger import read_tracts

MA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tiger2010" / "tl_2010_25_tract10.zip"
NAMES = [f"{a} {t}" for a in ("Maple", "Oak", "Elm", "Pine", "Cedar", "Birch", "Walnut", "Chestnut",
                                "Washington", "Lincoln", "Adams", "Jefferson", "Madison", "Monroe",
                                "Jackson", "Franklin", "Highland", "Park", "Lake", "Hill")
         for t in ("Street", "Avenue", "Road")]


def street_grid(zips: int = 200, streets_per_zip: int = 60, blocks: int = 10) -> gpd.GeoDataFrame:
    """A grid of ``zips`` ZIPs x ``streets_per_zip`` streets x ``blocks`` ADDRFEAT segments."""
    n = zips * streets_per_zip * blocks
    z = np.repeat(np.arange(zips), streets_per_zip * blocks)
    s = np.tile(np.repeat(np.arange(streets_per_zip), blocks), zips)
    b = np.tile(np.arange(blocks), zips * streets_per_zip)
    x0 = -71.8 + (z % 20) * 0.05 + b * 0.002
    y0 = 42.0 + (z // 20) * 0.05 + s * 0.0008
    coords = np.stack([np.stack([x0, y0], 1), np.stack([x0 + 0.002, y0], 1)], 1)
    names = np.array([NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else f" {i // len(NAMES)}")
                      for i in range(streets_per_zip)])[s]
    lo = b * 100
    rows = pl.DataFrame({
        "tlid": np.arange(n, dtype=np.int64) + 1, "fullname": names,
        "lfromhn": (lo + 1).astype(str), "ltohn": (lo + 99).astype(str),
        "rfromhn": (lo + 98).astype(str), "rtohn": (lo + 2).astype(str),  # backwards
        "zipl": [f"{1000 + v:05d}" for v in z], "zipr": [f"{1000 + v:05d}" for v in z],
        "parityl": "O", "parityr": "E"})
    return gpd.GeoDataFrame(rows.to_pandas(), geometry=linestrings(coords), crs="EPSG:4269")


def addresses(grid: gpd.GeoDataFrame, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(2)
    pick = rng.integers(0, len(grid), n)
    g = pl.from_pandas(grid.drop(columns="geometry")).select("fullname", "lfromhn", "zipl")[pick]
    base = (g["lfromhn"].cast(pl.Int64) - 1).to_numpy() + rng.integers(1, 99, n)
    r = rng.random(n)
    hn = np.where(r < 0.03, base + 50_000, base)
    street = g["fullname"].to_numpy().copy()
    typo = (r >= 0.03) & (r < 0.08)
    street[typo] = [s[:2] + s[3] + s[2] + s[4:] for s in street[typo]]
    street[(r >= 0.08) & (r < 0.10)] = "Nonexistent Blvd"
    unit = np.where(rng.random(n) < 0.2, " Apt 2", "")
    line = pl.Series(hn.astype(str)) + " " + pl.Series(street) + pl.Series(unit)
    return pl.DataFrame({"line": line, "zip5": g["zipl"]})


@contextmanager
def measure_cpu(step: str, **extra: object) -> Iterator[dict[str, object]]:
    """:func:`benchlib.measure` plus the process's CPU seconds (user + system, every thread).

    On a shared machine the wall time depends on the load; the CPU time much less.
    """
    start = _cpu()
    with measure(step, **extra) as row:
        yield row
        row["cpu_s"] = f"{_cpu() - start:.2f}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage(n: int, cache_root: Path) -> int:
    """Time the geocode stage cold, warm and on a next night's extract."""
    import shutil

    from segment.config import Settings
    from segment.geocode import geocode

    root = cache_root / f"run-{n}-0"
    patients = root / "work" / "patients.parquet"
    if not patients.exists():
        print(f"no {patients}: run `scripts/bench.py run --patients {n}` first")
        return 2
    settings = Settings.from_env(reference_dir=root / "world" / "reference")
    work = cache_root / f"geocode-stage-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(patients, work / "patients.parquet")
    with measure_cpu("geocode stage: cold (no cache)", patients=n) as row:
        result = geocode(work, settings=settings)
    row["addresses"] = result.addresses
    cold = pl.read_parquet(work / "geocoded.parquet")
    with measure_cpu("geocode stage: warm (all cached)", patients=n) as row:
        result = geocode(work, settings=settings)
    row["from_cache"] = result.from_cache.get("addresses", 0)
    assert pl.read_parquet(work / "geocoded.parquet").equals(cold), "warm run differs from cold"
    moved = pl.read_parquet(work / "patients.parquet").with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 0)
        .then(pl.col("address_line1").str.replace(r"^(\d+)", "1${1}"))
        .otherwise(pl.col("address_line1")).alias("address_line1"))
    moved.write_parquet(work / "patients.parquet")
    with measure_cpu("geocode stage: next extract (2% moved)", patients=n) as row:
        result = geocode(work, settings=settings)
    row["from_cache"] = result.from_cache.get("addresses", 0)
    row["new"] = result.addresses - row["from_cache"]
    nightly = pl.read_parquet(work / "geocoded.parquet")
    plain = cache_root / f"geocode-stage-{n}-plain"
    shutil.rmtree(plain, ignore_errors=True)
    plain.mkdir()
    shutil.copy(work / "patients.parquet", plain / "patients.parquet")
    geocode(plain, settings=settings, use_cache=False)
    assert pl.read_parquet(plain / "geocoded.parquet").equals(nightly), "cached run differs"
    RESULTS.print()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py geocode")
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--stage", action="store_true",
                    help="time the whole geocode stage over a `bench.py run` folder")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    args = ap.parse_args(argv)
    n = args.patients
    if args.stage:
        return stage(n, args.cache)
    tracts, _ = read_tracts(MA)
    rng = np.random.default_rng(0)
    pts = tracts.sample_points(size=max(1, n // len(tracts) + 1), rng=rng).explode(index_parts=False)
    lon, lat = pts.x.to_numpy()[:n], pts.y.to_numpy()[:n]
    with measure("point-in-polygon (MA tracts)", points=len(lon)) as row:
        got = assign_polygons(lon, lat, tracts, "tract_geoid")
    row["assigned"] = f"{np.mean(got != None):.4f}"  # noqa: E711
    grid = street_grid()
    addr = addresses(grid, n)
    with measure("offline interpolation", addresses=n) as row:
        index = prepare_ranges(grid)
        parsed = parse_addresses(addr.select("line").unique().lazy()).collect()
        q = addr.join(parsed, on="line").select("house_number", "street_key", "zip5").unique()
        q = q.with_row_index("qid")
        res = interpolate(q, index)
    wall = float(str(row.get("wall_s", 0) or 0))
    matched = res.select(pl.col("geo_precision").is_in(["range_interpolated", "street_centroid"])
                         .mean()).item()
    row["distinct"] = q.height
    ranged = res.select((pl.col("geo_precision") == "range_interpolated").mean()).item()
    row["range_rate"] = f"{ranged:.4f}"
    row["match_rate"] = f"{matched:.4f}"
    RESULTS.print()
    if wall:
        print(f"addresses per second: {n / wall:,.0f}")
    return 0
