"""Official value sets: the files quality teams download from VSAC, and references to them.

Three formats are read, each file parsed once with the standard library:

- FHIR ``ValueSet`` JSON with ``expansion.contains`` (one resource, or a ``Bundle`` of them),
- the VSAC SVS XML (``RetrieveMultipleValueSets``/``RetrieveValueSet`` responses:
  ``DescribedValueSet`` > ``ConceptList`` > ``Concept``, namespace ``urn:ihe:iti:svs:2008``),
- the VSAC spreadsheet export (``.xlsx``: a header block with Value Set Name, OID and
  Version, then a table with Code, Description, Code System, Code System Version and
  Code System OID), read with :mod:`zipfile` and :mod:`xml.etree` (no Excel library).

They live in ``<rules folder>/valuesets/vsac/``, or in a folder of their own named by
``--vsac DIR`` or ``SEGMENT_VSAC_DIR`` (the files carry CPT and SNOMED CT content, so
rules that need them ship without them). A rule names an official set by OID or
canonical URL with an optional ``|version`` (:func:`parse_reference`); :class:`Catalog`
resolves it to the :class:`~segment.rules.model.ValueSet` evaluation already uses.
Code systems are mapped with :func:`segment.ingest.codesystems.canonical_system`; codes
of systems ingest does not know (SOP, CDCREC, HSLOC...) are kept in ``unmatched`` so
``rules check`` can count and show them, never silently dropped. A malformed file is a
:class:`~segment.errors.RulesError` naming the file and the element.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from segment.errors import RulesError
from segment.ingest.codesystems import canonical_system
from segment.rules.codes import CODE_FORMS, VALUESETS_DIR, is_code_valid, normalize_code
from segment.rules.model import ValueSet
from segment.schema import CodeSystem

OFFICIAL_DIR = "vsac"
OFFICIAL_PATH = f"{VALUESETS_DIR}/{OFFICIAL_DIR}/"
#: the environment variable naming a folder of VSAC files outside the rules folder
VSAC_ENV = "SEGMENT_VSAC_DIR"
SUFFIXES = (".json", ".xml", ".xlsx")
VSAC_BASE = "http://cts.nlm.nih.gov/fhir/ValueSet/"
SVS_NS = "urn:ihe:iti:svs:2008"

_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_VALUESET_URL = re.compile(r"^https?://\S+/ValueSet/([^/|\s]+)$")
_SCIENTIFIC = re.compile(r"^[+-]?\d(\.\d+)?[Ee][+-]?\d+$")
#: largest XML part of an xlsx we inflate (a zip bomb guard; real exports are a few MB)
_MAX_PART = 256 * 1024 * 1024

#: short names for code systems VSAC uses that ingest does not know (for the report)
_UNKNOWN_NAMES = {
    "HTTPS://NAHDO.ORG/SOPT": "SOP",
    "2.16.840.1.113883.3.221.5": "SOP",
    "URN:OID:2.16.840.1.113883.6.238": "CDCREC",
    "2.16.840.1.113883.6.238": "CDCREC",
    "HTTPS://WWW.CDC.GOV/NHSN/CDAPORTAL/TERMINOLOGY/CODESYSTEM/HSLOC.HTML": "HSLOC",
    "2.16.840.1.113883.6.259": "HSLOC",
    "HTTP://TERMINOLOGY.HL7.ORG/CODESYSTEM/V3-ADMINISTRATIVEGENDER": "AdministrativeGender",
    "2.16.840.1.113883.5.1": "AdministrativeGender",
    "HTTP://NUCC.ORG/PROVIDER-TAXONOMY": "NUCC",
    "2.16.840.1.113883.6.101": "NUCC",
    "HTTP://TERMINOLOGY.HL7.ORG/CODESYSTEM/V3-ACTCODE": "ActCode",
    "2.16.840.1.113883.5.4": "ActCode",
    "HTTP://HL7.ORG/FHIR/SID/ICD-9-CM": "ICD9CM",
    "2.16.840.1.113883.6.103": "ICD9CM",
    "HTTP://HL7.ORG/FHIR/SID/NDC": "NDC",
    "2.16.840.1.113883.6.69": "NDC",
}


# -- references ----------------------------------------------------------------------
@dataclass(frozen=True)
class OfficialRef:
    """A reference to an official value set: by OID or canonical URL, optionally versioned."""

    key: str  # the OID, or the canonical URL of a non-VSAC set
    version: str | None
    text: str  # as written


def parse_reference(text: str) -> OfficialRef | None:
    """An official reference, or None when ``text`` is not one (a local value-set name).

    Accepted: ``2.16.840.1.113883.3.464.1003.108.12.1020``, ``urn:oid:<oid>``,
    ``http://cts.nlm.nih.gov/fhir/ValueSet/<oid>``, any ``.../ValueSet/<id>`` URL; each
    with an optional ``|<version>`` (the FHIR canonical form).
    """
    raw = str(text).strip()
    base, bar, version = raw.partition("|")
    base = base.strip()
    ver = (version.strip() or None) if bar else None
    if base.lower().startswith("urn:oid:"):
        base = base[8:]
    if _OID.match(base):
        return OfficialRef(base, ver, raw)
    if m := _VALUESET_URL.match(base):
        tail = m.group(1)
        return OfficialRef(tail if _OID.match(tail) else base, ver, raw)
    return None


def _oid_of(url: str | None) -> str | None:
    if url and (m := _VALUESET_URL.match(url.strip())) and _OID.match(m.group(1)):
        return m.group(1)
    return None


# -- building a value set ------------------------------------------------------------
def _system_key(text: str) -> str:
    return text.strip().rstrip("/").upper()


def _canonical(*spellings: str | None) -> str | None:
    for s in spellings:
        if s:
            found = canonical_system(s)
            if found:
                return found
    return None


def _unknown_label(*spellings: str | None) -> str:
    for s in spellings:
        if s and _system_key(s) in _UNKNOWN_NAMES:
            return _UNKNOWN_NAMES[_system_key(s)]
    return next((s.strip() for s in spellings if s and s.strip()), "?")


class _Builder:
    """Collects one official set's concepts: canonical codes, and codes of unknown systems."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes: set[tuple[str, str]] = set()
        self.unmatched: set[tuple[str, str]] = set()

    def add(self, code: str, where: str, *systems: str | None, label: str | None = None) -> None:
        """Add one concept; ``systems`` are the spellings the file gives (OID, URI, name)."""
        system = _canonical(*systems)
        if system is None:
            self.unmatched.add((_unknown_label(*systems, label), code.strip()))
            return
        norm = normalize_code(system, code)
        if not is_code_valid(system, norm):
            raise RulesError(f"{where}: code {code!r} is not a {system} code (expected "
                             f"{CODE_FORMS[CodeSystem(system)]})", path=self.path, key=where)
        self.codes.add((system, norm))

    def build(self, oid: str | None, url: str | None, version: str | None, title: str) -> ValueSet:
        """The loaded set (named by its OID, else its URL)."""
        name = oid or url or title
        source = f"VSAC {name}" + (f" version {version}" if version else "") + f" ({self.path.name})"
        return ValueSet(name, title, frozenset(self.codes), frozenset(), str(self.path), source,
                        oid=oid, version=version, url=url or (VSAC_BASE + oid if oid else None),
                        unmatched=frozenset(self.unmatched))


@dataclass(frozen=True)
class Unexpanded:
    """A value set a file defines without an expansion (nothing to match on)."""

    key: str
    version: str | None
    title: str
    path: str


ParsedFile = tuple[list[ValueSet], list[Unexpanded]]


# -- FHIR JSON -----------------------------------------------------------------------
def read_fhir_json(path: Path) -> ParsedFile:
    """Value sets of a FHIR ``ValueSet`` or ``Bundle`` JSON file (other resources are skipped)."""
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise RulesError(f"not valid JSON: {exc.msg} (column {exc.colno})", path=path,
                         line=exc.lineno) from exc
    except UnicodeDecodeError as exc:
        raise RulesError("not valid JSON: the file is not UTF-8 text", path=path) from exc
    if not isinstance(doc, dict):
        raise RulesError("not a FHIR resource: the file holds no JSON object", path=path)
    kind = doc.get("resourceType")
    if kind == "ValueSet":
        resources: Iterable[tuple[str, Any]] = [("$", doc)]
    elif kind == "Bundle":
        entries = doc.get("entry", [])
        if not isinstance(entries, list):
            raise RulesError("entry: expected a list of bundle entries", path=path, key="entry")
        resources = [(f"entry[{i}].resource", e.get("resource") if isinstance(e, dict) else None)
                     for i, e in enumerate(entries)]
    else:
        raise RulesError(f"resourceType: found {kind!r}; expected ValueSet or Bundle", path=path,
                         key="resourceType")
    sets: list[ValueSet] = []
    unexpanded: list[Unexpanded] = []
    for where, res in resources:
        if not isinstance(res, dict):
            raise RulesError(f"{where}: missing (expected a resource)", path=path, key=where)
        if res.get("resourceType") != "ValueSet":
            continue
        vs = _fhir_valueset(path, where, res)
        if isinstance(vs, Unexpanded):
            unexpanded.append(vs)
        else:
            sets.append(vs)
    return sets, unexpanded


def _fhir_valueset(path: Path, where: str, res: dict[str, Any]) -> ValueSet | Unexpanded:
    url = res.get("url") if isinstance(res.get("url"), str) else None
    oid = _oid_of(url)
    if oid is None:
        for ident in res.get("identifier") or []:
            value = str(ident.get("value", "")) if isinstance(ident, dict) else ""
            value = value[8:] if value.lower().startswith("urn:oid:") else value
            if _OID.match(value):
                oid = value
                break
    if oid is None and url is None:
        raise RulesError(f"{where}: missing `url` (or an OID `identifier`)", path=path, key=where)
    version = str(res["version"]) if res.get("version") is not None else None
    title = str(res.get("title") or res.get("name") or oid or url)
    expansion = res.get("expansion")
    if expansion is None:
        return Unexpanded(oid or str(url), version, title, str(path))
    if not isinstance(expansion, dict):
        raise RulesError(f"{where}.expansion: expected an object", path=path, key=f"{where}.expansion")
    builder = _Builder(path)
    for item_where, item in _contains(path, f"{where}.expansion", expansion):
        code, system = item.get("code"), item.get("system")
        if code is None or str(code).strip() == "":
            if item.get("abstract") is True:
                continue
            raise RulesError(f"{item_where}: missing `code`", path=path, key=item_where)
        if not isinstance(system, str) or not system.strip():
            raise RulesError(f"{item_where}: missing `system`", path=path, key=item_where)
        if item.get("abstract") is True:
            continue  # a grouping header, not a member (FHIR ValueSet.expansion.contains.abstract)
        builder.add(str(code), item_where, system)
    return builder.build(oid, url, version, title)


def _contains(path: Path, where: str, node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    items = node.get("contains", [])
    if not isinstance(items, list):
        raise RulesError(f"{where}.contains: expected a list", path=path, key=f"{where}.contains")
    for i, item in enumerate(items):
        item_where = f"{where}.contains[{i}]"
        if not isinstance(item, dict):
            raise RulesError(f"{item_where}: expected an object", path=path, key=item_where)
        yield item_where, item
        if "contains" in item:
            yield from _contains(path, item_where, item)


# -- XML (SVS, and the parts of an xlsx) -----------------------------------------------
def _parse_xml(data: bytes, path: Path, part: str = "") -> ET.Element:
    """Parse XML bytes; document type declarations (entities) are refused outright."""
    where = f"{part}: " if part else ""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise RulesError(f"{where}XML with a document type declaration is refused", path=path)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if not part else None
        raise RulesError(f"{where}not well-formed XML ({exc})", path=path, line=line) from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_svs_xml(path: Path) -> ParsedFile:
    """Value sets of a VSAC SVS response (``DescribedValueSet`` or plain SVS ``ValueSet``)."""
    root = _parse_xml(path.read_bytes(), path)
    found = [el for el in root.iter() if el.tag in (f"{{{SVS_NS}}}DescribedValueSet",
                                                      f"{{{SVS_NS}}}ValueSet")]
    if not found:
        raise RulesError(f"no DescribedValueSet element in namespace {SVS_NS} (root element "
                         f"{_local(root.tag)!r})", path=path)
    sets: list[ValueSet] = []
    for i, el in enumerate(found):
        where = f"{_local(el.tag)}[{i}]"
        oid = (el.get("ID") or "").strip()
        if not _OID.match(oid):
            raise RulesError(f"{where}: missing `ID` (the value set's OID)" if not oid
                             else f"{where}: `ID` {oid!r} is not an OID", path=path, key=where)
        where = f"{where} (ID {oid})"
        builder = _Builder(path)
        concepts = [c for lst in el if _local(lst.tag) == "ConceptList"
                    for c in lst if _local(c.tag) == "Concept"]
        for j, concept in enumerate(concepts):
            cw = f"{where}/ConceptList/Concept[{j}]"
            code = concept.get("code")
            if not code or not code.strip():
                raise RulesError(f"{cw}: missing `code`", path=path, key=cw)
            cs_oid, cs_name = concept.get("codeSystem"), concept.get("codeSystemName")
            if not (cs_oid or "").strip() and not (cs_name or "").strip():
                raise RulesError(f"{cw}: missing `codeSystem`", path=path, key=cw)
            builder.add(code, cw, cs_oid, cs_name, label=cs_name)
        title = (el.get("displayName") or "").strip() or oid
        version = (el.get("version") or "").strip() or None
        sets.append(builder.build(oid, None, version, title))
    return sets, []


# -- xlsx ----------------------------------------------------------------------------
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_COL = re.compile(r"^([A-Z]+)")


def _norm_label(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


#: header-block labels (normalized) -> what they give
_META_LABELS = {
    "valuesetname": "name", "name": "name",
    "oid": "oid", "valuesetoid": "oid",
    "version": "version", "definitionversion": "version", "valuesetversion": "version",
    "expansionversion": "expansion", "expansionid": "expansion",
}
#: code-table headers (normalized) -> column role
_TABLE_LABELS = {
    "code": "code",
    "codesystem": "system", "codesystemname": "system",
    "codesystemoid": "system_oid",
    "codesystemversion": "system_version",
    "description": "display", "descriptor": "display",
    "oid": "oid", "valuesetoid": "oid",
    "valuesetname": "name", "name": "name",
    "version": "version", "expansionversion": "version", "valuesetversion": "version",
}

Row = tuple[int, dict[int, str]]


def _read_sheets(path: Path) -> list[tuple[str, list[Row]]]:
    """Every worksheet of an xlsx as (name, [(row number, {column index: text})])."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RulesError("not an xlsx workbook (not a zip archive)", path=path) from exc
    with zf:
        names = set(zf.namelist())

        def part(name: str) -> ET.Element:
            if name not in names:
                raise RulesError(f"not an xlsx workbook: {name} is missing", path=path, key=name)
            if zf.getinfo(name).file_size > _MAX_PART:
                raise RulesError(f"{name}: larger than {_MAX_PART // 2**20} MB inflated", path=path,
                                 key=name)
            return _parse_xml(zf.read(name), path, name)

        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            for si in part("xl/sharedStrings.xml"):
                shared.append("".join(t.text or "" for t in si.iter() if _local(t.tag) == "t"))
        rels = {r.get("Id"): r.get("Target", "") for r in part("xl/_rels/workbook.xml.rels")}
        sheets: list[tuple[str, list[Row]]] = []
        for sheet in part("xl/workbook.xml").iter():
            if _local(sheet.tag) != "sheet":
                continue
            target = rels.get(sheet.get(f"{{{_REL_NS}}}id"), "")
            target = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            title = sheet.get("name", target)
            sheets.append((title, _sheet_rows(path, title, part(target), shared)))
        return sheets


def _sheet_rows(path: Path, title: str, root: ET.Element, shared: list[str]) -> list[Row]:
    rows: list[Row] = []
    for n, row in enumerate((r for r in root.iter() if _local(r.tag) == "row"), start=1):
        number = int(row.get("r") or n)
        cells: dict[int, str] = {}
        for k, c in enumerate(el for el in row if _local(el.tag) == "c"):
            ref = _COL.match(c.get("r") or "")
            col = _col_index(ref.group(1)) if ref else k
            kind = c.get("t", "n")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in c.iter() if _local(t.tag) == "t")
            else:
                v = next((el.text or "" for el in c if _local(el.tag) == "v"), "")
                if kind == "s":
                    try:
                        text = shared[int(v)]
                    except (ValueError, IndexError):
                        raise RulesError(f"sheet {title!r} cell {c.get('r')}: shared string {v!r} "
                                         "is missing", path=path, key=title) from None
                elif kind == "n" and re.fullmatch(r"-?\d+\.0+", v):
                    text = v.split(".")[0]  # an integer stored as a float (82270.0)
                else:
                    text = v
            if text.strip():
                cells[col] = text.strip()
        if cells:
            rows.append((number, cells))
    return rows


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


_CodeTable = tuple[str, int, dict[str, int], list[Row]]


def _xlsx_header_and_table(path: Path, sheets: list[tuple[str, list[Row]]]) -> tuple[dict[str, str], _CodeTable]:
    """The header block's name, OID and versions, and the code table (sheet, header row, roles, rows)."""
    meta: dict[str, str] = {}
    table: _CodeTable | None = None
    for title, rows in sheets:
        for i, (number, cells) in enumerate(rows):
            labels = {_norm_label(v): col for col, v in cells.items()}
            roles = {_TABLE_LABELS[k]: col for k, col in labels.items() if k in _TABLE_LABELS}
            if table is None and "code" in roles and ("system" in roles or "system_oid" in roles):
                table = (title, number, roles, rows[i + 1:])
                break  # the rest of this sheet is the table; later sheets may still hold the header block
            first = min(cells)
            label = _META_LABELS.get(_norm_label(cells[first]))
            rest = [cells[c] for c in sorted(cells) if c > first]
            if label and rest and label not in meta:
                meta[label] = rest[0]
    if table is not None:
        return meta, table
    raise RulesError("no code table: expected a header row with `Code` and `Code System` "
                     "(the VSAC spreadsheet export)", path=path)


def _xlsx_row_set(path: Path, where: str, get: dict[str, str], meta: dict[str, str]) -> tuple[str, str | None, str]:
    """The (OID, version, name) of the set a code-table row belongs to; a checked code on it."""
    code, system, system_oid = get.get("code", ""), get.get("system"), get.get("system_oid")
    if not code:
        raise RulesError(f"{where}: missing `Code`", path=path, key=where)
    if _SCIENTIFIC.match(code):
        raise RulesError(f"{where}: code {code!r} was stored as a number in scientific "
                         "notation (digits are lost); export the codes as text", path=path,
                         key=where)
    if not system and not system_oid:
        raise RulesError(f"{where}: missing `Code System`", path=path, key=where)
    oid = get.get("oid") or meta.get("oid", "")
    oid = oid[8:] if oid.lower().startswith("urn:oid:") else oid
    if not _OID.match(oid):
        raise RulesError(
            f"{where}: no value set OID (expected an `OID` row in the header block, or an "
            f"`OID` column)" if not oid else f"{where}: OID {oid!r} is not an OID",
            path=path, key=where)
    version = get.get("version") or meta.get("version") or meta.get("expansion") or None
    return oid, version, get.get("name") or meta.get("name") or oid


def read_vsac_xlsx(path: Path) -> ParsedFile:
    """Value sets of a VSAC spreadsheet export.

    The header block (any sheet) gives the set: rows whose first cell is ``Value Set
    Name``, ``OID`` or ``Version`` (``Expansion Version`` if there is no ``Version``)
    with the value in the next cell. The code table starts at the row whose cells
    include ``Code`` and ``Code System`` (or ``Code System OID``). A table with its own
    ``OID`` column (one row per set and code) may hold several sets.
    """
    meta, (sheet, header_row, roles, rows) = _xlsx_header_and_table(path, _read_sheets(path))
    groups: dict[tuple[str, str | None], tuple[str, _Builder]] = {}
    for number, cells in rows:
        where = f"sheet {sheet!r} row {number}"
        get = {role: cells.get(col, "") for role, col in roles.items()}
        if not get.get("code") and not get.get("system") and not get.get("system_oid"):
            continue
        oid, version, name = _xlsx_row_set(path, where, get, meta)
        if (oid, version) not in groups:
            groups[(oid, version)] = (name, _Builder(path))
        groups[(oid, version)][1].add(get["code"], where, get.get("system_oid"), get.get("system"),
                                      label=get.get("system"))
    if not groups:
        raise RulesError(f"sheet {sheet!r} row {header_row}: the code table has no rows",
                         path=path, key=sheet)
    return [b.build(oid, None, version, name) for (oid, version), (name, b) in groups.items()], []


# -- the catalog ---------------------------------------------------------------------
READERS = {".json": read_fhir_json, ".xml": read_svs_xml, ".xlsx": read_vsac_xlsx}


class UnresolvedReference(LookupError):
    """An official reference that names no loaded, usable value set (the text says why)."""


class NothingLoaded(UnresolvedReference):
    """An official reference resolved while no VSAC file is loaded at all."""


@dataclass
class Catalog:
    """Every official value set loaded from ``valuesets/vsac/``, by OID (and URL) and version."""

    folder: Path | None = None
    files: int = 0
    sets: dict[str, dict[str | None, list[ValueSet]]] = field(default_factory=dict)
    unexpanded: dict[str, list[Unexpanded]] = field(default_factory=dict)
    #: the folder named by ``--vsac`` or ``SEGMENT_VSAC_DIR``, read besides ``folder``
    external: Path | None = None
    #: problems of references that found nothing because no VSAC file is loaded at all
    #: (the loader sums them up in one message saying where the files go)
    unloaded: list[RulesError] = field(default_factory=list)

    def add(self, vs: ValueSet) -> None:
        """Index one loaded set under its OID and its URL (same content twice is kept once)."""
        for key in {k for k in (vs.oid, vs.url) if k}:
            versions = self.sets.setdefault(key, {}).setdefault(vs.version, [])
            if not any(v.codes == vs.codes and v.unmatched == vs.unmatched for v in versions):
                versions.append(vs)

    def __len__(self) -> int:
        """Distinct official value sets (OID and version) loaded."""
        return len({(v.name, v.version) for vs in self.sets.values() for lst in vs.values()
                    for v in lst} | {(u.key, u.version) for us in self.unexpanded.values()
                                     for u in us})

    def resolve(self, ref: OfficialRef) -> ValueSet:
        """The value set ``ref`` names; :class:`UnresolvedReference` says why there is none."""
        versions = self.sets.get(ref.key)
        if versions is None:
            if ref.key in self.unexpanded:
                u = self.unexpanded[ref.key][0]
                raise UnresolvedReference(
                    f"{ref.key} ({u.title}) has no expansion in {Path(u.path).name}; download "
                    "its expansion (expansion.contains) from VSAC")
            if not self.sets and not self.unexpanded:
                raise NothingLoaded(self._missing(ref.key))
            raise UnresolvedReference(self._missing(ref.key))
        if ref.version is not None:
            found = versions.get(ref.version)
            if found is None:
                raise UnresolvedReference(
                    f"version {ref.version!r} of {ref.key} is not loaded; loaded: "
                    + _versions_text(versions))
        elif len(versions) > 1:
            raise UnresolvedReference(f"{ref.key} is loaded in several versions: "
                                      f"{_versions_text(versions)}; add |<version>")
        else:
            found = next(iter(versions.values()))
        if len(found) > 1:
            files = ", ".join(Path(v.path).name for v in found)
            raise UnresolvedReference(f"{ref.key} version {found[0].version} has different codes "
                                      f"in {files}; keep one of the files")
        return found[0]

    @property
    def where(self) -> str:
        """Where official files are read from, as messages name it."""
        return OFFICIAL_PATH if self.external is None else f"{OFFICIAL_PATH} or {self.external}"

    def _missing(self, key: str) -> str:
        if not self.sets and not self.unexpanded:
            return (f"no official value sets are loaded; put the VSAC files (FHIR ValueSet "
                    f"JSON, SVS XML or the spreadsheet export) in {self.where}")
        oids = sorted({v.oid for vs in self.sets.values() for lst in vs.values() for v in lst
                       if v.oid})

        def shared(oid: str) -> int:
            return len(_common_prefix(oid, key))

        near = sorted(oids, key=lambda o: (-shared(o), o))[:3]
        titles = {v.oid: v.title for vs in self.sets.values() for lst in vs.values() for v in lst}
        shown = "; ".join(f"{o} ({titles[o]})" for o in near)
        return (f"an OID or URL of a value set in {self.where} ({len(self)} loaded from "
                f"{self.files} file{'s' if self.files != 1 else ''}; nearest: {shown})")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _versions_text(versions: dict[str | None, list[ValueSet]]) -> str:
    return ", ".join(f"{v or '(no version)'} ({', '.join(Path(s.path).name for s in lst)})"
                     for v, lst in sorted(versions.items(), key=lambda kv: kv[0] or ""))


def official_files(rules_folder: Path, vsac_dir: Path | None = None) -> list[Path]:
    """The VSAC files under ``valuesets/vsac/`` and ``vsac_dir`` (any depth), in a stable order."""
    found: dict[Path, Path] = {}
    for folder in (rules_folder / VALUESETS_DIR / OFFICIAL_DIR, vsac_dir):
        if folder is None or not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "~$")):
                found.setdefault(p.resolve(), p)  # the same folder named twice is read once
    return list(found.values())


def load_catalog(
    rules_folder: Path, problems: list[RulesError], vsac_dir: Path | None = None
) -> Catalog:
    """Parse every VSAC file once; a malformed file is one problem naming file and element.

    ``vsac_dir`` is a folder of VSAC files outside the rules folder (``--vsac`` or
    ``SEGMENT_VSAC_DIR``), searched like ``valuesets/vsac/``: recursively, for
    ``.json``, ``.xml`` and ``.xlsx`` files.
    """
    catalog = Catalog(rules_folder / VALUESETS_DIR / OFFICIAL_DIR, external=vsac_dir)
    if vsac_dir is not None and not vsac_dir.is_dir():
        problems.append(RulesError(f"VSAC folder not found (named by --vsac or {VSAC_ENV})",
                                   path=vsac_dir))
    for path in official_files(rules_folder, vsac_dir):
        try:
            sets, unexpanded = READERS[path.suffix.lower()](path)
        except RulesError as exc:
            problems.append(exc)
            continue
        except OSError as exc:
            problems.append(RulesError(f"cannot read the file: {exc.strerror or exc}", path=path))
            continue
        catalog.files += 1
        for vs in sets:
            catalog.add(vs)
        for u in unexpanded:
            catalog.unexpanded.setdefault(u.key, []).append(u)
    return catalog
