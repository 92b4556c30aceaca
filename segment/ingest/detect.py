"""Which reader reads which path, and under which source name.

Formats (``--format`` or detected by content):

- a folder holding a Synthea ``patients.csv`` (by its header) -> ``synthea``;
- a folder holding an OMOP CDM ``PERSON`` table -> ``omop``;
- FHIR R4: ``.ndjson``/``.jsonl`` (bulk export), ``.json`` Bundles or resources, either
  gzip-compressed, or a folder of them -> ``fhir``;
- ``.csv``/``.parquet`` files (or a folder of them) -> the canonical layout, or a mapped
  layout when a mapping file is given.

**Source names.** Patient ids are ``<source>:<the source's own id>`` and the source name
keys everything downstream (vendor ids, ledger rows, patient-id suppression), so it must
not change when the same system sends another drop. It is, in order:

1. the name given (``--source NAME``, ``NAME=PATH``, ``name:`` in a campaign's
   ``sources``, or ``source:`` in a mapping file);
2. for a Synthea, FHIR or OMOP export: the format's name (``synthea``, ``fhir``,
   ``omop``), whatever the folder or files are called;
3. for a canonical or mapped file: the file name without its extensions, without the
   table word (``patients``, ``events``, ``persons``, ``people``, ``members``) and
   without date, time, sequence and version tokens (``20260201``, ``2026-02-01``,
   ``T0300``, ``v2``, ``part3``), so ``ehr-patients-20260201.csv`` and
   ``ehr-events-20260201.csv`` are both source ``ehr``; a file named only by such words
   (``patients.csv``) is source ``canonical``.

Two systems of the same format in one run therefore need names (``--source``), or their
ids could collide; a warning says so when two different folders end up with one name.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from segment import progress
from segment.errors import InputDataError
from segment.ingest.mapping import Mapping
from segment.ingest.readers import ReadResult
from segment.ingest.readers.canonical import read_canonical
from segment.ingest.readers.fhir import is_fhir_file, read_fhir
from segment.ingest.readers.omop import is_omop_folder, read_omop
from segment.ingest.readers.synthea import is_synthea_folder, read_synthea
from segment.log import get_logger
from segment.schema import InputFormat

log = get_logger("ingest")

_TABULAR = (".csv", ".parquet", ".pq", ".txt", ".tsv", ".csv.gz", ".txt.gz", ".tsv.gz")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TABLE_WORDS = {"patient", "patients", "event", "events", "person", "persons", "people", "member", "members"}
_STAMP_TOKEN = re.compile(
    r"^(\d+|\d{8}t\d{2,6}z?|t\d{2,6}z?|v\d+|r\d+|part\d+|chunk\d+|batch\d+|extract|export|drop|final|full|latest)$"
)


@dataclass(frozen=True)
class InputSpec:
    """One input path with its source name, format and mapping (None: derived/detected)."""

    path: Path
    source: str | None = None
    input_format: str | None = None
    mapping: Mapping | None = None

    @classmethod
    def of(
        cls, value: str | Path | InputSpec, *, source: str | None = None, input_format: str | None = None,
        mapping: Mapping | None = None,
    ) -> InputSpec:
        """A spec from a path or ``NAME=PATH`` text; its own settings win over the arguments."""
        if isinstance(value, InputSpec):
            return cls(value.path, value.source or source, value.input_format or input_format,
                       value.mapping or mapping)
        path = Path(value)
        text = str(value)
        if not path.exists() and "=" in text:
            name, _, rest = text.partition("=")
            if _SOURCE_NAME.match(name):
                path, source = Path(rest), source or name
        if source is not None:
            check_source_name(source)
        valid = [f.value for f in InputFormat]
        if input_format is not None and input_format not in valid:
            raise InputDataError(f"unknown format `{input_format}`; valid: {', '.join(valid)}", path=path)
        return cls(path, source, input_format, mapping)


def check_source_name(name: str) -> str:
    """A source name is 1 to 64 letters, digits, ``.``, ``_`` or ``-`` (it becomes part of ids)."""
    if not _SOURCE_NAME.match(name):
        raise InputDataError(
            f"source name {name!r} is not valid: use 1 to 64 letters, digits, `.`, `_` or `-`, "
            "starting with a letter or digit"
        )
    return name


def canonical_source_name(path: Path) -> str:
    """The default source of a canonical file: its name without table words and stamps."""
    stem = path.name.split(".")[0].lower()
    tokens = [t for t in re.split(r"[-_ .]+", stem) if t]
    kept = [t for t in tokens if t not in _TABLE_WORDS and not _STAMP_TOKEN.match(t)]
    return "-".join(kept) or "canonical"


def read_sources(specs: list[InputSpec], *, as_of: dt.date | None = None) -> ReadResult:
    """Read every input with the right reader under its source name."""
    result = ReadResult()
    derived: dict[str, set[Path]] = {}  # a derived source name -> the folders read under it
    for spec in specs:
        path = spec.path
        if not path.exists():
            raise InputDataError("file or folder not found", path=path)
        kind = InputFormat(spec.input_format or detect_format(path))
        progress.step("ingest", f"reading {path.name} ({kind.value})")
        if kind is InputFormat.CANONICAL:
            _read_canonical_spec(spec, result, derived)
            continue
        source = spec.source or kind.value  # an export's default source is its format's name
        result.extend(_read_export(path, kind, source, as_of))
        if spec.source is None:
            derived.setdefault(source, set()).add(path.resolve())
    for name, places in derived.items():
        if len(places) > 1:
            log.warning(
                f"{len(places)} different input folders were all read as source `{name}`; if they come "
                "from different systems, name each with --source so their ids cannot collide"
            )
    return result


def _read_canonical_spec(spec: InputSpec, result: ReadResult, derived: dict[str, set[Path]]) -> None:
    """Read a canonical or mapped file (or each tabular file of a folder) into ``result``."""
    path, mapping = spec.path, spec.mapping
    files = sorted(p for p in path.iterdir() if _is_tabular(p)) if path.is_dir() else [path]
    if not files:
        raise InputDataError("no .csv or .parquet files in folder", path=path)
    for f in files:
        named = spec.source or (mapping.source if mapping and mapping.source else None)
        name = named or canonical_source_name(f)
        if named is None:
            derived.setdefault(name, set()).add(f.resolve().parent)
        result.extend(read_canonical(f, source=name, mapping=mapping))


def _read_export(path: Path, kind: InputFormat, source: str, as_of: dt.date | None) -> ReadResult:
    """Read a FHIR, Synthea or OMOP export."""
    if kind is InputFormat.FHIR:
        files = sorted(p for p in path.iterdir() if is_fhir_file(p)) if path.is_dir() else [path]
        if not files:
            raise InputDataError("no FHIR files (.ndjson, .json, either .gz) in folder", path=path)
        return read_fhir(files, source=source, as_of=as_of)
    folder = path if path.is_dir() else path.parent
    is_export, read, what = _FOLDER_FORMATS[kind]
    if not is_export(folder):
        raise InputDataError(f"not {what}", path=folder)
    return read(folder, source=source)


#: folder formats: how to recognise one, its reader, and what a folder that is not one lacks
_FOLDER_FORMATS: dict[InputFormat, tuple[Callable[[Path], bool], Callable[..., ReadResult], str]] = {
    InputFormat.SYNTHEA: (is_synthea_folder, read_synthea,
                          "a Synthea export: no patients.csv with Synthea's columns"),
    InputFormat.OMOP: (is_omop_folder, read_omop, "an OMOP CDM extract: no PERSON table"),
}


def _is_tabular(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_TABULAR)


def detect_format(path: Path) -> str:
    """The format of a path by its content: synthea, omop, fhir or canonical."""
    if path.is_dir():
        if is_synthea_folder(path):
            return InputFormat.SYNTHEA.value
        if is_omop_folder(path):
            return InputFormat.OMOP.value
        if any(is_fhir_file(p) for p in path.iterdir()):
            return InputFormat.FHIR.value
        return InputFormat.CANONICAL.value
    if is_fhir_file(path):
        return InputFormat.FHIR.value
    if path.name.lower() == "patients.csv" and is_synthea_folder(path.parent):
        return InputFormat.SYNTHEA.value
    return InputFormat.CANONICAL.value
