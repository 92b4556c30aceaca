"""Offline street-range interpolation against TIGER/Line ADDRFEAT address ranges.

The way the Census Bureau's geocoder, PostGIS ``tiger_geocoder`` and DeGAUSS do it:

1. candidate segments are those of the same street in the same ZIP (the side's ZIPL or
   ZIPR); the street is found by its normalized name, exactly, else fuzzily (rapidfuzz,
   one ``cdist`` per ZIP over the distinct names of that ZIP), never across a different
   directional or route number; when the ZIP has no such street, the same street in the
   ZIPs sharing the first three digits is tried (deterministically, scored lower);
2. the side is chosen by house-number parity (PARITYL/PARITYR: O, E or B) and range;
3. the point is interpolated along the LineString from the side's FROM end (ranges may
   run backwards), then offset a few metres from the centre line to that side;
4. the score (0-1) multiplies the name similarity, ZIP agreement and parity agreement.

Ties are broken by nearness to a range end, range width, lowest TLID, side, then the
pack's row order, so the same input always gives the same output. Ranges are found by
binary search over each street's sides sorted by their low number (NumPy, no pairing of
every query with every segment of its street), and points are placed with NumPy over the
lines' flattened vertices. Numbers outside every range, and streets without a number, get the
middle of the nearest segment of that street (``street_centroid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import geopandas as gpd
import numpy as np
import polars as pl
import shapely
from rapidfuzz import fuzz, process

from segment.addresses.parse import normalize_street
from segment.schema import GeoPrecision

#: fuzzy street-name matches below this similarity (0-100) are not taken
MIN_SIMILARITY = 85.0
#: how far to put a point from the centre line, toward its side of the street
OFFSET_M = 10.0
_M_PER_DEG_LAT = 110_540.0
_M_PER_DEG_LON = 111_320.0

RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "qid": pl.UInt32,
    "lat": pl.Float64,
    "lon": pl.Float64,
    "geo_precision": pl.String,
    "geo_score": pl.Float64,
    "geo_reason": pl.String,
    "tlid": pl.Int64,
    "side": pl.String,
}


@dataclass(frozen=True)
class _Intervals:
    """Segment sides sorted for range search: by street group (ZIP, name), then ``lo``."""

    sides: pl.DataFrame  # index.sides with a ZIP, sorted by gid, lo, seg, side; plus ``gid``
    groups: pl.DataFrame  # zip5, street_key, gid
    group_start: np.ndarray  # first row of each gid in ``sides``
    lo_values: np.ndarray  # distinct ``lo`` values, ascending
    composite: np.ndarray  # gid * stride + rank of lo among ``lo_values``, ascending
    hi: np.ndarray
    hi_cummax: np.ndarray  # running maximum of ``hi`` within the group
    stride: int

    def search_keys(self, gid: np.ndarray, house_number: np.ndarray) -> np.ndarray:
        """Keys comparable with :attr:`composite`: ``lo <= hn`` iff ``rank(lo) <= key``.

        Ranks, not the numbers, keep ``gid * stride`` far from int64 overflow whatever
        digits a TIGER range holds.
        """
        rank = np.searchsorted(self.lo_values, house_number, side="right").astype(np.int64) - 1
        return gid * self.stride + rank

    @classmethod
    def build(cls, sides: pl.DataFrame) -> _Intervals:
        """Group the sides that have a ZIP by (zip5, street_key) and sort them by ``lo``."""
        groups = sides.filter(pl.col("zip5").is_not_null()).select("zip5", "street_key").unique(
        ).sort("zip5", "street_key").with_row_index("gid")
        sorted_sides = sides.join(groups, on=["zip5", "street_key"], how="inner").sort(
            "gid", "lo", "seg", "side").with_columns(pl.col("gid").cast(pl.Int64))
        gid = sorted_sides["gid"].to_numpy()
        lo_values, lo_rank = np.unique(sorted_sides["lo"].to_numpy(), return_inverse=True)
        stride = len(lo_values) + 1
        start = np.searchsorted(gid, np.arange(groups.height, dtype=np.int64), side="left")
        return cls(
            sides=sorted_sides,
            groups=groups.with_columns(pl.col("gid").cast(pl.Int64)),
            group_start=start.astype(np.int64),
            lo_values=lo_values,
            composite=gid * stride + lo_rank.astype(np.int64),
            hi=sorted_sides["hi"].to_numpy(),
            hi_cummax=sorted_sides.select(pl.col("hi").cum_max().over("gid"))["hi"].to_numpy(),
            stride=stride,
        )


@dataclass(frozen=True)
class _Paths:
    """Every line's vertices in one array, with distances along, for vectorized placing.

    Distances are planar, in degrees, like ``shapely.length`` and
    ``shapely.line_interpolate_point``. ``key`` makes them increase across lines (line
    ``i`` starts at ``start_key[i]``, a gap of 1 after the previous line's end), so one
    ``searchsorted`` finds the segment of every point at once.
    """

    xy: np.ndarray  # (vertices, 2)
    first: np.ndarray  # first vertex of each line
    count: np.ndarray  # vertices of each line
    along: np.ndarray  # distance along its line at each vertex
    length: np.ndarray  # length of each line
    key: np.ndarray  # ``along`` + its line's ``start_key``, ascending
    start_key: np.ndarray

    @classmethod
    def build(cls, lines: np.ndarray) -> _Paths:
        """Flatten ``lines`` (shapely LineStrings) once."""
        xy, owner = shapely.get_coordinates(lines, return_index=True)
        count = np.bincount(owner, minlength=len(lines)).astype(np.int64)
        first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        has = count > 0
        step = np.zeros(len(xy))
        if len(xy) > 1:
            step[1:] = np.hypot(xy[1:, 0] - xy[:-1, 0], xy[1:, 1] - xy[:-1, 1])
        step[first[has]] = 0.0  # no step from the previous line's last vertex
        cum = np.cumsum(step)
        along = cum - np.repeat(cum[first[has]], count[has])
        length = np.zeros(len(lines))
        length[has] = along[first[has] + count[has] - 1]
        start_key = np.concatenate([[0.0], np.cumsum(length + 1.0)[:-1]])
        key = along + np.repeat(start_key, count)
        return cls(xy, first, count, along, length, key, start_key)

    def points_at(self, seg: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The point at distance ``at`` (clipped to the line) along each line ``seg``: (n, 2)."""
        start, n = self.first[seg], self.count[seg]
        at = np.clip(at, 0.0, self.length[seg])
        # the vertex starting the segment that holds ``at``, kept on the line's segments
        k = np.searchsorted(self.key, self.start_key[seg] + at, side="right").astype(np.int64) - 1
        k = np.clip(k, start, start + np.maximum(n - 2, 0))
        nxt = np.minimum(k + 1, start + np.maximum(n - 1, 0))
        seg_len = self.along[nxt] - self.along[k]
        t = np.divide(at - self.along[k], seg_len, out=np.zeros_like(at), where=seg_len > 0)
        t = np.clip(t, 0.0, 1.0)
        return self.xy[k] + t[:, None] * (self.xy[nxt] - self.xy[k])

    def place(self, seg: np.ndarray, fraction: np.ndarray, offset_m: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Points at ``fraction`` along lines ``seg``, moved ``offset_m`` to the left."""
        if len(seg) == 0:
            return np.empty(0), np.empty(0)
        # binary searches run several times faster over sorted needles
        order = np.argsort(seg, kind="stable")
        seg, fraction, offset_m = seg[order], fraction[order], offset_m[order]
        length = self.length[seg]
        at = fraction * length
        eps = np.minimum(length * 0.01, 1e-5)
        p = self.points_at(seg, at)
        a = self.points_at(seg, np.clip(at - eps, 0, length))
        b = self.points_at(seg, np.clip(at + eps, 0, length))
        lon, lat = np.empty(len(seg)), np.empty(len(seg))
        lon[order], lat[order] = _offset(p, a, b, offset_m)
        return lon, lat


@dataclass(frozen=True)
class RangeIndex:
    """Address ranges prepared for matching: one row per segment side, plus the lines."""

    sides: pl.DataFrame  # seg, tlid, side, zip5, street_key, from_hn, to_hn, lo, hi, parity
    streets: pl.DataFrame  # distinct zip5, street_key
    lines: np.ndarray  # shapely LineStrings indexed by ``seg``

    @property
    def zips(self) -> set[str]:
        """ZIPs with at least one address range."""
        return set(self.streets["zip5"].to_list())

    @cached_property
    def intervals(self) -> _Intervals:
        """The sides sorted for binary search by house number (built on first use)."""
        return _Intervals.build(self.sides)

    @cached_property
    def paths(self) -> _Paths:
        """The lines' vertices flattened for vectorized interpolation (built on first use)."""
        return _Paths.build(self.lines)


def prepare_ranges(ranges: gpd.GeoDataFrame) -> RangeIndex:
    """Prepare a pack's ``address_ranges`` table for :func:`interpolate`."""
    lines = np.asarray(ranges.geometry.values, dtype=object)
    attrs = pl.from_pandas(
        ranges.drop(columns=ranges.geometry.name).astype(
            {c: "string" for c in ranges.columns if c not in ("tlid", ranges.geometry.name)}
        )
    ).with_row_index("seg")
    attrs = attrs.with_columns(pl.col("tlid").cast(pl.Int64), normalize_street(pl.col("fullname"))
                               .alias("street_key"))
    num = r"^\s*(\d+)"
    per_side = []
    for side, frm, to, zc, par in (("L", "lfromhn", "ltohn", "zipl", "parityl"),
                                   ("R", "rfromhn", "rtohn", "zipr", "parityr")):
        per_side.append(attrs.select(
            "seg", "tlid", pl.lit(side).alias("side"),
            pl.col(zc).str.strip_chars().alias("zip5"), "street_key",
            pl.col(frm).str.extract(num).cast(pl.Int64).alias("from_hn"),
            pl.col(to).str.extract(num).cast(pl.Int64).alias("to_hn"),
            pl.col(par).str.strip_chars().str.to_uppercase().alias("parity"),
        ))
    sides = (
        pl.concat(per_side)
        .filter(pl.col("from_hn").is_not_null() & pl.col("to_hn").is_not_null()
                & pl.col("street_key").is_not_null())
        .with_columns(
            pl.min_horizontal("from_hn", "to_hn").alias("lo"),
            pl.max_horizontal("from_hn", "to_hn").alias("hi"),
        )
        .sort("seg", "side")
    )
    streets = sides.filter(pl.col("zip5").is_not_null()).select("zip5", "street_key").unique().sort(
        "zip5", "street_key")
    return RangeIndex(sides=sides, streets=streets, lines=lines)


def _signature(keys: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits, leading and trailing directional of each name: these must not disagree."""
    frame = pl.DataFrame({"k": keys}).select(
        pl.col("k").str.extract_all(r"\d+").list.join(" ").alias("d"),
        pl.col("k").str.extract(r"^(N|S|E|W|NE|NW|SE|SW)\s").fill_null("").alias("p"),
        pl.col("k").str.extract(r"\s(N|S|E|W|NE|NW|SE|SW)$").fill_null("").alias("s"),
    )
    return (frame["d"].to_numpy(), frame["p"].to_numpy(), frame["s"].to_numpy())


def _compatible(a: np.ndarray, b: np.ndarray, *, optional: bool) -> np.ndarray:
    eq = np.equal.outer(a, b)
    if not optional:
        return eq
    return eq | np.equal.outer(a == "", np.ones(len(b), bool)) | (b == "")[None, :]


def match_streets(queries: pl.DataFrame, index: RangeIndex,
                  min_similarity: float = MIN_SIMILARITY) -> pl.DataFrame:
    """Match distinct ``(zip5, street_key)`` pairs to the ZIP's street names.

    Returns ``zip5, street_key, match_key, similarity`` (0-1); a query may keep several
    equally similar names (the house number decides later).
    """
    pairs = queries.select("zip5", "street_key").unique().drop_nulls()
    exact = pairs.join(index.streets, on=["zip5", "street_key"], how="inner").with_columns(
        pl.col("street_key").alias("match_key"), pl.lit(1.0).alias("similarity"))
    rest = pairs.join(index.streets, on=["zip5", "street_key"], how="anti").filter(
        pl.col("zip5").is_in(index.streets["zip5"].unique().implode()))
    found: list[pl.DataFrame] = [exact]
    if rest.height:
        names_by_zip = index.streets.filter(pl.col("zip5").is_in(rest["zip5"].unique().implode())
                                            ).partition_by("zip5", as_dict=True)
        for (zip5,), group in sorted(rest.partition_by("zip5", as_dict=True).items()):
            cands = names_by_zip[(zip5,)]["street_key"]
            q = group["street_key"]
            scores = process.cdist(q.to_list(), cands.to_list(), scorer=fuzz.ratio,
                                   dtype=np.float32, workers=1)
            qd, qp, qs = _signature(q)
            cd, cp, cs = _signature(cands)
            ok = (_compatible(qd, cd, optional=False) & _compatible(qp, cp, optional=True)
                  & _compatible(qs, cs, optional=True))
            scores = np.where(ok, scores, 0.0)
            best = scores.max(axis=1)
            qi, ci = np.nonzero((scores >= min_similarity) & (scores == best[:, None]))
            if len(qi):
                found.append(pl.DataFrame({
                    "zip5": zip5,
                    "street_key": q.gather(qi),
                    "match_key": cands.gather(ci),
                    "similarity": (scores[qi, ci] / 100.0).astype(np.float64),
                }))
    return pl.concat(found, how="vertical_relaxed")


#: ranking keys of a candidate (after ``qid``) and whether each sorts descending
_RANK_KEYS = ("exact", "in_range", "similarity", "zip_match", "distance", "width", "tlid",
              "side", "seg")
_RANK_DESC = (True, True, True, True, False, False, False, False, False)


def _scores(hn: pl.Expr) -> list[pl.Expr]:
    """Per candidate: in range, parity agreement, range width and distance to a range end."""
    return [
        (hn.is_not_null() & hn.is_between(pl.col("lo"), pl.col("hi"))).alias("in_range"),
        (pl.col("parity").is_null() | pl.col("parity").is_in(["B", ""])
         | ((pl.col("parity") == "O") & (hn % 2 == 1))
         | ((pl.col("parity") == "E") & (hn % 2 == 0))).fill_null(False).alias("parity_ok"),
        (pl.col("hi") - pl.col("lo")).alias("width"),
        pl.when(hn.is_null()).then(0).otherwise(
            pl.min_horizontal((hn - pl.col("lo")).abs(), (hn - pl.col("hi")).abs())
        ).alias("distance"),
    ]


def _best(cand: pl.DataFrame) -> pl.DataFrame:
    """The first candidate of each query by :data:`_RANK_KEYS` (deterministic, ``seg`` last).

    Only the ranking keys are sorted (``arg_sort_by``); the winning rows are gathered once,
    instead of permuting every column of every candidate.
    """
    cand = cand.with_columns(_scores(pl.col("house_number"))).with_columns(
        (pl.col("in_range") & pl.col("parity_ok")).alias("exact"))
    order = cand.select(pl.arg_sort_by(["qid", *_RANK_KEYS],
                                       descending=[False, *_RANK_DESC]))[:, 0].to_numpy()
    qid = cand["qid"].to_numpy()[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = qid[1:] != qid[:-1]
    return cand[order[first]]


def _in_range_rows(pairs: pl.DataFrame, iv: _Intervals) -> tuple[np.ndarray, np.ndarray]:
    """(pair row, side row) for every side whose range holds the pair's house number.

    ``pairs`` carries ``gid`` (the street's group in ``iv``) and ``house_number``. Sides are
    sorted by (group, lo): a binary search finds the last side with ``lo <= hn``, then the
    scan walks back while the group's running maximum of ``hi`` still reaches ``hn``. The
    loop runs over scan steps (a handful: ranges overlap little), never over rows.
    """
    rows_out: list[np.ndarray] = []
    pos_out: list[np.ndarray] = []
    hn_all = pairs["house_number"].to_numpy()
    gid = pairs["gid"].to_numpy().astype(np.int64)
    g_start = iv.group_start[gid]
    pos = np.searchsorted(iv.composite, iv.search_keys(gid, hn_all), side="right").astype(
        np.int64) - 1
    row = np.arange(len(pairs), dtype=np.int64)
    live = pos >= g_start
    row, pos = row[live], pos[live]
    while row.size:
        hn = hn_all[row]
        reach = iv.hi_cummax[pos] >= hn
        row, pos, hn = row[reach], pos[reach], hn[reach]
        hit = iv.hi[pos] >= hn
        rows_out.append(row[hit])
        pos_out.append(pos[hit])
        pos = pos - 1
        more = pos >= g_start[row]
        row, pos = row[more], pos[more]
    if not rows_out:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows_out), np.concatenate(pos_out)


def interpolate(queries: pl.DataFrame, index: RangeIndex, *, offset_m: float = OFFSET_M,
                min_similarity: float = MIN_SIMILARITY) -> pl.DataFrame:
    """Place distinct parsed addresses on the address ranges.

    ``queries`` has ``qid`` (UInt32, unique), ``house_number`` (Int64, may be null),
    ``street_key`` and ``zip5``. Returns :data:`RESULT_SCHEMA` rows for every query:
    ``range_interpolated``, ``street_centroid`` or ``unmatched`` with a ``geo_reason``.

    Candidates are ranked by :data:`_RANK_KEYS`: a range holding the number with the
    right parity, then any range holding it, then name similarity, ZIP agreement, nearness
    to a range end, narrower range, lower TLID, side, and finally the row order of the
    pack (so even duplicated ADDRFEAT rows give the same answer every time). A query
    with a range holding its number only ranks those ranges, found by binary search
    without pairing it with every segment of its street; the few without one rank the
    whole street.
    """
    q = queries.select(
        pl.col("qid").cast(pl.UInt32), pl.col("house_number").cast(pl.Int64), "street_key", "zip5")
    best = _best(_candidates(q, index, min_similarity))
    placed = _placed(best, index, offset_m)
    return pl.concat([placed, _unmatched(q, placed, index)], how="vertical_relaxed").cast(
        pl.Schema(RESULT_SCHEMA)).sort("qid")


_SIDE_COLUMNS = ["seg", "tlid", "side", "from_hn", "to_hn", "lo", "hi", "parity"]


def _candidates(q: pl.DataFrame, index: RangeIndex, min_similarity: float) -> pl.DataFrame:
    """Every (query, address-range side) pair worth ranking, with the street's similarity."""
    streets = match_streets(q, index, min_similarity)
    iv = index.intervals
    # every (query, matched street name of its ZIP) pair, with the street's group of sides
    pairs = q.join(streets, on=["zip5", "street_key"], how="inner").join(
        iv.groups, left_on=["zip5", "match_key"], right_on=["zip5", "street_key"], how="inner"
    ).select("qid", "house_number", "similarity", "gid")
    numbered = pairs.filter(pl.col("house_number").is_not_null())
    pair_row, side_row = _in_range_rows(numbered, iv)
    hits = numbered.select("qid", "house_number", "similarity")[pair_row].hstack(
        iv.sides.select(_SIDE_COLUMNS)[side_row]).with_columns(pl.lit(True).alias("zip_match"))
    # no in-range side in the ZIP: rank every side of the matched streets
    missed = pairs.join(hits.select("qid").unique(), on="qid", how="anti")
    misses = missed.join(iv.sides.select("gid", *_SIDE_COLUMNS), on="gid", how="inner").drop(
        "gid").with_columns(pl.lit(True).alias("zip_match"))
    # no such street in the ZIP: the exact street in the ZIPs with the same first three digits
    orphans = q.join(pairs.select("qid").unique(), on="qid", how="anti").filter(
        pl.col("zip5").is_not_null() & pl.col("house_number").is_not_null())
    near = orphans.with_columns(pl.col("zip5").str.slice(0, 3).alias("zip3")).join(
        index.sides.with_columns(pl.col("zip5").str.slice(0, 3).alias("zip3"))
        .drop("zip5"), on=["zip3", "street_key"], how="inner",
    ).filter(pl.col("house_number").is_between(pl.col("lo"), pl.col("hi"))).select(
        "qid", "house_number", pl.lit(1.0).alias("similarity"), *_SIDE_COLUMNS,
        pl.lit(False).alias("zip_match"))
    cols = hits.columns
    return pl.concat([hits, near.select(cols), misses.select(cols)], how="vertical_relaxed")


def _placed(best: pl.DataFrame, index: RangeIndex, offset_m: float) -> pl.DataFrame:
    """The point, precision, score and reason of each query's best range side."""
    ranged = best["in_range"].to_numpy()
    frac = np.where(
        ranged & (best["to_hn"] != best["from_hn"]).to_numpy(),
        ((best["house_number"] - best["from_hn"]).cast(pl.Float64)
         / (best["to_hn"] - best["from_hn"]).cast(pl.Float64).replace(0.0, 1.0)).to_numpy(),
        0.5,
    )
    frac = np.clip(np.nan_to_num(frac, nan=0.5), 0.0, 1.0)
    side_sign = np.where(best["side"].to_numpy() == "L", 1.0, -1.0)
    lon, lat = index.paths.place(best["seg"].to_numpy(), frac,
                                np.where(ranged, side_sign * offset_m, 0.0))
    sim = best["similarity"]
    zip_factor = pl.when(pl.col("zip_match")).then(1.0).otherwise(0.85)
    return best.with_columns(pl.Series("lon", lon), pl.Series("lat", lat)).select(
        "qid", "lat", "lon",
        pl.when(pl.col("in_range")).then(pl.lit(GeoPrecision.RANGE_INTERPOLATED.value))
        .otherwise(pl.lit(GeoPrecision.STREET_CENTROID.value)).alias("geo_precision"),
        pl.when(pl.col("in_range"))
        .then(sim * zip_factor * pl.when(pl.col("parity_ok")).then(1.0).otherwise(0.8))
        .otherwise(0.5 * sim * zip_factor).round(3).alias("geo_score"),
        pl.when(pl.col("in_range") & ~pl.col("parity_ok")).then(pl.lit("parity_mismatch"))
        .when(pl.col("in_range")).then(pl.lit(None, pl.String))
        .when(pl.col("house_number").is_null()).then(pl.lit("no_house_number"))
        .otherwise(pl.lit("house_number_not_in_range")).alias("geo_reason"),
        pl.col("tlid"),
        pl.when(pl.col("in_range")).then(pl.col("side")).otherwise(None).alias("side"),
    )


def _unmatched(q: pl.DataFrame, placed: pl.DataFrame, index: RangeIndex) -> pl.DataFrame:
    """Queries no range side placed, with why."""
    return q.join(placed.select("qid"), on="qid", how="anti").select(
        "qid", pl.lit(None, pl.Float64).alias("lat"), pl.lit(None, pl.Float64).alias("lon"),
        pl.lit(GeoPrecision.UNMATCHED.value).alias("geo_precision"),
        pl.lit(0.0).alias("geo_score"),
        pl.when(pl.col("zip5").is_null()).then(pl.lit("no_zip"))
        .when(~pl.col("zip5").is_in(index.streets["zip5"].unique().implode()))
        .then(pl.lit("zip_not_in_pack"))
        .when(pl.col("street_key").is_null()).then(pl.lit("no_street"))
        .otherwise(pl.lit("no_street_match")).alias("geo_reason"),
        pl.lit(None, pl.Int64).alias("tlid"), pl.lit(None, pl.String).alias("side"),
    )

def place_points(lines: np.ndarray, fraction: np.ndarray, offset_m: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Points at ``fraction`` along each line, moved ``offset_m`` to its left (negative: right).

    Left and right are relative to the digitized direction (first vertex to last), as in
    TIGER/Line. The direction is that of the chord between the points a small step before
    and after (``min(1% of the line, 1e-5 degrees)``). Vectorized with NumPy over the
    lines' vertices: no per-row Python and no GEOS call per point.
    """
    lines = np.asarray(lines, dtype=object)
    return _Paths.build(lines).place(np.arange(len(lines)), np.asarray(fraction, float),
                                     np.asarray(offset_m, float))


def _offset(p: np.ndarray, a: np.ndarray, b: np.ndarray, offset_m: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Move points ``p`` ``offset_m`` metres left of the direction ``a`` -> ``b``."""
    coslat = np.cos(np.radians(p[:, 1]))
    dx = (b[:, 0] - a[:, 0]) * coslat * _M_PER_DEG_LON
    dy = (b[:, 1] - a[:, 1]) * _M_PER_DEG_LAT
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0, norm, 1.0)
    nx, ny = -dy / norm, dx / norm  # unit normal pointing left of the direction of travel
    lon = p[:, 0] + nx * offset_m / (coslat * _M_PER_DEG_LON)
    lat = p[:, 1] + ny * offset_m / _M_PER_DEG_LAT
    return lon, lat
