"""The rule language as frozen, typed objects: rules, criteria, windows, value sets.

A rule file is validated into these models in the three steps of CONVENTIONS item 4:
raw YAML (with lines) -> these frozen pydantic models -> cross checks in
:mod:`segment.rules.loader`. Closed vocabularies are ``StrEnum``s.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from segment.models import FrozenModel
from segment.rules.registry import COLUMN_OPERATIONS, OPERATIONS, ValueKind, resolve_op
from segment.schema import CodeSystem, EventType, Sex, enum_dtype


class Kind(StrEnum):
    """What a rule decides: a screening gap, or a risk flag."""

    SCREENING = "screening"
    RISK = "risk"


class Status(StrEnum):
    """The outcome of one rule for one patient (the ``status`` column)."""

    DUE = "due"
    NOT_DUE = "not_due"
    EXCLUDED = "excluded"
    NOT_IN_POPULATION = "not_in_population"
    UNKNOWN = "unknown"


#: the ``status`` column's dtype in ``eligibility.parquet``: the statuses, sorted so that
#: sorting the column orders it as its text
STATUS_DTYPE = enum_dtype(Status)


class AgeUnit(StrEnum):
    """Unit of an age range: completed years (default) or completed months."""

    YEARS = "years"
    MONTHS = "months"


class IfMissing(StrEnum):
    """What a column test yields when the column value is null."""

    UNKNOWN = "unknown"
    TRUE = "true"
    FALSE = "false"


class WindowKind(StrEnum):
    """The kinds of time window a criterion can use."""

    EVER = "ever"
    LOOKBACK = "lookback"
    MEASUREMENT_YEAR = "measurement year"
    SEASON = "season"
    SINCE = "since"
    YEARS_BEFORE = "measurement year and years before"
    FROM_DATE = "from a month-day years before the measurement year"


WINDOW_FORMS = (
    "ever",
    "<n> days|weeks|months|years",
    "measurement year",
    "season from MM-DD",
    "since last <value set>",
    "measurement year and <n> years before",
    "from MM-DD <n> years before measurement year",
)
_LOOKBACK = re.compile(r"^(\d{1,4})\s+(day|week|month|year)s?$")
_SEASON = re.compile(r"^season\s+from\s+(\d{2})-(\d{2})$")
_SINCE = re.compile(r"^since\s+last\s+([a-z0-9][a-z0-9-]*)$")
_YEARS_BEFORE = re.compile(r"^measurement\s+year\s+and\s+(\d{1,2})\s+years?\s+before$")
_FROM_DATE = re.compile(r"^from\s+(\d{2})-(\d{2})\s+(\d{1,2})\s+years?\s+before\s+(?:the\s+)?measurement\s+year$")


@dataclass(frozen=True)
class Window:
    """A look-back window relative to the as-of date; parsed from ``within:`` text.

    Every window ends on the as-of date (events after it are ignored) and starts on
    :meth:`start` inclusive: ``10 years`` as of 2026-03-02 starts on 2016-03-02.
    """

    kind: WindowKind
    amount: int = 0
    unit: str = ""
    month: int = 0
    day: int = 0
    valueset: str = ""
    text: str = "ever"

    def start(self, as_of: dt.date) -> dt.date | None:
        """First day inside the window (None for ``ever`` and ``since``, which are not fixed)."""
        if self.kind is WindowKind.LOOKBACK:
            if self.unit == "day":
                return as_of - dt.timedelta(days=self.amount)
            if self.unit == "week":
                return as_of - dt.timedelta(weeks=self.amount)
            months = self.amount * (12 if self.unit == "year" else 1)
            return subtract_months(as_of, months)
        if self.kind is WindowKind.MEASUREMENT_YEAR:
            return dt.date(as_of.year, 1, 1)
        if self.kind is WindowKind.YEARS_BEFORE:
            return dt.date(as_of.year - self.amount, 1, 1)
        if self.kind is WindowKind.FROM_DATE:
            return _clamped(as_of.year - self.amount, self.month, self.day)
        if self.kind is WindowKind.SEASON:
            this_year = _clamped(as_of.year, self.month, self.day)
            return this_year if this_year <= as_of else _clamped(as_of.year - 1, self.month, self.day)
        return None

    def describe(self) -> str:
        """The window as words: ``10 years``, ``the measurement year``..."""
        if self.kind is WindowKind.LOOKBACK:
            return f"{self.amount} {self.unit}{'' if self.amount == 1 else 's'}"
        return self.text


def _clamped(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def subtract_months(day: dt.date, months: int) -> dt.date:
    """``day`` minus whole months, clamping to the month's end (2024-02-29 - 12 months = 2023-02-28)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return _clamped(year, month + 1, day.day)


def parse_window(text: str) -> Window:
    """Parse a ``within:`` value; raise ``ValueError`` naming the valid forms."""
    norm = " ".join(str(text).strip().lower().split())
    if norm == "ever":
        return Window(WindowKind.EVER, text="ever")
    if norm in {"measurement year", "calendar year"}:
        return Window(WindowKind.MEASUREMENT_YEAR, text="measurement year")
    if m := _LOOKBACK.match(norm):
        amount = int(m.group(1))
        if amount < 1:
            raise ValueError("a look-back needs at least 1 unit")
        return Window(WindowKind.LOOKBACK, amount=amount, unit=m.group(2), text=norm)
    if m := _SEASON.match(norm):
        month, day = int(m.group(1)), int(m.group(2))
        try:
            dt.date(2000, month, day)
        except ValueError:
            raise ValueError("not a valid month-day") from None
        return Window(WindowKind.SEASON, month=month, day=day, text=norm)
    if m := _SINCE.match(norm):
        return Window(WindowKind.SINCE, valueset=m.group(1), text=norm)
    if m := _YEARS_BEFORE.match(norm):
        # eCQM wording: "during the measurement period or the N years prior"
        return Window(WindowKind.YEARS_BEFORE, amount=int(m.group(1)), unit="year", text=norm)
    if m := _FROM_DATE.match(norm):
        month, day = int(m.group(1)), int(m.group(2))
        try:
            dt.date(2000, month, day)
        except ValueError:
            raise ValueError("not a valid month-day") from None
        # eCQM wording: "October 1 two years prior to the measurement period"
        return Window(WindowKind.FROM_DATE, amount=int(m.group(3)), month=month, day=day, text=norm)
    raise ValueError("not a window")


def _window_field(value: Any) -> str:
    try:
        parse_window(str(value))
    except ValueError:
        raise PydanticCustomError(
            "window", "invalid window", {"expected": "; ".join(WINDOW_FORMS)}
        ) from None
    return " ".join(str(value).strip().lower().split())


class AgeAt(StrEnum):
    """The day an age is counted on."""

    AS_OF = "as of"  # the run date (USPSTF-style rules)
    MEASUREMENT_YEAR_END = "measurement year end"  # 31 December of the as-of year (eCQM, HEDIS)


class AgeRange(FrozenModel):
    """Age in completed units on the as-of date (or ``at``); both bounds inclusive."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    unit: AgeUnit = AgeUnit.YEARS
    at: AgeAt = AgeAt.AS_OF

    def on(self, as_of: dt.date) -> dt.date:
        """The day the age is counted on for a run on ``as_of``."""
        return dt.date(as_of.year, 12, 31) if self.at is AgeAt.MEASUREMENT_YEAR_END else as_of

    def describe(self) -> str:
        """``45-75``, ``18 or older``, ``6 months or older``."""
        unit = "" if self.unit is AgeUnit.YEARS else " months"
        if self.min is not None and self.max is not None:
            return f"{self.min}-{self.max}{unit}"
        if self.min is not None:
            return f"{self.min}{unit} or older"
        if self.max is not None:
            return f"{self.max}{unit} or younger"
        return "any age"


class EvidenceField(StrEnum):
    """The event column a value set is matched against."""

    CODE = "code"
    DISCHARGE_DISPOSITION = "discharge_disposition"


class NoUnit(StrEnum):
    """What a result without a unit is compared as."""

    ASSUME = "assume"  # in the rule's unit (HbA1c values without a unit are in %)
    UNKNOWN = "unknown"  # cannot be compared: the criterion is unknown


def normalize_unit(text: str) -> str:
    """A unit as compared: trimmed, lower case, inner whitespace removed (``% `` = ``%``)."""
    return "".join(str(text).split()).lower()


@dataclass(frozen=True)
class ResultUnits:
    """How an event's ``value``/``unit`` become a number in the rule's unit (hashable).

    ``conversions`` are ``(normalized unit, scale, offset)``: value in the rule's unit =
    value x scale + offset. The rule's own unit is always ``(unit, 1, 0)``.
    """

    unit: str
    conversions: tuple[tuple[str, float, float], ...]
    if_no_unit: NoUnit

    @property
    def digest(self) -> str:
        """A short stable name for these conversions (part of a lookup key)."""
        text = repr((self.unit, self.conversions, self.if_no_unit.value))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Evidence:
    """One lookup among the events: a value set, matched on a field, maybe filtered.

    Its :attr:`key` names the evaluation-frame columns (``__last__<key>``, ``__end__<key>``,
    ``__value__<key>``...); a plain code lookup's key is the value set name, as before.
    """

    valueset: str
    field: EvidenceField = EvidenceField.CODE
    types: tuple[str, ...] = ()
    answer: str | None = None
    episode: bool = False
    #: only events that carry a result (``value`` or ``value_code``) count
    with_result: bool = False
    #: events after this month-day of the measurement year do not count (``until: 03-31``)
    until: tuple[int, int] | None = None
    #: the most recent event's result is read, in these units
    units: ResultUnits | None = None

    @property
    def key(self) -> str:
        """A stable name for this lookup."""
        key = self.valueset
        if self.field is not EvidenceField.CODE:
            key += f"@{self.field.value}"
        if self.types:
            key += "#" + "+".join(self.types)
        if self.answer:
            key += f"={self.answer}"
        if self.with_result:
            key += "!result"
        if self.until is not None:
            key += f"<{self.until[0]:02d}-{self.until[1]:02d}"
        if self.units is not None:
            key += f"~{self.units.digest}"
        return key

    def until_date(self, as_of: dt.date) -> dt.date | None:
        """The last day an event may fall on for a run on ``as_of`` (None: the as-of date)."""
        if self.until is None:
            return None
        return min(_clamped(as_of.year, *self.until), as_of)


class UnitConversion(FrozenModel):
    """How a result in another unit reads in the rule's unit: value x ``scale`` + ``offset``."""

    scale: float = 1.0
    offset: float = 0.0


class ResultTest(FrozenModel):
    """The most recent event's numeric result compared with a number (a registry operation).

    ``{op: le, value: 9, unit: "%"}`` holds when the most recent event of the value set (in
    the window) has a result of at most 9 %. Several events on that last day: the lowest
    result counts, and one without a result makes the day "without result" (CMS122's "Lowest
    Glycemic Status Assessment Reading on Most Recent Day", CQL sorting nulls first).
    """

    op: str
    value: float
    unit: str = ""
    #: other units accepted, with their conversion to ``unit`` (spellings of the same unit: ``{}``)
    units: dict[str, UnitConversion] = Field(default_factory=dict)
    if_no_unit: NoUnit = NoUnit.UNKNOWN

    @field_validator("op", mode="before")
    @classmethod
    def _number_op(cls, value: Any) -> str:
        name = resolve_op(str(value))
        numeric = [n for n, o in OPERATIONS.items() if o.value is ValueKind.NUMBER]
        if name is None or name not in numeric:
            raise PydanticCustomError("op", "not a numeric operation", {"expected": ", ".join(numeric)})
        return name

    @property
    def conversions(self) -> ResultUnits:
        """The hashable unit table of this test."""
        table = {normalize_unit(self.unit): (1.0, 0.0)}
        for unit, conv in self.units.items():
            table.setdefault(normalize_unit(unit), (conv.scale, conv.offset))
        return ResultUnits(
            normalize_unit(self.unit),
            tuple(sorted((u, s, o) for u, (s, o) in table.items() if u)),
            self.if_no_unit,
        )


_AGE_AT_EVENT = re.compile(r"^(\d{1,3})\s*(month|year)s?$")


def parse_age_at_event(value: int | str) -> tuple[int, bool]:
    """``30`` or ``"30 years"`` -> (30, False); ``"6 months"`` -> (6, True)."""
    if isinstance(value, int):
        return value, False
    m = _AGE_AT_EVENT.match(" ".join(str(value).strip().lower().split()))
    if m is None:
        raise ValueError("not an age")
    return int(m.group(1)), m.group(2) == "month"


def _age_at_event_field(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str):
        try:
            parse_age_at_event(value)
            return " ".join(value.strip().lower().split())
        except ValueError:
            pass
    raise PydanticCustomError(
        "age", "invalid age at event", {"expected": "a whole number of years (30), or '6 months' / '2 years'"}
    )


_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


def parse_month_day(text: str) -> tuple[int, int]:
    """``"03-31"`` -> (3, 31); ``ValueError`` for anything else."""
    m = _MONTH_DAY.match(str(text).strip())
    if m is None:
        raise ValueError("not MM-DD")
    month, day = int(m.group(1)), int(m.group(2))
    dt.date(2000, month, day)  # raises ValueError for 02-30
    return month, day


def _until_field(value: Any) -> Any:
    if value is None:
        return None
    try:
        parse_month_day(str(value))
    except ValueError:
        raise PydanticCustomError(
            "until", "invalid end of window", {"expected": "a month-day MM-DD of the measurement year, e.g. 03-31"}
        ) from None
    return str(value).strip()


class EventTest(FrozenModel):
    """True when the patient has an event from ``valueset`` inside the window."""

    valueset: str
    within: str = "ever"
    label: str | None = None
    #: the patient's age on the (most recent) event's date: 30 (years), "6 months", "2 years"
    min_age_at_event: int | str | None = None
    #: what the value set is matched against: the event's code (default), or an
    #: encounter's discharge disposition ("discharged to hospice")
    field: EvidenceField = Field(default_factory=lambda: EvidenceField.CODE)
    #: only events of these types count (``[order]`` for a ServiceRequest)
    type: list[EventType] | None = Field(default=None, min_length=1)
    #: an assessment answered: the event's coded result (``value_code``) is in this value set
    answer: str | None = None
    #: the event is a span from its date to ``event_end`` (no end: still ongoing), and it
    #: counts when the span overlaps the window, not only when it starts inside it
    episode: bool = False
    #: only events carrying a result count (CQL ``where X.value is not null``)
    with_result: bool = False
    #: the window ends on this month-day of the measurement year instead of the as-of date
    until: str | None = None
    #: the most recent event's result compared with a number (CMS122 "most recent HbA1c > 9 %")
    result: ResultTest | None = None

    _check_within = field_validator("within", mode="before")(_window_field)
    _check_age = field_validator("min_age_at_event", mode="before")(_age_at_event_field)
    _check_until = field_validator("until", mode="before")(_until_field)

    @property
    def window(self) -> Window:
        """The parsed window."""
        return parse_window(self.within)

    @property
    def age_at_event(self) -> tuple[int, bool] | None:
        """``min_age_at_event`` as (amount, in months)."""
        return None if self.min_age_at_event is None else parse_age_at_event(self.min_age_at_event)

    @property
    def evidence(self) -> Evidence:
        """What this test looks up among the events (shared by tests that look up the same)."""
        return Evidence(
            self.valueset, self.field, tuple(sorted(self.type or ())), self.answer, self.episode,
            self.with_result, parse_month_day(self.until) if self.until else None,
            self.result.conversions if self.result is not None else None,
        )


class ColumnTest(FrozenModel):
    """An operation from the registry applied to a patient or enriched column."""

    column: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    op: str
    value: Any = None
    label: str | None = None
    if_missing: IfMissing = IfMissing.UNKNOWN

    @field_validator("op", mode="before")
    @classmethod
    def _known_op(cls, value: Any) -> str:
        name = resolve_op(str(value))
        if name is None:
            raise PydanticCustomError(
                "op", "unknown operation", {"expected": ", ".join(COLUMN_OPERATIONS)}
            )
        return name


class AgeTest(FrozenModel):
    """A criterion on age (for example "66 or older at the end of the measurement year")."""

    age: AgeRange
    label: str | None = None


class AnyOf(FrozenModel):
    """True when any child is true (Kleene: unknown only if none is true and one is unknown)."""

    any: list[Criterion] = Field(min_length=1)
    label: str | None = None


class AllOf(FrozenModel):
    """True when every child is true (Kleene: false as soon as one child is false)."""

    all: list[Criterion] = Field(min_length=1)
    label: str | None = None


_TAG_KEYS = (("valueset", "event"), ("column", "column"), ("age", "age"), ("any", "any"), ("all", "all"))
_TAG_CLASSES = {"EventTest": "event", "ColumnTest": "column", "AgeTest": "age", "AnyOf": "any", "AllOf": "all"}


def _criterion_tag(value: Any) -> str | None:
    """Which kind of criterion a mapping is, from the key that names it."""
    if isinstance(value, dict):
        return next((tag for key, tag in _TAG_KEYS if key in value), None)
    return _TAG_CLASSES.get(type(value).__name__)


Criterion = Annotated[
    Annotated[EventTest, Tag("event")]
    | Annotated[ColumnTest, Tag("column")]
    | Annotated[AgeTest, Tag("age")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[AllOf, Tag("all")],
    Discriminator(
        _criterion_tag,
        custom_error_type="criterion",
        custom_error_message="a criterion needs one of the keys valueset, column, age, any, all",
    ),
]
AnyOf.model_rebuild()
AllOf.model_rebuild()


class Population(FrozenModel):
    """Who the rule applies to: age on the as-of date, sex, required conditions."""

    age: AgeRange | None = None
    sex: list[Sex] | None = Field(default=None, min_length=1)
    conditions: list[Criterion] = Field(default_factory=list)


class Due(FrozenModel):
    """A screening rule's due condition: due unless one of ``unless`` is met."""

    label: str
    unless: list[Criterion] = Field(min_length=1)


class ExampleEvent(FrozenModel):
    """One event of an example patient."""

    type: EventType
    system: CodeSystem
    code: str
    date: dt.date
    value: float | None = None
    unit: str | None = None
    end: dt.date | None = None  # event_end: abatement, period end, discharge
    answer: str | None = None  # value_code: a coded result
    discharge: str | None = None  # discharge_disposition of an encounter
    encounter_class: str | None = None

    @field_validator("code", "answer", "discharge", mode="before")
    @classmethod
    def _code_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ExamplePatient(FrozenModel):
    """An example patient: birth date, sex, deceased date and any other columns."""

    birth_date: dt.date | None = None
    sex: Sex | None = None
    deceased_date: dt.date | None = None
    columns: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class Example(FrozenModel):
    """A patient with the outcome the rule must give for them (run by ``rules test``)."""

    name: str
    as_of: dt.date
    patient: ExamplePatient = Field(default_factory=ExamplePatient)
    events: list[ExampleEvent] = Field(default_factory=list)
    expect: Status
    reason: str | None = None  # optional: text the reason must contain


class Reads(FrozenModel):
    """An area column a risk rule reads, the index it comes from and the vintages it accepts.

    ``segment rules check --reference PACK`` fails when the pack's data dictionary has no
    such column or states another vintage for it.
    """

    column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    index: str
    vintages: list[str] = Field(min_length=1)


class Rule(FrozenModel):
    """One screening or risk rule (a file in the rules folder)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: int = Field(ge=1)
    title: str
    source: str
    kind: Kind
    description: str | None = None
    notes: str | None = None
    population: Population = Field(default_factory=Population)
    exclusions: list[Criterion] = Field(default_factory=list)
    exclude_deceased: bool = True
    due: Due | None = None
    condition: Criterion | None = None
    reads: list[Reads] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)


class ValueSetFile(FrozenModel):
    """A value set in YAML: codes grouped by code system, and/or official sets it includes.

    ``include`` lists official (VSAC) value sets by OID or canonical URL, each with an
    optional ``|version``; the loaded set is the union of those and ``codes``. At least
    one of the two is required (checked by the loader, which names the file and line).
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    source: str | None = None
    description: str | None = None
    codes: dict[CodeSystem, list[str]] = Field(default_factory=dict)
    include: list[str] = Field(default_factory=list)

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: [str(c) if isinstance(c, int) and not isinstance(c, bool) else c for c in v]
                if isinstance(v, list)
                else v
                for k, v in value.items()
            }
        return value


@dataclass(frozen=True)
class ValueSet:
    """A loaded value set: name, human label and normalized (system, code) pairs.

    ``prefixes`` holds ICD-10-CM category prefixes written as ``E11*``. Official sets
    (loaded by :mod:`segment.rules.vsac`) also carry their OID, version and URL.
    """

    name: str
    title: str
    codes: frozenset[tuple[str, str]]
    prefixes: frozenset[tuple[str, str]]
    path: str
    source: str | None = None
    #: official (VSAC) sets: OID, version and canonical URL; None for local sets
    oid: str | None = None
    version: str | None = None
    url: str | None = None
    #: (code system as the file names it, code) of systems ingest does not know: kept
    #: to be counted and reported, never matched (events never carry those systems)
    unmatched: frozenset[tuple[str, str]] = frozenset()
    #: the official references a local set includes (``include:``), as written
    includes: tuple[str, ...] = ()

    def system_counts(self) -> dict[str, int]:
        """Codes (and ICD-10-CM prefixes) per canonical code system, systems sorted."""
        counts: dict[str, int] = {}
        for system, _code in (*self.codes, *self.prefixes):
            counts[system] = counts.get(system, 0) + 1
        return dict(sorted(counts.items()))

    def unmatched_counts(self) -> dict[str, int]:
        """Codes per code system unknown to ingest (these never match an event)."""
        counts: dict[str, int] = {}
        for system, _code in self.unmatched:
            counts[system] = counts.get(system, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def size(self) -> int:
        """Every code the set lists, matched or not."""
        return len(self.codes) + len(self.prefixes) + len(self.unmatched)


@dataclass(frozen=True)
class RuleSet:
    """All rules and value sets of one rules folder, validated and cross-checked."""

    rules: tuple[Rule, ...]
    valuesets: dict[str, ValueSet]
    paths: dict[str, str]

    def get(self, rule_id: str) -> Rule:
        """The rule with ``rule_id`` (KeyError when absent)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)
