"""Load a campaign file: safe YAML -> frozen typed objects -> cross-field checks.

Everything is checked before any patient data is read. Errors name the file, the
line, the key, the value found and the valid options (:class:`CampaignError`), or, for
fields that would let clinical information leave, a :class:`PrivacyError` located the
same way.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from segment.campaign.model import Campaign, Channel
from segment.campaign.phi import SAFE_FIELDS, clinical_word_in
from segment.config import LineDict, LineList, load_yaml, validate
from segment.errors import CampaignError, PrivacyError, SegmentError, invalid_value

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,47}$")
FILE_NAME_FIELDS = ("code", "channel", "vendor", "date", "run_id")
MIN_JUSTIFICATION = 20
_SECRET_KEYS = ("password", "passphrase", "key_passphrase", "secret", "private_key")


def _line(raw: Any, *keys: str | int) -> int | None:
    """The line of the deepest key in ``keys`` that exists in the raw YAML."""
    node = raw
    line: int | None = getattr(raw, "start_line", None)
    for key in keys:
        if isinstance(node, LineDict) and isinstance(key, str) and key in node:
            line = node.line_of(key)
            node = node[key]
        elif isinstance(node, LineList) and isinstance(key, int) and 0 <= key < len(node):
            line = node.item_lines[key]
            node = node[key]
        else:
            break
    return line


def _refuse_literal_secrets(raw: LineDict, path: Path) -> None:
    sftp = raw.get("sftp")
    if isinstance(sftp, LineDict):
        for key in sftp:
            if key.lower() in _SECRET_KEYS:
                env = "key_passphrase_env: SEGMENT_SFTP_KEY_PASSPHRASE" if "phrase" in key else (
                    "password_env: SEGMENT_SFTP_PASSWORD"
                )
                raise CampaignError(
                    f"key `sftp.{key}`: a literal secret is refused in a campaign file; "
                    f"name an environment variable instead (`{env}`) and export it",
                    path=path, line=sftp.line_of(key), key=f"sftp.{key}",
                )
    dest = raw.get("destination")
    if isinstance(dest, str) and re.match(r"^sftp://[^/@]*:[^/@]*@", dest):
        raise CampaignError(
            "key `destination`: a password in the SFTP URL is refused; remove it and set "
            "`sftp: {password_env: SEGMENT_SFTP_PASSWORD}` with the password in that variable",
            path=path, line=raw.line_of("destination"), key="destination",
        )


def _abs(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = p.expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_paths(c: Campaign, base: Path) -> Campaign:
    vendors = {
        ch: v.model_copy(update={"encrypt": v.encrypt.model_copy(
            update={"keyring": _abs(base, v.encrypt.keyring)}
        )}) if v.encrypt is not None else v
        for ch, v in c.vendors.items()
    }
    dest = c.destination
    if dest is not None and "://" not in dest:
        dest = str(_abs(base, Path(dest)))
    return c.model_copy(update={
        "suppression": [s.model_copy(update={"path": _abs(base, s.path)}) for s in c.suppression],
        "sources": [
            s.model_copy(update={"path": _abs(base, s.path), "mapping": _abs(base, s.mapping)})
            for s in c.sources
        ],
        "workdir": _abs(base, c.workdir),
        "preferences": _abs(base, c.preferences),
        "rules": _abs(base, c.rules),
        "reference": _abs(base, c.reference),
        "ledger": _abs(base, c.ledger),
        "linkage_model": _abs(base, c.linkage_model),
        "destination": dest,
        "vendors": vendors,
        "sftp": c.sftp.model_copy(update={
            "key_file": _abs(base, c.sftp.key_file),
            "known_hosts": _abs(base, c.sftp.known_hosts),
        }),
    })


def check_file_name_pattern(pattern: str) -> list[str]:
    """The placeholders of a file-name pattern; ValueError when it could escape a folder."""
    if not pattern or "\x00" in pattern or "/" in pattern or "\\" in pattern:
        raise ValueError("a file name pattern may not contain `/`, `\\` or NUL")
    if pattern.startswith(".") or ".." in pattern:
        raise ValueError("a file name pattern may not start with `.` or contain `..`")
    names = []
    for _, field, spec, conv in string.Formatter().parse(pattern):
        if field is None:
            continue
        if field not in FILE_NAME_FIELDS or spec or conv:
            raise ValueError(f"unknown placeholder {{{field}}}")
        names.append(field)
    literal = re.sub(r"\{[^}]*\}", "", pattern)
    if not re.fullmatch(r"[A-Za-z0-9._-]*", literal):
        raise ValueError("literal text in a file name pattern may use letters, digits, . _ - only")
    if "run_id" not in names:
        raise ValueError("a file name pattern must contain {run_id} so runs never overwrite each other")
    return names


def _cross_checks(c: Campaign, raw: LineDict, path: Path) -> None:
    # code: neutral, safe as a file-name part
    if not CODE_PATTERN.match(c.code):
        raise invalid_value(
            "code", c.code, "use 2-48 letters, digits, `-` or `_`, starting with a letter or digit",
            path=path, line=_line(raw, "code"), error=CampaignError,
        )
    word = clinical_word_in(c.code, c.clinical_words)
    if word:
        raise PrivacyError(
            f"key `code`: found {c.code!r}, which contains the clinical word `{word}`; vendor "
            "files carry a neutral campaign code (e.g. SPRING-OUTREACH-2025)",
            path=path, line=_line(raw, "code"), key="code",
        )
    # rules
    if not c.audience.all and not c.audience.any:
        raise CampaignError(
            "key `audience`: name at least one rule under `all:` or `any:` "
            "(e.g. `all: {colorectal-cancer-screening: due}`)",
            path=path, line=_line(raw, "audience"), key="audience",
        )
    # channels and vendors
    seen: set[Channel] = set()
    for i, ch in enumerate(c.channels):
        if ch in seen:
            raise CampaignError(
                f"key `channels[{i}]`: channel `{ch}` is listed twice",
                path=path, line=_line(raw, "channels", i), key="channels",
            )
        seen.add(ch)
    for ch in c.channels:
        if ch not in c.vendors:
            raise CampaignError(
                f"key `vendors`: channel `{ch}` has no vendor; add `vendors: {{{ch}: {{profile: ...}}}}`",
                path=path, line=_line(raw, "vendors"), key="vendors",
            )
    for ch in c.vendors:
        if ch not in c.channels:
            raise invalid_value(
                f"vendors.{ch}", str(ch), [str(x) for x in c.channels],
                path=path, line=_line(raw, "vendors", str(ch)), error=CampaignError,
            )
    from segment.export.profiles import resolve_profile

    for name in c.profiles:
        word = clinical_word_in(name, c.clinical_words)
        if word or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
            raise invalid_value(
                f"profiles.{name}", name,
                "a neutral lower-case name of letters, digits, `-`, `_` (it appears in file names)",
                path=path, line=_line(raw, "profiles", name), error=CampaignError,
            )
    # allow_phi justifications
    for key, why in c.allow_phi.items():
        if len(why.strip()) < MIN_JUSTIFICATION:
            raise CampaignError(
                f"key `allow_phi.{key}`: the justification must say why the vendor needs it "
                f"(at least {MIN_JUSTIFICATION} characters)",
                path=path, line=_line(raw, "allow_phi", key), key=f"allow_phi.{key}",
            )
    used: set[str] = set()
    for ch, vendor in c.vendors.items():
        try:
            prof = resolve_profile(vendor.profile, ch, c.profiles)
        except SegmentError as exc:
            raise CampaignError(
                f"vendors.{ch}: {exc.message}", path=path,
                line=_line(raw, "vendors", str(ch), "profile"), key=f"vendors.{ch}.profile",
            ) from exc
        covered = {col.field for col in prof.columns}
        required = [col for col in prof.columns if col.required and col.value is None]
        if not prof.columns and not vendor.fields:
            raise CampaignError(
                f"key `vendors.{ch}.fields`: profile `{vendor.profile}` declares no columns, "
                "so list the fields to write",
                path=path, line=_line(raw, "vendors", str(ch)), key=f"vendors.{ch}.fields",
            )
        for i, field in enumerate(vendor.fields):
            loc = _line(raw, "vendors", str(ch), "fields", i)
            if field not in covered and not prof.extra_fields:
                raise invalid_value(
                    f"vendors.{ch}.fields[{i}]", field, sorted(covered),
                    path=path, line=loc, error=CampaignError,
                )
            if field not in SAFE_FIELDS and field not in c.allow_phi:
                raise PrivacyError(
                    f"key `vendors.{ch}.fields[{i}]`: `{field}` is not a contact field and may "
                    "carry clinical or sensitive information; list it under `allow_phi:` with "
                    "a justification if the vendor truly needs it "
                    f"(contact fields: {', '.join(sorted(SAFE_FIELDS))})",
                    path=path, line=loc, key=f"vendors.{ch}.fields",
                )
            used.add(field)
        for col in required:
            if col.field.startswith("option:"):
                key = col.field.removeprefix("option:")
                if key not in vendor.options:
                    raise CampaignError(
                        f"key `vendors.{ch}.options.{key}`: profile `{vendor.profile}` {ch} needs "
                        f"`{key}` (column `{col.header}`): without it the vendor will not message anyone "
                        f"(Braze sends SMS only to users subscribed to an SMS subscription group); "
                        f"valid options are: the vendor's id, e.g. `options: {{{key}: <uuid>}}`",
                        path=path, line=_line(raw, "vendors", str(ch)), key=f"vendors.{ch}.options",
                    )
                continue
            if col.field not in SAFE_FIELDS and col.field not in c.allow_phi:
                raise PrivacyError(
                    f"profile `{vendor.profile}` column `{col.header}` always writes `{col.field}`, "
                    "which is not a contact field; list it under `allow_phi:` with a justification",
                    path=path, line=_line(raw, "vendors", str(ch), "profile"),
                    key=f"vendors.{ch}.profile",
                )
            used.add(col.field)
        for key in vendor.options:
            if key != "subscription_group_id":
                raise invalid_value(
                    f"vendors.{ch}.options.{key}", key, ["subscription_group_id"],
                    path=path, line=_line(raw, "vendors", str(ch), "options", key),
                    error=CampaignError,
                )
    from segment.export.checks import check_required_fields
    from segment.export.specs import VENDOR_SPECS

    check_required_fields(c)
    for i, decl in enumerate(c.baa):
        if decl.vendor not in VENDOR_SPECS and decl.vendor not in c.profiles:
            raise invalid_value(
                f"baa[{i}].vendor", decl.vendor, sorted({*VENDOR_SPECS, *c.profiles}),
                path=path, line=_line(raw, "baa"), error=CampaignError,
            )
    for key in c.allow_phi:
        if key not in used:
            raise CampaignError(
                f"key `allow_phi.{key}`: no vendor receives `{key}`; remove the entry "
                "(justifications must match what actually leaves)",
                path=path, line=_line(raw, "allow_phi", key), key=f"allow_phi.{key}",
            )
    # file names
    try:
        check_file_name_pattern(c.file_name)
    except ValueError as exc:
        raise CampaignError(
            f"key `file_name`: found {c.file_name!r}; {exc}; placeholders: "
            + ", ".join("{" + f + "}" for f in FILE_NAME_FIELDS),
            path=path, line=_line(raw, "file_name"), key="file_name",
        ) from exc
    word = clinical_word_in(re.sub(r"\{[^}]*\}", "-", c.file_name), c.clinical_words)
    if word:
        raise PrivacyError(
            f"key `file_name`: contains the clinical word `{word}`",
            path=path, line=_line(raw, "file_name"), key="file_name",
        )
    # quiet hours: state codes, and state windows that leave some time to send
    qh = c.quiet_hours
    for state, window in qh.states.items():
        if not re.fullmatch(r"[A-Z]{2}", state):
            raise invalid_value(
                f"quiet_hours.states.{state}", state, "a USPS two-letter state code in capitals",
                path=path, line=_line(raw, "quiet_hours", "states", state), error=CampaignError,
            )
        if max(qh.start, window.start) >= min(qh.end, window.end):
            raise CampaignError(
                f"key `quiet_hours.states.{state}`: found {window.start:%H:%M}-{window.end:%H:%M}, "
                f"which leaves no time inside the campaign's window {qh.start:%H:%M}-{qh.end:%H:%M} "
                "(a state window only narrows it); valid options are: a window that overlaps it",
                path=path, line=_line(raw, "quiet_hours", "states", state), key=f"quiet_hours.states.{state}",
            )
    # caps
    for i, cap in enumerate(c.frequency_caps):
        for ch in cap.channels or ():
            if ch not in c.channels:
                raise invalid_value(
                    f"frequency_caps[{i}].channels", str(ch), [str(x) for x in c.channels],
                    path=path, line=_line(raw, "frequency_caps", i), error=CampaignError,
                )
    # suppression files must exist now, not halfway through an export
    for i, sup in enumerate(c.suppression):
        if not sup.path.is_file():
            raise CampaignError(
                f"key `suppression[{i}].path`: file not found: {sup.path.name}",
                path=path, line=_line(raw, "suppression", i, "path"), key="suppression.path",
            )
    # destination
    if c.destination is not None:
        from segment.export.deliver import parse_destination

        try:
            parse_destination(c.destination)
        except SegmentError as exc:
            raise CampaignError(
                f"key `destination`: {exc.message}", path=path,
                line=_line(raw, "destination"), key="destination",
            ) from exc


def _check_personalization(c: Campaign, raw: LineDict, path: Path) -> dict[str, int]:
    """Preferences file, variants and journey: refused before any data is read. Returns key lines."""
    from segment.campaign.journey import check_journey
    from segment.campaign.preferences import read_header
    from segment.campaign.variants import has_event_test

    lines: dict[str, int] = {}
    if c.preferences is not None:
        if not c.preferences.is_file():
            raise CampaignError(
                f"key `preferences`: file not found: {c.preferences.name}",
                path=path, line=_line(raw, "preferences"), key="preferences",
            )
        read_header(c.preferences)
    seen: dict[str, int] = {}
    defaults: list[int] = []
    for i, v in enumerate(c.variants):
        loc = _line(raw, "variants", i, "code")
        lines[f"variants[{i}]"] = _line(raw, "variants", i) or 0
        lines[f"variants[{i}].when"] = _line(raw, "variants", i, "when") or lines[f"variants[{i}]"]
        if v.code in seen:
            raise CampaignError(
                f"key `variants[{i}].code`: found {v.code!r}, already the code of variants[{seen[v.code]}]; "
                "each variant needs its own code",
                path=path, line=loc, key=f"variants[{i}].code",
            )
        seen[v.code] = i
        word = clinical_word_in(v.code, c.clinical_words)
        if word:
            raise PrivacyError(
                f"key `variants[{i}].code`: found {v.code!r}, which contains the clinical word `{word}`; "
                "vendor files carry a neutral variant code (e.g. V-RIDE, V-ES, V-MAIL-KIT)",
                path=path, line=loc, key=f"variants[{i}].code",
            )
        if v.when is None:
            defaults.append(i)
        elif has_event_test(v.when):
            raise invalid_value(
                f"variants[{i}].when", "valueset", ["column", "age", "any", "all"],
                path=path, line=lines[f"variants[{i}].when"], error=CampaignError,
            )
    if c.variants and len(defaults) != 1:
        found = ", ".join(c.variants[i].code for i in defaults) or "none"
        raise CampaignError(
            f"key `variants`: exactly one variant must have no `when:` (the default); found {found}",
            path=path, line=_line(raw, "variants"), key="variants",
        )
    if c.journey is not None:
        lines.update(check_journey(c, raw, path))
    return lines


def load_campaign(path: str | Path) -> Campaign:
    """Load and validate a campaign file; relative paths resolve against its folder.

    Raises :class:`CampaignError` (or :class:`PrivacyError` for the PHI lint) with the
    file, line, key, value found and valid options.
    """
    p = Path(path)
    raw = load_yaml(p, CampaignError)
    if not isinstance(raw, LineDict):
        raise CampaignError("a campaign file must be a mapping of keys", path=p, line=1)
    _refuse_literal_secrets(raw, p)
    campaign = validate(Campaign, raw, p, error=CampaignError)
    campaign = _resolve_paths(campaign, p.resolve().parent)
    _cross_checks(campaign, raw, p)
    lines = _check_personalization(campaign, raw, p)
    campaign._path = p.resolve()
    campaign._lines = lines
    return campaign
