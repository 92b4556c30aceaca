"""Run state in a working folder: the lock, content hashes for stage reuse, the run log.

- :class:`RunLock` holds an exclusive OS lock on ``DIR/.segment.lock`` (``flock`` on Unix,
  ``LockFileEx`` on Windows, through ``filelock``); the kernel releases it when the process
  dies, so a lock file left by a dead process is detected as stale and taken over, while a live run makes a second one fail with a clear message.
- :class:`StageCache` records, per stage, a key made of the hashes of its inputs and
  settings and the size and SHA-256 of its outputs, so an unchanged stage is skipped on
  the next run and a damaged output (even one whose size did not change) is recomputed.
- :class:`ExclusiveLock` is the same kind of lock on any file (deliveries use one each).
- :func:`append_run_record` appends one JSON line per run (no PHI: ids, counts, timings).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor

from segment import workdir as wd
from segment.errors import LockError

LOCK_NAME = ".segment.lock"
HASHES_NAME = ".stage-hashes.json"


class ExclusiveLock:
    """An exclusive OS lock on a file, released by the kernel when the process dies.

    The lock is ``filelock``'s descriptor lock (``flock`` on Unix, ``LockFileEx`` on Windows),
    taken on a descriptor this class owns so that it can record the holder in the file.

    The lock file records who holds it (JSON). After locking, the file is checked to be
    the one still at ``path`` (same inode), so a holder that removes the file on release
    can never leave two processes each holding "the" lock.
    """

    def __init__(self, path: str | Path, holder: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.holder = dict(holder)
        self._fd: int | None = None
        self.took_over_stale = False

    def try_acquire(self) -> bool:
        """Take the lock if free; False when another live process holds it."""
        wd.ensure_private_dir(self.path.parent)
        while True:
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                locked = lock_descriptor(fd, blocking=False)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                self._busy = _read_holder(fd)
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released and removed by its holder meanwhile: lock the new file
                os.close(fd)
                continue
            break
        self.took_over_stale = existed and bool(_read_holder(fd))
        info = {**self.holder, "pid": os.getpid(), "host": socket.gethostname(),
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return True

    def busy_holder(self) -> dict[str, Any]:
        """Who held the lock at the last failed :meth:`try_acquire`."""
        return dict(getattr(self, "_busy", {}))

    def release(self) -> None:
        """Release the lock and remove the lock file."""
        if self._fd is None:
            return
        removed = False
        with contextlib.suppress(FileNotFoundError, PermissionError):
            self.path.unlink()  # before unlocking (Unix): a waiter then sees the inode change
            removed = True
        unlock_descriptor(self._fd)
        os.close(self._fd)
        self._fd = None
        if not removed:  # Windows cannot remove an open file; a new holder keeps it open
            with contextlib.suppress(OSError):
                self.path.unlink()


class RunLock(ExclusiveLock):
    """An exclusive, crash-safe lock on a working folder."""

    def __init__(self, workdir: str | Path, run_id: str) -> None:
        super().__init__(Path(workdir) / LOCK_NAME, {"run_id": run_id})
        self.run_id = run_id

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`LockError` naming the run that holds it."""
        if not self.try_acquire():
            holder = self.busy_holder()
            who = f"run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')})"
            raise LockError(
                f"another segment run holds the lock: {who}; wait for it to finish",
                path=self.path,
            )
        return self

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        value = json.loads(data.decode() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


#: (path, size, mtime, ctime, inode) -> SHA-256: any write to a file changes its ctime
_HASHES: dict[tuple[str, int, int, int, int], str] = {}
HASH_MEMORY_NAME = ".file-hashes.json"


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def cached_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modified and changed times, inode).

    A run fingerprints its sources for the run id and again for the ingest stage key;
    a 1 GiB extract should be read once, not twice, and (with :func:`remembered_hashes`)
    not again by the next run while the file is untouched. The change time cannot be set
    back by a user, so a rewritten file is always read again.
    """
    key = _stat_key(path)
    if key not in _HASHES:
        _HASHES[key] = wd.sha256_file(path)
    return _HASHES[key]


def fresh_sha256(path: Path) -> str:
    """SHA-256 of a file read now (not from the cache), remembered for later look-ups.

    Used to check a cached stage output: bytes can change without the size or the
    modification time changing (a bad disk, a copy that kept the time stamp).
    """
    key = _stat_key(path)
    digest = wd.sha256_file(path)
    _HASHES[key] = digest
    return digest


def recall_hashes(workdir: str | Path) -> None:
    """Load the file hashes earlier runs kept in ``workdir/.file-hashes.json``.

    An entry is used only while its file has the same path, size, modified and changed
    times and inode, so an unchanged nightly rerun does not read gigabytes of extracts
    again to learn that they did not change. Stage outputs are still checked by content.
    """
    try:
        entries = json.loads((Path(workdir) / HASH_MEMORY_NAME).read_text())
    except (OSError, ValueError):
        return
    for entry in entries if isinstance(entries, list) else []:
        if (isinstance(entry, list) and len(entry) == 6 and isinstance(entry[0], str)
                and all(isinstance(v, int) for v in entry[1:5]) and isinstance(entry[5], str)):
            _HASHES[(entry[0], entry[1], entry[2], entry[3], entry[4])] = entry[5]


def keep_hashes(workdir: str | Path) -> None:
    """Write the hashes of files still as they were hashed to ``workdir/.file-hashes.json``."""
    keep = []
    for key, digest in _HASHES.items():
        with contextlib.suppress(OSError):
            if _stat_key(Path(key[0])) == key:  # still the file that was hashed
                keep.append([*key, digest])
    with contextlib.suppress(OSError):
        wd.write_json(Path(workdir) / HASH_MEMORY_NAME, sorted(keep))


@contextlib.contextmanager
def remembered_hashes(workdir: str | Path) -> Iterator[None]:
    """:func:`recall_hashes` on entry, :func:`keep_hashes` on exit."""
    recall_hashes(workdir)
    try:
        yield
    finally:
        keep_hashes(workdir)


def tree_fingerprint(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """(relative name, sha256) for every file under the given files/folders, sorted."""
    out: list[tuple[str, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(x for x in path.rglob("*") if x.is_file() and not x.name.startswith(".")):
                out.append((f"{path.name}/{f.relative_to(path)}", cached_sha256(f)))
        elif path.exists():
            out.append((path.name, cached_sha256(path)))
        else:
            out.append((path.name, "missing"))
    return out


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes of ``value`` for hashing (sorted keys; anything else as ``str``)."""
    return json.dumps(value, sort_keys=True, default=str).encode()


def content_hash(value: Any) -> str:
    """The SHA-256 (hex) of ``value``'s canonical JSON: the one content-key scheme."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def run_id_of(key: str) -> str:
    """A run id: the first 12 hex of a run's content key."""
    return key[:12]


def stage_key(stage: str, inputs: Iterable[str | Path], params: Mapping[str, Any]) -> str:
    """A key that changes when a stage's inputs, settings or segment's version change."""
    from segment import __version__

    payload = {
        "stage": stage,
        "version": __version__,
        "inputs": tree_fingerprint(inputs),
        "params": {k: str(v) for k, v in sorted(params.items())},
    }
    return content_hash(payload)


class StageCache:
    """Per-stage keys and output checksums in ``DIR/.stage-hashes.json``.

    An output is reused only when its size and SHA-256 still match what the stage
    wrote; anything else (a changed, truncated or corrupted file) reruns the stage.
    """

    def __init__(self, workdir: str | Path) -> None:
        self.path = Path(workdir) / HASHES_NAME
        try:
            self.entries: dict[str, Any] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}
        if not isinstance(self.entries, dict):
            self.entries = {}

    def is_fresh(self, stage: str, key: str, outputs: Iterable[str | Path]) -> bool:
        """True when the stage ran with this key and its outputs are byte-for-byte unchanged."""
        entry = self.entries.get(stage)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return False
        recorded = entry.get("outputs", {})
        for out in outputs:
            p = Path(out)
            want = recorded.get(p.name)
            if not isinstance(want, dict) or not p.is_file():
                return False
            if p.stat().st_size != want.get("size") or fresh_sha256(p) != want.get("sha256"):
                return False
        return True

    def record(self, stage: str, key: str, outputs: Iterable[str | Path]) -> None:
        """Remember that ``stage`` produced ``outputs`` under ``key``."""
        self.entries[stage] = {
            "key": key,
            "outputs": {
                Path(o).name: {"size": Path(o).stat().st_size, "sha256": cached_sha256(Path(o))}
                for o in outputs
            },
        }
        wd.write_json(self.path, self.entries)



def append_run_record(workdir: str | Path, record: Mapping[str, Any]) -> Path:
    """Append one JSON line to the run log (owner-only)."""
    path = Path(workdir) / wd.RUN_LOG
    wd.ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, 0o600)
        os.write(fd, (json.dumps(dict(record), sort_keys=True, default=str) + "\n").encode())
    finally:
        os.close(fd)
    return path
