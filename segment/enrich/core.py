"""Joining tract indicators, the need index and HP2030 gaps onto geocoded patients.

Patients are only joined, never looped over: the pack's tract table (indicators plus the
need index computed from the pack's own tracts) is left-joined on ``tract_geoid``. Missing
stays missing: a patient without a trustworthy tract gets nulls and ``sdoh_source`` says
why; a ZIP-centroid patient may take ZCTA- or county-level values only when the pack
holds such tables, and ``sdoh_source`` then says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from segment.enrich import hp2030
from segment.enrich.need_index import (
    NEED_INDEX_COMPLETE,
    NeedIndexSummary,
    compute_need_index,
)
from segment.errors import InputDataError, ReferenceDataError
from segment.log import get_logger
from segment.reference import (
    BLOCK_GROUP_INDICATORS,
    COUNTY_INDICATORS,
    INDICATORS,
    apply_crosswalk,
    open_pack,
)
from segment.reference.indicators import (
    ECOLOGICAL_CAUTION,
    THEMED_COLUMNS,
    TRACT_GEOID,
    tract_geography,
    tract_vintage_of,
)
from segment.schema import (
    NEED_INDEX,
    NEED_INDEX_QUINTILE,
    NEED_INDEX_STATE_PCTILE,
    SDOH_SOURCE,
    GeoPrecision,
)

log = get_logger("enrich")

#: optional coarser tables a pack may hold for ZIP-centroid patients (same themed columns)
ZCTA_INDICATORS = "zcta_indicators.parquet"
BLOCK_GROUP_GEOID = "block_group_geoid"

NEED_COLUMNS = (NEED_INDEX, NEED_INDEX_STATE_PCTILE, NEED_INDEX_QUINTILE, NEED_INDEX_COMPLETE)


class SdohSource(StrEnum):
    """Where a patient's area measures come from, or why there are none."""

    TRACT = "tract"
    ZCTA = "zcta"
    COUNTY = "county"
    NO_TRACT_UNMATCHED = "no_tract_unmatched"
    ZIP_CENTROID_NO_TRACT = "zip_centroid_no_tract"
    TRACT_NOT_IN_PACK = "tract_not_in_pack"


class PackLike(Protocol):
    """Anything with a pack folder (``segment.reference.pack.Pack`` qualifies)."""

    @property
    def path(self) -> Path: ...  # noqa: D102


@dataclass(frozen=True)
class EnrichPack:
    """The parts of a reference pack enrichment reads."""

    path: Path
    manifest: dict[str, Any]
    indicators: pl.LazyFrame
    zcta: pl.LazyFrame | None = None
    county: pl.LazyFrame | None = None
    block_groups: pl.LazyFrame | None = None

    @property
    def name(self) -> str:
        """The pack's name."""
        return str(self.manifest.get("name", self.path.name))

    @property
    def tract_vintage(self) -> int | None:
        """The tract boundary vintage of the pack's tracts."""
        value = self.manifest.get("tract_vintage")
        return int(value) if value is not None else None

    def indicator_entries(self, level: str = "tract") -> dict[str, dict[str, Any]]:
        """The manifest's data-dictionary entries for indicator columns of a level, by name.

        Every manifest ``columns`` entry describes an indicator column (mapped from a
        publisher's file or passed through with ``--keep-columns``); entries without a
        ``level`` are tract columns (packs built before levels were recorded).
        """
        return {
            e["name"]: dict(e)
            for e in self.manifest.get("columns", [])
            if isinstance(e, Mapping) and "name" in e and e.get("level", "tract") == level
        }


def open_enrich_pack(pack: str | Path | PackLike) -> EnrichPack:
    """Open a pack (``segment.reference.open_pack``) and scan its indicator tables lazily."""
    path = Path(pack).expanduser() if isinstance(pack, str | Path) else Path(pack.path)
    opened = open_pack(path)
    if not opened.has(INDICATORS):
        raise ReferenceDataError(
            f"pack {opened.name!r} has no {INDICATORS}; rebuild it with indicator files "
            "(OEPS tract CSVs or an ACS pull)",
            path=path,
        )
    indicators = opened.scan(INDICATORS)
    if TRACT_GEOID not in indicators.collect_schema().names():
        raise ReferenceDataError(f"{INDICATORS} has no {TRACT_GEOID} column", path=path)
    optional = {
        name: pl.scan_parquet(path / name) if (path / name).exists() else None
        for name in (ZCTA_INDICATORS, COUNTY_INDICATORS, BLOCK_GROUP_INDICATORS)
    }
    return EnrichPack(path, opened.manifest.to_dict(), indicators,
                      optional[ZCTA_INDICATORS], optional[COUNTY_INDICATORS],
                      optional[BLOCK_GROUP_INDICATORS])


def indicators_tract_vintage(pack: EnrichPack, columns: list[str]) -> int | None:
    """The tract vintage the pack's indicators are keyed to (from the dictionary), if stated."""
    found: set[int] = set()
    entry = (pack.manifest.get("files") or {}).get(INDICATORS) or {}
    described = [entry] if isinstance(entry, Mapping) else []
    described += [e for n, e in pack.indicator_entries().items() if n in columns]
    for e in described:
        # the pack builder stamps `tract_vintage` (after any crosswalk); else the geography
        stamped = e.get("tract_vintage")
        vintage = stamped if isinstance(stamped, int) else tract_vintage_of(
            str(e.get("geography", ""))
        )
        if vintage is not None:
            found.add(int(vintage))
    if len(found) > 1:
        raise ReferenceDataError(
            f"{INDICATORS} mixes tract vintages {sorted(found)}; rebuild the pack from "
            "indicator files of one tract vintage",
            path=pack.path,
        )
    return found.pop() if found else None


@dataclass(frozen=True)
class EnrichTally:
    """Counts of one batch of enriched patients (or their sum): rows, non-null values per
    added column, patients per ``sdoh_source``."""

    patients: int
    non_null: dict[str, int]
    sources: dict[str, int]

    @classmethod
    def of(cls, frame: pl.DataFrame, columns_added: list[str]) -> EnrichTally:
        """The counts of ``frame``."""
        cols = [c for c in columns_added if c != SDOH_SOURCE]
        counts = frame.select(pl.len().alias("_n"), *[pl.col(c).count() for c in cols]).row(0, named=True)
        n = int(counts.pop("_n"))
        sources = frame.get_column(SDOH_SOURCE).value_counts()
        return cls(n, {c: int(counts[c]) for c in cols}, {str(k): int(v) for k, v in sources.iter_rows()})

    @classmethod
    def total(cls, tallies: list[EnrichTally]) -> EnrichTally:
        """The sum of batches' counts."""
        non_null: dict[str, int] = {}
        sources: dict[str, int] = {}
        for t in tallies:
            for c, v in t.non_null.items():
                non_null[c] = non_null.get(c, 0) + v
            for k, v in t.sources.items():
                sources[k] = sources.get(k, 0) + v
        return cls(sum(t.patients for t in tallies), non_null, sources)


@dataclass(frozen=True)
class EnrichReport:
    """What enrichment did: sources, coverage per column, the need index, HP2030 columns."""

    pack: str
    tract_vintage: int | None
    indicator_tract_vintage: int | None
    crosswalk: str | None
    indicator_columns: list[str]
    hp2030_columns: list[str]
    hp2030_unmapped: list[str]
    need_index: NeedIndexSummary
    dictionary: list[dict[str, Any]]
    patients: int = 0
    sdoh_source: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, dict[str, float | int]] = field(default_factory=dict)
    #: batches of patients enriched one at a time (1: all at once; see :mod:`segment.memory`)
    batches: int = 1

    @property
    def columns_added(self) -> list[str]:
        """Every column enrichment adds, in output order."""
        return [*self.indicator_columns, *NEED_COLUMNS, *self.hp2030_columns, SDOH_SOURCE]

    @property
    def fallbacks(self) -> dict[str, int]:
        """Patients whose values come from coarser geography than the tract."""
        return {k: self.sdoh_source.get(k, 0) for k in (SdohSource.ZCTA, SdohSource.COUNTY)}

    def with_tally(self, tally: EnrichTally) -> EnrichReport:
        """The report completed with counts summed over batches (same figures as :meth:`with_counts`)."""
        n = tally.patients
        return replace(
            self,
            patients=n,
            sdoh_source=dict(sorted(tally.sources.items(), key=lambda kv: (-kv[1], kv[0]))),
            coverage={c: {"patients": v, "share": round(v / n, 6) if n else 0.0}
                      for c, v in tally.non_null.items()},
        )

    def with_counts(self, frame: pl.DataFrame) -> EnrichReport:
        """The report completed with patient counts and coverage from the enriched frame."""
        return self.with_tally(EnrichTally.of(frame, self.columns_added))

    def coverage_rows(self) -> list[dict[str, Any]]:
        """Rows for the CLI's coverage table."""
        return [
            {"column": c, "patients": v["patients"], "percent": round(100 * float(v["share"]), 1)}
            for c, v in self.coverage.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to enrich-report.json."""
        return {
            "pack": self.pack,
            "tract_vintage": self.tract_vintage,
            "indicator_tract_vintage": self.indicator_tract_vintage,
            "crosswalk": self.crosswalk,
            "patients": self.patients,
            "sdoh_source": self.sdoh_source,
            "fallbacks": self.fallbacks,
            "coverage": self.coverage,
            "columns_added": self.columns_added,
            "need_index": self.need_index.to_dict(),
            "hp2030": {"columns": self.hp2030_columns, "unmapped_objectives": self.hp2030_unmapped},
            "ecological_caution": ECOLOGICAL_CAUTION,
            "dictionary": self.dictionary,
        }


def _tract_table(
    pack: EnrichPack, crosswalk: Path | None
) -> tuple[pl.DataFrame, int | None, NeedIndexSummary]:
    """The pack's indicators on the pack's tracts, with the need index (collected: ~73k rows)."""
    columns = [c for c in pack.indicators.collect_schema().names() if c != TRACT_GEOID]
    ind_vintage = indicators_tract_vintage(pack, columns)
    indicators = pack.indicators.with_columns(pl.col(TRACT_GEOID).cast(pl.String))
    if ind_vintage is not None and pack.tract_vintage is not None:
        if ind_vintage != pack.tract_vintage:
            if crosswalk is None:
                raise ReferenceDataError(
                    f"the pack's indicators are keyed to {ind_vintage} tracts but its tracts "
                    f"(and geocoded tract ids) are {pack.tract_vintage} tracts; give a tract "
                    "crosswalk (--crosswalk, a Census tract relationship file) to relate them",
                    path=pack.path,
                )
            moved = apply_crosswalk(
                indicators.collect(), crosswalk, list(pack.indicator_entries().values()),
                target_vintage=pack.tract_vintage,
            )
            indicators = moved.lazy()
    elif crosswalk is not None:
        raise ReferenceDataError(
            "a crosswalk was given but the pack does not state both tract vintages "
            "(manifest tract_vintage and the indicators' geography)",
            path=pack.path,
        )
    tracts = indicators.unique(TRACT_GEOID, keep="first").collect()
    need, summary = compute_need_index(tracts)
    return tracts.join(need, on=TRACT_GEOID, how="left"), ind_vintage, summary


def _case(branches: list[tuple[pl.Expr, pl.Expr]], default: pl.Expr | None) -> pl.Expr:
    """``when(c1).then(v1).when(c2).then(v2)...otherwise(default)`` (null when no default)."""
    expr: Any = pl
    for condition, value in branches:
        expr = expr.when(condition).then(value)
    return expr.otherwise(default) if default is not None else expr


def _fallback(table: pl.LazyFrame | None, key: str, columns: list[str]) -> pl.LazyFrame | None:
    if table is None:
        return None
    names = table.collect_schema().names()
    if key not in names:
        return None
    return table.select(
        pl.col(key).cast(pl.String),
        *[pl.col(c).alias(f"__{key}__{c}") for c in columns if c in names],
        pl.lit(True).alias(f"__{key}__hit"),
    ).unique(key, keep="first")


_IS_ZIP = pl.col("geo_precision").eq_missing(GeoPrecision.ZIP_CENTROID.value)


def _indicator_columns(
    epack: EnrichPack, tracts: pl.DataFrame, names: list[str]
) -> tuple[list[str], pl.LazyFrame | None, list[str]]:
    """Tract indicator columns, the block-group table (when patients have block groups), all indicators.

    Refuses a geocoded frame that already has enrichment columns.
    """
    tract_cols = [c for c in tracts.columns if c != TRACT_GEOID and c not in NEED_COLUMNS]
    bg_table = _block_group_table(epack, tract_cols) if BLOCK_GROUP_GEOID in names else None
    bg_cols = [c for c in (bg_table.collect_schema().names() if bg_table is not None else [])
               if c not in ("__bg_key", "__bg__hit")]
    indicator_cols = [*tract_cols, *bg_cols]
    clash = sorted((set(indicator_cols) | set(NEED_COLUMNS) | {SDOH_SOURCE}) & set(names))
    if clash:
        raise InputDataError(
            f"geocoded frame already has enrichment columns ({', '.join(clash[:5])}); "
            "enrich reads geocoded.parquet, not an enriched file"
        )
    return tract_cols, bg_table, indicator_cols


def _join_fallbacks(
    out: pl.LazyFrame, epack: EnrichPack, names: list[str], indicator_cols: list[str]
) -> tuple[pl.LazyFrame, list[tuple[pl.Expr, pl.Expr]], dict[str, str]]:
    """ZIP-centroid patients joined to the pack's ZCTA and county tables, where it has them.

    Returns the frame, the ``sdoh_source`` branches of the fallbacks joined, and the
    joined key per source label.
    """
    branches: list[tuple[pl.Expr, pl.Expr]] = []
    fallback_cols: dict[str, str] = {}
    for key, table, label, patient_key in (
        ("zcta5", epack.zcta, SdohSource.ZCTA, "zip5"),
        ("county_fips", epack.county, SdohSource.COUNTY, "county_fips"),
    ):
        fb = _fallback(table, key, indicator_cols)
        if fb is None or patient_key not in names:
            continue
        hit, join_key = f"__{key}__hit", f"__{key}__key"
        out = out.with_columns(
            pl.when(_IS_ZIP).then(pl.col(patient_key).cast(pl.String)).alias(join_key)
        ).join(fb, left_on=join_key, right_on=key, how="left", maintain_order="left")
        branches.append((_IS_ZIP & pl.col(hit), pl.lit(label.value)))
        fallback_cols[label.value] = key
    return out, branches, fallback_cols


def _join_areas(
    geocoded: pl.LazyFrame, tracts: pl.DataFrame, epack: EnrichPack, names: list[str],
    tract_cols: list[str], indicator_cols: list[str],
) -> pl.LazyFrame:
    """Patients with ``sdoh_source`` and each tract column from the tract, else a ZIP fallback."""
    tract_key = pl.when(~_IS_ZIP).then(pl.col("tract_geoid").cast(pl.String))
    right = tracts.lazy().with_columns(pl.lit(True).alias("__tract__hit"))
    out = geocoded.with_columns(tract_key.alias("__tract_key")).join(
        right, left_on="__tract_key", right_on=TRACT_GEOID, how="left", maintain_order="left"
    )
    out, fallbacks, fallback_cols = _join_fallbacks(out, epack, names, indicator_cols)
    branches = [
        (pl.col("__tract__hit"), pl.lit(SdohSource.TRACT.value)),
        *fallbacks,
        (_IS_ZIP, pl.lit(SdohSource.ZIP_CENTROID_NO_TRACT.value)),
        (pl.col("tract_geoid").is_null(), pl.lit(SdohSource.NO_TRACT_UNMATCHED.value)),
    ]
    source = _case(branches, pl.lit(SdohSource.TRACT_NOT_IN_PACK.value))
    out = out.with_columns(source.alias(SDOH_SOURCE))
    fb_names = set(out.collect_schema().names())
    values: list[pl.Expr] = []
    for c in tract_cols:
        pairs = [(pl.col(SDOH_SOURCE) == SdohSource.TRACT.value, pl.col(c))]
        for fb_label, fb_key in fallback_cols.items():
            if f"__{fb_key}__{c}" in fb_names:
                pairs.append((pl.col(SDOH_SOURCE) == fb_label, pl.col(f"__{fb_key}__{c}")))
        values.append(_case(pairs, None).alias(c))
    return out.with_columns(values)


def enrich(
    geocoded: pl.LazyFrame,
    pack: str | Path | PackLike | EnrichPack,
    *,
    crosswalk: Path | None = None,
) -> tuple[pl.LazyFrame, EnrichReport]:
    """Geocoded patients plus indicators, need index, HP2030 gaps/flags and ``sdoh_source``.

    The returned frame is lazy (one row per geocoded patient, same order); the report holds
    everything but patient counts, which :meth:`EnrichReport.with_counts` adds once the
    frame is collected. Refuses a pack whose indicators are keyed to another tract vintage
    than its tracts unless ``crosswalk`` is given.
    """
    epack = pack if isinstance(pack, EnrichPack) else open_enrich_pack(pack)
    names = geocoded.collect_schema().names()
    for needed in ("tract_geoid", "geo_precision", "county_fips"):
        if needed not in names:
            raise InputDataError(f"geocoded frame has no `{needed}` column; run `segment geocode` first")
    tracts, ind_vintage, summary = _tract_table(epack, crosswalk)
    tract_cols, bg_table, indicator_cols = _indicator_columns(epack, tracts, names)
    mappings = hp2030.load_mappings()
    resolved = hp2030.resolve(mappings, set(indicator_cols))
    unmapped = [m.objective.id for m in mappings if m not in {r[0] for r in resolved}]
    out = _join_areas(geocoded, tracts, epack, names, tract_cols, indicator_cols)
    if bg_table is not None:  # block-group indices (ADI) for patients placed in a block group
        out = out.with_columns(
            pl.when(~_IS_ZIP).then(pl.col(BLOCK_GROUP_GEOID).cast(pl.String)).alias("__bg_key")
        ).join(bg_table, on="__bg_key", how="left", maintain_order="left")
    out = out.with_columns(hp2030.hp2030_exprs(resolved))
    hp_cols = [c for m, _ in resolved for c in (hp2030.gap_column(m.objective.id),
                                                hp2030.flag_column(m.objective.id))]
    out = out.select(*names, *indicator_cols, *NEED_COLUMNS, *hp_cols, SDOH_SOURCE)
    report = EnrichReport(
        pack=epack.name,
        tract_vintage=epack.tract_vintage,
        indicator_tract_vintage=ind_vintage,
        crosswalk=str(crosswalk) if crosswalk else None,
        indicator_columns=indicator_cols,
        hp2030_columns=hp_cols,
        hp2030_unmapped=unmapped,
        need_index=summary,
        dictionary=_dictionary(epack, indicator_cols, resolved),
    )
    log.info("enrichment planned", indicators=len(indicator_cols), tracts=tracts.height,
             hp2030_objectives=len(resolved))
    return out, report


def _block_group_table(pack: EnrichPack, tract_cols: list[str]) -> pl.LazyFrame | None:
    """The pack's block-group indicators keyed for the join (None when it has none)."""
    if pack.block_groups is None:
        return None
    names = pack.block_groups.collect_schema().names()
    if BLOCK_GROUP_GEOID not in names:
        raise ReferenceDataError(f"{BLOCK_GROUP_INDICATORS} has no {BLOCK_GROUP_GEOID} column",
                                 path=pack.path)
    cols = [c for c in names if c != BLOCK_GROUP_GEOID and c not in tract_cols]
    return pack.block_groups.select(
        pl.col(BLOCK_GROUP_GEOID).cast(pl.String).alias("__bg_key"), *cols,
    ).unique("__bg_key", keep="first")


def _dictionary(
    pack: EnrichPack,
    indicator_cols: list[str],
    resolved: list[tuple[hp2030.Mapping, str]],
) -> list[dict[str, Any]]:
    known = {**pack.indicator_entries("block_group"), **pack.indicator_entries()}
    geography = tract_geography(pack.tract_vintage) if pack.tract_vintage else "census tract"
    entries: list[dict[str, Any]] = []
    for c in indicator_cols:
        entry = known.get(c)
        if entry is None:
            spec = THEMED_COLUMNS.get(c)
            entry = {
                "name": c,
                "meaning": f"{spec.meaning if spec else c}. {ECOLOGICAL_CAUTION}",
                "source": f"reference pack {pack.name}",
                "vintage": "not stated in the pack manifest",
                "geography": geography,
                "unit": spec.unit if spec else "",
            }
        else:
            described = tract_vintage_of(str(entry.get("geography", "")))
            if pack.tract_vintage and described and described != pack.tract_vintage:
                entry = {**entry, "geography": f"{geography}, interpolated from "
                         f"{tract_geography(described)} through a crosswalk"}
        entries.append(entry)
    return [*entries, *fixed_entries(pack.name, geography),
            *hp2030.dictionary_entries(resolved, {e["name"]: e for e in entries},
                                       ECOLOGICAL_CAUTION)]


def fixed_entries(pack_name: str, geography: str) -> list[dict[str, Any]]:
    """Dictionary entries for the need-index columns and ``sdoh_source``."""
    source = f"computed by segment from the tract indicators of reference pack {pack_name}"
    vintage = "the pack's indicator vintages (see each input)"
    return [
        {"name": NEED_INDEX, "unit": "index 0-1",
         "meaning": "Composite area need index: first principal component of standardized "
         "tract indicators (poverty, unemployment, log income, no internet, ...), oriented "
         "so higher = more need, rescaled 0-1 over the pack's tracts (docs/need-index.md). "
         f"Null without a tract. {ECOLOGICAL_CAUTION}",
         "source": source, "vintage": vintage, "geography": geography},
        {"name": NEED_INDEX_STATE_PCTILE, "unit": "percentile 0-100",
         "meaning": "Percentile of the need index among the pack's tracts in the same state "
         f"(ties share the lower rank). {ECOLOGICAL_CAUTION}",
         "source": source, "vintage": vintage, "geography": geography},
        {"name": NEED_INDEX_QUINTILE, "unit": "quintile 1-5",
         "meaning": "Within-state need quintile, 5 = most need (from the state percentile). "
         f"{ECOLOGICAL_CAUTION}", "source": source, "vintage": vintage, "geography": geography},
        {"name": NEED_INDEX_COMPLETE, "unit": "boolean",
         "meaning": "True when every need-index input was observed for the tract; false when "
         "some were imputed with the state median (or the tract has no index).",
         "source": source, "vintage": vintage, "geography": geography},
        {"name": SDOH_SOURCE, "unit": "category",
         "meaning": "Where the patient's area measures come from: tract; zcta or county "
         "(coarser fallback for ZIP-centroid patients, only when the pack has such tables); "
         "or why there are none: no_tract_unmatched, zip_centroid_no_tract, "
         "tract_not_in_pack. Missing values are never filled with zeros.",
         "source": "segment enrichment", "vintage": "", "geography": "patient"},
    ]


def data_dictionary(manifest: Mapping[str, Any] | Any) -> list[dict[str, Any]]:
    """Every column enrichment adds for a pack with this manifest (dict or Manifest object).

    Indicator entries come from the manifest's ``columns``; the need-index, HP2030 and
    ``sdoh_source`` entries are added, each stating the ecological caution.
    """
    raw = manifest.to_dict() if hasattr(manifest, "to_dict") else dict(manifest)
    pack = EnrichPack(Path(str(raw.get("name", "pack"))), raw, pl.LazyFrame())
    indicator_cols = [*pack.indicator_entries(), *pack.indicator_entries("block_group")]
    resolved = hp2030.resolve(hp2030.load_mappings(), set(indicator_cols))
    return _dictionary(pack, indicator_cols, resolved)
