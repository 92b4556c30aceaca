"""The working folder: stage file names, owner-only creation, atomic writes.

Everything in a working folder can hold PHI, so folders are created 0700 and files
0600 regardless of the user's umask, and every file is written to a temporary name
and renamed into place when complete, so a failed stage leaves no half-written file.
A temporary file is owner-only from its creation and carries the writer's process id
(``.<name>.<pid>.<random>.tmp``), so one left by a killed process is recognized and
removed by the next run (:func:`remove_stale_temp_files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import polars as pl

from segment.errors import StageInputError
from segment.written import note_written

# File names in a working folder: part of the contract (DESIGN.md).
PATIENTS = "patients.parquet"
EVENTS = "events.parquet"
REJECTS = "rejects.csv"
INGEST_REPORT = "ingest-report.json"
GEOCODED = "geocoded.parquet"
GEOCODE_REPORT = "geocode-report.json"
GEOCODE_CACHE = "geocode-cache.parquet"
ENRICHED = "enriched.parquet"
ENRICH_REPORT = "enrich-report.json"
ELIGIBILITY = "eligibility.parquet"
EVALUATE_REPORT = "evaluate-report.json"
RUN_LOG = "run-log.jsonl"
#: a working folder's own outputs: writing one starts the folder's record of the files
#: segment wrote (:mod:`segment.written`), which is all `segment purge` ever removes
OWN_OUTPUTS = frozenset({
    PATIENTS, EVENTS, REJECTS, INGEST_REPORT, GEOCODED, GEOCODE_REPORT, GEOCODE_CACHE,
    ENRICHED, ENRICH_REPORT, ELIGIBILITY, EVALUATE_REPORT, ".stage-hashes.json", "audit.json", "audit.html",
    # identity resolution (segment.ingest.identity), personal preferences, measured outcomes
    "identity-report.json", "identity-model.json", "identity-review.csv", "identity-links.parquet",
    ".file-hashes.json", "preferences-rejects.csv", "measure.json", "measure.html",
})

DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"
#: a temporary file of :func:`atomic_path`: ``.<name>.<pid>.<random>.tmp``
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp$")
#: temporary files named without a process id (older versions) are stale after this long
_UNOWNED_TEMP_AGE_S = 24 * 3600


def ensure_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) owner-only; an existing folder keeps its mode.

    Only folders segment creates are made 0700: a shared folder it writes into (a vendor
    drop folder, a ledger folder) was set up by someone else, for others too.
    """
    p = Path(path)
    missing: list[Path] = []
    folder = p
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(folder, DIR_MODE)
    p.mkdir(exist_ok=True)  # raises when ``path`` is a file
    return p


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The file is made owner-only. On any exception the temporary file is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    ensure_private_dir(target.parent)
    tmp = temp_file(target.parent, target.name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
        note_written(target, own_output=target.name in OWN_OUTPUTS)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target`` for writing; rename into place on success."""
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(target: str | Path, data: Any) -> Path:
    """Write ``data`` as stable, indented JSON (keys sorted), atomically and owner-only."""
    with atomic_open(target, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return Path(target)


def write_parquet(frame: pl.LazyFrame | pl.DataFrame, target: str | Path) -> Path:
    """Write a frame to Parquet atomically and owner-only (streaming when lazy)."""
    return _write_frame(frame, target, "parquet")


def write_csv(frame: pl.DataFrame | pl.LazyFrame, target: str | Path) -> Path:
    """Write a frame to CSV atomically and owner-only."""
    return _write_frame(frame, target, "csv")


def _write_frame(frame: pl.DataFrame | pl.LazyFrame, target: str | Path, kind: str) -> Path:
    with atomic_path(target) as tmp:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp) if kind == "parquet" else frame.sink_csv(tmp)
        else:
            frame.write_parquet(tmp) if kind == "parquet" else frame.write_csv(tmp)
    return Path(target)


def sha256_file(path: str | Path, chunk: int = 4 << 20) -> str:
    """SHA-256 of a file's bytes, as hex (manifests, stage keys, pack verification)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def require(workdir: str | Path, name: str, *, produced_by: str) -> Path:
    """The path of a previous stage's output, or a clear error saying which stage to run."""
    p = Path(workdir) / name
    if not p.exists():
        raise StageInputError(
            f"{name} not found; run `segment {produced_by}` first", path=Path(workdir)
        )
    return p


def scan(workdir: str | Path, name: str, *, produced_by: str) -> pl.LazyFrame:
    """Lazily scan a previous stage's Parquet output."""
    return pl.scan_parquet(require(workdir, name, produced_by=produced_by))


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_file(folder: str | Path, stem: str) -> Path:
    """A new, empty, owner-only temporary file ``.<stem>.<pid>.<random>.tmp`` in ``folder``:
    the name :func:`remove_stale_temp_files` recognizes once its process is gone."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
    os.close(fd)  # mkstemp made it owner-only (0600)
    return Path(name)


def remove_stale_temp_files(
    workdir: str | Path, *, now: float | None = None, owned_only: bool = False,
) -> list[str]:
    """Remove temporary files that a killed writer left in ``workdir`` (and below).

    A temporary file of :func:`atomic_path` is removed when the process that wrote it
    is gone; an older-style ``.<name>.<random>.tmp`` once it is a day old. Returns the
    removed paths, relative to ``workdir``. Call it only while holding the folder's
    run lock, or with ``owned_only`` (only files naming a process that is gone: no other
    process can be writing them).
    """
    root = Path(workdir)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    for path in sorted(root.rglob(f".*{TEMP_SUFFIX}")):
        if path.is_symlink() or not path.is_file():
            continue
        match = _TEMP_NAME.match(path.name)
        if match is not None:
            stale = int(match.group("pid")) != os.getpid() and not pid_alive(int(match.group("pid")))
        elif owned_only:
            continue
        else:
            try:
                stale = now - path.stat().st_mtime > _UNOWNED_TEMP_AGE_S
            except FileNotFoundError:
                continue
        if stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(str(path.relative_to(root)))
    return removed


#: the patient tables, most complete first
PATIENT_FILES = (ENRICHED, GEOCODED, PATIENTS)


def patients_path(workdir: Path) -> Path:
    """``enriched.parquet``, else ``geocoded.parquet``, else ``patients.parquet``."""
    for name in PATIENT_FILES:
        if (workdir / name).exists():
            return workdir / name
    raise StageInputError(
        f"no patient file ({', '.join(PATIENT_FILES)}) found; run `segment ingest` first",
        path=workdir,
    )
