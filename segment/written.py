"""The record of the files segment wrote, so `segment purge` removes those and nothing else.

Each file written through :func:`segment.workdir.atomic_path` is noted, by device, inode
and size, in ``.segment-files.jsonl`` of the working folder that holds it: the nearest
folder above the file that already has a record, or the file's own folder when the
file is one of a working folder's own outputs (stage files, reports, the audit). A file
written outside any working folder (a manifest in a vendor drop folder) is not noted,
so nothing is added to folders segment does not own.

A user's file that happens to share a name (``audit.html``, ``manifest.json``) is not in
the record; a file replaced after segment wrote it no longer matches its entry. Either
way purge leaves it. Noting is best effort: a record that cannot be written never fails
a stage (the file is then simply never purged).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RECORD_NAME = ".segment-files.jsonl"
_MAX_LEVELS = 64


@dataclass(frozen=True)
class Entry:
    """One file segment wrote: its path relative to the record's folder, and identity."""

    path: str
    dev: int
    ino: int
    size: int

    def matches(self, st: os.stat_result) -> bool:
        """True when ``st`` is still the regular file segment wrote."""
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size) == (self.dev, self.ino, self.size)


def _record_for(target: Path, own_output: bool) -> Path | None:
    """The record that notes ``target``, or None when it is outside every working folder."""
    folder = target.parent
    if own_output:
        return folder / RECORD_NAME
    for level, candidate in enumerate((folder, *folder.parents)):
        if level >= _MAX_LEVELS:
            break
        record = candidate / RECORD_NAME
        if record.is_file() and not record.is_symlink():
            return record
    return None


def note_written(target: str | Path, *, own_output: bool = False) -> None:
    """Note ``target`` (just written by segment) in its working folder's record.

    ``own_output``: the file is one of a working folder's own outputs (its name is in
    :data:`segment.workdir.OWN_OUTPUTS`), so its folder starts a record if it has none.
    """
    target = Path(target)
    if target.name == RECORD_NAME:
        return
    with contextlib.suppress(OSError, ValueError):
        absolute = Path(os.path.abspath(target))
        record = _record_for(absolute, own_output)
        if record is None:
            return
        st = os.lstat(absolute)
        rel = absolute.relative_to(Path(os.path.abspath(record.parent)))
        line = json.dumps({"path": rel.as_posix(), "dev": st.st_dev, "ino": st.st_ino, "size": st.st_size})
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def read_record(record: Path) -> dict[str, Entry]:
    """The latest entry per path in a record (lines that cannot be read are skipped)."""
    entries: dict[str, Entry] = {}
    try:
        text = record.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return entries
    for line in text.splitlines():
        try:
            raw = json.loads(line)
            entry = Entry(str(raw["path"]), int(raw["dev"]), int(raw["ino"]), int(raw["size"]))
        except (ValueError, KeyError, TypeError):
            continue
        entries[entry.path] = entry
    return entries


def rewrite_record(record: Path, entries: list[Entry]) -> None:
    """Replace a record by ``entries`` (removed when empty), atomically and owner-only."""
    if not entries:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        return
    tmp = record.with_name(f"{RECORD_NAME}.{os.getpid()}.rewrite")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for e in entries:
            fh.write(json.dumps({"path": e.path, "dev": e.dev, "ino": e.ino, "size": e.size}) + "\n")
    os.replace(tmp, record)


def records_below(root: Path) -> Iterator[Path]:
    """Every record in ``root`` and its subfolders, without following symbolic links."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        if RECORD_NAME in files:
            record = Path(folder) / RECORD_NAME
            if not record.is_symlink():
                yield record


def resolve_entry(record: Path, entry: Entry) -> Path | None:
    """The file an entry names, or None when its path could leave the record's folder.

    The path must be relative, without ``..``, and reach the file through real folders
    (a folder replaced by a symbolic link is not followed).
    """
    rel = Path(entry.path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    base = record.parent
    target = base / rel
    if os.path.realpath(target.parent) != os.path.join(os.path.realpath(base), *rel.parts[:-1]).rstrip(os.sep):
        return None
    return target
