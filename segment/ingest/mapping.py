"""Mapping files: any column layout onto the canonical one, as configuration, not code.

A mapping YAML (validated with :func:`segment.config.validate`; unknown keys are errors
with their file and line)::

    version: 1
    source: epic                # optional: the source-system name (default: file stem)
    patients:                   # used for files that carry the patients' source columns
      columns: {PAT_ID: patient_id, PAT_FIRST_NAME: first_name, BIRTH_DATE: birth_date}
      date_formats: {birth_date: "%m/%d/%Y"}
      values: {sex: {Female: F, Male: M}}
      constants: {language: en}
    events:                     # optional, same keys, for the events file
      columns: {...}

A file is a patients file when it has every source column mapped to ``patient_id`` and
``birth_date`` in ``patients.columns``, an events file when it has those of ``events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as AbcMapping
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from segment.config import load_yaml, validate
from segment.errors import ConfigError

#: raw canonical columns a patients table may carry (before normalization)
PATIENT_INPUT_COLUMNS = (
    "patient_id", "first_name", "last_name", "birth_date", "sex", "address_line1",
    "address_line2", "city", "state", "zip5", "email", "phone_e164", "phone_type", "language",
    "race", "ethnicity", "email_consent", "sms_consent", "do_not_contact", "deceased_date",
    "updated_at", "source_lat", "source_lon",
)
EVENT_INPUT_COLUMNS = (
    "patient_id", "event_type", "code_system", "code", "event_date", "value", "unit",
    "event_end", "value_code", "encounter_class", "discharge_disposition",
)
PATIENT_REQUIRED = ("patient_id", "birth_date")
EVENT_REQUIRED = ("patient_id", "event_type", "code_system", "code", "event_date")
DATE_COLUMNS = ("birth_date", "deceased_date", "updated_at", "event_date", "event_end")

PatientColumn = Literal[
    "patient_id", "first_name", "last_name", "birth_date", "sex", "address_line1",
    "address_line2", "city", "state", "zip5", "email", "phone_e164", "phone_type", "language",
    "race", "ethnicity", "email_consent", "sms_consent", "do_not_contact", "deceased_date",
    "updated_at", "source_lat", "source_lon",
]
EventColumn = Literal[
    "patient_id", "event_type", "code_system", "code", "event_date", "value", "unit", "event_end",
    "value_code", "encounter_class", "discharge_disposition",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientTable(_Strict):
    """How one patients layout maps onto the canonical columns."""

    columns: dict[str, PatientColumn]
    date_formats: dict[Literal["birth_date", "deceased_date", "updated_at"], str] = Field(
        default_factory=dict
    )
    values: dict[PatientColumn, dict[str, str]] = Field(default_factory=dict)
    constants: dict[PatientColumn, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source_per_target(self) -> PatientTable:
        _check_targets(self.columns, self.constants)
        return self


class EventTable(_Strict):
    """How one events layout maps onto the canonical columns."""

    columns: dict[str, EventColumn]
    date_formats: dict[Literal["event_date", "event_end"], str] = Field(default_factory=dict)
    values: dict[EventColumn, dict[str, str]] = Field(default_factory=dict)
    constants: dict[EventColumn, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source_per_target(self) -> EventTable:
        _check_targets(self.columns, self.constants)
        return self


def _check_targets(columns: AbcMapping[str, str], constants: Iterable[str]) -> None:
    seen: dict[str, str] = {}
    for src, target in columns.items():
        if target in seen:
            raise ValueError(f"columns `{seen[target]}` and `{src}` both map to `{target}`")
        seen[target] = src
    for target in constants:
        if target in seen:
            raise ValueError(f"`{target}` is both mapped from column `{seen[target]}` and a constant")


class Mapping(_Strict):
    """A validated mapping file."""

    version: Literal[1]
    source: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    patients: PatientTable | None = None
    events: EventTable | None = None
    path: Path | None = Field(default=None, exclude=True)

    def table_for(self, header: list[str]) -> tuple[str, PatientTable | EventTable] | None:
        """Which table of the mapping a file with ``header`` is (patients or events)."""
        cols = set(header)
        for kind, table, required in (
            ("events", self.events, EVENT_REQUIRED),
            ("patients", self.patients, PATIENT_REQUIRED),
        ):
            if table is None:
                continue
            ids = [src for src, tgt in table.columns.items() if tgt in required[:1]]
            if ids and all(i in cols for i in ids):
                # the id alone is ambiguous: prefer the table whose other columns are present
                mapped = [src for src, tgt in table.columns.items() if tgt in required]
                if all(m in cols for m in mapped):
                    return kind, table
        return None


def load_mapping(path: str | Path) -> Mapping:
    """Load and validate a mapping file (errors carry file, line, key and valid options)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("mapping file not found", path=path)
    raw = load_yaml(path)
    mapping = validate(Mapping, raw, path)
    if mapping.patients is None and mapping.events is None:
        raise ConfigError("a mapping needs a `patients` or an `events` section", path=path, line=1)
    return mapping.model_copy(update={"path": path})


def apply_table(frame: pl.LazyFrame, table: PatientTable | EventTable, header: list[str]) -> pl.LazyFrame:
    """Rename mapped columns, recode values, add constants; drop unmapped source columns.

    Keeps ``_row``. Value maps are applied to the trimmed text; values not in the map pass
    through unchanged (the normalizers judge them).
    """
    exprs = [pl.col("_row")]
    for src, target in table.columns.items():
        if src not in header:
            continue
        expr = pl.col(src).cast(pl.String)
        if target in table.values:
            vmap = table.values[target]  # type: ignore[index]
            expr = expr.str.strip_chars().replace(vmap)
        exprs.append(expr.alias(target))
    for target, value in table.constants.items():
        exprs.append(pl.lit(str(value), dtype=pl.String).alias(target))
    return frame.select(exprs)
