"""Load a campaign file: safe YAML -> frozen typed objects -> cross-field checks.

Everything is checked before any patient data is read. Errors name the file, the
line, the key, the value found and the valid options (:class:`CampaignError`), or, for
fields that would let clinical information leave, a :class:`PrivacyError` located the
same way.
"""

from __future__ import annotations

import re
from pathlib import Path

from segment.campaign.checks import cross_check, key_lines
from segment.campaign.model import Campaign
from segment.campaign.problems import Where, raise_problems
from segment.config import LineDict, load_yaml, validate
from segment.errors import CampaignError

_SECRET_KEYS = ("password", "passphrase", "key_passphrase", "secret", "private_key")


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


def load_campaign(path: str | Path) -> Campaign:
    """Load and validate a campaign file; relative paths resolve against its folder.

    Raises :class:`CampaignError` (or :class:`PrivacyError` for the PHI lint) with the
    file, line, key, value found and valid options. The cross-field checks collect every
    problem: several are raised together as
    :class:`~segment.campaign.problems.CampaignProblems`, which lists each.
    """
    p = Path(path)
    raw = load_yaml(p, CampaignError)
    if not isinstance(raw, LineDict):
        raise CampaignError("a campaign file must be a mapping of keys", path=p, line=1)
    _refuse_literal_secrets(raw, p)
    campaign = validate(Campaign, raw, p, error=CampaignError)
    campaign = _resolve_paths(campaign, p.resolve().parent)
    at = Where(raw, p)
    raise_problems(cross_check(campaign, at))
    campaign._path = p.resolve()
    campaign._lines = key_lines(campaign, at)
    return campaign
