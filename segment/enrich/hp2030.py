"""Healthy People 2030 objectives and the tract indicators that approximate them.

``reference_data/hp2030_objectives.csv`` holds the objectives (id, title, domain,
baseline, target, unit, direction, source URL); ``reference_data/hp2030_indicator_map.yaml``
says declaratively which indicator column measures which objective and how its value is
put into the objective's unit. For each mapped objective a patient gets

* ``hp2030_<id>_gap``: the tract's value minus the target for an objective to *decrease*,
  the target minus the tract's value for one to *increase*, so a positive gap always
  means "worse than the target", in the objective's unit (percentage points);
* ``hp2030_<id>_flag``: the gap is above zero (null when the tract value is unknown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field

from segment.config import LineDict, load_yaml, validate
from segment.errors import ConfigError, ReferenceDataError, invalid_value
from segment.models import FrozenModel
from segment.reference.indicators import THEMED_COLUMNS
from segment.resources import reference_data_dir

#: the bundled tables, in the shipped ``reference_data/`` folder
OBJECTIVES_FILE = "hp2030_objectives.csv"
MAP_FILE = "hp2030_indicator_map.yaml"


class Direction(StrEnum):
    """Whether an objective's target is to increase or decrease its measure."""

    INCREASE = "increase"
    DECREASE = "decrease"


class Transform(StrEnum):
    """How an indicator value becomes the objective's measure."""

    IDENTITY = "identity"
    COMPLEMENT = "complement"  # 100 - value


@dataclass(frozen=True)
class Objective:
    """One HP2030 objective."""

    id: str
    title: str
    domain: str
    baseline: float | None
    baseline_year: str
    target: float
    unit: str
    direction: Direction
    data_source: str
    source_url: str
    #: the most recent national value ODPHP publishes for the objective, its year and the
    #: progress status (None / "" when the page gives none)
    latest_value: float | None = None
    latest_year: str = ""
    progress: str = ""

    @property
    def slug(self) -> str:
        """The id made column-safe: ``HC/HIT-05`` -> ``hc_hit_05``."""
        return column_slug(self.id)


def column_slug(objective_id: str) -> str:
    """Lowercase, with runs of anything but letters and digits turned into one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", objective_id.lower()).strip("_")


def gap_column(objective_id: str) -> str:
    """``hp2030_<id>_gap``."""
    return f"hp2030_{column_slug(objective_id)}_gap"


def flag_column(objective_id: str) -> str:
    """``hp2030_<id>_flag``."""
    return f"hp2030_{column_slug(objective_id)}_flag"


class _MapEntry(FrozenModel):
    objective: str
    indicators: list[str] = Field(min_length=1)
    transform: Transform
    note: str


class _MapFile(FrozenModel):
    version: Literal[1]
    objectives: list[_MapEntry]


@dataclass(frozen=True)
class Mapping:
    """An objective, the indicators that can measure it (in preference order), the transform."""

    objective: Objective
    indicators: tuple[str, ...]
    transform: Transform
    note: str

    def value(self, column: str) -> pl.Expr:
        """The indicator column in the objective's unit."""
        if self.transform is Transform.COMPLEMENT:
            return 100.0 - pl.col(column).cast(pl.Float64)
        return pl.col(column).cast(pl.Float64)

    def gap(self, column: str) -> pl.Expr:
        """Signed distance from the target; positive = worse than the target."""
        target = self.objective.target
        value = self.value(column)
        return value - target if self.objective.direction is Direction.DECREASE else target - value


def load_objectives(path: Path | None = None) -> dict[str, Objective]:
    """Read the objectives table; a malformed table is a :class:`ReferenceDataError`."""
    path = path or reference_data_dir() / OBJECTIVES_FILE
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.ComputeError) as exc:
        raise ReferenceDataError(f"cannot read HP2030 objectives ({exc})", path=path) from exc
    needed = ["id", "title", "domain", "baseline", "baseline_year", "target", "unit",
              "direction", "data_source", "source_url"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ReferenceDataError(f"HP2030 objectives lack columns {missing}", path=path)
    out: dict[str, Objective] = {}
    for line, row in enumerate(frame.iter_rows(named=True), start=2):  # a small bundled table
        try:
            direction = Direction(row["direction"])
            target = float(row["target"])
        except (TypeError, ValueError) as exc:
            raise ReferenceDataError(
                f"objective {row['id']}: bad direction or target", path=path, line=line
            ) from exc
        baseline = row["baseline"]
        out[row["id"]] = Objective(
            id=row["id"], title=row["title"], domain=row["domain"],
            baseline=float(baseline) if baseline not in (None, "") else None,
            baseline_year=row["baseline_year"] or "", target=target, unit=row["unit"],
            direction=direction, data_source=row["data_source"] or "",
            source_url=row["source_url"] or "",
            latest_value=float(str(row["latest_value"])) if row.get("latest_value") else None,
            latest_year=row.get("latest_year") or "", progress=row.get("progress") or "",
        )
    return out


def load_mappings(
    path: Path | None = None, objectives: dict[str, Objective] | None = None
) -> list[Mapping]:
    """Read and check the indicator -> objective map (located errors, unknown keys refused)."""
    path = path or reference_data_dir() / MAP_FILE
    objectives = objectives if objectives is not None else load_objectives()
    raw = load_yaml(path)
    model = validate(_MapFile, raw, path)
    items = raw.get("objectives") if isinstance(raw, LineDict) else None
    out: list[Mapping] = []
    seen: set[str] = set()
    for i, entry in enumerate(model.objectives):
        node = items[i] if items is not None and i < len(items) else None
        line_of = node.line_of if isinstance(node, LineDict) else (lambda key=None: None)
        if entry.objective not in objectives:
            raise invalid_value("objective", entry.objective, sorted(objectives), path=path,
                                line=line_of("objective"))
        if entry.objective in seen:
            raise ConfigError(f"objective {entry.objective} is mapped twice", path=path,
                              line=line_of("objective"))
        seen.add(entry.objective)
        for name in entry.indicators:
            if name not in THEMED_COLUMNS:
                raise invalid_value("indicators", name, sorted(THEMED_COLUMNS), path=path,
                                    line=line_of("indicators"))
            unit = THEMED_COLUMNS[name].unit
            if objectives[entry.objective].unit.startswith("percent") and unit != "percent":
                raise ConfigError(
                    f"indicator {name} is in {unit!r} but objective {entry.objective} is a "
                    "percentage", path=path, line=line_of("indicators"),
                )
        out.append(Mapping(objectives[entry.objective], tuple(entry.indicators),
                           entry.transform, " ".join(entry.note.split())))
    return out


def resolve(mappings: list[Mapping], available: set[str]) -> list[tuple[Mapping, str]]:
    """Each mapping with the first of its indicators that ``available`` holds."""
    out = []
    for m in mappings:
        column = next((c for c in m.indicators if c in available), None)
        if column is not None:
            out.append((m, column))
    return out


def hp2030_exprs(resolved: list[tuple[Mapping, str]]) -> list[pl.Expr]:
    """Gap and flag expressions for every resolved mapping."""
    exprs: list[pl.Expr] = []
    for m, column in resolved:
        gap = m.gap(column)
        exprs.append(gap.alias(gap_column(m.objective.id)))
        exprs.append((gap > 0).alias(flag_column(m.objective.id)))
    return exprs


def hp2030_objectives_rows(
    mappings: list[Mapping] | None = None, objectives: dict[str, Objective] | None = None
) -> list[dict[str, Any]]:
    """One row per objective, with the indicators that map to it (for `reference list`)."""
    objectives = objectives if objectives is not None else load_objectives()
    mappings = mappings if mappings is not None else load_mappings(objectives=objectives)
    by_id = {m.objective.id: m for m in mappings}
    rows = []
    for obj in objectives.values():
        m = by_id.get(obj.id)
        rows.append({
            "id": obj.id,
            "title": obj.title,
            "domain": obj.domain,
            "baseline": obj.baseline,
            "baseline_year": obj.baseline_year,
            "target": obj.target,
            "unit": obj.unit,
            "direction": obj.direction.value,
            "latest": f"{obj.latest_value:g} ({obj.latest_year})" if obj.latest_value is not None
            else "",
            "progress": obj.progress,
            "indicators": ", ".join(m.indicators) if m else "",
            "columns": f"{gap_column(obj.id)}, {flag_column(obj.id)}" if m else "",
            "source_url": obj.source_url,
        })
    return rows


def hp2030_mapping_rows(mappings: list[Mapping] | None = None) -> list[dict[str, Any]]:
    """One row per mapped objective: indicator(s), transform, target, direction, caveat."""
    mappings = mappings if mappings is not None else load_mappings()
    return [
        {
            "objective": m.objective.id,
            "indicators": ", ".join(m.indicators),
            "transform": m.transform.value,
            "target": m.objective.target,
            "direction": m.objective.direction.value,
            "gap_column": gap_column(m.objective.id),
            "flag_column": flag_column(m.objective.id),
            "note": m.note,
        }
        for m in mappings
    ]


def dictionary_entries(
    resolved: list[tuple[Mapping, str]], indicator_entries: dict[str, dict[str, Any]],
    caution: str,
) -> list[dict[str, Any]]:
    """Data-dictionary entries for the gap and flag columns."""
    out: list[dict[str, Any]] = []
    for m, column in resolved:
        obj = m.objective
        ind = indicator_entries.get(column, {})
        how = "100 minus " if m.transform is Transform.COMPLEMENT else ""
        sign = ("value minus target" if obj.direction is Direction.DECREASE
                else "target minus value")
        common = {
            "source": f"Healthy People 2030 (ODPHP), {obj.id}: {obj.source_url}; indicator: "
            f"{ind.get('source', column)}",
            "vintage": f"HP2030 target {obj.target:g} (baseline {obj.baseline_year}); "
            f"indicator {ind.get('vintage', 'unknown')}",
            "geography": ind.get("geography", "census tract"),
        }
        survey = obj.data_source or "a national survey"
        latest = (f"; latest national value {obj.latest_value:g} in {obj.latest_year}"
                  + (f", {obj.progress.lower()}" if obj.progress else "")
                  if obj.latest_value is not None else "")
        comparison = (
            f"compares {how}{column} ({ind.get('source', 'reference pack')}, "
            f"{ind.get('vintage', 'vintage not stated')}; one {ind.get('geography', 'census tract')}"
            f") with the national HP2030 target for {obj.id} of {obj.target:g} {obj.unit} "
            f"(measured on {survey}; baseline {obj.baseline if obj.baseline is not None else '?'}"
            f" in {obj.baseline_year or '?'}{latest}). An approximation: a tract's estimate is not "
            "the survey's measure of the same population"
        )
        common["comparison"] = comparison
        approx = (
            f"Approximation: a tract ACS estimate compared with a national survey target "
            f"({survey}). {m.note} {caution}"
        )
        out.append({
            "name": gap_column(obj.id),
            "meaning": f"Gap to the HP2030 target of {obj.id} ({obj.title}; target "
            f"{obj.target:g}, {obj.direction.value}), computed as {how}{column} in the "
            f"objective's unit, {sign}: positive = worse than the target. {approx}",
            "unit": f"percentage points ({obj.unit})" if obj.unit.startswith("percent")
            else obj.unit,
            **common,
        })
        out.append({
            "name": flag_column(obj.id),
            "meaning": f"True when the tract is worse than the HP2030 target of {obj.id} "
            f"({gap_column(obj.id)} > 0); null when the tract value is unknown. {approx}",
            "unit": "boolean",
            **common,
        })
    return out
