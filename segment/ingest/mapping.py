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
      join:                     # optional: columns from a second file, by key (left join)
        file: addresses.csv     # beside the data file (or an absolute path)
        on: {ADDR_ID: ADDR_ID}  # this file's column -> the joined file's column
        columns: {LINE1: address_line1, ZIP: zip5}
    events:                     # one table (as above), or a list of tables
      - name: diagnoses         # optional: names the table in messages
        files: ["*_dx.csv"]     # optional: file-name patterns (case ignored)
        columns: {PAT_ID: patient_id, DX: code, DX_DATE: event_date}
        constants: {event_type: condition, code_system: ICD10CM}
      - name: labs
        files: ["*_labs.csv"]
        columns: {PAT_ID: patient_id, LOINC: code, RESULT_DATE: event_date, RESULT: value}
        constants: {event_type: observation, code_system: LOINC}

Which table a file is: a table with ``files`` patterns only takes files whose name
matches one; among the tables whose required source columns (those mapped to
``patient_id``, ``birth_date``; or ``patient_id``, ``event_type``, ``code_system``,
``code``, ``event_date``) are all in the file's header, a table matched by name beats one
matched by header alone, then the table with more of its mapped columns in the header
wins, then events beat patients (as before); a remaining tie is an error asking for
``files`` patterns. A file named by a ``join`` that is no table of its own is read only
through the join (it is a lookup, not data).

A join is a left join on text keys (surrounding blanks ignored), one level deep: every
row of the data file is kept; a key missing from the joined file leaves the joined
columns empty (reported per row); a key repeated in the joined file uses its first row
(the repeats are counted as skipped). ``values`` and ``date_formats`` apply to joined
columns like to any other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from collections.abc import Mapping as AbcMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from segment.config import LineDict, LineList, load_yaml, validate
from segment.errors import ConfigError

#: raw canonical columns a patients table may carry (before normalization)
PATIENT_INPUT_COLUMNS = (
    "patient_id", "first_name", "last_name", "birth_date", "sex", "address_line1",
    "address_line2", "city", "state", "zip5", "email", "phone_e164", "phone_type", "language",
    "preferred_channel", "race", "ethnicity", "email_consent", "sms_consent", "do_not_contact", "deceased_date",
    "updated_at", "source_lat", "source_lon", "ssn_last4", "enterprise_id",
)
EVENT_INPUT_COLUMNS = (
    "patient_id", "event_type", "code_system", "code", "event_date", "value", "unit",
    "event_end", "value_code", "encounter_class", "discharge_disposition",
)
#: event columns with few distinct texts, read from a canonical CSV file as Categorical
#: directly (no string per row; see segment.ingest.events). Not the patient id: with a
#: million distinct ids, a text read then one cast costs less than the reader's inserts
EVENT_REPEATED = (
    "event_type", "code_system", "code", "event_date", "value", "unit",
    "event_end", "value_code", "encounter_class", "discharge_disposition",
)
PATIENT_REQUIRED = ("patient_id", "birth_date")
EVENT_REQUIRED = ("patient_id", "event_type", "code_system", "code", "event_date")
#: prefix of a joined file's columns inside a data frame, before :func:`apply_table` renames them
JOINED = "_joined:"

PatientColumn = Literal[
    "patient_id", "first_name", "last_name", "birth_date", "sex", "address_line1",
    "address_line2", "city", "state", "zip5", "email", "phone_e164", "phone_type", "language",
    "preferred_channel", "race", "ethnicity", "email_consent", "sms_consent", "do_not_contact", "deceased_date",
    "updated_at", "source_lat", "source_lon", "ssn_last4", "enterprise_id",
]
EventColumn = Literal[
    "patient_id", "event_type", "code_system", "code", "event_date", "value", "unit", "event_end",
    "value_code", "encounter_class", "discharge_disposition",
]
Kind = Literal["patients", "events"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Join(_Strict):
    file: str = Field(min_length=1)
    on: dict[str, str] = Field(min_length=1)
    if TYPE_CHECKING:
        columns: AbcMapping[str, str]

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``on:`` key as the boolean true: take it back as ``on``."""
        if isinstance(value, dict) and "on" not in value:
            for key in (True, "True"):
                if key in value:
                    return {("on" if k == key else k): v for k, v in value.items()}
        return value


class PatientJoin(_Join):
    """Patient columns taken from a second file by key."""

    columns: dict[str, PatientColumn] = Field(min_length=1)


class EventJoin(_Join):
    """Event columns taken from a second file by key."""

    columns: dict[str, EventColumn] = Field(min_length=1)


def _one_or_many(value: Any) -> Any:
    """A single string (or table) where a list is expected becomes a one-item list."""
    if value is None:
        return []
    return [value] if isinstance(value, str | dict) else value


class _Table(_Strict):
    name: str | None = Field(default=None, min_length=1)
    files: list[str] = Field(default_factory=list)

    if TYPE_CHECKING:  # the fields of both subclasses, as the methods below read them
        columns: AbcMapping[str, str]
        constants: AbcMapping[Any, str]
        join: _Join | None

    @field_validator("files", mode="before")
    @classmethod
    def _files_list(cls, value: Any) -> Any:
        return _one_or_many(value)

    @model_validator(mode="after")
    def _one_source_per_target(self) -> Self:
        _check_targets(self.all_columns(), self.constants)
        return self

    def all_columns(self) -> dict[str, str]:
        """Source column -> canonical column, the file's own and the joined file's."""
        own = dict(self.columns)
        if self.join is not None:
            own |= {f"{JOINED}{src}": tgt for src, tgt in self.join.columns.items()}
        return own

    def provides(self) -> set[str]:
        """Canonical columns this table fills (mapped, joined or constant)."""
        return set(self.all_columns().values()) | set(self.constants)

    def matches_name(self, name: str) -> bool:
        """True when the file name matches one of ``files`` (case ignored)."""
        return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in self.files)

    def key_columns(self, required: Iterable[str]) -> list[str]:
        """The file's own source columns mapped to a required canonical column."""
        wanted = set(required)
        return [src for src, tgt in self.columns.items() if tgt in wanted]


class PatientTable(_Table):
    """How one patients layout maps onto the canonical columns."""

    columns: dict[str, PatientColumn]
    date_formats: dict[Literal["birth_date", "deceased_date", "updated_at"], str] = Field(
        default_factory=dict
    )
    values: dict[PatientColumn, dict[str, str]] = Field(default_factory=dict)
    constants: dict[PatientColumn, str] = Field(default_factory=dict)
    join: PatientJoin | None = None


class EventTable(_Table):
    """How one events layout maps onto the canonical columns."""

    columns: dict[str, EventColumn]
    date_formats: dict[Literal["event_date", "event_end"], str] = Field(default_factory=dict)
    values: dict[EventColumn, dict[str, str]] = Field(default_factory=dict)
    constants: dict[EventColumn, str] = Field(default_factory=dict)
    join: EventJoin | None = None


Table = PatientTable | EventTable


def _shown(src: str) -> str:
    return f"join column `{src.removeprefix(JOINED)}`" if src.startswith(JOINED) else f"column `{src}`"


def _check_targets(columns: AbcMapping[str, str], constants: Iterable[str]) -> None:
    seen: dict[str, str] = {}
    for src, target in columns.items():
        if target in seen:
            raise ValueError(f"{_shown(seen[target])} and {_shown(src)} both map to `{target}`")
        seen[target] = src
    for target in constants:
        if target in seen:
            raise ValueError(f"`{target}` is both mapped from {_shown(seen[target])} and a constant")


class Mapping(_Strict):
    """A validated mapping file."""

    version: Literal[1]
    source: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    patients: PatientTable | None = None
    events: list[EventTable] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("events", mode="before")
    @classmethod
    def _events_list(cls, value: Any) -> Any:
        return _one_or_many(value)

    def tables(self) -> Iterator[tuple[Kind, Table, str]]:
        """Every table with its kind and its label for messages (``events[1] (labs)``)."""
        if self.patients is not None:
            yield "patients", self.patients, _label("patients", self.patients)
        many = len(self.events) > 1
        for i, table in enumerate(self.events):
            yield "events", table, _label(f"events[{i}]" if many else "events", table)

    def tables_for(self, header: list[str], name: str | None = None) -> list[tuple[Kind, Table, str]]:
        """The best-fitting tables for a file (several only when they tie; see the module doc)."""
        cols = set(header)
        scored = []
        for kind, table, label in self.tables():
            by_name = bool(table.files) and name is not None and table.matches_name(name)
            if table.files and name is not None and not by_name:
                continue
            required = EVENT_REQUIRED if kind == "events" else PATIENT_REQUIRED
            keys = table.key_columns(required)
            ids = table.key_columns(required[:1])
            if not ids or not all(k in cols for k in keys):
                continue
            present = sum(src in cols for src in table.columns)
            scored.append(((by_name, present, kind == "events"), (kind, table, label)))
        if not scored:
            return []
        best = max(score for score, _ in scored)
        return [found for score, found in scored if score == best]

    def table_for(self, header: list[str], name: str | None = None) -> tuple[Kind, Table] | None:
        """The table a file with ``header`` (and file ``name``) is, or None."""
        found = self.tables_for(header, name)
        return (found[0][0], found[0][1]) if found else None

    def is_join_file(self, path: Path) -> bool:
        """True when some table's ``join`` names this file (by file name, case ignored)."""
        return any(
            table.join is not None and Path(table.join.file).name.lower() == path.name.lower()
            for _, table, _ in self.tables()
        )


def _label(key: str, table: Table) -> str:
    return f"{key} ({table.name})" if table.name else key


def load_mapping(path: str | Path) -> Mapping:
    """Load and validate a mapping file (errors carry file, line, key and valid options)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("mapping file not found", path=path)
    raw = load_yaml(path)
    _fix_on_keys(raw)
    mapping = validate(Mapping, raw, path)
    if mapping.patients is None and not mapping.events:
        raise ConfigError("a mapping needs a `patients` or an `events` section", path=path, line=1)
    _check_tables(mapping, raw, path)
    return mapping.model_copy(update={"path": path})


def _fix_on_keys(raw: Any) -> None:
    """Rename a ``join``'s ``on`` key that YAML read as true back to ``on``, keeping its line."""
    if not isinstance(raw, LineDict):
        return
    events = raw.get("events")
    tables = [raw.get("patients"), *(events if isinstance(events, list) else [events])]
    for table in tables:
        join = table.get("join") if isinstance(table, LineDict) else None
        if isinstance(join, LineDict) and "True" in join and "on" not in join:
            line = join.key_lines.pop("True", join.start_line)
            items = [("on" if k == "True" else k, v) for k, v in join.items()]
            join.clear()
            join.update(items)
            join.key_lines["on"] = line


def _table_line(raw: Any, kind: str, index: int) -> int | None:
    """The line of table ``index`` of ``kind`` in the raw YAML (the section's line as a fallback)."""
    if not isinstance(raw, LineDict):
        return None
    node = raw.get(kind)
    if isinstance(node, LineList) and 0 <= index < len(node.item_lines):
        return node.item_lines[index]
    return raw.line_of(kind)


def _check_tables(mapping: Mapping, raw: Any, path: Path) -> None:
    """Cross-table checks: required columns provided, names unique, tables told apart."""
    names: dict[str, str] = {}
    signatures: dict[tuple[str, frozenset[str]], str] = {}
    index = {"patients": 0, "events": 0}
    for kind, table, label in mapping.tables():
        i = index[kind]
        index[kind] += 1
        line = _table_line(raw, kind, i)
        key = label.split(" ")[0]
        required = EVENT_REQUIRED if kind == "events" else PATIENT_REQUIRED
        missing = [c for c in required if c not in table.provides()]
        if missing:
            raise ConfigError(
                f"key `{key}`: nothing provides `{missing[0]}` (found: "
                + (", ".join(sorted(table.provides())) or "no columns")
                + f"); {'an events' if kind == 'events' else 'a patients'} table needs " + ", ".join(required)
                + " from `columns`, `join.columns` or `constants`",
                path=path, line=line, key=key,
            )
        if not table.key_columns(required[:1]):
            raise ConfigError(
                f"key `{key}.columns`: no column of the file itself maps to `patient_id` "
                "(a joined column cannot tell which file a row is)",
                path=path, line=line, key=f"{key}.columns",
            )
        if table.name is not None:
            if table.name in names:
                raise ConfigError(
                    f"key `{key}.name`: found {table.name!r}, already the name of `{names[table.name]}`; "
                    "table names must be unique",
                    path=path, line=line, key=f"{key}.name",
                )
            names[table.name] = key
        if not table.files:
            signature = (kind, frozenset(table.columns))
            if signature in signatures:
                raise ConfigError(
                    f"key `{key}`: found the same columns as `{signatures[signature]}`, so no file can be "
                    "told apart; give one of them `files:` patterns (e.g. files: [\"*_labs.csv\"])",
                    path=path, line=line, key=key,
                )
            signatures[signature] = key


def apply_table(frame: pl.LazyFrame, table: Table, header: list[str]) -> pl.LazyFrame:
    """Rename mapped columns, recode values, add constants; drop unmapped source columns.

    Keeps ``_row``. Value maps are applied to the trimmed text; values not in the map pass
    through unchanged (the normalizers judge them). Joined columns are read from
    ``frame``'s ``_joined:<column>`` columns (see :func:`segment.ingest.readers.canonical.join_lookup`).
    """
    have = set(header)
    if table.join is not None:  # the joined columns the joined file really had
        have |= {c for c in frame.collect_schema().names() if c.startswith(JOINED)}
    exprs = [pl.col("_row")]
    for src, target in table.all_columns().items():
        if src not in have:
            continue
        expr = pl.col(src).cast(pl.String)
        if target in table.values:
            vmap = table.values[target]  # type: ignore[index]
            expr = expr.str.strip_chars().replace(vmap)
        exprs.append(expr.alias(target))
    for target, value in table.constants.items():
        exprs.append(pl.lit(str(value), dtype=pl.String).alias(target))
    return frame.select(exprs)
