"""Loading a rules folder: value sets, rule files, and the cross checks between them.

Three steps (CONVENTIONS item 4): raw YAML with lines (:func:`segment.config.load_yaml`)
-> frozen models (:func:`segment.config.validate`) -> cross checks here (value sets
exist, windows and bounds make sense, operation values have the right type). Every
problem is a located :class:`~segment.errors.RulesError`; :func:`check_rules` collects
all of them, :func:`load_rules` refuses to return a rule set that has any.

Official (VSAC) value sets are read from ``<folder>/valuesets/vsac/`` and from one
folder outside it: the ``vsac=`` argument, else the folder set by :func:`using_vsac`
(the CLI's ``--vsac``), else ``SEGMENT_VSAC_DIR`` (:class:`segment.config.Settings`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from segment.config import LineDict, Settings, key_line, load_yaml, validate
from segment.errors import ConfigError, RulesError, invalid_value
from segment.rules.codes import CODE_FORMS, VALUESETS_DIR, is_code_valid, normalize_code
from segment.rules.model import (
    AllOf,
    AnyOf,
    ColumnTest,
    Criterion,
    EventTest,
    EvidenceField,
    Kind,
    Rule,
    RuleSet,
    ValueSet,
    ValueSetFile,
    WindowKind,
)
from segment.rules.registry import OPERATIONS, ValueKind
from segment.rules.vsac import (
    OFFICIAL_PATH,
    SUFFIXES,
    VSAC_ENV,
    Catalog,
    NothingLoaded,
    OfficialRef,
    UnresolvedReference,
    load_catalog,
    parse_reference,
)
from segment.schema import CATEGORY_COLUMNS, CodeSystem

#: the external VSAC folder for loads in this context (set by :func:`using_vsac`)
_VSAC_DIR: ContextVar[Path | None] = ContextVar("segment_vsac_dir", default=None)


def vsac_folder(vsac: str | Path | None = None) -> Path | None:
    """The folder of VSAC files read besides a rules folder's ``valuesets/vsac/``, if any.

    ``vsac`` when given, else the folder of :func:`using_vsac`, else ``SEGMENT_VSAC_DIR``.
    """
    if vsac is not None:
        return Path(vsac)
    return _VSAC_DIR.get() or Settings.from_env().vsac_dir


@contextmanager
def using_vsac(vsac: str | Path | None) -> Iterator[None]:
    """Read VSAC files from ``vsac`` in every rules load inside the block (``--vsac DIR``).

    ``None`` changes nothing (``SEGMENT_VSAC_DIR`` still applies). Library functions that
    load rules themselves (``evaluate``, ``explain``) see the folder this way.
    """
    if vsac is None:
        yield
        return
    token = _VSAC_DIR.set(Path(vsac))
    try:
        yield
    finally:
        _VSAC_DIR.reset(token)


def default_rules_dir() -> Path:
    """The shipped rules folder (``rules/`` in a checkout, ``share/segment/rules`` installed)."""
    from segment.resources import shipped_rules_dir

    return shipped_rules_dir()


def _invalid(key: str, value: object, valid: Any, **kwargs: Any) -> RulesError:
    """:func:`segment.errors.invalid_value` typed as a :class:`RulesError`."""
    err = invalid_value(key, value, valid, error=RulesError, **kwargs)
    assert isinstance(err, RulesError)
    return err


# -- value sets ----------------------------------------------------------------------
def _load_valueset_yaml(
    path: Path, problems: list[RulesError], catalog: Catalog | None = None
) -> ValueSet | None:
    raw = load_yaml(path, RulesError)
    vs = validate(ValueSetFile, raw, path, error=RulesError)
    if not vs.codes and not vs.include:
        problems.append(RulesError("key `codes` is required (or `include:` official value sets)",
                                   path=path, line=key_line(raw), key="codes"))
    if vs.name != path.stem:
        problems.append(
            RulesError(
                f"key `name`: found {vs.name!r}; a value set's name must match its file name "
                f"({path.stem!r})",
                path=path, line=key_line(raw, "name"), key="name",
            )
        )
    codes: set[tuple[str, str]] = set()
    prefixes: set[tuple[str, str]] = set()
    codes_raw = raw.get("codes") if isinstance(raw, LineDict) else None
    for system, entries in vs.codes.items():
        for i, code in enumerate(entries):
            norm = normalize_code(system, code)
            if not is_code_valid(system, norm):
                problems.append(
                    _invalid(
                        f"codes.{system}[{i}]", code, "expected " + CODE_FORMS[system], path=path,
                        line=key_line(codes_raw, system.value, i),
                    )
                )
                continue
            (prefixes if norm.endswith("*") else codes).add((system.value, norm.rstrip("*")))
    unmatched: set[tuple[str, str]] = set()
    for i, text in enumerate(vs.include):
        official = _resolve_include(text, ("include", i), raw, path, catalog, problems)
        if official is not None:
            codes |= official.codes
            unmatched |= official.unmatched
    return ValueSet(vs.name, vs.title, frozenset(codes), frozenset(prefixes), str(path), vs.source,
                    unmatched=frozenset(unmatched), includes=tuple(vs.include))


def _resolve_include(
    text: str,
    keys: tuple[str | int, ...],
    raw: Any,
    path: Path,
    catalog: Catalog | None,
    problems: list[RulesError],
) -> ValueSet | None:
    """The official set one ``include:`` entry names; a located problem when there is none."""
    key = _dotted(keys)
    ref = parse_reference(text)
    if ref is None:
        problems.append(_invalid(key, text, "an official value set by OID or URL, with an "
                                 "optional |version (2.16.840.1.113883.3.464.1003.108.12.1020)",
                                 path=path, line=key_line(raw, *keys)))
        return None
    catalog = catalog if catalog is not None else Catalog()
    try:
        return catalog.resolve(ref)
    except UnresolvedReference as exc:
        problem = _invalid(key, text, str(exc), path=path, line=key_line(raw, *keys))
        problems.append(problem)
        if isinstance(exc, NothingLoaded):
            catalog.unloaded.append(problem)
        return None


def _load_valueset_csv(path: Path, problems: list[RulesError]) -> ValueSet | None:
    codes: set[tuple[str, str]] = set()
    prefixes: set[tuple[str, str]] = set()
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"system", "code"} - set(reader.fieldnames or [])
            if missing:
                raise RulesError(
                    f"CSV value set needs columns system, code (missing: {', '.join(sorted(missing))})",
                    path=path, line=1,
                )
            for n, row in enumerate(reader, start=2):
                system, code = (row.get("system") or "").strip().upper(), row.get("code") or ""
                if system not in {s.value for s in CodeSystem}:
                    problems.append(_invalid("system", system, [s.value for s in CodeSystem],
                                             path=path, line=n))
                    continue
                norm = normalize_code(system, code)
                if not is_code_valid(system, norm):
                    problems.append(_invalid("code", code, "expected " + CODE_FORMS[CodeSystem(system)],
                                             path=path, line=n))
                    continue
                (prefixes if norm.endswith("*") else codes).add((system, norm.rstrip("*")))
    except UnicodeDecodeError as exc:
        raise RulesError("not UTF-8 text", path=path) from exc
    if not codes and not prefixes:
        problems.append(RulesError("value set has no codes", path=path))
    title = path.stem.replace("-", " ")
    return ValueSet(path.stem, title, frozenset(codes), frozenset(prefixes), str(path))


def load_valuesets(
    folder: Path, problems: list[RulesError], catalog: Catalog | None = None
) -> dict[str, ValueSet]:
    """Every local value set under ``folder/valuesets``; problems are appended, not raised.

    ``catalog`` holds the official sets (``valuesets/vsac/``) a YAML set may ``include:``.
    """
    out: dict[str, ValueSet] = {}
    vs_dir = folder / VALUESETS_DIR
    if not vs_dir.is_dir():
        return out
    for path in sorted(vs_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            problems.append(RulesError(f"official value set files go in {OFFICIAL_PATH}, not "
                                       f"{VALUESETS_DIR}/ (they are named by OID, not file name)",
                                       path=path))
            continue
        if path.suffix not in {".yaml", ".yml", ".csv"}:
            continue
        try:
            if path.suffix == ".csv":
                vs = _load_valueset_csv(path, problems)
            else:
                vs = _load_valueset_yaml(path, problems, catalog)
        except ConfigError as exc:
            problems.append(_as_rules_error(exc))
            continue
        if vs is None:
            continue
        if vs.name in out:
            problems.append(RulesError(f"value set {vs.name!r} is defined twice (also in "
                                       f"{Path(out[vs.name].path).name})", path=path))
            continue
        out[vs.name] = vs
    return out


# -- rules ---------------------------------------------------------------------------
def _as_rules_error(exc: ConfigError) -> RulesError:
    if isinstance(exc, RulesError):
        return exc
    err = RulesError(exc.message, path=exc.path, line=exc.line, rule_id=exc.rule_id, key=exc.key,
                     context=exc.context)
    return err


def iter_criteria(rule: Rule) -> Iterator[tuple[Criterion, tuple[str | int, ...]]]:
    """Every criterion of a rule with its key path in the file (recursively)."""

    def walk(c: Criterion, path: tuple[str | int, ...]) -> Iterator[tuple[Criterion, tuple[str | int, ...]]]:
        yield c, path
        if isinstance(c, AnyOf):
            for i, child in enumerate(c.any):
                yield from walk(child, (*path, "any", i))
        elif isinstance(c, AllOf):
            for i, child in enumerate(c.all):
                yield from walk(child, (*path, "all", i))

    for i, c in enumerate(rule.population.conditions):
        yield from walk(c, ("population", "conditions", i))
    for i, c in enumerate(rule.exclusions):
        yield from walk(c, ("exclusions", i))
    if rule.due is not None:
        for i, c in enumerate(rule.due.unless):
            yield from walk(c, ("due", "unless", i))
    if rule.condition is not None:
        yield from walk(rule.condition, ("condition",))


def _dotted(keys: tuple[str | int, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")


#: one problem a cross check found: the key path, the value found, what is valid
_Finding = tuple[tuple[str | int, ...], object, Any]

#: what a column operation's ``value:`` must be, and how the error says it
_VALUE_KINDS: dict[ValueKind, tuple[Callable[[Any], bool], str]] = {
    ValueKind.NONE: (lambda v: v is None, "no `value:` for `{op}`"),
    ValueKind.NUMBER: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number for `{op}`"),
    ValueKind.SCALAR: (lambda v: isinstance(v, str | int | float | bool), "a text, number or yes/no for `{op}`"),
    ValueKind.LIST: (lambda v: isinstance(v, list) and len(v) > 0
                     and all(isinstance(x, str | int | float | bool) for x in v), "a non-empty list for `{op}`"),
}


def _kind_findings(rule: Rule, path: Path) -> list[_Finding]:
    """The id matches the file; a screening rule has ``due:``, a risk rule ``condition:``; ages ordered."""
    found: list[_Finding] = []
    if rule.id != path.stem:
        found.append((("id",), rule.id, f"a rule's id must match its file name ({path.stem!r})"))
    if rule.kind is Kind.SCREENING:
        if rule.due is None:
            found.append((("kind",), rule.kind.value, "a screening rule needs a `due:` section"))
        if rule.condition is not None:
            found.append((("condition",), "a mapping", "`condition:` is for risk rules; use `due:`"))
    else:
        if rule.condition is None:
            found.append((("kind",), rule.kind.value, "a risk rule needs a `condition:`"))
        if rule.due is not None:
            found.append((("due",), "a mapping", "`due:` is for screening rules; use `condition:`"))
    age = rule.population.age
    if age is not None and age.min is not None and age.max is not None and age.min > age.max:
        found.append((("population", "age", "max"), age.max, f"at least the minimum age {age.min}"))
    return found


def _event_findings(
    criterion: EventTest, keys: tuple[str | int, ...], valuesets: dict[str, ValueSet], broken: frozenset[str]
) -> list[_Finding]:
    """The value sets an event test names exist; a result test is on a coded, non-episode lookup."""
    known = sorted(k for k in valuesets if _official(k) is None)

    def missing(name: str | None) -> bool:
        return name is not None and name not in valuesets and name not in broken

    found: list[_Finding] = []
    if missing(criterion.valueset):
        found.append(((*keys, "valueset"), criterion.valueset, known or "no value sets are defined"))
    if missing(criterion.answer):
        found.append(((*keys, "answer"), criterion.answer, known or "no value sets are defined"))
    if criterion.result is not None and criterion.episode:
        found.append(((*keys, "result"), "a result test on an episode",
                      "`result:` reads the most recent event's value; drop `episode: true`"))
    if criterion.result is not None and criterion.field is not EvidenceField.CODE:
        found.append(((*keys, "result"), f"a result test on `field: {criterion.field.value}`",
                      "`result:` needs events matched on their code"))
    window = criterion.window
    if window.kind is WindowKind.SINCE and missing(window.valueset):
        found.append(((*keys, "within"), criterion.within,
                      "since last <value set> with one of: " + ", ".join(known)))
    return found


def _column_findings(criterion: ColumnTest, keys: tuple[str | int, ...]) -> list[_Finding]:
    """A column test's ``value:`` has the shape its operation takes (and a category column's values)."""
    op = OPERATIONS[criterion.op]
    if op.value not in _VALUE_KINDS:
        return []
    fits, wanted = _VALUE_KINDS[op.value]
    if not fits(criterion.value):
        return [((*keys, "value"), criterion.value, wanted.format(op=op.name))]
    dtype = CATEGORY_COLUMNS.get(criterion.column)
    categories = sorted(dtype.categories.to_list()) if dtype is not None else None
    listed = criterion.value if isinstance(criterion.value, list) else [criterion.value]
    unknown = [v for v in listed if isinstance(v, str) and categories is not None and v not in categories]
    if unknown:  # `phone_type in [mobile, cell]`: `cell` can never match
        return [((*keys, "value"), unknown[0] if len(unknown) == 1 else unknown,
                 f"{criterion.column} values: {', '.join(categories or [])}")]
    return []


def cross_check(
    rule: Rule,
    raw: Any,
    path: Path,
    valuesets: dict[str, ValueSet],
    broken: frozenset[str] = frozenset(),
) -> list[RulesError]:
    """Semantic checks the schema cannot express; every problem found is returned.

    ``broken`` names value-set files that failed to load (already reported), so rules
    naming them are not reported a second time.
    """
    found = _kind_findings(rule, path)
    for criterion, keys in iter_criteria(rule):
        if isinstance(criterion, EventTest):
            found += _event_findings(criterion, keys, valuesets, broken)
        elif isinstance(criterion, ColumnTest):
            found += _column_findings(criterion, keys)
    if not rule.examples:
        found.append((("examples",), [], "at least one example patient per status the rule can give"))
    return [_invalid(_dotted(keys), value, valid, path=path, line=key_line(raw, *keys), rule_id=rule.id)
            for keys, value, valid in found]


_TAG_MODELS: dict[str, type[BaseModel]] = {
    "event": EventTest, "column": ColumnTest, "any": AnyOf, "all": AllOf,
}


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[tuple[str | int, ...], type[BaseModel]]:
    """Drop union tags from a pydantic error location; also return the model owning the last key."""
    keys: list[str | int] = []
    model: type[BaseModel] = Rule
    owner: type[BaseModel] = Rule
    for part in loc:
        if isinstance(part, int):
            keys.append(part)
            continue
        if part in model.model_fields:
            owner = model
            keys.append(part)
            found = [m for m in _model_types(model.model_fields[part].annotation)]
            if len(found) == 1:
                model = found[0]
        elif part in _TAG_MODELS:
            model = _TAG_MODELS[part]
        else:
            owner = model
            keys.append(part)
    return tuple(keys), owner


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(m for m in _model_types(arg) if m not in found)
    return found


def validate_rule(raw: Any, path: Path, rule_id: str | None) -> Rule:
    """Validate a rule file's YAML into a :class:`Rule`; the first problem is a located error.

    Like :func:`segment.config.validate`, but criteria are a tagged union, so the tags
    pydantic puts in error locations are dropped to name the real key and line.
    """
    try:
        return Rule.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        keys, owner = _clean_loc(tuple(first["loc"]))
        dotted, line = _dotted(keys), key_line(raw, *keys)
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            valid = sorted(f.alias or n for n, f in owner.model_fields.items())
            msg = f"unknown key `{dotted}`; valid keys are: " + ", ".join(valid)
        elif kind == "missing":
            msg = f"key `{dotted}` is required"
        else:
            ctx = first.get("ctx") or {}
            valid_text = (f"valid options are: {ctx['expected']}" if "expected" in ctx
                          else str(first.get("msg", "invalid value")))
            msg = f"key `{dotted}`: found {_short(first.get('input'))}; {valid_text}"
        if len(errors) > 1:
            more = len(errors) - 1
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise RulesError(msg, path=path, line=line, rule_id=rule_id, key=dotted or None) from exc


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _official(text: str) -> OfficialRef | None:
    """The official reference ``text`` is (OID or URL, optional |version), else None."""
    return parse_reference(text)


def resolve_official(
    rule: Rule, raw: Any, path: Path, valuesets: dict[str, ValueSet], catalog: Catalog
) -> tuple[set[str], list[RulesError]]:
    """Add the official sets ``rule`` names (by OID or URL) to ``valuesets``, keyed as written.

    Returns the references that did not resolve (already reported, so :func:`cross_check`
    skips them) and their problems in the one message shape.
    """
    failed: set[str] = set()
    problems: list[RulesError] = []
    for criterion, keys in iter_criteria(rule):
        if not isinstance(criterion, EventTest) or criterion.valueset in valuesets:
            continue
        ref = _official(criterion.valueset)
        if ref is None:
            continue
        try:
            valuesets[criterion.valueset] = catalog.resolve(ref)
        except UnresolvedReference as exc:
            failed.add(criterion.valueset)
            problem = _invalid(_dotted((*keys, "valueset")), criterion.valueset, str(exc),
                               path=path, line=key_line(raw, *keys, "valueset"), rule_id=rule.id)
            problems.append(problem)
            if isinstance(exc, NothingLoaded):
                catalog.unloaded.append(problem)
    return failed, problems


def _load_rule(
    path: Path, valuesets: dict[str, ValueSet], broken: frozenset[str], catalog: Catalog | None = None
) -> tuple[Rule | None, list[RulesError]]:
    try:
        raw = load_yaml(path, RulesError)
        if not isinstance(raw, dict):
            raise RulesError("a rule file must be a mapping", path=path, line=1)
        rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        rule = validate_rule(raw, path, rule_id)
    except ConfigError as exc:
        return None, [_as_rules_error(exc)]
    failed, problems = resolve_official(rule, raw, path, valuesets,
                                       catalog if catalog is not None else Catalog())
    return rule, problems + cross_check(rule, raw, path, valuesets, broken | failed)


@dataclass(frozen=True)
class RulesCheck:
    """Everything :func:`check_rules_report` found in a rules folder."""

    ruleset: RuleSet | None  # None when there is any problem
    problems: list[RulesError]
    #: the rules name official value sets and no VSAC file is loaded: one problem saying
    #: where the files go (instead of one per reference, listed in ``unloaded``)
    no_vsac: RulesError | None = None
    unloaded: tuple[RulesError, ...] = ()

    def shown(self) -> list[RulesError]:
        """The problems to show a person: the summary first, without the lines it sums up."""
        if self.no_vsac is None:
            return list(self.problems)
        summed = {id(p) for p in self.unloaded}
        return [self.no_vsac, *(p for p in self.problems if id(p) not in summed)]


def _no_vsac(root: Path, catalog: Catalog) -> RulesError | None:
    """One problem for references that found nothing because no VSAC file is loaded."""
    if not catalog.unloaded:
        return None
    refs = len(catalog.unloaded)
    first = catalog.unloaded[0]
    looked = f"{root / VALUESETS_DIR / 'vsac'}/"
    if catalog.external is not None:
        looked += f" and {catalog.external}"
    return RulesError(
        f"the rules name official value sets ({refs} reference{'s' if refs != 1 else ''} by "
        f"VSAC OID or URL; first: {first.location()} {first.key}) and no VSAC file is loaded "
        f"(looked in {looked}). These rules need the value set expansions of the measures they "
        "follow (the eCQM value sets), downloaded from VSAC (https://vsac.nlm.nih.gov) as FHIR "
        "ValueSet/Bundle JSON, SVS XML or the spreadsheet export; they are not shipped (CPT and "
        f"SNOMED CT licences). Put the files in {root / VALUESETS_DIR / 'vsac'}/, or give their "
        f"folder with --vsac DIR or the {VSAC_ENV} environment variable",
        path=root,
    )


def check_rules_report(folder: str | Path, vsac: str | Path | None = None) -> RulesCheck:
    """Load a rules folder collecting every problem (``segment rules check``).

    ``vsac``: a folder of VSAC files besides ``valuesets/vsac/`` (see :func:`vsac_folder`).
    """
    root = Path(folder)
    if not root.is_dir():
        return RulesCheck(None, [RulesError("rules folder not found", path=root)])
    problems: list[RulesError] = []
    catalog = load_catalog(root, problems, vsac_folder(vsac))
    valuesets = load_valuesets(root, problems, catalog)
    vs_dir = root / VALUESETS_DIR
    broken = frozenset(
        p.stem for p in (vs_dir.iterdir() if vs_dir.is_dir() else ())
        if p.suffix in {".yaml", ".yml", ".csv"} and p.stem not in valuesets
    )
    rules: list[Rule] = []
    paths: dict[str, str] = {}
    files = sorted(p for p in root.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
    if not files:
        problems.append(RulesError("no rule files (*.yaml) in the rules folder", path=root))
    for path in files:
        rule, found = _load_rule(path, valuesets, broken, catalog)
        problems.extend(found)
        if rule is None:
            continue
        if rule.id in paths:
            problems.append(RulesError(f"rule id {rule.id!r} is also defined in "
                                       f"{Path(paths[rule.id]).name}", path=path, rule_id=rule.id))
            continue
        rules.append(rule)
        paths[rule.id] = str(path)
    ruleset = RuleSet(tuple(rules), valuesets, paths) if not problems else None
    return RulesCheck(ruleset, problems, _no_vsac(root, catalog), tuple(catalog.unloaded))


def check_rules(
    folder: str | Path, vsac: str | Path | None = None
) -> tuple[RuleSet | None, list[RulesError]]:
    """Load a rules folder collecting every problem: (rule set or None, problems)."""
    report = check_rules_report(folder, vsac)
    return report.ruleset, report.problems


@dataclass(frozen=True)
class ValueSetCount:
    """One line of the ``rules check`` report: a referenced value set's codes in one system."""

    valueset: str  # as the rules name it: a local name, an OID or a URL (|version)
    title: str  # on a set's first line only
    system: str
    codes: int
    note: str = ""  # where an official set comes from; why codes are not matched


def valueset_counts(ruleset: RuleSet) -> list[ValueSetCount]:
    """For every value set a rule references, its code count per system (``rules check``).

    Codes of systems ingest does not know are listed as not matched, never hidden.
    """
    used: set[str] = set()
    for rule in ruleset.rules:
        for criterion, _keys in iter_criteria(rule):
            if isinstance(criterion, EventTest):
                used.add(criterion.valueset)
                if criterion.window.kind is WindowKind.SINCE:
                    used.add(criterion.window.valueset)
    out: list[ValueSetCount] = []
    for name in sorted(used):
        vs = ruleset.valuesets.get(name)
        if vs is None:
            continue
        if vs.oid is not None or vs.url is not None:
            origin = f"VSAC {vs.oid or vs.url}" + (f" version {vs.version}" if vs.version else "")
            origin += f" ({Path(vs.path).name})"
        elif vs.includes:
            origin = "local codes and " + ", ".join(vs.includes)
        else:
            origin = ""
        lines = [(system, n, "") for system, n in vs.system_counts().items()]
        lines += [(system, n, f"not matched (system {system} unknown to ingest)")
                  for system, n in vs.unmatched_counts().items()]
        for i, (system, n, note) in enumerate(lines or [("-", 0, "no codes")]):
            first = i == 0
            out.append(ValueSetCount(name, vs.title if first else "", system, n,
                                     "; ".join(x for x in (origin if first else "", note) if x)))
    return out


def load_rules(
    folder: str | Path, only: list[str] | None = None, *, vsac: str | Path | None = None
) -> RuleSet:
    """A validated rule set, or the first problem as a :class:`RulesError`.

    When the rules need official value sets and no VSAC file is loaded, the problem says
    where to put them. ``vsac``: see :func:`vsac_folder`.
    """
    report = check_rules_report(folder, vsac)
    ruleset, problems = report.ruleset, report.shown()
    if problems or ruleset is None:
        first = problems[0]
        if len(problems) > 1:
            first.hint = (f"and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}; "
                          "run `segment rules check`")
        raise first
    if only:
        unknown = [r for r in only if r not in ruleset.paths]
        if unknown:
            raise invalid_value("rule", unknown[0], sorted(ruleset.paths), path=Path(folder),
                                error=RulesError)
        rules = tuple(r for r in ruleset.rules if r.id in only)
        ruleset = RuleSet(rules, ruleset.valuesets, {r.id: ruleset.paths[r.id] for r in rules})
    return ruleset
