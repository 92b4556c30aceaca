"""Vendor profiles: built-in import formats and those declared in a campaign file.

Each built-in follows the vendor's documented CSV import (``shared/formats/vendor-imports.md``):
header spelling and order, UTF-8, date formats, E.164 phones, 255-byte text fields and
file size limits. A campaign can declare a new profile under ``profiles:``, either from
scratch (``generic`` settings plus ``columns``) or by overriding a built-in
(``base: braze`` with a smaller ``max_file_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segment.campaign.model import (
    Channel,
    Encoding,
    HeaderStyle,
    Overflow,
    PhoneFormat,
    Profile,
    ProfileColumn,
    Quoting,
)
from segment.campaign.specs import KLAVIYO_MAX_BYTES, VendorSpec, spec_for
from segment.errors import CampaignError


def _c(header: str, field: str, *, required: bool = False, **kw: Any) -> ProfileColumn:
    return ProfileColumn(header=header, field=field, required=required, **kw)


_EMAIL, _SMS, _MAIL, _PHONE = Channel.EMAIL, Channel.SMS, Channel.MAIL, Channel.PHONE

BUILTIN_PROFILES: dict[str, Profile] = {
    # Mailchimp audience import: free-form headers the import UI maps automatically.
    "mailchimp": Profile(
        channels=[_EMAIL, _SMS],
        channel_columns={
            _EMAIL: [
                _c("Email Address", "email", required=True, overflow=Overflow.REJECT),
                _c("First Name", "first_name"),
                _c("Last Name", "last_name"),
                _c("Tags", "campaign_code", required=True),
                _c("Language", "language"),
                _c("Zip Code", "zip5"),
            ],
            _SMS: [
                _c("SMS Phone Number", "phone_e164", required=True),
                _c("Email Address", "email", overflow=Overflow.REJECT),
                _c("First Name", "first_name"),
                _c("Last Name", "last_name"),
                _c("Tags", "campaign_code", required=True),
                _c("Language", "language"),
            ],
        },
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        extra_fields=True,
    ),
    # Braze user attributes CSV: external_id first, reserved lower-case headers.
    "braze": Profile(
        channels=[_EMAIL, _SMS],
        channel_columns={
            _EMAIL: [
                _c("external_id", "contact_id", required=True),
                _c("email", "email", required=True, overflow=Overflow.REJECT),
                _c("first_name", "first_name"),
                _c("last_name", "last_name"),
                _c("language", "language"),
                _c("home_city", "city"),
                _c("country", "country"),
                _c("time_zone", "timezone"),
                _c("campaign_code", "campaign_code", required=True),
            ],
            _SMS: [
                _c("external_id", "contact_id", required=True),
                _c("phone", "phone_e164", required=True),
                _c("first_name", "first_name"),
                _c("last_name", "last_name"),
                _c("language", "language"),
                _c("home_city", "city"),
                _c("country", "country"),
                _c("time_zone", "timezone", required=True),
                _c("subscription_group_id", "option:subscription_group_id", required=True),
                _c("subscription_state", "const", value="subscribed"),
                _c("campaign_code", "campaign_code", required=True),
                _c("send_after_utc", "send_after_utc", required=True),
            ],
        },
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        max_file_bytes=500 * 1024 * 1024,
        omit_blank_columns=True,
        extra_fields=True,
        datetime_format="%Y-%m-%dT%H:%M:%SZ",
    ),
    # SFMC data extension import (email) and MobileConnect contact import (SMS). The contact key is
    # the patient id hex-encoded: MobileConnect refuses special characters (`crm:C0000016`), and SFMC
    # uses one key for a contact on every channel, so email uses it as SubscriberKey too.
    "sfmc": Profile(
        channels=[_EMAIL, _SMS],
        channel_columns={
            _EMAIL: [
                _c("SubscriberKey", "contact_key", required=True),
                _c("EmailAddress", "email", required=True, overflow=Overflow.REJECT),
                _c("FirstName", "first_name"),
                _c("LastName", "last_name"),
                _c("Locale", "language"),
                _c("CampaignCode", "campaign_code", required=True),
            ],
            _SMS: [
                _c("_ContactKey", "contact_key", required=True),
                _c("_MobileNumber", "phone_e164", required=True),
                _c("_Locale", "country", required=True),
                _c("_UTCOffset", "utc_offset", required=True),
                _c("_IsHonorDST", "is_honor_dst", required=True),
                _c("_FirstName", "first_name"),
                _c("_LastName", "last_name"),
                _c("_Language", "language"),
                _c("_CampaignCode", "campaign_code", required=True),
                _c("_SendAfterUTC", "send_after_utc", required=True),
            ],
        },
        phone_format=PhoneFormat.DIGITS,
        max_field_bytes=254,
        overflow=Overflow.TRUNCATE,
        max_file_bytes=20 * 1024 * 1024,
        extra_fields=True,
        extra_header_style=HeaderStyle.UNDERSCORE_TITLE,
    ),
    # SFMC email list import with the subscriber status column (All Subscribers / a list).
    "sfmc-email-status": Profile(
        channels=[_EMAIL],
        columns=[
            _c("SubscriberKey", "contact_key", required=True),
            _c("EmailAddress", "email", required=True, overflow=Overflow.REJECT),
            _c("Status", "const", value="Active", required=True),
            _c("FirstName", "first_name"),
            _c("LastName", "last_name"),
            _c("Locale", "language"),
            _c("CampaignCode", "campaign_code", required=True),
        ],
        max_field_bytes=254,
        overflow=Overflow.TRUNCATE,
        max_file_bytes=20 * 1024 * 1024,
        extra_fields=True,
    ),
    # Twilio SendGrid Marketing Campaigns contacts CSV: reserved lower-case field names; the
    # campaign code is a custom field (letters, digits, `_`).
    "sendgrid": Profile(
        channels=[_EMAIL],
        columns=[
            _c("email", "email", required=True, overflow=Overflow.REJECT, max_bytes=254),
            _c("first_name", "first_name"),
            _c("last_name", "last_name"),
            _c("address_line_1", "address_line1", max_bytes=100),
            _c("address_line_2", "address_line2", max_bytes=100),
            _c("city", "city", max_bytes=60),
            _c("state_province_region", "state"),
            _c("postal_code", "zip5"),
            _c("country", "country", max_bytes=50),
            _c("campaign_code", "campaign_code", required=True),
        ],
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        extra_fields=True,
    ),
    # Klaviyo list upload: Email (or Phone Number) first, Klaviyo property names, consent column.
    "klaviyo": Profile(
        channels=[_EMAIL, _SMS],
        channel_columns={
            _EMAIL: [
                _c("Email", "email", required=True, overflow=Overflow.REJECT),
                _c("Email Marketing Consent", "const", value="Subscribed", required=True),
                _c("First Name", "first_name"),
                _c("Last Name", "last_name"),
                _c("City", "city"),
                _c("Zip Code", "zip5"),
                _c("Campaign Code", "campaign_code", required=True),
            ],
            _SMS: [
                _c("Phone Number", "phone_e164", required=True),
                _c("SMS Marketing Consent", "const", value="Subscribed", required=True),
                _c("First Name", "first_name"),
                _c("Last Name", "last_name"),
                _c("Campaign Code", "campaign_code", required=True),
            ],
        },
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        max_file_bytes=KLAVIYO_MAX_BYTES,
        extra_fields=True,
    ),
    # Twilio send list: E.164 `to`, earliest send time in UTC, message variables.
    "twilio": Profile(
        channels=[_SMS],
        columns=[
            _c("to", "phone_e164", required=True),
            _c("send_after_utc", "send_after_utc", required=True),
            _c("timezone", "timezone", required=True),
            _c("campaign_code", "campaign_code", required=True),
            _c("first_name", "first_name"),
            _c("language", "language"),
        ],
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        extra_fields=True,
    ),
    # Printed-mail list for a mail house or staff.
    "mail": Profile(
        channels=[_MAIL],
        columns=[
            _c("contact_id", "contact_id", required=True),
            _c("first_name", "first_name", required=True),
            _c("last_name", "last_name", required=True),
            _c("address_line1", "address_line1", required=True, overflow=Overflow.REJECT),
            _c("address_line2", "address_line2", required=True, overflow=Overflow.REJECT),
            _c("city", "city", required=True, overflow=Overflow.REJECT),
            _c("state", "state", required=True),
            _c("zip5", "zip5", required=True),
            _c("language", "language"),
            _c("campaign_code", "campaign_code", required=True),
        ],
        max_field_bytes=100,
        overflow=Overflow.TRUNCATE,
        extra_fields=True,
    ),
    # Call list for staff.
    "phone": Profile(
        channels=[_PHONE],
        columns=[
            _c("contact_id", "contact_id", required=True),
            _c("first_name", "first_name", required=True),
            _c("last_name", "last_name", required=True),
            _c("phone", "phone_e164", required=True),
            _c("language", "language"),
            _c("timezone", "timezone"),
            _c("campaign_code", "campaign_code", required=True),
        ],
        max_field_bytes=255,
        overflow=Overflow.TRUNCATE,
        extra_fields=True,
    ),
    # Generic CSV: declare `columns` (and delimiter, quoting...) in the campaign file.
    "generic": Profile(
        channels=[_EMAIL, _SMS, _MAIL, _PHONE],
        columns=[],
        extra_fields=True,
    ),
}


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile with every setting concrete, for one channel."""

    name: str
    channel: Channel
    columns: tuple[ProfileColumn, ...]
    delimiter: str
    quoting: Quoting
    line_terminator: str
    encoding: Encoding
    date_format: str
    datetime_format: str
    phone_format: PhoneFormat
    max_field_bytes: int | None
    overflow: Overflow
    max_file_bytes: int | None
    omit_blank_columns: bool
    extra_fields: bool
    extension: str
    extra_header_style: HeaderStyle = HeaderStyle.FIELD
    #: the documented import facts of the vendor format this profile builds on (None: none known)
    spec: VendorSpec | None = None


_DEFAULTS: dict[str, Any] = {
    "delimiter": ",",
    "quoting": Quoting.NECESSARY,
    "line_terminator": "\n",
    "encoding": Encoding.UTF8,
    "date_format": "%Y-%m-%d",
    "datetime_format": "%Y-%m-%dT%H:%M:%SZ",
    "phone_format": PhoneFormat.E164,
    "max_field_bytes": None,
    "overflow": Overflow.TRUNCATE,
    "max_file_bytes": None,
    "omit_blank_columns": False,
    "extra_fields": False,
    "extension": "csv",
    "extra_header_style": HeaderStyle.FIELD,
}


def _chain(name: str, declared: dict[str, Profile]) -> list[tuple[str, Profile]]:
    chain: list[tuple[str, Profile]] = []
    seen: set[str] = set()
    current: str | None = name
    while current is not None:
        if current in seen:
            raise CampaignError(f"profile `{name}`: `base` chain loops through `{current}`")
        seen.add(current)
        if current in declared:
            prof = declared[current]
        elif current in BUILTIN_PROFILES:
            prof = BUILTIN_PROFILES[current]
        else:
            valid = profile_names(declared)
            raise CampaignError(
                f"key `profile`: found {current!r}; valid options are: {', '.join(valid)}",
                key="profile",
            )
        chain.append((current, prof))
        # a declared profile named like a built-in extends nothing unless it says so
        current = prof.base
    return chain


def profile_names(declared: dict[str, Profile] | None = None) -> list[str]:
    """Every profile name a campaign may use."""
    return sorted({*BUILTIN_PROFILES, *(declared or {})})


def resolve_profile(
    name: str, channel: Channel, declared: dict[str, Profile] | None = None
) -> ResolvedProfile:
    """The concrete profile ``name`` for ``channel`` (declared ones override built-ins)."""
    chain = _chain(name, dict(declared or {}))
    values: dict[str, Any] = dict(_DEFAULTS)
    channels: list[Channel] | None = None
    columns: list[ProfileColumn] | None = None
    for _, prof in reversed(chain):  # base first, most specific last
        for key in _DEFAULTS:
            value = getattr(prof, key)
            if value is not None:
                values[key] = value
        if prof.channels is not None:
            channels = list(prof.channels)
        if prof.channel_columns is not None and channel in prof.channel_columns:
            columns = list(prof.channel_columns[channel])
        elif prof.columns is not None and (prof.columns or columns is None):
            columns = list(prof.columns)
    if channels is not None and channel not in channels:
        raise CampaignError(
            f"profile `{name}` does not support channel `{channel}`; "
            f"it supports: {', '.join(str(c) for c in channels)}",
            key="profile",
        )
    spec = spec_for([n for n, _ in chain if n in BUILTIN_PROFILES and n not in (declared or {})])
    return ResolvedProfile(name=name, channel=channel, columns=tuple(columns or ()), spec=spec, **values)
