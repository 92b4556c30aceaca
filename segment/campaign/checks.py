"""Cross-field checks of a campaign file, one function per concern, every problem collected.

Each check reads the typed :class:`Campaign` (and the raw YAML, for lines) and yields the
problems it finds; :func:`cross_check` runs them all, so a campaign with three mistakes
reports three (see :mod:`segment.campaign.problems`). Nothing here reads patient data.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from segment.campaign.destinations import parse_destination
from segment.campaign.journey import check_journey
from segment.campaign.model import Campaign, Channel, ProfileColumn, Vendor
from segment.campaign.phi import SAFE_FIELDS, clinical_word_in
from segment.campaign.preferences import read_header
from segment.campaign.problems import Where
from segment.campaign.profiles import ResolvedProfile, resolve_profile
from segment.campaign.specs import VENDOR_SPECS
from segment.campaign.variants import has_event_test
from segment.errors import SegmentError

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,47}$")
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
FILE_NAME_FIELDS = ("code", "channel", "vendor", "date", "run_id")
MIN_JUSTIFICATION = 20
#: vendor options a campaign may set (`vendors.<channel>.options`)
VENDOR_OPTIONS = ("subscription_group_id",)

Problems = Iterator[SegmentError]


def check_file_name_pattern(pattern: str) -> list[str]:
    """The placeholders of a file-name pattern; ValueError when it could escape a folder."""
    if not pattern or "\x00" in pattern or "/" in pattern or "\\" in pattern:
        raise ValueError("a file name pattern may not contain `/`, `\\` or NUL")
    if pattern.startswith(".") or ".." in pattern:
        raise ValueError("a file name pattern may not start with `.` or contain `..`")
    names = []
    for _, name, spec, conv in string.Formatter().parse(pattern):
        if name is None:
            continue
        if name not in FILE_NAME_FIELDS or spec or conv:
            raise ValueError(f"unknown placeholder {{{name}}}")
        names.append(name)
    literal = re.sub(r"\{[^}]*\}", "", pattern)
    if not re.fullmatch(r"[A-Za-z0-9._-]*", literal):
        raise ValueError("literal text in a file name pattern may use letters, digits, . _ - only")
    if "run_id" not in names:
        raise ValueError("a file name pattern must contain {run_id} so runs never overwrite each other")
    return names


def check_code(c: Campaign, at: Where) -> Problems:
    """The campaign code is neutral and safe as a file-name part."""
    if not CODE_PATTERN.match(c.code):
        yield at.invalid("code", c.code, "use 2-48 letters, digits, `-` or `_`, starting with a letter or digit",
                         "code")
    word = clinical_word_in(c.code, c.clinical_words)
    if word:
        yield at.problem(
            f"key `code`: found {c.code!r}, which contains the clinical word `{word}`; vendor "
            "files carry a neutral campaign code (e.g. SPRING-OUTREACH-2025)", "code", key="code", privacy=True,
        )


def check_audience(c: Campaign, at: Where) -> Problems:
    """The audience names at least one rule."""
    if not c.audience.all and not c.audience.any:
        yield at.problem(
            "key `audience`: name at least one rule under `all:` or `any:` "
            "(e.g. `all: {colorectal-cancer-screening: due}`)", "audience", key="audience",
        )


def check_channels(c: Campaign, at: Where) -> Problems:
    """Each channel once, each with a vendor, and no vendor for a channel not listed."""
    for i, ch in enumerate(c.channels):
        if ch in c.channels[:i]:
            yield at.problem(f"key `channels[{i}]`: channel `{ch}` is listed twice", "channels", i, key="channels")
    for ch in dict.fromkeys(c.channels):
        if ch not in c.vendors:
            yield at.problem(f"key `vendors`: channel `{ch}` has no vendor; add `vendors: {{{ch}: {{profile: ...}}}}`",
                             "vendors", key="vendors")
    for ch in c.vendors:
        if ch not in c.channels:
            yield at.invalid(f"vendors.{ch}", str(ch), [str(x) for x in c.channels], "vendors", str(ch))


def check_profile_names(c: Campaign, at: Where) -> Problems:
    """Declared profiles have neutral lower-case names (they appear in file names)."""
    for name in c.profiles:
        if clinical_word_in(name, c.clinical_words) or not PROFILE_NAME.fullmatch(name):
            yield at.invalid(f"profiles.{name}", name,
                             "a neutral lower-case name of letters, digits, `-`, `_` (it appears in file names)",
                             "profiles", name)


def check_justifications(c: Campaign, at: Where) -> Problems:
    """Each ``allow_phi`` entry says why the vendor needs the field."""
    for key, why in c.allow_phi.items():
        if len(why.strip()) < MIN_JUSTIFICATION:
            yield at.problem(f"key `allow_phi.{key}`: the justification must say why the vendor needs it "
                             f"(at least {MIN_JUSTIFICATION} characters)", "allow_phi", key, key=f"allow_phi.{key}")


@dataclass
class _Vendors:
    """What the vendor checks learn on the way: resolved profiles and the fields that leave."""

    profiles: dict[Channel, ResolvedProfile] = field(default_factory=dict)
    unresolved: bool = False
    used: set[str] = field(default_factory=set)


def _resolve(c: Campaign, at: Where, seen: _Vendors) -> Problems:
    for ch, vendor in c.vendors.items():
        try:
            seen.profiles[ch] = resolve_profile(vendor.profile, ch, c.profiles)
        except SegmentError as exc:
            seen.unresolved = True
            yield at.problem(f"vendors.{ch}: {exc.message}", "vendors", str(ch), "profile",
                             key=f"vendors.{ch}.profile")


def _fields(c: Campaign, at: Where, ch: Channel, vendor: Vendor, prof: ResolvedProfile, used: set[str]) -> Problems:
    """``vendors.<ch>.fields``: columns the profile can write, contact fields unless justified."""
    covered = {col.field for col in prof.columns}
    if not prof.columns and not vendor.fields:
        yield at.problem(f"key `vendors.{ch}.fields`: profile `{vendor.profile}` declares no columns, "
                         "so list the fields to write", "vendors", str(ch), key=f"vendors.{ch}.fields")
    for i, name in enumerate(vendor.fields):
        where = ("vendors", str(ch), "fields", i)
        if name not in covered and not prof.extra_fields:
            yield at.invalid(f"vendors.{ch}.fields[{i}]", name, sorted(covered), *where)
        if name not in SAFE_FIELDS and name not in c.allow_phi:
            yield at.problem(
                f"key `vendors.{ch}.fields[{i}]`: `{name}` is not a contact field and may "
                "carry clinical or sensitive information; list it under `allow_phi:` with "
                "a justification if the vendor truly needs it "
                f"(contact fields: {', '.join(sorted(SAFE_FIELDS))})", *where, key=f"vendors.{ch}.fields", privacy=True,
            )
        used.add(name)


def _required_column(c: Campaign, at: Where, ch: Channel, vendor: Vendor, col: ProfileColumn,
                     used: set[str]) -> Problems:
    """A column the profile always writes: its option is set, its field is a contact field."""
    if col.field.startswith("option:"):
        key = col.field.removeprefix("option:")
        if key not in vendor.options:
            yield at.problem(
                f"key `vendors.{ch}.options.{key}`: profile `{vendor.profile}` {ch} needs "
                f"`{key}` (column `{col.header}`): without it the vendor will not message anyone "
                f"(Braze sends SMS only to users subscribed to an SMS subscription group); "
                f"valid options are: the vendor's id, e.g. `options: {{{key}: <uuid>}}`",
                "vendors", str(ch), key=f"vendors.{ch}.options",
            )
        return
    if col.field not in SAFE_FIELDS and col.field not in c.allow_phi:
        yield at.problem(
            f"profile `{vendor.profile}` column `{col.header}` always writes `{col.field}`, "
            "which is not a contact field; list it under `allow_phi:` with a justification",
            "vendors", str(ch), "profile", key=f"vendors.{ch}.profile", privacy=True,
        )
    used.add(col.field)


def _required_fields(at: Where, ch: Channel, vendor: Vendor, prof: ResolvedProfile) -> Problems:
    """``generic``-based profiles write an identifier and the channel's contact column."""
    groups = prof.spec.required_fields.get(str(ch), ()) if prof.spec is not None else ()
    written = {col.field for col in prof.columns if col.required} | set(vendor.fields)
    for group in groups:
        if not written & set(group):
            yield at.problem(
                f"key `vendors.{ch}`: profile `{vendor.profile}` would write no "
                f"{' or '.join(group)} column; a {ch} file needs an identifier (contact_id) and the "
                f"channel's contact column; valid options are: add `{group[0]}` to `fields` or a "
                "required column to the profile", "vendors", str(ch), key=f"vendors.{ch}",
            )


def check_vendors(c: Campaign, at: Where) -> Problems:
    """Each vendor's profile resolves, and what it writes is allowed; ``allow_phi`` names only what leaves."""
    seen = _Vendors()
    yield from _resolve(c, at, seen)
    for ch, prof in seen.profiles.items():
        vendor = c.vendors[ch]
        yield from _fields(c, at, ch, vendor, prof, seen.used)
        for col in prof.columns:
            if col.required and col.value is None:
                yield from _required_column(c, at, ch, vendor, col, seen.used)
        for key in vendor.options:
            if key not in VENDOR_OPTIONS:
                yield at.invalid(f"vendors.{ch}.options.{key}", key, VENDOR_OPTIONS, "vendors", str(ch), "options", key)
        yield from _required_fields(at, ch, vendor, prof)
    if seen.unresolved:
        return  # what an unresolved profile writes is unknown: an entry may look unused
    for key in c.allow_phi:
        if key not in seen.used:
            yield at.problem(f"key `allow_phi.{key}`: no vendor receives `{key}`; remove the entry "
                             "(justifications must match what actually leaves)", "allow_phi", key,
                             key=f"allow_phi.{key}")


def check_baa(c: Campaign, at: Where) -> Problems:
    """Each ``baa`` entry names a known vendor or a declared profile."""
    for i, decl in enumerate(c.baa):
        if decl.vendor not in VENDOR_SPECS and decl.vendor not in c.profiles:
            yield at.invalid(f"baa[{i}].vendor", decl.vendor, sorted({*VENDOR_SPECS, *c.profiles}), "baa")


def check_file_name(c: Campaign, at: Where) -> Problems:
    """The file-name pattern cannot escape a folder, keeps runs apart and is neutral."""
    try:
        check_file_name_pattern(c.file_name)
    except ValueError as exc:
        yield at.problem(f"key `file_name`: found {c.file_name!r}; {exc}; placeholders: "
                         + ", ".join("{" + f + "}" for f in FILE_NAME_FIELDS), "file_name", key="file_name")
    word = clinical_word_in(re.sub(r"\{[^}]*\}", "-", c.file_name), c.clinical_words)
    if word:
        yield at.problem(f"key `file_name`: contains the clinical word `{word}`", "file_name", key="file_name",
                         privacy=True)


def check_quiet_hours(c: Campaign, at: Where) -> Problems:
    """State codes, and state windows that leave some time to send."""
    qh = c.quiet_hours
    for state, window in qh.states.items():
        where = ("quiet_hours", "states", state)
        if not re.fullmatch(r"[A-Z]{2}", state):
            yield at.invalid(f"quiet_hours.states.{state}", state, "a USPS two-letter state code in capitals", *where)
        if max(qh.start, window.start) >= min(qh.end, window.end):
            yield at.problem(
                f"key `quiet_hours.states.{state}`: found {window.start:%H:%M}-{window.end:%H:%M}, "
                f"which leaves no time inside the campaign's window {qh.start:%H:%M}-{qh.end:%H:%M} "
                "(a state window only narrows it); valid options are: a window that overlaps it",
                *where, key=f"quiet_hours.states.{state}",
            )


def check_caps(c: Campaign, at: Where) -> Problems:
    """Frequency caps name only the campaign's channels."""
    for i, cap in enumerate(c.frequency_caps):
        for ch in cap.channels or ():
            if ch not in c.channels:
                yield at.invalid(f"frequency_caps[{i}].channels", str(ch), [str(x) for x in c.channels],
                                 "frequency_caps", i)


def check_files(c: Campaign, at: Where) -> Problems:
    """Suppression and preferences files exist now, not halfway through an export."""
    for i, sup in enumerate(c.suppression):
        if not sup.path.is_file():
            yield at.problem(f"key `suppression[{i}].path`: file not found: {sup.path.name}",
                             "suppression", i, "path", key="suppression.path")
    if c.preferences is not None and not c.preferences.is_file():
        yield at.problem(f"key `preferences`: file not found: {c.preferences.name}", "preferences",
                         key="preferences")


def check_destination(c: Campaign, at: Where) -> Problems:
    """``destination`` is a folder or an ``sftp://user@host:port/path`` URL."""
    if c.destination is not None:
        try:
            parse_destination(c.destination)
        except SegmentError as exc:
            yield at.problem(f"key `destination`: {exc.message}", "destination", key="destination")


def check_preferences(c: Campaign, at: Where) -> Problems:
    """The preferences file's header names known columns (its first line only)."""
    if c.preferences is not None and c.preferences.is_file():
        try:
            read_header(c.preferences)
        except SegmentError as exc:
            yield exc


def check_variants(c: Campaign, at: Where) -> Problems:
    """Variant codes unique and neutral, conditions over columns only, exactly one default."""
    for i, v in enumerate(c.variants):
        where = ("variants", i, "code")
        first = next(j for j, w in enumerate(c.variants) if w.code == v.code)
        if first < i:
            yield at.problem(f"key `variants[{i}].code`: found {v.code!r}, already the code of variants[{first}]; "
                             "each variant needs its own code", *where, key=f"variants[{i}].code")
        word = clinical_word_in(v.code, c.clinical_words)
        if word:
            yield at.problem(
                f"key `variants[{i}].code`: found {v.code!r}, which contains the clinical word `{word}`; "
                "vendor files carry a neutral variant code (e.g. V-RIDE, V-ES, V-MAIL-KIT)",
                *where, key=f"variants[{i}].code", privacy=True,
            )
        if v.when is not None and has_event_test(v.when):
            yield at.invalid(f"variants[{i}].when", "valueset", ["column", "age", "any", "all"],
                             "variants", i, "when")
    defaults = [v.code for v in c.variants if v.when is None]
    if c.variants and len(defaults) != 1:
        yield at.problem(f"key `variants`: exactly one variant must have no `when:` (the default); "
                         f"found {', '.join(defaults) or 'none'}", "variants", key="variants")


def key_lines(c: Campaign, at: Where) -> dict[str, int]:
    """Lines of keys that later checks (on patient data) name: each variant, its ``when``, each journey step."""
    lines: dict[str, int] = {}
    for i in range(len(c.variants)):
        lines[f"variants[{i}]"] = at.line("variants", i) or 0
        lines[f"variants[{i}].when"] = at.line("variants", i, "when") or lines[f"variants[{i}]"]
    for i in range(len(c.journey.steps) if c.journey is not None else 0):
        lines[f"journey.steps[{i}]"] = at.line("journey", "steps", i) or 0
    return lines


#: every cross-field check, in the order of the keys in a campaign file
CROSS_CHECKS: tuple[Callable[[Campaign, Where], Problems], ...] = (
    check_code, check_audience, check_channels, check_profile_names, check_justifications, check_vendors,
    check_baa, check_file_name, check_quiet_hours, check_caps, check_files, check_destination,
    check_preferences, check_variants, check_journey,
)


def cross_check(c: Campaign, at: Where) -> list[SegmentError]:
    """Every problem every cross-field check finds."""
    return [problem for check in CROSS_CHECKS for problem in check(c, at)]
