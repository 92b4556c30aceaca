"""Vendor import rules and BAA facts, as data, each with its source and the date it was read.

A profile's rules are checked against the cells of a vendor file before anything is
written (by the export stage); a file that breaks one fails the export with the
rule, its source and the number of rows. Rules of a built-in profile apply to every
profile declared on top of it (``base: braze``).

``checked`` is the day the source was read for this project. Facts marked
``confirmed=False`` come from a secondary source and say so in the docs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RuleKind(StrEnum):
    """What a rule tests."""

    #: every header matches ``pattern``
    HEADER_PATTERN = "header_pattern"
    #: each of ``headers`` is present
    REQUIRED_HEADERS = "required_headers"
    #: at least one of ``headers`` is present
    ANY_HEADER = "any_header"
    #: the non-blank cells of ``header`` match ``pattern``
    CELL_PATTERN = "cell_pattern"
    #: ``header`` has no blank cell
    NOT_BLANK = "not_blank"
    #: the non-blank cells of ``header`` are unique in the file
    UNIQUE = "unique"
    #: at most ``limit`` rows in one import
    MAX_ROWS = "max_rows"


@dataclass(frozen=True)
class Source:
    """Where a fact was read, and when."""

    url: str
    checked: str
    confirmed: bool = True


@dataclass(frozen=True)
class ImportRule:
    """One documented import rule of a vendor."""

    id: str
    kind: RuleKind
    text: str
    source: Source
    header: str | None = None
    headers: tuple[str, ...] = ()
    pattern: str | None = None
    limit: int | None = None
    #: channels the rule applies to (empty: every channel of the profile)
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaaFact:
    """Whether the vendor offers a HIPAA business associate agreement (None: depends on who receives it)."""

    offers: bool | None
    conditions: str
    source: Source | None


@dataclass(frozen=True)
class ScheduleWindow:
    """A vendor accepts scheduled send times only ``min_lead_s`` to ``max_ahead_s`` after the request."""

    min_lead_s: int
    max_ahead_s: int | None
    text: str
    source: Source


@dataclass(frozen=True)
class VendorSpec:
    """The documented import facts of one vendor format."""

    vendor: str
    baa: BaaFact
    rules: tuple[ImportRule, ...] = ()
    schedule: ScheduleWindow | None = None
    #: per channel, the header whose value identifies the person to the vendor (feedback matching)
    key_header: dict[str, str] = field(default_factory=dict)
    #: per channel, groups of fields of which at least one must be written (``generic``)
    required_fields: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)


READ = "2026-11-30"
E164 = r"^\+[1-9]\d{1,14}$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
ISO_LANG = r"^[a-z]{2}$"
ISO_COUNTRY = r"^[A-Z]{2}$"

TWILIO_SCHED = Source("https://www.twilio.com/docs/api/errors/35115", "2026-04-27")
TWILIO_E164 = Source("https://www.twilio.com/docs/glossary/what-e164", READ)
TWILIO_BAA = Source("https://www.hipaanswers.com/is-twilio-hipaa-compliant", READ, confirmed=False)
BRAZE_CSV = Source("https://www.braze.com/docs/user_guide/data/unification/user_data/import_users/csv/", READ)
BRAZE_BAA = Source("https://www.braze.com/company/legal/baa", "2024-02-15")
SFMC_MC = Source("https://help.salesforce.com/s/articleView?id=mktg.mc_moc_prepare_file_for_import.htm", READ)
SFMC_BOUNCES = Source("https://help.salesforce.com/s/articleView?id=mktg.mc_as_bounces.htm", READ)
SFMC_BAA = Source("https://www.salesforce.com/company/legal/business-associate-addendum-restrictions/", "2024-11-15")
MAILCHIMP_FMT = Source("https://mailchimp.com/help/format-guidelines-for-your-import-file/", READ)
MAILCHIMP_BAA = Source("https://www.accountablehq.com/post/is-mailchimp-hipaa-compliant-your-2026-update", "2026-05",
                       confirmed=False)
SENDGRID_IMPORT = Source("https://www.twilio.com/docs/sendgrid/api-reference/contacts/import-contacts", READ)
SENDGRID_FIELDS = Source("https://www.twilio.com/docs/sendgrid/ui/managing-contacts/custom-fields", READ)
SENDGRID_BAA = Source("https://www.hipaanswers.com/is-twilio-hipaa-compliant", READ, confirmed=False)
KLAVIYO_LIST = Source("https://help.klaviyo.com/hc/en-us/articles/115005078967", "2024-09-26")
KLAVIYO_CONSENT = Source("https://help.klaviyo.com/hc/en-us/articles/360043841811", READ)
KLAVIYO_BAA = Source("https://www.shieldra.ai/hipaa-compliant/klaviyo", "2026-06", confirmed=False)


def _cell(rid: str, header: str, pattern: str, text: str, src: Source) -> ImportRule:
    return ImportRule(rid, RuleKind.CELL_PATTERN, text, src, header=header, pattern=pattern)


def spec_for(names: list[str]) -> VendorSpec | None:
    """The spec of the first built-in vendor format in a profile's ``base`` chain (most specific first)."""
    for name in names:
        vendor = PROFILE_VENDOR.get(name, name)
        if vendor in VENDOR_SPECS:
            return VENDOR_SPECS[vendor]
    return None


def _blank(rid: str, header: str, text: str, src: Source) -> ImportRule:
    return ImportRule(rid, RuleKind.NOT_BLANK, text, src, header=header)


def _unique(rid: str, header: str, text: str, src: Source) -> ImportRule:
    return ImportRule(rid, RuleKind.UNIQUE, text, src, header=header)


_INTERNAL = BaaFact(None, "an internal list (staff or a mail house): a BAA depends on who receives it", None)

VENDOR_SPECS: dict[str, VendorSpec] = {
    "twilio": VendorSpec(
        vendor="twilio",
        baa=BaaFact(True, "Twilio signs a BAA for its HIPAA-eligible products (Programmable Messaging "
                          "among them) on designated HIPAA accounts; ask Twilio sales", TWILIO_BAA),
        rules=(
            _blank("twilio-to-required", "to", "every message needs a `to` number", TWILIO_E164),
            _cell("twilio-to-e164", "to", E164,
                  "`to` is E.164: + then up to 15 digits, no spaces or punctuation", TWILIO_E164),
            _cell("twilio-send-at-format", "send_after_utc", r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
                  "SendAt is a UTC ISO-8601 time, YYYY-MM-DDTHH:MM:SSZ", TWILIO_SCHED),
        ),
        schedule=ScheduleWindow(300, 35 * 86400, "Twilio schedules a message only more than 5 minutes and "
                                "at most 35 days after the request (error 35115)", TWILIO_SCHED),
        key_header={"sms": "to"},
    ),
    "braze": VendorSpec(
        vendor="braze",
        baa=BaaFact(True, "Braze offers a HIPAA Business Associate Addendum to its Master Subscription "
                          "Agreement; it must be signed before PHI is sent", BRAZE_BAA),
        rules=(
            ImportRule("braze-identifier", RuleKind.ANY_HEADER,
                       "a user CSV needs an identifier column (external_id, braze_id, email or phone)",
                       BRAZE_CSV, headers=("external_id", "braze_id", "email", "phone")),
            _blank("braze-external-id", "external_id", "external_id may not be blank", BRAZE_CSV),
            _cell("braze-phone-e164", "phone", E164, "`phone` is E.164", BRAZE_CSV),
            _cell("braze-email", "email", EMAIL, "`email` is an email address", BRAZE_CSV),
            _cell("braze-language", "language", ISO_LANG, "`language` is ISO-639-1 (en, es)", BRAZE_CSV),
            _cell("braze-country", "country", ISO_COUNTRY, "`country` is ISO-3166-1 alpha-2 (US)", BRAZE_CSV),
            _cell("braze-time-zone", "time_zone", r"^[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)+$|^UTC$",
                  "`time_zone` is an IANA zone name (America/New_York)", BRAZE_CSV),
            _cell("braze-subscription-group", "subscription_group_id",
                  r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                  "`subscription_group_id` is a subscription group UUID", BRAZE_CSV),
            _cell("braze-subscription-state", "subscription_state", r"^(subscribed|unsubscribed)$",
                  "`subscription_state` is subscribed or unsubscribed", BRAZE_CSV),
            _unique("braze-one-row-per-user", "external_id", "one row per user", BRAZE_CSV),
        ),
        key_header={"email": "external_id", "sms": "external_id"},
    ),
    "sfmc": VendorSpec(
        vendor="sfmc",
        baa=BaaFact(True, "Salesforce offers its HIPAA Business Associate Addendum for HIPAA Covered "
                          "Services; PHI must be encrypted in transit and where the customer controls it",
                    SFMC_BAA),
        rules=(
            ImportRule("sfmc-mc-headers", RuleKind.HEADER_PATTERN,
                       "MobileConnect headers start with `_` then the field name in title case, no spaces",
                       SFMC_MC, pattern=r"^_[A-Z][A-Za-z0-9]*$", channels=("sms",)),
            ImportRule("sfmc-mc-required", RuleKind.REQUIRED_HEADERS,
                       "MobileConnect needs _MobileNumber, _Locale and _ContactKey", SFMC_MC,
                       headers=("_MobileNumber", "_Locale", "_ContactKey"), channels=("sms",)),
            _cell("sfmc-mc-mobile", "_MobileNumber", r"^[1-9]\d{6,14}$",
                  "mobile numbers carry the country code with no +, hyphens or parentheses", SFMC_MC),
            _cell("sfmc-mc-contact-key", "_ContactKey", r"^[A-Za-z0-9]+$",
                  "contact keys have no special characters (+, -, parentheses, :)", SFMC_MC),
            _cell("sfmc-mc-locale", "_Locale", ISO_COUNTRY, "_Locale is ISO-3166-1 alpha-2", SFMC_MC),
            _blank("sfmc-mc-key-required", "_ContactKey", "_ContactKey may not be blank", SFMC_MC),
            _unique("sfmc-mc-one-row-per-contact", "_ContactKey", "each row is a unique contact", SFMC_MC),
            _blank("sfmc-subscriber-key", "SubscriberKey", "SubscriberKey (primary key) may not be blank",
                   SFMC_BOUNCES),
            _cell("sfmc-email-key", "SubscriberKey", r"^[A-Za-z0-9]+$",
                  "the subscriber key is the contact key, so it has no special characters", SFMC_MC),
            _unique("sfmc-subscriber-key-unique", "SubscriberKey", "SubscriberKey is the primary key",
                    SFMC_BOUNCES),
            _cell("sfmc-email-length", "EmailAddress", r"^.{3,254}$", "EmailAddress is at most 254 characters",
                  SFMC_BOUNCES),
        ),
        key_header={"email": "SubscriberKey", "sms": "_ContactKey"},
    ),
    "mailchimp": VendorSpec(
        vendor="mailchimp",
        baa=BaaFact(False, "Mailchimp (Intuit) does not sign a BAA on any plan, and its terms forbid "
                           "health information", MAILCHIMP_BAA),
        rules=(
            _cell("mailchimp-email-ascii-local", "Email Address", r"^[\x21-\x7e]+@[^@\s]+$",
                  "international characters are allowed only after the @", MAILCHIMP_FMT),
            _unique("mailchimp-one-email-per-contact", "Email Address", "one email address per contact",
                    MAILCHIMP_FMT),
            _cell("mailchimp-zip", "Zip Code", r"^\d{5}$", "the zip code field takes US 5-digit codes only",
                  MAILCHIMP_FMT),
            _cell("mailchimp-sms-e164", "SMS Phone Number", E164,
                  "the SMS phone number includes the country code (E.164)", MAILCHIMP_FMT),
            _unique("mailchimp-one-sms-per-contact", "SMS Phone Number", "one SMS number per contact",
                    MAILCHIMP_FMT),
        ),
        key_header={"email": "Email Address", "sms": "SMS Phone Number"},
    ),
    "sendgrid": VendorSpec(
        vendor="sendgrid",
        baa=BaaFact(False, "Twilio SendGrid (Marketing Campaigns) is not a Twilio HIPAA-eligible "
                           "service and is offered without a BAA", SENDGRID_BAA),
        rules=(
            _blank("sendgrid-email", "email", "`email` is the identifier and may not be blank", SENDGRID_IMPORT),
            _cell("sendgrid-email-length", "email", r"^.{3,254}$", "`email` is at most 254 characters",
                  SENDGRID_IMPORT),
            _unique("sendgrid-email-unique", "email", "an identifier is unique in the account", SENDGRID_IMPORT),
            ImportRule("sendgrid-field-names", RuleKind.HEADER_PATTERN,
                       "field names use A-Z, 0-9 and _, starting with a letter or _", SENDGRID_FIELDS,
                       pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
            ImportRule("sendgrid-max-contacts", RuleKind.MAX_ROWS,
                       "one import takes at most 1,000,000 contacts", SENDGRID_IMPORT, limit=1_000_000),
            _cell("sendgrid-address-1", "address_line_1", r"^.{0,100}$", "address_line_1 is at most 100",
                  SENDGRID_IMPORT),
            _cell("sendgrid-city", "city", r"^.{0,60}$", "city is at most 60 characters", SENDGRID_IMPORT),
        ),
        key_header={"email": "email"},
    ),
    "klaviyo": VendorSpec(
        vendor="klaviyo",
        baa=BaaFact(False, "Klaviyo does not sign a BAA; its acceptable use policy forbids PHI", KLAVIYO_BAA),
        rules=(
            ImportRule("klaviyo-first-column", RuleKind.ANY_HEADER,
                       "the first column is Email, Email Address or Phone Number", KLAVIYO_LIST,
                       headers=("Email", "Email Address", "Phone Number")),
            _cell("klaviyo-phone-e164", "Phone Number", E164, "phone numbers are E.164", KLAVIYO_CONSENT),
            _cell("klaviyo-consent", "Email Marketing Consent", r"^(Subscribed|Unsubscribed|Never subscribed)$",
                  "consent is Subscribed, Unsubscribed or Never subscribed", KLAVIYO_CONSENT),
            _cell("klaviyo-sms-consent", "SMS Marketing Consent", r"^(Subscribed|Unsubscribed|Never subscribed)$",
                  "consent is Subscribed, Unsubscribed or Never subscribed", KLAVIYO_CONSENT),
            _unique("klaviyo-email-unique", "Email", "one row per profile", KLAVIYO_LIST),
        ),
        key_header={"email": "Email", "sms": "Phone Number"},
    ),
    "mail": VendorSpec(vendor="mail", baa=_INTERNAL, key_header={"mail": "contact_id"}),
    "phone": VendorSpec(vendor="phone", baa=_INTERNAL, key_header={"phone": "contact_id"}),
    "generic": VendorSpec(
        vendor="generic", baa=_INTERNAL,
        required_fields={
            "email": (("contact_id",), ("email",)),
            "sms": (("contact_id",), ("phone_e164",)),
            "phone": (("contact_id",), ("phone_e164",)),
            "mail": (("contact_id",), ("address_line1",), ("city",), ("state",), ("zip5",)),
        },
    ),
}

#: built-in profiles that share another's vendor facts
PROFILE_VENDOR = {"sfmc-email-status": "sfmc"}

#: the Klaviyo list-upload file size limit and SendGrid's import limit, in bytes
KLAVIYO_MAX_BYTES = 50 * 1024 * 1024
SENDGRID_MAX_BYTES = 5 * 1024 * 1024 * 1024
