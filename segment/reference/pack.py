"""A reference pack on disk: its manifest, its tables, checksums and vintage checks.

A pack is a folder with ``manifest.json`` and Parquet/GeoParquet tables (see
``docs/contracts.md``). :func:`open_pack` reads and checks the manifest and gives typed
access to the tables; :func:`verify_pack` re-hashes every file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment.errors import ReferenceDataError
from segment.workdir import sha256_file

if TYPE_CHECKING:
    import geopandas as gpd

MANIFEST = "manifest.json"
FORMAT = 1

TRACTS = "tracts.parquet"
BLOCK_GROUPS = "block_groups.parquet"
ADDRESS_RANGES = "address_ranges.parquet"
ZIP_CENTROIDS = "zip_centroids.parquet"
INDICATORS = "indicators.parquet"
BLOCK_GROUP_INDICATORS = "block_group_indicators.parquet"
COUNTY_INDICATORS = "county_indicators.parquet"

#: every table a pack may hold, in the order they are listed
TABLES = (TRACTS, BLOCK_GROUPS, ADDRESS_RANGES, ZIP_CENTROIDS, INDICATORS,
          BLOCK_GROUP_INDICATORS, COUNTY_INDICATORS)


def _fields_of(entry: FileEntry | Manifest) -> dict[str, Any]:
    """A manifest dataclass's own fields by name (not its ``extra`` keys)."""
    return {f.name: getattr(entry, f.name) for f in fields(entry) if f.name != "extra"}


@dataclass(frozen=True)
class FileEntry:
    """One pack file as the manifest records it."""

    source: list[str]
    vintage: str
    geography: str
    rows: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: the fields, then the extra keys."""
        return {**_fields_of(self), **self.extra}


@dataclass(frozen=True)
class Manifest:
    """A pack's ``manifest.json``: what each file is, where it came from, its checksum."""

    name: str
    synthetic: bool
    created: str
    tract_vintage: int
    states: list[str]
    files: dict[str, FileEntry]
    columns: list[dict[str, Any]]
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``manifest.json`` (keys sorted there): the fields, then the extra keys."""
        return {**_fields_of(self), "files": {k: v.to_dict() for k, v in sorted(self.files.items())},
                **self.extra}

    @property
    def pack_id(self) -> str:
        """A short content id: changes whenever any table's bytes change."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}:{self.files[name].sha256}\n".encode())
        return digest.hexdigest()[:16]

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> Manifest:
        """Parse and check a manifest; problems are :class:`ReferenceDataError` naming the key."""
        if not isinstance(raw, dict):
            raise ReferenceDataError("manifest is not a JSON object", path=path)
        fmt = raw.get("format")
        if fmt != FORMAT:
            raise ReferenceDataError(
                f"key `format`: found {fmt!r}; this version reads format {FORMAT}", path=path
            )
        for key in ("name", "tract_vintage", "files"):
            if key not in raw:
                raise ReferenceDataError(f"key `{key}` is required", path=path, key=key)
        vintage = raw["tract_vintage"]
        if vintage not in (2010, 2020):
            raise ReferenceDataError(
                f"key `tract_vintage`: found {vintage!r}; valid options are: 2010, 2020", path=path
            )
        files: dict[str, FileEntry] = {}
        known = {f.name for f in fields(FileEntry)} - {"extra"}
        for name, entry in (raw.get("files") or {}).items():
            if not isinstance(entry, dict) or "sha256" not in entry:
                raise ReferenceDataError(f"files.{name}: entry has no sha256", path=path)
            if "/" in name or name.startswith("."):
                raise ReferenceDataError(f"files.{name}: not a plain file name", path=path)
            source = entry.get("source", [])
            files[name] = FileEntry(
                source=list(source) if isinstance(source, list) else [str(source)],
                vintage=str(entry.get("vintage", "")),
                geography=str(entry.get("geography", "")),
                rows=int(entry.get("rows", 0)),
                sha256=str(entry["sha256"]),
                extra={k: v for k, v in entry.items() if k not in known},
            )
        if TRACTS not in files:
            raise ReferenceDataError(f"manifest lists no {TRACTS}", path=path)
        base = {"format", "name", "synthetic", "created", "tract_vintage", "states", "files", "columns"}
        return cls(
            name=str(raw["name"]),
            synthetic=bool(raw.get("synthetic", False)),
            created=str(raw.get("created", "")),
            tract_vintage=int(vintage),
            states=[str(s) for s in raw.get("states", [])],
            files=files,
            columns=list(raw.get("columns", [])),
            extra={k: v for k, v in raw.items() if k not in base},
        )


@dataclass(frozen=True)
class Pack:
    """An opened reference pack: the folder, its manifest and readers for its tables."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        """The pack's name."""
        return self.manifest.name

    @property
    def tract_vintage(self) -> int:
        """2010 or 2020: the decennial tract set every tract id in this pack belongs to."""
        return self.manifest.tract_vintage

    @property
    def pack_id(self) -> str:
        """Content id of the pack (see :attr:`Manifest.pack_id`)."""
        return self.manifest.pack_id

    def has(self, table: str) -> bool:
        """Whether the pack holds ``table`` (e.g. ``ADDRESS_RANGES``)."""
        return table in self.manifest.files

    def file(self, table: str) -> Path:
        """Path of a table, or a clear error when the pack does not hold it."""
        if not self.has(table):
            raise ReferenceDataError(
                f"pack {self.name!r} has no {table}; rebuild it with that input", path=self.path
            )
        p = self.path / table
        if not p.exists():
            raise ReferenceDataError(
                f"{table} is listed in the manifest but missing; run `segment reference verify`",
                path=self.path,
            )
        return p

    def read_geo(self, table: str, columns: list[str] | None = None) -> gpd.GeoDataFrame:
        """Read a GeoParquet table (tracts, block groups, address ranges)."""
        import geopandas as gpd  # heavy: imported only when a polygon table is read

        try:
            return gpd.read_parquet(self.file(table), columns=columns)
        except (OSError, ValueError) as exc:
            raise ReferenceDataError(
                f"cannot read {table} ({type(exc).__name__})", path=self.path
            ) from exc

    def scan(self, table: str) -> pl.LazyFrame:
        """Lazily scan a plain table (ZIP centroids, indicators; geometry columns stay WKB)."""
        return pl.scan_parquet(self.file(table))

    def require_tract_vintage(self, vintage: int, *, what: str, crosswalk: bool = False) -> None:
        """Refuse to relate ``what`` keyed to ``vintage`` tracts with this pack's tracts.

        Joining 2010-tract data to 2020 tracts (or the reverse) silently drops or
        mismatches tracts; it is allowed only through a crosswalk.
        """
        if vintage != self.tract_vintage and not crosswalk:
            raise ReferenceDataError(
                f"{what} is keyed to {vintage} tracts but pack {self.name!r} has "
                f"{self.tract_vintage} tracts; give a tract crosswalk "
                "(Census tract relationship file) to relate them",
                path=self.path,
            )


def read_manifest(path: Path) -> Manifest:
    """Read ``DIR/manifest.json`` of a pack folder."""
    mpath = path / MANIFEST
    if not mpath.exists():
        raise ReferenceDataError(
            "no reference pack here (manifest.json missing); "
            "build one with `segment reference build` or `segment reference pull`",
            path=path,
        )
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceDataError("manifest.json is not valid JSON", path=mpath) from exc
    return Manifest.from_dict(raw, mpath)


def open_pack(path: str | Path) -> Pack:
    """Open the pack in ``path`` (a pack folder); checks the manifest, not the checksums."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ReferenceDataError(
            "reference pack folder not found; build one with `segment reference build` "
            "or `segment reference pull`, or point --reference at one",
            path=p,
        )
    return Pack(p, read_manifest(p))


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_pack` checked."""

    path: Path
    name: str
    files: int
    rows: int


def verify_pack(path: str | Path) -> VerifyResult:
    """Re-hash every file the manifest lists; raise naming the first missing or changed file."""
    pack = open_pack(path)
    rows = 0
    for name, entry in sorted(pack.manifest.files.items()):
        fpath = pack.path / name
        if not fpath.exists():
            raise ReferenceDataError(f"{name} is missing (listed in manifest.json)", path=fpath)
        actual = sha256_file(fpath)
        if actual != entry.sha256:
            raise ReferenceDataError(
                f"{name} does not match its checksum in manifest.json "
                f"(expected sha256 {entry.sha256[:12]}..., found {actual[:12]}...)",
                path=fpath,
            )
        rows += entry.rows
    return VerifyResult(pack.path, pack.name, len(pack.manifest.files), rows)


def find_packs(root: str | Path) -> Iterator[Pack]:
    """Packs at ``root``: the folder itself if it is a pack, else its pack sub-folders."""
    r = Path(root).expanduser()
    if (r / MANIFEST).exists():
        yield open_pack(r)
        return
    if not r.is_dir():
        return
    for sub in sorted(r.iterdir()):
        if (sub / MANIFEST).exists():
            yield open_pack(sub)
