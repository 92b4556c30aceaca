"""Retention: remove working outputs past a retention period (`segment purge`).

This is the only place in the product that deletes user files, so it removes only what
its own records say segment wrote: the entries of the ``.segment-files.jsonl`` records
in the folder (:mod:`segment.written`), each still the very file segment wrote (same
device, inode and size). A user's ``manifest.json`` or ``audit.html`` anywhere below the
folder, a file replaced after segment wrote it, and anything reached through a symbolic
link are left alone. Folders left empty by the removal are removed too.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from segment.errors import ConfigError
from segment.written import Entry, read_record, records_below, resolve_entry, rewrite_record

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


def purge(workdir: str | Path, older_than_s: float, *, now: float | None = None, dry_run: bool = False) -> PurgeResult:
    """Remove the files segment wrote in ``workdir`` last modified more than ``older_than_s`` ago.

    Only files its records name, and only while they are still the file it wrote. The
    records are updated (entries for removed or replaced files dropped).
    """
    root = Path(workdir)
    if not root.is_dir():
        raise ConfigError("working folder not found", path=root)
    cutoff = (now if now is not None else time.time()) - older_than_s
    result = PurgeResult()
    emptied: set[Path] = set()
    for record in list(records_below(root)):
        keep: list[Entry] = []
        for entry in read_record(record).values():
            target = resolve_entry(record, entry)
            if target is None:
                continue
            try:
                st = os.lstat(target)
            except OSError:
                continue  # gone: the entry is dropped
            if not entry.matches(st):
                continue  # replaced since segment wrote it: not segment's file any more
            if st.st_mtime > cutoff:
                result.kept += 1
                keep.append(entry)
                continue
            result.removed.append(str(target.relative_to(root)))
            result.bytes_removed += st.st_size
            if dry_run:
                continue
            try:
                target.unlink()
            except OSError:
                keep.append(entry)
                result.removed.pop()
                result.bytes_removed -= st.st_size
                continue
            emptied.add(target.parent)
        if not dry_run:
            rewrite_record(record, keep)
            emptied.add(record.parent)
    if not dry_run:
        _remove_empty(emptied, root)
    result.removed.sort()
    return result


def _remove_empty(folders: set[Path], root: Path) -> None:
    """Remove folders (and their parents, below ``root``) that the purge left empty."""
    resolved_root = root.resolve()
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        current = folder
        while current.resolve() != resolved_root and resolved_root in current.resolve().parents:
            with contextlib.suppress(OSError):
                current.rmdir()  # only succeeds when empty
            if current.exists():
                break
            current = current.parent
