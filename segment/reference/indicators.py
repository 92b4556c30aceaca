"""Tract indicator files: recognize the known sources and put them on themed column names.

The reference pack builder reads the files a user points it at through
:mod:`segment.reference.loading` (which calls :func:`load_one` per file) and stores the
result as ``indicators.parquet``; it never interprets indicator columns itself. Three kinds of file are recognized by their columns:

* the Opioid Environment Policy Scan (OEPS) tract CSVs (SVI, economic, internet, housing,
  rurality, hospital access, physicians), and the synthetic demo file that reuses their
  column names (one file may carry the columns of several OEPS tables);
* an ACS 5-year pull through the Census API (``state``/``county``/``tract`` or ``GEO_ID``
  plus the variables in :data:`ACS_VARIABLES`), turned into percentages by
  :func:`acs_to_indicators`;
* a file already on the themed names (``tract_geoid`` plus themed columns).

Every themed column comes with a data-dictionary entry ``{name, meaning, source, vintage,
geography, unit}``. The ``geography`` text names the tract boundary vintage
("census tract (2010 boundaries)"), which enrichment checks against the pack's tracts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment.errors import ReferenceDataError
from segment.reference.publishers import Level, Loaded

TRACT_GEOID = "tract_geoid"

#: area measures describe the neighbourhood, never the person: stated in every entry
ECOLOGICAL_CAUTION = (
    "Area measure: it describes the patient's neighbourhood (census tract), "
    "not the patient."
)

#: any Census API value at or below this is an annotation sentinel (-666666666, ...)
ACS_SENTINEL_MAX = -111_111_111


def tract_geography(vintage: int) -> str:
    """The dictionary ``geography`` text for tracts of a boundary vintage."""
    return f"census tract ({vintage} boundaries)"


def tract_vintage_of(geography: str) -> int | None:
    """The tract boundary vintage named in a dictionary ``geography`` text, if any."""
    found = re.search(r"\b((?:19|20)\d\d) boundaries", geography)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Column:
    """One raw column of a source file and the themed column it becomes."""

    raw: str
    name: str
    dtype: type[pl.DataType]
    meaning: str
    unit: str


@dataclass(frozen=True)
class Source:
    """A known tract file: its columns, where it comes from and which year it describes."""

    key: str
    title: str
    geoid: str  # the raw GEOID column
    geoid_width: int  # 11, or 13 for Health03_T's state-prefixed geoid
    columns: tuple[Column, ...]
    source: str
    vintage: str
    tract_vintage: int

    @property
    def raw_columns(self) -> list[str]:
        """The raw indicator columns a file must carry to be this source."""
        return [c.raw for c in self.columns]


_OEPS = "Opioid Environment Policy Scan (OEPS), GeoDa Center, University of Chicago"

OEPS_SOURCES: tuple[Source, ...] = (
    Source(
        "DS03_T", "SVI", "GEOID", 11,
        (
            Column("SVIth1", "svi_theme1_rank", pl.Float64,
                   "CDC/ATSDR SVI percentile rank, theme 1: socioeconomic status", "rank 0-1"),
            Column("SVIth2", "svi_theme2_rank", pl.Float64,
                   "CDC/ATSDR SVI percentile rank, theme 2: household composition and "
                   "disability", "rank 0-1"),
            Column("SVIth3", "svi_theme3_rank", pl.Float64,
                   "CDC/ATSDR SVI percentile rank, theme 3: minority status and language",
                   "rank 0-1"),
            Column("SVIth4", "svi_theme4_rank", pl.Float64,
                   "CDC/ATSDR SVI percentile rank, theme 4: housing type and transportation",
                   "rank 0-1"),
            Column("SVIS", "svi_overall_rank", pl.Float64,
                   "CDC/ATSDR SVI overall summary percentile rank (RPL_THEMES); higher is "
                   "more vulnerable", "rank 0-1"),
        ),
        f"CDC/ATSDR Social Vulnerability Index 2018, via {_OEPS} (DS03_T)",
        "SVI 2018 (ACS 2014-2018)", 2010,
    ),
    Source(
        "EC03_T", "Economic", "GEOID", 11,
        (
            Column("unempP", "econ_unemployment_pct", pl.Float64,
                   "Unemployed people as a percentage of the civilian labor force (DP03)",
                   "percent"),
            Column("povP", "econ_poverty_pct", pl.Float64,
                   "People below the poverty level as a percentage of people for whom "
                   "poverty status is determined (S1701)", "percent"),
            Column("pciE", "econ_per_capita_income", pl.Float64,
                   "Per capita income in the past 12 months, 2018 dollars (B19301)",
                   "US dollars"),
        ),
        f"American Community Survey 5-year (B19301, DP03, S1701), via {_OEPS} (EC03_T)",
        "ACS 2014-2018 5-year", 2010,
    ),
    Source(
        "EC05_T", "Internet", "GEOID", 11,
        (
            Column("NoIntPct", "internet_no_access_pct", pl.Float64,
                   "Households with no Internet access, percent of households (B28002_013 / "
                   "B28002_001)", "percent"),
        ),
        f"American Community Survey 5-year (B28002), via {_OEPS} (EC05_T)",
        "ACS 2015-2019 5-year", 2010,
    ),
    Source(
        "BE01_T", "Housing", "GEOID", 11,
        (
            Column("vacantP", "housing_vacant_pct", pl.Float64,
                   "Vacant housing units, percent of all housing units (B25002)", "percent"),
            Column("rentalP", "housing_rental_pct", pl.Float64,
                   "Renter-occupied units, percent of occupied housing units (B25003)",
                   "percent"),
            Column("mobileP", "housing_mobile_home_pct", pl.Float64,
                   "Mobile homes, percent of all housing units (B25024)", "percent"),
        ),
        f"American Community Survey 5-year (B25002, B25003, B25024), via {_OEPS} (BE01_T)",
        "ACS 2014-2018 5-year", 2010,
    ),
    Source(
        "BE02_RUCA_T", "Rurality", "GEOID", 11,
        (
            Column("RUCA1", "ruca_primary", pl.Int16,
                   "USDA ERS Rural-Urban Commuting Area primary code (1 metropolitan core .. "
                   "10 rural; 99 not coded)", "code"),
            Column("RUCA2", "ruca_secondary", pl.Float64,
                   "USDA ERS Rural-Urban Commuting Area secondary code", "code"),
            Column("rurality", "rurality", pl.String,
                   "Urban (RUCA2 1.0, 1.1), Suburban (2.0, 2.1, 4.0, 4.1) or Rural (others), "
                   "as classified by OEPS", "category"),
        ),
        f"USDA ERS Rural-Urban Commuting Area codes 2010, via {_OEPS} (BE02_RUCA_T)",
        "RUCA 2010 (revised 2019)", 2010,
    ),
    Source(
        "Access03_T", "Hospital access", "GEOID", 11,
        (
            Column("minDisHosp", "access_hospital_distance_mi", pl.Float64,
                   "Straight-line distance from the tract centroid (not population-weighted) "
                   "to the nearest hospital", "miles"),
            Column("timeDrive", "access_hospital_drive_min", pl.Float64,
                   "Driving time from the tract centroid to the nearest hospital (OSRM)",
                   "minutes"),
            Column("countDrive", "access_hospitals_30min_count", pl.Float64,
                   "Hospitals within a 30-minute drive of the tract centroid", "count"),
        ),
        f"CovidCareMap hospital locations (HCRIS, Definitive Healthcare), via {_OEPS} "
        "(Access03_T)",
        "hospitals as of 2020; TIGER 2018 centroids", 2010,
    ),
    Source(
        "Health03_T", "Physicians", "geoid", 13,
        (
            Column("pcp_total", "access_pcp_count", pl.Float64,
                   "Clinically active primary care physicians located in the tract", "count"),
            Column("sp_total", "access_specialist_count", pl.Float64,
                   "Clinically active specialist physicians located in the tract", "count"),
        ),
        f"Dartmouth Atlas Primary Care Service Area project, via {_OEPS} (Health03_T)",
        "Dartmouth Atlas 2010", 2010,
    ),
)


# -- ACS 5-year ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AcsMeasure:
    """A themed measure computed from ACS 5-year detailed-table variables."""

    name: str
    numerators: tuple[str, ...]
    denominator: str | None  # None: the numerator is the value itself (a median)
    meaning: str
    unit: str
    table: str
    complement: bool = False  # 100 - share (e.g. "no broadband" from "with broadband")
    excluded: tuple[str, ...] = ()  # subtracted from the denominator ("not computed")

    @property
    def variables(self) -> tuple[str, ...]:
        """Every estimate variable the measure reads."""
        return (*self.numerators, *((self.denominator,) if self.denominator else ()),
                *self.excluded)

    @property
    def numerator_text(self) -> str:
        """The numerator as a sum of variables (for the data dictionary)."""
        return " + ".join(self.numerators)

    @property
    def denominator_text(self) -> str:
        """The denominator, with excluded variables subtracted (for the data dictionary)."""
        if self.denominator is None:
            return ""
        return " - ".join((self.denominator, *self.excluded))


ACS_MEASURES: tuple[AcsMeasure, ...] = (
    AcsMeasure("econ_poverty_pct", ("B17001_002E",), "B17001_001E",
               "People below the poverty level, percent of people for whom poverty status "
               "is determined", "percent", "B17001"),
    AcsMeasure("econ_median_household_income", ("B19013_001E",), None,
               "Median household income in the past 12 months (inflation-adjusted dollars of "
               "the survey's last year; top-coded at 250,001)", "US dollars", "B19013"),
    AcsMeasure("econ_unemployment_pct", ("B23025_005E",), "B23025_003E",
               "Unemployed people, percent of the civilian labor force", "percent", "B23025"),
    AcsMeasure("transport_no_vehicle_pct", ("B08201_002E",), "B08201_001E",
               "Households with no vehicle available, percent of households", "percent",
               "B08201"),
    AcsMeasure("insurance_uninsured_pct",
               ("B27010_017E", "B27010_033E", "B27010_050E", "B27010_066E"), "B27010_001E",
               "People with no health insurance coverage, percent of the civilian "
               "noninstitutionalized population (all ages)", "percent", "B27010"),
    AcsMeasure("language_limited_english_pct",
               ("C16002_004E", "C16002_007E", "C16002_010E", "C16002_013E"), "C16002_001E",
               "Limited-English-speaking households, percent of households", "percent",
               "C16002"),
    AcsMeasure("internet_no_access_pct", ("B28002_013E",), "B28002_001E",
               "Households with no Internet access, percent of households", "percent",
               "B28002"),
    AcsMeasure("internet_no_broadband_pct", ("B28002_004E",), "B28002_001E",
               "Households without a broadband subscription of any type, percent of "
               "households", "percent", "B28002", complement=True),
    AcsMeasure("housing_rent_burden_pct",
               ("B25070_007E", "B25070_008E", "B25070_009E", "B25070_010E"), "B25070_001E",
               "Renter households paying 30% or more of household income on gross rent, percent "
               "of renter-occupied units for which the burden is computed (units with no cash "
               "rent or zero/negative income, B25070_011, are left out of the denominator, as "
               "the Census Bureau and HUD do)", "percent", "B25070",
               excluded=("B25070_011E",)),
    AcsMeasure("food_snap_pct", ("B22010_002E",), "B22010_001E",
               "Households that received SNAP (food stamps) in the past 12 months, percent of "
               "households", "percent", "B22010"),
)


def _acs_variables() -> dict[str, str]:
    out: dict[str, str] = {}
    for m in ACS_MEASURES:
        for var in m.numerators:
            out.setdefault(var, m.name)
        if m.denominator:
            out.setdefault(m.denominator, f"{m.name} (denominator)")
        for var in m.excluded:
            out.setdefault(var, f"{m.name} (excluded from the denominator)")
    return out


#: ACS 5-year estimate variable ids `reference pull` requests -> the themed measure each feeds
ACS_VARIABLES: dict[str, str] = _acs_variables()
#: the margin-of-error variable (..._M) of every estimate, requested beside it
_ACS_MOE_VARIABLES: dict[str, str] = {
    f"{v[:-1]}M": f"{m} (margin of error)" for v, m in ACS_VARIABLES.items()
}
#: coefficient of variation above which the Census Bureau advises treating an estimate with
#: caution: the companion ``<measure>_unreliable`` column is true
CV_UNRELIABLE = 0.4
#: ACS MOEs are published at 90% confidence: standard error = MOE / 1.645
Z90 = 1.645
MOE_HANDLING = (
    "Margins of error (90%) from the _M variables: sums by the root of summed squares; the "
    "share by the ACS handbook's proportion formula sqrt(MOE_num^2 - p^2 * MOE_den^2) / den "
    "(the ratio formula, with +, when the term under the root is negative); standard error = "
    "MOE / 1.645; coefficient of variation = SE / estimate; above 0.4 the companion "
    "<name>_unreliable column is true (Census Bureau guidance), null when no MOE was pulled"
)

_ACS_GEO_COLUMNS = ("state", "county", "tract")
_NULLS = ["NA", "", "N/A", "NaN", "nan", "-999"]


# -- recognition and reading ----------------------------------------------------------------
def _header(path: Path) -> list[str]:
    try:
        return list(pl.scan_csv(path, infer_schema=False).collect_schema().names())
    except FileNotFoundError as exc:
        raise ReferenceDataError("indicator file not found", path=path) from exc
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise ReferenceDataError(f"cannot read indicator file as CSV ({exc})", path=path) from exc


def _expected_text() -> str:
    parts = [f"{s.key} ({s.geoid}, {', '.join(s.raw_columns)})" for s in OEPS_SOURCES]
    parts.append("an ACS pull (state, county, tract or GEO_ID, plus ACS_VARIABLES such as "
                 "B17001_002E)")
    parts.append(f"themed columns ({TRACT_GEOID} plus names such as econ_poverty_pct)")
    return "; ".join(parts)


def _themed_names() -> dict[str, Column]:
    out: dict[str, Column] = {}
    for s in OEPS_SOURCES:
        for c in s.columns:
            out[c.name] = c
    for m in ACS_MEASURES:
        out.setdefault(m.name, Column(m.name, m.name, pl.Float64, m.meaning, m.unit))
    return out


THEMED_COLUMNS: dict[str, Column] = _themed_names()


def _geoid_expr(raw: str, width: int) -> pl.Expr:
    """Raw GEOID text -> 11-char tract GEOID (leading zero restored); null when not a tract.

    A tract GEOID may have lost its one leading zero (state FIPS 01-09), so ``width`` or
    ``width - 1`` characters are accepted; anything else (a county, a block group) is null.
    """
    text = _raw_geoid(raw)
    n = text.str.len_chars()
    padded = text.str.zfill(width)
    if width == 13:
        # Health03_T: 2-digit state prefix + 11-digit tract GEOID
        padded = padded.str.slice(2, 11)
    return pl.when(n.is_between(width - 1, width) & text.str.contains(r"^\d+$")).then(padded)


def _raw_geoid(raw: str) -> pl.Expr:
    return pl.col(raw).cast(pl.String).str.strip_chars().str.strip_chars('"').str.replace(r"^G", "")


def _check_tracts(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    bad = frame.filter(pl.col(TRACT_GEOID).is_null())
    if bad.height:
        lengths = sorted(set(bad["__raw_len"].drop_nulls().to_list())) if "__raw_len" in bad.columns else []
        raise ReferenceDataError(
            f"{bad.height} GEOIDs are not census tract ids (lengths found: "
            f"{', '.join(map(str, lengths)) or 'empty'}); expected 11-digit tract GEOIDs",
            path=path,
        )
    dupes = frame.height - frame[TRACT_GEOID].n_unique()
    if dupes:
        raise ReferenceDataError(f"{dupes} tract GEOIDs appear more than once", path=path)
    return frame.drop("__raw_len", strict=False)


def _read_oeps(path: Path, header: Sequence[str], sources: list[Source]) -> pl.LazyFrame:
    raw_geoid = sources[0].geoid
    width = sources[0].geoid_width
    if raw_geoid not in header:
        raw_geoid, width = ("GEOID", 11) if "GEOID" in header else ("geoid", 13)
    lf = pl.scan_csv(path, infer_schema=False, null_values=_NULLS)
    exprs = [
        _geoid_expr(raw_geoid, width).alias(TRACT_GEOID),
        _raw_geoid(raw_geoid).str.len_chars().alias("__raw_len"),
    ]
    for s in sources:
        for c in s.columns:
            exprs.append(pl.col(c.raw).str.strip_chars().cast(pl.Float64, strict=False)
                         .cast(c.dtype, strict=False).alias(c.name)
                         if c.dtype is not pl.String
                         else pl.col(c.raw).str.strip_chars().alias(c.name))
    return lf.select(exprs)


def _entries_for(sources: list[Source]) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "meaning": f"{c.meaning}. {ECOLOGICAL_CAUTION}",
            "source": s.source,
            "vintage": s.vintage,
            "geography": tract_geography(s.tract_vintage),
            "unit": c.unit,
        }
        for s in sources
        for c in s.columns
    ]


#: identifier columns of OEPS tables besides GEOID (not data: never reported as ignored)
_OEPS_ID_COLUMNS = frozenset({"", "G_GEOID", "GEO_ID", "year", "YEAR", "state", "county", "tract", "STATEFP",
                              "COUNTYFP", "TRACTCE", "NAME"})


def load_one(path: Path, year: int | None = None) -> Loaded:
    """Read one indicator file with the reader its columns call for; every column accounted for.

    Publishers' own layouts (SVI, ADI, food access) go to :mod:`segment.reference.publishers`;
    OEPS tables, an ACS pull and themed files are read here. Columns no reader maps are
    listed in :attr:`Loaded.ignored`, never dropped without a word.
    """
    from segment.reference.publishers import EXPECTED, publisher_reader

    header = _header(path)
    names = set(header)
    reader = publisher_reader(header)
    if reader is not None:
        return reader(path, header, year)
    has_oeps_geoid = bool(names & {"GEOID", "geoid"})
    sources = [s for s in OEPS_SOURCES if has_oeps_geoid and set(s.raw_columns) <= names]
    if sources:
        frame = _check_tracts(_read_oeps(path, header, sources).collect(), path)
        key = sources[0].geoid if sources[0].geoid in names else (
            "GEOID" if "GEOID" in names else "geoid")
        mapped = {c.raw: c.name for s in sources for c in s.columns}
        # identifiers beside the key (OEPS writes G_GEOID, the parts of the GEOID, the table's
        # year, and sometimes a leading unnamed row index): keys, not ignored data
        keys = [key, *[h for h in header if h != key and h not in mapped and h in _OEPS_ID_COLUMNS]]
        return Loaded(path, "OEPS " + ", ".join(s.key for s in sources), Level.TRACT, frame,
                      _entries_for(sources), mapped, keys,
                      [h for h in header if h not in mapped and h not in keys])
    if names & set(ACS_VARIABLES) and (set(_ACS_GEO_COLUMNS) <= names or "GEO_ID" in names):
        raw = pl.read_csv(path, infer_schema=False, null_values=_NULLS)
        frame, entries = acs_to_indicators(raw, year=year)
        used = {v for e in entries for v in e.get("variables", [])}
        keys = [c for c in (*_ACS_GEO_COLUMNS, "GEO_ID", "year", "NAME") if c in names]
        return Loaded(path, "ACS 5-year (Census Data API)", Level.TRACT, _check_tracts(frame, path),
                      entries, {v: ACS_VARIABLES.get(v) or _ACS_MOE_VARIABLES.get(v, "")
                                for v in header if v in used}, keys,
                      [h for h in header if h not in used and h not in keys])
    if TRACT_GEOID in names and names & set(THEMED_COLUMNS):
        frame, entries = _read_themed(path, header)
        known = [h for h in header if h in THEMED_COLUMNS]
        return Loaded(path, "themed indicator file", Level.TRACT, _check_tracts(frame, path),
                      entries, {h: h for h in known}, [TRACT_GEOID],
                      [h for h in header if h not in known and h != TRACT_GEOID])
    shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    raise ReferenceDataError(
        f"unrecognized indicator file: columns [{shown}] match no known source; expected "
        f"one of: {_expected_text()}; {EXPECTED}",
        path=path,
    )


def _read_themed(path: Path, header: Sequence[str]) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    known = [h for h in header if h in THEMED_COLUMNS]
    frame = (
        pl.scan_csv(path, infer_schema=False, null_values=_NULLS)
        .select(
            _geoid_expr(TRACT_GEOID, 11).alias(TRACT_GEOID),
            _raw_geoid(TRACT_GEOID).str.len_chars().alias("__raw_len"),
            *[
                pl.col(n).str.strip_chars().alias(n)
                if THEMED_COLUMNS[n].dtype is pl.String
                else pl.col(n).cast(pl.Float64, strict=False).cast(THEMED_COLUMNS[n].dtype,
                                                                    strict=False)
                for n in known
            ],
        )
        .collect()
    )
    entries = [
        {
            "name": n,
            "meaning": f"{THEMED_COLUMNS[n].meaning}. {ECOLOGICAL_CAUTION}",
            "source": f"themed indicator file {path.name}",
            "vintage": "unknown (themed file)",
            "geography": tract_geography(2020 if "2020" in path.name else 2010),
            "unit": THEMED_COLUMNS[n].unit,
        }
        for n in known
    ]
    return frame, entries


def _acs_value(var: str) -> pl.Expr:
    value = pl.col(var).cast(pl.Float64, strict=False)
    return pl.when(value > ACS_SENTINEL_MAX).then(value)


def acs_to_indicators(
    frame: pl.DataFrame, *, year: int | None = None
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Turn an ACS 5-year tract pull into themed percentages (and median income).

    ``frame`` holds ``state``, ``county`` and ``tract`` (or ``GEO_ID``, or ``tract_geoid``)
    and any of the variables in :data:`ACS_VARIABLES`, as numbers or text. Census API
    sentinels (any value <= -111111111, such as -666666666) become null; a percentage is
    ``100 * sum(numerators) / denominator`` only when every numerator is known and the
    denominator is above zero, else null. A measure whose variables are absent from the
    frame is skipped. ``year`` (or a ``year`` column) is the ACS end year, used for the
    vintage (2020 and later ACS use 2020 tract boundaries).
    """
    names = set(frame.columns)
    if TRACT_GEOID in names:
        geoid = _geoid_expr(TRACT_GEOID, 11)
    elif set(_ACS_GEO_COLUMNS) <= names:
        geoid = pl.concat_str(
            pl.col("state").cast(pl.String).str.zfill(2),
            pl.col("county").cast(pl.String).str.zfill(3),
            pl.col("tract").cast(pl.String).str.zfill(6),
        )
    elif "GEO_ID" in names:
        geoid = pl.col("GEO_ID").cast(pl.String).str.extract(r"US(\d{11})$")
    else:
        raise ReferenceDataError(
            "ACS frame has no tract identifier: expected state, county and tract columns, "
            "GEO_ID, or tract_geoid"
        )
    if year is None and "year" in names:
        years = frame["year"].cast(pl.Int32, strict=False).drop_nulls().unique().to_list()
        year = int(years[0]) if len(years) == 1 else None
    exprs: list[pl.Expr] = [geoid.alias(TRACT_GEOID)]
    used: list[AcsMeasure] = []
    with_moe: set[str] = set()
    for m in ACS_MEASURES:
        if not set(m.variables) <= names:
            continue
        used.append(m)
        value, moe = _acs_measure(m)
        exprs.append(value.alias(m.name))
        if all(f"{v[:-1]}M" in names for v in m.variables):
            with_moe.add(m.name)
            cv = (moe / Z90) / value.abs()
            exprs.append(pl.when(value.is_not_null() & moe.is_not_null())
                         .then(cv > CV_UNRELIABLE).alias(f"{m.name}_unreliable"))
    if not used:
        raise ReferenceDataError(
            "ACS frame carries none of the variables of a known measure; expected e.g. "
            + ", ".join(sorted(ACS_VARIABLES)[:6]) + ", ..."
        )
    out = frame.select(exprs)
    tract_year = 2020 if (year or 0) >= 2020 else 2010
    vintage = f"ACS {year - 4}-{year} 5-year" if year else "ACS 5-year (year not stated)"
    entries: list[dict[str, Any]] = []
    for m in used:
        source = (f"U.S. Census Bureau, American Community Survey 5-year, table {m.table} "
                  "(Census Data API)")
        formula = (f"numerator {m.numerator_text}; denominator {m.denominator_text}"
                   + ("; reported as 100 minus the share" if m.complement else "")
                   if m.denominator else f"estimate {m.numerator_text}")
        entries.append({
            "name": m.name, "meaning": f"{m.meaning} ({formula}). {ECOLOGICAL_CAUTION}",
            "source": source, "vintage": vintage, "geography": tract_geography(tract_year),
            "unit": m.unit, "numerator": m.numerator_text, "denominator": m.denominator_text,
            "variables": [*m.variables, *([f"{v[:-1]}M" for v in m.variables]
                                          if m.name in with_moe else [])],
            "moe": MOE_HANDLING if m.name in with_moe else "no margins of error in the input",
        })
        if m.name in with_moe:
            entries.append({
                "name": f"{m.name}_unreliable",
                "meaning": f"True when {m.name} has a coefficient of variation above "
                           f"{CV_UNRELIABLE} (its margin of error is large for its size: use with "
                           "caution); null when the estimate is missing. " + MOE_HANDLING,
                "source": source, "vintage": vintage, "geography": tract_geography(tract_year),
                "unit": "boolean",
            })
    return out, entries


def _acs_moe(var: str) -> pl.Expr:
    """A margin of error: -555555555 (controlled, no sampling error) is 0; other codes null."""
    value = pl.col(var).cast(pl.Float64, strict=False)
    return (pl.when(value == -555_555_555).then(0.0)
            .when(value > ACS_SENTINEL_MAX).then(value))


def _acs_measure(m: AcsMeasure) -> tuple[pl.Expr, pl.Expr]:
    """The measure and its 90% margin of error (ACS handbook formulas for sums and shares)."""
    total = pl.sum_horizontal([_acs_value(v) for v in m.numerators])
    known = pl.all_horizontal([_acs_value(v).is_not_null() for v in m.numerators])
    moe_num = pl.sum_horizontal([_acs_moe(f"{v[:-1]}M") ** 2 for v in m.numerators]).sqrt()
    moe_num = pl.when(pl.all_horizontal([_acs_moe(f"{v[:-1]}M").is_not_null()
                                         for v in m.numerators])).then(moe_num)
    if m.denominator is None:
        return pl.when(known).then(total), moe_num
    den_vars = (m.denominator, *m.excluded)
    den = _acs_value(m.denominator) - pl.sum_horizontal([_acs_value(v) for v in m.excluded]) \
        if m.excluded else _acs_value(m.denominator)
    den_known = pl.all_horizontal([_acs_value(v).is_not_null() for v in den_vars])
    moe_den = pl.sum_horizontal([_acs_moe(f"{v[:-1]}M") ** 2 for v in den_vars]).sqrt()
    moe_den = pl.when(pl.all_horizontal([_acs_moe(f"{v[:-1]}M").is_not_null()
                                         for v in den_vars])).then(moe_den)
    p = total / den
    under = moe_num**2 - p**2 * moe_den**2
    moe_p = pl.when(under >= 0).then(under.sqrt()).otherwise(
        (moe_num**2 + p**2 * moe_den**2).sqrt()) / den
    share = 100.0 * (1.0 - p if m.complement else p)
    ok = known & den_known & (den > 0)
    return pl.when(ok).then(share), pl.when(ok).then(100.0 * moe_p)
