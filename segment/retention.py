"""Retention: remove working outputs past a retention period (`segment purge`).

This is the only place in the product that deletes user files. It removes only files
segment itself writes in a working folder (stage outputs, reports, caches, vendor-file
staging, run logs), never anything else the user keeps there.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from segment import workdir as wd
from segment.errors import ConfigError

#: files a working folder holds that segment wrote (exact names)
_OWN_FILES = {
    wd.PATIENTS,
    wd.EVENTS,
    wd.REJECTS,
    wd.INGEST_REPORT,
    wd.GEOCODED,
    wd.GEOCODE_REPORT,
    wd.GEOCODE_CACHE,
    wd.ENRICHED,
    wd.ENRICH_REPORT,
    wd.ELIGIBILITY,
    wd.EVALUATE_REPORT,
    wd.RUN_LOG,
    "audit.json",
    "audit.html",
    "manifest.json",
    ".stage-hashes.json",
}
#: folders inside a working folder that hold only segment's own outputs
_OWN_DIRS = ("exports", "staging", "runs")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``30d``, ``12h``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(
            f"key `--older-than`: found {text!r}; valid options are: a number with a unit "
            "s, m, h, d or w (for example 30d)"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass
class PurgeResult:
    """What a purge removed (names and sizes only)."""

    removed: list[str] = field(default_factory=list)
    bytes_removed: int = 0
    kept: int = 0


def _is_own(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if rel.parts and rel.parts[0] in _OWN_DIRS:
        return True
    name = path.name
    return name in _OWN_FILES or (name.startswith(".") and name.endswith(".tmp"))


def purge(workdir: str | Path, older_than_s: float, *, now: float | None = None, dry_run: bool = False) -> PurgeResult:
    """Remove segment's own files in ``workdir`` last modified more than ``older_than_s`` ago."""
    root = Path(workdir)
    if not root.is_dir():
        raise ConfigError("working folder not found", path=root)
    cutoff = (now if now is not None else time.time()) - older_than_s
    result = PurgeResult()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        if path.is_symlink() or not _is_own(path, root):
            continue
        stat = path.stat()
        if stat.st_mtime > cutoff:
            result.kept += 1
            continue
        result.removed.append(str(path.relative_to(root)))
        result.bytes_removed += stat.st_size
        if not dry_run:
            path.unlink()
    if not dry_run:
        for sub in _OWN_DIRS:
            d = root / sub
            if d.is_dir():
                for folder in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True):
                    if not any(folder.iterdir()):
                        folder.rmdir()
    return result
