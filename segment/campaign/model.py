"""The campaign file as frozen, typed objects (validated by :mod:`segment.campaign.loader`).

A campaign names the rules that select its audience, the channels in order of
preference, consent, suppression, frequency-cap and quiet-hour policies, the vendor
profile and the allow-listed fields for each channel, and where files go. Everything
here is configuration: no patient data is touched while building these objects.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from segment.models import FrozenModel
from segment.rules.model import Criterion
from segment.rules.model import Status as RuleStatus
from segment.schema import InputFormat, enum_dtype


class Channel(StrEnum):
    """Contact channels, one per patient per campaign."""

    SMS = "sms"
    EMAIL = "email"
    MAIL = "mail"
    PHONE = "phone"


class ContactStatus(StrEnum):
    """Why a patient is or is not selected, in the order the checks apply."""

    NOT_IN_AUDIENCE = "not_in_audience"
    DO_NOT_CONTACT = "do_not_contact"
    DECEASED = "deceased"
    NO_CONSENT_OR_CONTACT = "no_consent_or_contact"
    SUPPRESSED = "suppressed"
    HOLDOUT = "holdout"
    FREQUENCY_CAPPED = "frequency_capped"
    #: a journey campaign: no step is due today (waiting for the next step, completed or stopped)
    JOURNEY_WAITING = "journey_waiting"
    SELECTED = "selected"


class Arm(StrEnum):
    """A patient's arm in a campaign with a holdout (recorded in the ledger's ``arms`` table)."""

    CONTACT = "contact"
    HOLDOUT = "holdout"


#: Polars dtypes of the status-like columns a contact plan holds
CHANNEL_DTYPE = enum_dtype(Channel)
CONTACT_STATUS_DTYPE = enum_dtype(ContactStatus)
ARM_DTYPE = enum_dtype(Arm)


class SmsPhoneType(StrEnum):
    """Phone types that may receive SMS (a landline never can)."""

    MOBILE = "mobile"
    UNKNOWN = "unknown"


class SuppressionKind(StrEnum):
    """What a suppression file lists."""

    EMAIL = "email"
    PHONE = "phone"
    PATIENT_ID = "patient_id"
    OPT_OUT = "opt_out"


class Quoting(StrEnum):
    """CSV quoting styles (Polars names)."""

    NECESSARY = "necessary"
    ALWAYS = "always"
    NON_NUMERIC = "non_numeric"


class Overflow(StrEnum):
    """What to do with a value longer than a field's byte limit."""

    TRUNCATE = "truncate"
    REJECT = "reject"


class PhoneFormat(StrEnum):
    """How phones are written: ``+15555551234`` or ``15555551234`` (SFMC MobileConnect)."""

    E164 = "e164"
    DIGITS = "digits"


class HeaderStyle(StrEnum):
    """How an extra field's header is spelled: as the field, or ``_TitleCase`` (SFMC MobileConnect)."""

    FIELD = "field"
    UNDERSCORE_TITLE = "underscore_title"


class Encoding(StrEnum):
    """File encodings a profile may use."""

    UTF8 = "utf-8"
    UTF8_BOM = "utf-8-sig"


StatusSelector = RuleStatus | list[RuleStatus]

_TIME_TEXT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
VALID_TIME = "a time in quotes, 'HH:MM' from '00:00' to '23:59'"


def _local_time(value: object) -> dt.time:
    """A wall-clock time from ``'HH:MM'`` (or ``'HH:MM:SS'``); numbers are refused.

    YAML 1.1 reads an unquoted ``10:00`` as the number 600 (base 60), which pydantic would
    take as 600 seconds, 00:10: the loader marks such numbers
    (:class:`segment.config.Sexagesimal`) and this says to quote them.
    """
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    text = getattr(value, "text", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and text is not None:
        raise PydanticCustomError(
            "time_sexagesimal",
            "YAML reads an unquoted {text} as the number {number} (base 60): quote it, "
            "'{text}'; valid options are: " + VALID_TIME,
            {"text": text, "number": int(value) if float(value).is_integer() else float(value)},
        )
    if isinstance(value, str) and (m := _TIME_TEXT.match(value.strip())):
        return dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    raise PydanticCustomError("time_format", "valid options are: " + VALID_TIME)


#: a local wall-clock time in a campaign file (quiet hours, send time)
LocalTime = Annotated[dt.time, BeforeValidator(_local_time)]


class AgeBand(FrozenModel):
    """Inclusive age band in whole years as of the run date."""
    min: int | None = Field(default=None, ge=0, le=130)
    max: int | None = Field(default=None, ge=0, le=130)

    @model_validator(mode="after")
    def _ordered(self) -> AgeBand:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("age.min must not exceed age.max")
        return self


class Filters(FrozenModel):
    """Filters on patient/enriched columns applied after the rule selection."""
    age: AgeBand | None = None
    county_fips: list[str] | None = None
    state: list[str] | None = None
    language: list[str] | None = None
    zip5: list[str] | None = None
    #: any other column -> allowed values (e.g. ``need_index_quintile: [4, 5]``)
    columns: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)


class Audience(FrozenModel):
    """Rule ids and the statuses that select patients."""
    all: dict[str, StatusSelector] = Field(default_factory=dict)
    any: dict[str, StatusSelector] = Field(default_factory=dict)
    filters: Filters = Field(default_factory=Filters)

    def rule_ids(self) -> list[str]:
        """Every rule id the audience refers to, in file order."""
        return list(dict.fromkeys([*self.all, *self.any]))


class Consent(FrozenModel):
    """Consent policy beyond the fixed rules (unknown consent is never consent)."""
    sms_phone_types: list[SmsPhoneType] = Field(
        default_factory=lambda: [SmsPhoneType.MOBILE, SmsPhoneType.UNKNOWN]
    )


class SuppressionFile(FrozenModel):
    """A file of emails, phones, patient ids, or vendor opt-out replies."""
    path: Path
    kind: SuppressionKind
    #: the column holding the value (CSV with a header); default by kind, or the only column
    column: str | None = None
    #: opt_out files: the column holding the reply text (default body/message/keyword)
    reply_column: str | None = None


class FrequencyCap(FrozenModel):
    """At most ``max`` contacts per patient per channel in any ``per_days`` days."""
    per_days: int = Field(ge=1, le=3660)
    max: int = Field(ge=1)
    channels: list[Channel] | None = None


class Window(FrozenModel):
    """A local-time window in which SMS may be sent."""
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start >= self.end:
            raise ValueError("window start must be before its end")
        return self


class QuietHours(FrozenModel):
    """SMS may go out only inside ``start``-``end`` recipient local time.

    A state window only narrows the default (the intersection is used).
    """
    start: LocalTime = dt.time(8, 0)
    end: LocalTime = dt.time(21, 0)
    states: dict[str, Window] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> QuietHours:
        if self.start >= self.end:
            raise ValueError("quiet_hours start must be before its end")
        return self


class Schedule(FrozenModel):
    """When the campaign plans to send: ``send_at`` local time in ``timezone`` on the run date."""
    send_at: LocalTime = dt.time(10, 0)
    timezone: str = "America/New_York"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class Encrypt(FrozenModel):
    """OpenPGP encryption to a vendor key pinned by fingerprint."""
    recipient: str = Field(pattern=r"^[0-9A-Fa-f]{40}$")
    #: GnuPG home folder holding the vendor's public key (default: GNUPGHOME / ~/.gnupg)
    keyring: Path | None = None
    armor: bool = False


class ProfileColumn(FrozenModel):
    """One vendor column: its header and the field that fills it."""
    header: str = Field(min_length=1)
    field: str = Field(min_length=1)
    #: identifier/contact columns are always written; others only when the field is allowed
    required: bool = False
    #: a constant value instead of a field (e.g. ``subscription_state: subscribed``)
    value: str | None = None
    max_bytes: int | None = Field(default=None, ge=1)
    overflow: Overflow | None = None
    date_format: str | None = None


class Profile(FrozenModel):
    """A vendor file format: built in (``segment.campaign.profiles``) or declared in YAML."""
    base: str | None = None
    channels: list[Channel] | None = None
    columns: list[ProfileColumn] | None = None
    #: per-channel column lists (built-in multi-channel profiles)
    channel_columns: dict[Channel, list[ProfileColumn]] | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quoting: Quoting | None = None
    line_terminator: Literal["\n", "\r\n"] | None = None
    encoding: Encoding | None = None
    date_format: str | None = None
    datetime_format: str | None = None
    phone_format: PhoneFormat | None = None
    max_field_bytes: int | None = Field(default=None, ge=1)
    overflow: Overflow | None = None
    max_file_bytes: int | None = Field(default=None, ge=64)
    #: drop columns that are blank in every row (Braze: blank means "no change")
    omit_blank_columns: bool | None = None
    #: allowed fields without a profile column become extra columns named as the field
    extra_fields: bool | None = None
    extension: str | None = Field(default=None, pattern=r"^[a-z0-9]{1,8}$")
    #: how the headers of extra fields are spelled
    extra_header_style: HeaderStyle | None = None


class Vendor(FrozenModel):
    """The vendor file for one channel: profile, allow-listed fields, encryption, options."""
    profile: str = Field(min_length=1)
    fields: list[str] = Field(default_factory=list)
    encrypt: Encrypt | None = None
    #: profile-specific constants, e.g. Braze ``subscription_group_id``
    options: dict[str, str] = Field(default_factory=dict)


class BaaDeclaration(FrozenModel):
    """A campaign's statement about its business associate agreement with one vendor."""
    vendor: str = Field(min_length=1)
    signed: bool
    note: str | None = None


def _baa_list(value: object) -> object:
    return [value] if isinstance(value, dict) else value


class Source(FrozenModel):
    """An extract for ``segment run``: its path, source-system name, format and mapping."""
    path: Path
    #: the source-system name (patient ids are ``<name>:<id>``); default: see segment.ingest.detect
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    format: InputFormat | None = None
    mapping: Path | None = None


class Sftp(FrozenModel):
    """SFTP delivery settings. Secrets come from the environment or an SSH agent only."""
    password_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    key_file: Path | None = None
    key_passphrase_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    known_hosts: Path | None = None
    host_key_checking: bool = True
    use_agent: bool = True
    retries: int = Field(default=4, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)


DEFAULT_FILE_NAME = "{code}_{channel}_{vendor}_{date}_{run_id}"


class Holdout(FrozenModel):
    """A randomized holdout: ``percent`` of the eligible, contactable audience is never sent.

    Assignment is a keyed hash of patient id and ``seed`` ranked within each stratum of
    ``stratify`` (audit dimension names such as ``age_band``, ``race``,
    ``need_index_quintile``, or patient columns), so each stratum keeps the percentage.
    """
    percent: float = Field(gt=0, lt=50)
    seed: str = Field(min_length=1, max_length=200)
    stratify: list[str] = Field(default_factory=list)
    #: expected completion rate without contact, for the minimum detectable effect before sending
    baseline_rate: float = Field(default=0.2, gt=0, lt=1)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class AuditSettings(FrozenModel):
    """What the equity audit groups by, beyond its standard dimensions."""
    #: extra patient columns to group by (never direct identifiers)
    groups: list[str] = Field(default_factory=list)
    #: reference group per dimension, e.g. {race: White}; default: the largest group
    reference_groups: dict[str, str] = Field(default_factory=dict)


class SparkBlock(FrozenModel):
    """The campaign's ``spark:`` block: where and how the spark engine runs (docs/spark.md)."""
    #: master URL (local[N], spark://host:port, yarn, k8s://...); --master wins
    master: str | None = None
    #: patient buckets evaluated by one Polars call each; --buckets wins
    buckets: Annotated[int, Field(ge=1)] | None = None
    #: Spark configuration, e.g. {spark.sql.shuffle.partitions: 64, spark.executor.memory: 8g}
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Variant(FrozenModel):
    """A message variant: a neutral code the vendor maps to a template, and when it applies.

    ``when`` is a criterion in the rule language's filter syntax (``{column, op, value}``,
    ``age:``, ``any:``/``all:``) over patient and enriched columns; the variant without
    ``when`` is the default. Lower ``priority`` is tried first (file order breaks ties).
    """
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    priority: int = Field(default=100, ge=0, le=10000)
    when: Criterion | None = None
    description: str | None = None


class StopCondition(StrEnum):
    """Why a journey stops for a patient before its last step."""

    LEFT_AUDIENCE = "left_audience"
    OPTED_OUT = "opted_out"
    FAILED_EVERYWHERE = "failed_everywhere"


class JourneyStep(FrozenModel):
    """One touch of a journey: ``day`` after the first touch, its channels (in order) and variants."""
    day: int = Field(ge=0, le=3660)
    channels: list[Channel] = Field(min_length=1)
    #: variant codes this step may use (first match in priority order, else the default); default: all
    variants: list[str] | None = None


class Journey(FrozenModel):
    """A multi-touch journey: steps by day offset, and what stops it."""
    steps: list[JourneyStep] = Field(min_length=1, max_length=20)
    stop: list[StopCondition] = Field(default_factory=lambda: list(StopCondition))


class Campaign(FrozenModel):
    """A validated campaign file. Paths are absolute (resolved against the file's folder)."""
    version: Literal[1]
    code: str
    description: str | None = None
    audience: Audience
    channels: list[Channel] = Field(min_length=1)
    consent: Consent = Field(default_factory=Consent)
    suppression: list[SuppressionFile] = Field(default_factory=list)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    schedule: Schedule = Field(default_factory=Schedule)
    vendors: dict[Channel, Vendor]
    profiles: dict[str, Profile] = Field(default_factory=dict)
    allow_phi: dict[str, str] = Field(default_factory=dict)
    #: business associate agreements: one ``{vendor, signed, note}`` or a list of them
    baa: Annotated[list[BaaDeclaration], BeforeValidator(_baa_list)] = Field(default_factory=list)
    clinical_words: list[str] = Field(default_factory=list)
    file_name: str = DEFAULT_FILE_NAME
    audit: AuditSettings = Field(default_factory=AuditSettings)
    #: the analyst's preferences file (patient id or contact -> channel, language, texting hours)
    preferences: Path | None = None
    #: message variants: exactly one per selected patient (first match by priority, else the default)
    variants: list[Variant] = Field(default_factory=list)
    #: a multi-touch journey: steps with day offsets, channels and variant sets
    journey: Journey | None = None
    #: randomized holdout for measuring the campaign's effect (``segment measure``)
    holdout: Holdout | None = None
    #: cost of one message per channel (currency units), for the cost per extra completion
    costs: dict[Channel, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    # optional run keys used by `segment run`
    sources: list[Source] = Field(default_factory=list)
    #: go on when more than 1% of event rows point at no patient (they are rejected)
    allow_orphan_events: bool = False
    #: how ingest links records into patients (docs/identity.md), and a pinned model file
    linkage: Literal["auto", "probabilistic", "deterministic"] = "auto"
    linkage_model: Path | None = None
    workdir: Path | None = None
    rules: Path | None = None
    reference: Path | None = None
    ledger: Path | None = None
    destination: str | None = None
    sftp: Sftp = Field(default_factory=Sftp)
    as_of: dt.date | None = None
    #: settings of the spark engine (`segment run --engine spark`)
    spark: SparkBlock | None = None

    _path: Path | None = PrivateAttr(default=None)
    #: campaign-file lines of keys checked after loading (``variants[0].when``, ``journey.steps[1]``)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The campaign file this was loaded from (None when built in code)."""
        return self._path

    @property
    def fields(self) -> dict[Channel, list[str]]:
        """Allow-listed fields per channel (the vendor's ``fields``)."""
        return {channel: list(vendor.fields) for channel, vendor in self.vendors.items()}
