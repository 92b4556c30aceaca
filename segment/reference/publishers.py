"""Index files read as their publishers write them: CDC/ATSDR SVI, Neighborhood Atlas ADI, USDA FARA.

Each reader knows one publisher's documented layout (column names, FIPS width, missing-value
and suppression codes), maps the columns it understands onto themed names, and reports every
other column of the file as ignored, so nothing is dropped without a word:

* **CDC/ATSDR Social Vulnerability Index** (``SVI2018_US.csv``, ``SVI2020_US.csv``,
  ``SVI_2022_US.csv`` and their county and state files): ``FIPS`` (11-digit tract or 5-digit
  county), ``RPL_THEME1..4``, ``RPL_THEMES``, ``EP_*``; ``-999`` is missing. SVI 2018 and
  earlier are on 2010 tracts, SVI 2020 and 2022 on 2020 tracts.
* **Neighborhood Atlas Area Deprivation Index** (``MA_2020_ADI_Census Block Group_v3.2.csv``,
  ``US_2022_ADI_Census_Block_Group_v4_0_1.csv``): 12-digit block-group ``FIPS``,
  ``ADI_NATRANK`` (1-100) and ``ADI_STATERNK`` (1-10). A suppressed block group carries a
  code instead of a rank (``GQ``, ``PH``, ``GQ-PH``/``PH-GQ``, ``QDI``): kept as the reason in
  ``adi_suppression``, never read as a number.
* **USDA ERS Food Access Research Atlas** (``FoodAccessResearchAtlasData2019``): 11-digit
  ``CensusTract``, low-income and low-access flags at 1 and 10 miles, ½ and 10 miles,
  1 and 20 miles and by vehicle access; ``NULL`` is missing. Every edition is on 2010 tracts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from segment.errors import ReferenceDataError

#: area measures describe the neighbourhood, never the person (same text as indicators.py)
CAUTION = "Area measure: it describes the patient's neighbourhood (census tract), not the patient."


class Level(StrEnum):
    """The geography an indicator file describes, and the patient column it joins on."""

    TRACT = "tract"
    BLOCK_GROUP = "block_group"
    COUNTY = "county"

    @property
    def key(self) -> str:
        """The join column (``tract_geoid``, ``block_group_geoid``, ``county_fips``)."""
        return {"tract": "tract_geoid", "block_group": "block_group_geoid",
                "county": "county_fips"}[self.value]

    @property
    def width(self) -> int:
        """Digits of the GEOID at this level."""
        return {"tract": 11, "block_group": 12, "county": 5}[self.value]

    def geography(self, vintage: int | None) -> str:
        """The data-dictionary ``geography`` text (names the boundary vintage)."""
        name = {"tract": "census tract", "block_group": "census block group",
                "county": "county"}[self.value]
        return f"{name} ({vintage} boundaries)" if vintage else name


@dataclass(frozen=True)
class Loaded:
    """One indicator file read: its themed frame, dictionary entries and column report."""

    path: Path
    reader: str
    level: Level
    frame: pl.DataFrame  # the level's key column plus themed columns
    entries: list[dict[str, Any]]
    mapped: dict[str, str]  # raw column -> themed column
    key_columns: list[str]
    ignored: list[str]
    kept: dict[str, str] = field(default_factory=dict)  # raw column -> declared name

    def report(self) -> dict[str, Any]:
        """The manifest / build-output form: what became of every column of the file."""
        return {"file": self.path.name, "reader": self.reader, "level": self.level.value,
                "rows": self.frame.height, "key": self.key_columns, "mapped": self.mapped,
                "kept": self.kept, "ignored": self.ignored}


def header_of(path: Path) -> list[str]:
    """Column names of a CSV (a UTF-8 BOM, as Excel and the USDA write it, is dropped)."""
    try:
        names = pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy").collect_schema().names()
    except FileNotFoundError as exc:
        raise ReferenceDataError("indicator file not found", path=path) from exc
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise ReferenceDataError(f"cannot read indicator file as CSV ({exc})", path=path) from exc
    return [n.lstrip("\ufeff") for n in names]


def _scan(path: Path, nulls: Sequence[str]) -> pl.LazyFrame:
    lf = pl.scan_csv(path, infer_schema=False, null_values=list(nulls), encoding="utf8-lossy")
    first = lf.collect_schema().names()[0]
    return lf.rename({first: first.lstrip("\ufeff")}) if first.startswith("\ufeff") else lf


def year_in_name(path: Path) -> int | None:
    """A publication year in a file name (``SVI_2022_US.csv``, ``SVI2020_US.csv``)."""
    found = re.findall(r"(?<!\d)((?:19|20)\d\d)(?!\d)", path.name)
    return int(found[0]) if len(found) == 1 else None


def geoid_column(raw: str, level: Level) -> pl.Expr:
    """Raw FIPS text -> the level's GEOID with a lost leading zero restored; null if not one."""
    text = pl.col(raw).cast(pl.String).str.strip_chars().str.strip_chars('"')
    n = text.str.len_chars()
    ok = n.is_between(level.width - 1, level.width) & text.str.contains(r"^\d+$")
    return pl.when(ok).then(text.str.zfill(level.width))


def _number(raw: str) -> pl.Expr:
    return pl.col(raw).str.strip_chars().cast(pl.Float64, strict=False)


def _checked_keys(frame: pl.DataFrame, level: Level, raw: str, path: Path) -> pl.DataFrame:
    bad = frame.filter(pl.col(level.key).is_null())
    if bad.height:
        sample = bad.get_column("__raw").head(3).to_list()
        raise ReferenceDataError(
            f"column {raw}: {bad.height} values are not {level.width}-digit "
            f"{level.value.replace('_', ' ')} FIPS codes (e.g. {sample})", path=path)
    dupes = frame.height - frame.get_column(level.key).n_unique()
    if dupes:
        raise ReferenceDataError(f"column {raw}: {dupes} {level.value.replace('_', ' ')} ids "
                                 "appear more than once", path=path)
    return frame.drop("__raw")


def _entry(name: str, meaning: str, source: str, vintage: str, level: Level,
           geo_vintage: int | None, unit: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "meaning": f"{meaning}. {CAUTION}", "source": source,
            "vintage": vintage, "geography": level.geography(geo_vintage), "unit": unit,
            "level": level.value, **extra}


# -- CDC/ATSDR SVI ---------------------------------------------------------------------------
_SVI_SOURCE = ("CDC/ATSDR Social Vulnerability Index {year}, Geospatial Research, Analysis, "
               "and Services Program (GRASP)")
_SVI_THEMES_2018 = {
    1: "socioeconomic status", 2: "household composition and disability",
    3: "minority status and language", 4: "housing type and transportation",
}
_SVI_THEMES_2020 = {
    1: "socioeconomic status", 2: "household characteristics",
    3: "racial and ethnic minority status", 4: "housing type and transportation",
}
#: EP_ variables (percent estimates) of the SVI data dictionaries, 2018 to 2022
SVI_EP: dict[str, str] = {
    "POV": "Persons below poverty", "POV150": "Persons below 150% of poverty",
    "UNEMP": "Civilian (age 16+) unemployed", "HBURD": "Housing cost-burdened occupied units "
    "with annual income below $75,000 (30%+ of income on housing)",
    "PCI": "Per capita income (US dollars)", "NOHSDP": "Persons (age 25+) with no high "
    "school diploma", "UNINSUR": "Uninsured in the civilian noninstitutionalized population",
    "AGE65": "Persons aged 65 and older", "AGE17": "Persons aged 17 and younger",
    "DISABL": "Civilian noninstitutionalized population with a disability",
    "SNGPNT": "Single-parent households with children under 18",
    "LIMENG": "Persons (age 5+) who speak English 'less than well'",
    "MINRTY": "Minority (all persons except white, non-Hispanic)",
    "MUNIT": "Housing in structures with 10 or more units", "MOBILE": "Mobile homes",
    "CROWD": "Occupied housing units with more people than rooms",
    "NOVEH": "Households with no vehicle available", "GROUPQ": "Persons in group quarters",
    "NOINT": "Households without an internet subscription",
}


def svi_year(path: Path, header: Sequence[str], given: int | None) -> int:
    """The SVI edition: given, else from the file name, else EP_PCI means 2018 (its last year)."""
    year = given or year_in_name(path)
    if year is None and "EP_PCI" in header:
        year = 2018
    if year is None:
        raise ReferenceDataError(
            "cannot tell the SVI edition (2020 or 2022) from the columns or the file name; "
            "keep CDC's file name (e.g. SVI_2022_US.csv) or give --source-year FILE=YEAR",
            path=path)
    if year not in (2000, 2010, 2014, 2016, 2018, 2020, 2022):
        raise ReferenceDataError(f"SVI edition {year} is not one CDC/ATSDR published; valid "
                                 "options are: 2000, 2010, 2014, 2016, 2018, 2020, 2022", path=path)
    return year


def read_svi(path: Path, header: Sequence[str], year: int | None = None) -> Loaded:
    """A CDC/ATSDR SVI CSV (tract or county) on themed names; -999 becomes null."""
    year = svi_year(path, header, year)
    lf = _scan(path, ["-999", "-999.0", ""])
    sample = lf.select(pl.col("FIPS").str.strip_chars()).head(50).collect().get_column("FIPS")
    width = int(sample.drop_nulls().str.len_chars().max() or 0)  # type: ignore[arg-type]
    level = Level.COUNTY if width in (4, 5) else Level.TRACT
    # tracts follow the decennial boundaries of the ACS they come from; counties are named
    # without a boundary vintage
    geo_vintage = None if level is Level.COUNTY else 2010 if year <= 2018 else 2020
    acs = {2018: "ACS 2014-2018", 2020: "ACS 2016-2020", 2022: "ACS 2018-2022",
           2016: "ACS 2012-2016", 2014: "ACS 2010-2014"}.get(year, "")
    vintage = f"SVI {year}" + (f" ({acs})" if acs else "")
    source = _SVI_SOURCE.format(year=year)
    among = "US counties" if level is Level.COUNTY else "US census tracts"
    themes = _SVI_THEMES_2018 if year <= 2018 else _SVI_THEMES_2020
    mapped: dict[str, str] = {}
    exprs: list[pl.Expr] = [geoid_column("FIPS", level).alias(level.key),
                            pl.col("FIPS").alias("__raw")]
    entries: list[dict[str, Any]] = []
    for i in range(1, 5):
        raw = f"RPL_THEME{i}"
        if raw in header:
            name = f"svi_theme{i}_rank"
            mapped[raw] = name
            exprs.append(_number(raw).alias(name))
            entries.append(_entry(name, f"CDC/ATSDR SVI {year} percentile rank among {among}, "
                                  f"theme {i}: {themes[i]} ({raw})", source, vintage, level,
                                  geo_vintage, "rank 0-1", raw=raw))
    if "RPL_THEMES" in header:
        mapped["RPL_THEMES"] = "svi_overall_rank"
        exprs.append(_number("RPL_THEMES").alias("svi_overall_rank"))
        entries.append(_entry("svi_overall_rank", f"CDC/ATSDR SVI {year} overall summary "
                              f"percentile rank among {among} (RPL_THEMES); higher is more "
                              "vulnerable", source, vintage, level, geo_vintage, "rank 0-1",
                              raw="RPL_THEMES"))
    for code, meaning in SVI_EP.items():
        raw = f"EP_{code}"
        if raw not in header:
            continue
        name = "svi_per_capita_income" if code == "PCI" else f"svi_{code.lower()}_pct"
        mapped[raw] = name
        exprs.append(_number(raw).alias(name))
        unit = "US dollars" if code == "PCI" else "percent"
        entries.append(_entry(name, f"{meaning}, {'estimate' if code == 'PCI' else 'percent'} "
                              f"as published in CDC/ATSDR SVI {year} ({raw})", source, vintage,
                              level, geo_vintage, unit, raw=raw))
    if "RPL_THEMES" not in header:
        raise ReferenceDataError("SVI file has no RPL_THEMES column", path=path)
    frame = _checked_keys(lf.select(exprs).collect(), level, "FIPS", path)
    return Loaded(path, f"CDC/ATSDR SVI {year}", level, frame, entries, mapped, ["FIPS"],
                  [c for c in header if c not in mapped and c != "FIPS"])


# -- Neighborhood Atlas ADI --------------------------------------------------------------------
#: Neighborhood Atlas suppression codes and what they mean (its FAQ and download notes)
ADI_SUPPRESSION: dict[str, str] = {
    "GQ": "more than 33% of the population lives in group quarters",
    "PH": "fewer than 100 people or fewer than 30 housing units",
    "GQ-PH": "both group quarters and low population/housing",
    "PH-GQ": "both group quarters and low population/housing",
    "QDI": "questionable data integrity",
}
_ADI_SOURCE = ("Area Deprivation Index {year}, Neighborhood Atlas, Center for Health Disparities "
               "Research, University of Wisconsin School of Medicine and Public Health")


def read_adi(path: Path, header: Sequence[str], year: int | None = None) -> Loaded:
    """A Neighborhood Atlas ADI CSV: ranks as integers, suppression codes kept as reasons."""
    year = year or year_in_name(path)
    if year is None:
        raise ReferenceDataError(
            "cannot tell the ADI release year from the file name; keep the Neighborhood Atlas "
            "name (e.g. MA_2020_ADI_Census Block Group_v3.2.csv) or give --source-year FILE=YEAR",
            path=path)
    geo_vintage = 2020 if year >= 2020 else 2010
    level = Level.BLOCK_GROUP
    lf = _scan(path, ["", "NA"])
    codes = sorted(ADI_SUPPRESSION)
    ranks = {"ADI_NATRANK": ("adi_national_rank", 100), "ADI_STATERNK": ("adi_state_decile", 10)}
    text = {raw: pl.col(raw).str.strip_chars().str.to_uppercase() for raw in ranks if raw in header}
    frame = lf.select(
        geoid_column("FIPS", level).alias(level.key), pl.col("FIPS").alias("__raw"),
        *[t.alias(f"__{raw}") for raw, t in text.items()],
    ).collect()
    for raw, (_, top) in ranks.items():
        if raw not in header:
            continue
        col = frame.get_column(f"__{raw}")
        value = col.cast(pl.Int64, strict=False)
        bad = frame.filter(col.is_not_null() & ~col.is_in(codes)
                           & (value.is_null() | ~value.is_between(1, top)))
        if bad.height:
            first = bad.row(0, named=True)
            raise ReferenceDataError(
                f"column {raw}: {bad.height} values are neither a rank 1-{top} nor a "
                f"suppression code (first: {first[f'__{raw}']!r} for block group "
                f"{first['__raw']}); valid codes are: {', '.join(codes)}", path=path,
                column=raw)
    suppressed = [pl.when(pl.col(f"__{raw}").is_in(codes)).then(pl.col(f"__{raw}"))
                  for raw in text]
    frame = frame.with_columns(
        *[pl.col(f"__{raw}").cast(pl.Int16, strict=False).alias(ranks[raw][0]) for raw in text],
        pl.coalesce(suppressed).alias("adi_suppression") if suppressed else pl.lit(None, pl.String)
        .alias("adi_suppression"),
    ).drop([f"__{raw}" for raw in text])
    source = _ADI_SOURCE.format(year=year)
    vintage = f"ADI {year} (ACS {year - 4}-{year})"
    entries = []
    mapped = {}
    if "ADI_NATRANK" in header:
        mapped["ADI_NATRANK"] = "adi_national_rank"
        entries.append(_entry("adi_national_rank", "Area Deprivation Index national percentile "
                              "rank of the block group, 1 (least) to 100 (most disadvantaged); "
                              "null when suppressed (see adi_suppression)", source, vintage,
                              level, geo_vintage, "percentile 1-100", raw="ADI_NATRANK"))
    if "ADI_STATERNK" in header:
        mapped["ADI_STATERNK"] = "adi_state_decile"
        entries.append(_entry("adi_state_decile", "Area Deprivation Index decile of the block "
                              "group within its state, 1 (least) to 10 (most disadvantaged); "
                              "null when suppressed", source, vintage, level, geo_vintage,
                              "decile 1-10", raw="ADI_STATERNK"))
    if not mapped:
        raise ReferenceDataError("ADI file has neither ADI_NATRANK nor ADI_STATERNK", path=path)
    entries.append(_entry("adi_suppression", "Why the Neighborhood Atlas gives no ADI rank for "
                          "the block group: " + "; ".join(f"{k} = {v}" for k, v in
                                                          ADI_SUPPRESSION.items())
                          + "; null when ranked", source, vintage, level, geo_vintage,
                          "code", raw="ADI_NATRANK/ADI_STATERNK"))
    frame = _checked_keys(frame, level, "FIPS", path)
    return Loaded(path, f"Neighborhood Atlas ADI {year}", level, frame, entries, mapped,
                  ["FIPS"], [c for c in header if c not in mapped and c != "FIPS"])


# -- USDA Food Access Research Atlas ------------------------------------------------------------
@dataclass(frozen=True)
class FaraColumn:
    """A documented Food Access Research Atlas column and the themed column it becomes."""

    raw: str
    name: str
    kind: str  # flag | percent | count | dollars
    meaning: str


FARA_COLUMNS: tuple[FaraColumn, ...] = (
    FaraColumn("Urban", "food_urban_tract", "flag", "Urban tract (population-weighted centroid "
               "in an urbanized area)"),
    FaraColumn("LILATracts_1And10", "food_lila_1_10", "flag", "Low income and low access tract: "
               "at least 500 people or 33% of the population beyond 1 mile (urban) or 10 miles "
               "(rural) from a supermarket"),
    FaraColumn("LILATracts_halfAnd10", "food_lila_half_10", "flag", "Low income and low access "
               "tract measured at 1/2 mile (urban) and 10 miles (rural)"),
    FaraColumn("LILATracts_1And20", "food_lila_1_20", "flag", "Low income and low access tract "
               "measured at 1 mile (urban) and 20 miles (rural)"),
    FaraColumn("LILATracts_Vehicle", "food_lila_vehicle", "flag", "Low income and low access "
               "tract using vehicle access or 20 miles (rural)"),
    FaraColumn("LowIncomeTracts", "food_low_income_tract", "flag", "Low income tract (poverty "
               "rate 20%+, or median family income at most 80% of the state or metro median)"),
    FaraColumn("LA1and10", "food_low_access_1_10", "flag", "Low access tract at 1 mile (urban) "
               "or 10 miles (rural)"),
    FaraColumn("LAhalfand10", "food_low_access_half_10", "flag", "Low access tract at 1/2 mile "
               "(urban) or 10 miles (rural)"),
    FaraColumn("LA1and20", "food_low_access_1_20", "flag", "Low access tract at 1 mile (urban) "
               "or 20 miles (rural)"),
    FaraColumn("LATractsVehicle_20", "food_low_access_vehicle", "flag", "Low access tract: at "
               "least 100 households more than 1/2 mile from a supermarket with no vehicle, or "
               "at least 500 people or 33% beyond 20 miles"),
    FaraColumn("lapophalfshare", "food_low_access_half_mile_pct", "percent", "Share of the tract "
               "population beyond 1/2 mile from a supermarket"),
    FaraColumn("lapop1share", "food_low_access_1_mile_pct", "percent", "Share of the tract "
               "population beyond 1 mile from a supermarket"),
    FaraColumn("lapop10share", "food_low_access_10_mile_pct", "percent", "Share of the tract "
               "population beyond 10 miles from a supermarket"),
    FaraColumn("lapop20share", "food_low_access_20_mile_pct", "percent", "Share of the tract "
               "population beyond 20 miles from a supermarket"),
    FaraColumn("lalowi1share", "food_low_income_low_access_1_mile_pct", "percent", "Share of "
               "the tract population that is low income and beyond 1 mile from a supermarket"),
    FaraColumn("TractHUNV", "food_households_no_vehicle", "count", "Housing units without a "
               "vehicle (count)"),
    FaraColumn("PovertyRate", "food_atlas_poverty_pct", "percent", "Tract poverty rate used by "
               "the atlas (ACS)"),
    FaraColumn("MedianFamilyIncome", "food_atlas_median_family_income", "dollars", "Tract median "
               "family income used by the atlas (ACS)"),
)
_FARA_UNITS = {"flag": "boolean", "percent": "percent", "count": "households",
               "dollars": "US dollars"}


def read_food_access(path: Path, header: Sequence[str], year: int | None = None) -> Loaded:
    """A USDA Food Access Research Atlas CSV (2010-tract editions); ``NULL`` becomes null."""
    year = year or year_in_name(path)
    level = Level.TRACT
    lf = _scan(path, ["NULL", "", "NA"])
    present = [c for c in FARA_COLUMNS if c.raw in header]
    exprs: list[pl.Expr] = [geoid_column("CensusTract", level).alias(level.key),
                            pl.col("CensusTract").alias("__raw")]
    for c in present:
        value = _number(c.raw)
        exprs.append((value == 1).alias(c.name) if c.kind == "flag" else value.alias(c.name))
    frame = _checked_keys(lf.select(exprs).collect(), level, "CensusTract", path)
    title = f"USDA ERS Food Access Research Atlas {year or '(edition not stated in the file name)'}"
    vintage = f"Food Access Research Atlas {year}" if year else "Food Access Research Atlas " \
        "(edition not stated; 2010 Census population, ACS income)"
    entries = [_entry(c.name, f"{c.meaning} ({c.raw})", title, vintage, level, 2010,
                      _FARA_UNITS[c.kind], raw=c.raw) for c in present]
    mapped = {c.raw: c.name for c in present}
    return Loaded(path, "USDA Food Access Research Atlas", level, frame, entries, mapped,
                  ["CensusTract"], [c for c in header if c not in mapped and c != "CensusTract"])


# -- recognition -------------------------------------------------------------------------------
Reader = Callable[[Path, Sequence[str], int | None], Loaded]


def publisher_reader(header: Sequence[str]) -> Reader | None:
    """The reader for a file with this header, or None when no publisher layout matches."""
    names = set(header)
    if "FIPS" in names and "RPL_THEMES" in names:
        return read_svi
    if "FIPS" in names and names & {"ADI_NATRANK", "ADI_STATERNK"}:
        return read_adi
    if "CensusTract" in names and names & {c.raw for c in FARA_COLUMNS}:
        return read_food_access
    return None


EXPECTED = ("CDC/ATSDR SVI (FIPS, RPL_THEMES, RPL_THEME1..4, EP_*); Neighborhood Atlas ADI "
            "(FIPS, ADI_NATRANK, ADI_STATERNK); USDA Food Access Research Atlas (CensusTract, "
            "LILATracts_1And10, ...)")
