"""Loading YAML with line numbers, validating it into typed objects, and shared settings.

Every configuration file (mapping, rules, value sets, campaigns) goes through
:func:`load_yaml` and :func:`validate`, in three steps: raw shape (safe YAML, with
the line of every key remembered) -> frozen typed objects (pydantic) -> cross-field
checks done by the caller. Errors name the file, the line, the key, the value found
and what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from segment.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class LineDict(dict[str, Any]):
    """A mapping loaded from YAML that remembers the line of each key (1-based)."""

    start_line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: str | None = None) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        if key is not None and key in self.key_lines:
            return self.key_lines[key]
        return self.start_line


class LineList(list[Any]):
    """A sequence loaded from YAML that remembers the line of each item (1-based)."""

    start_line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []


def key_line(raw: Any, *keys: str | int) -> int | None:
    """The line of the deepest of the nested ``keys`` that exists in raw YAML (or of ``raw``)."""
    node, line = raw, getattr(raw, "start_line", None)
    for key in keys:
        if isinstance(node, LineDict) and isinstance(key, str) and key in node:
            line, node = node.line_of(key), node[key]
        elif isinstance(node, LineList) and isinstance(key, int) and 0 <= key < len(node):
            line, node = node.item_lines[key], node[key]
        else:
            break
    return line


#: limits checked on the parsed node tree, before any Python object is built: a crafted
#: file (an alias "billion laughs", thousands of nested brackets) is refused in
#: milliseconds instead of exhausting memory or the interpreter's stack
MAX_YAML_BYTES = 16 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1000
#: scalars, mappings and sequences the document holds once aliases are expanded
MAX_YAML_NODES = 1_000_000


class _AsWritten:
    """A number that keeps the text YAML read it from; its ``repr`` is that text."""

    text: str

    def __new__(cls, value: float, text: str) -> Self:
        """The number YAML read, remembering the text it was read from."""
        obj = super().__new__(cls, value)  # type: ignore[call-arg]  # int or float, by the subclass
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return self.text


class Sexagesimal(_AsWritten, int):
    """An unquoted ``10:00``, which YAML 1.1 reads as the number 600 (base 60).

    It stays an int for YAML's sake, but keeps the text as written so a validator can
    refuse it by what the user typed (its ``repr`` is that text).
    """


class SexagesimalFloat(_AsWritten, float):
    """An unquoted ``10:30.5``, which YAML 1.1 reads as a base-60 float (see :class:`Sexagesimal`)."""


def _limit_error(problem: str, mark: yaml.Mark | None) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, mark)


class _LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, recording line numbers; refuses Python object tags.

    Nesting deeper than :data:`MAX_YAML_DEPTH`, more than :data:`MAX_YAML_ALIASES`
    aliases, or a document that expands through aliases to more than
    :data:`MAX_YAML_NODES` nodes is refused while composing, before construction.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _limit_error(
                    f"more than {MAX_YAML_ALIASES} aliases (*name); a configuration file needs few",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _limit_error(
                    f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose alias-expanded size passes :data:`MAX_YAML_NODES`.

    Sizes are memoized per node, so this costs one visit per distinct node however far
    the aliases would expand.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_YAML_NODES:
            raise _limit_error(
                f"aliases expand this document to more than {MAX_YAML_NODES:,} values "
                "(an alias bomb?); write the values out or use fewer aliases",
                node.start_mark,
            )
        sizes[id(node)] = total


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode) -> int:
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    return Sexagesimal(value, node.value) if ":" in node.value else value


def _construct_float(loader: _LineLoader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    return SexagesimalFloat(value, node.value) if ":" in node.value else value


def _construct_timestamp(loader: _LineLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:  # 2025-02-30: YAML's pattern matches, the calendar does not
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value} is not a valid date ({exc})", node.start_mark
        ) from None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.start_line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping keys must be plain scalars", key_node.start_mark
            )
        skey = str(key) if not isinstance(key, str) else key
        if skey in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key `{skey}`", key_node.start_mark
            )
        result[skey] = loader.construct_object(value_node, deep=True)
        result.key_lines[skey] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.start_line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def numbered_context(text: str, line: int, radius: int = 2) -> str:
    """The lines around ``line`` (1-based), numbered, with a marker on ``line``."""
    lines = text.splitlines()
    lo, hi = max(1, line - radius), min(len(lines), line + radius)
    width = len(str(hi))
    out = []
    for n in range(lo, hi + 1):
        marker = ">" if n == line else " "
        out.append(f"{marker} {n:>{width}} | {lines[n - 1]}")
    return "\n".join(out)


def load_yaml_text(text: str, path: str | Path, error: type[ConfigError] = ConfigError) -> Any:
    """Parse YAML text safely, keeping key lines; syntax errors point at the line.

    A document larger than :data:`MAX_YAML_BYTES`, nested deeper than
    :data:`MAX_YAML_DEPTH` or expanding through aliases past the limits is refused
    before any object is built.
    """
    if len(text) > MAX_YAML_BYTES:
        raise error(
            f"YAML error: the file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; "
            "a configuration file is far smaller",
            path=path,
        )
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(problem):
            problem = f"{problem} (only plain YAML is accepted; object tags are refused)"
        context = numbered_context(text, line) if line else None
        raise error(f"YAML error: {problem}", path=path, line=line, context=context) from exc
    except yaml.YAMLError as exc:
        raise error(f"YAML error: {exc}", path=path) from exc


def load_yaml(path: str | Path, error: type[ConfigError] = ConfigError) -> Any:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`ConfigError`."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise error(
                f"YAML error: the file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; "
                "a configuration file is far smaller",
                path=p,
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error("file not found", path=p) from exc
    except UnicodeDecodeError as exc:
        raise error("not UTF-8 text", path=p) from exc
    except OSError as exc:
        raise error(f"cannot read file ({exc.strerror})", path=p) from exc
    return load_yaml_text(text, p, error)


def _locate(raw: Any, loc: Sequence[int | str]) -> tuple[int | None, str]:
    """Follow a pydantic error location through the raw YAML to a line and dotted key."""
    node = raw
    line: int | None = getattr(raw, "start_line", None)
    keys: list[str] = []
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str):
            if part in node.key_lines:
                line = node.key_lines[part]
            node = node.get(part)
            keys.append(part)
        elif isinstance(node, LineList) and isinstance(part, int):
            if 0 <= part < len(node.item_lines):
                line = node.item_lines[part]
            node = node[part] if 0 <= part < len(node) else None
            keys.append(f"[{part}]")
        else:
            # pydantic adds union-member or validator names; they are not keys
            continue
    dotted = ".".join(keys).replace(".[", "[")
    return line, dotted


def _describe_valid(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    if "expected" in ctx:
        return f"valid options are: {ctx['expected']}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "this key is required"
    return str(err.get("msg", "invalid value"))


def validate(
    model: type[ModelT],
    raw: Any,
    path: str | Path,
    *,
    error: type[ConfigError] = ConfigError,
    rule_id: str | None = None,
    allowed_keys_hint: bool = True,
) -> ModelT:
    """Validate raw YAML data into ``model``; the first problem becomes a located error.

    The message has one shape: ``key `k`: found 'v'; valid options are: ...``.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        line, dotted = _locate(raw, first["loc"])
        kind = first.get("type", "")
        found = first.get("input")
        if kind == "extra_forbidden":
            valid_keys = sorted(
                f.alias or name for name, f in _model_at(model, first["loc"][:-1]).model_fields.items()
            ) if allowed_keys_hint else []
            msg = f"unknown key `{dotted}`"
            if valid_keys:
                msg += "; valid keys are: " + ", ".join(valid_keys)
        elif kind == "missing":
            msg = f"key `{dotted}` is required" if dotted else "a required key is missing"
        else:
            shown = _short(found)
            msg = f"key `{dotted}`: found {shown}; {_describe_valid(first)}"
        more = len(errors) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise error(msg, path=path, line=line, rule_id=rule_id, key=dotted or None) from exc


def _short(value: Any) -> str:
    if isinstance(value, LineDict | dict):
        return "a mapping"
    if isinstance(value, LineList | list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel]:
    """The nested model class reached by following ``loc`` (best effort)."""
    current: type[BaseModel] = model
    for part in loc:
        if not isinstance(part, str) or part not in current.model_fields:
            continue
        annotation = current.model_fields[part].annotation
        for candidate in _model_types(annotation):
            current = candidate
            break
    return current


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_model_types(arg))
    return found


def env_path(name: str) -> Path | None:
    """A path from an environment variable, or None when unset or empty."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def default_data_dir() -> Path:
    """The per-user data folder (reference packs, ledger) unless overridden."""
    from platformdirs import user_data_dir

    return env_path("SEGMENT_HOME") or Path(user_data_dir("segment", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Settings shared by the stages, from the environment with sensible defaults.

    Base URLs are settings so tests can point the downloaders at a local server.
    """

    reference_dir: Path = field(default_factory=lambda: default_data_dir() / "reference")
    ledger_path: Path = field(default_factory=lambda: default_data_dir() / "ledger.sqlite")
    tiger_base_url: str = "https://www2.census.gov/geo/tiger"
    census_api_base_url: str = "https://api.census.gov/data"
    census_geocoder_url: str = "https://geocoding.geo.census.gov/geocoder"
    http_timeout_s: float = 60.0
    http_retries: int = 4
    #: a folder of official value-set files (VSAC downloads) read besides a rules folder's
    #: own ``valuesets/vsac/``: they cannot ship with the rules (CPT, SNOMED CT licences)
    vsac_dir: Path | None = None

    def __post_init__(self) -> None:
        # a str from a Python caller is a path like any other
        for name in ("reference_dir", "ledger_path", "vsac_dir"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from ``SEGMENT_*`` environment variables, then explicit overrides."""
        values: dict[str, Any] = {}
        if (ref := env_path("SEGMENT_REFERENCE")) is not None:
            values["reference_dir"] = ref
        if (ledger := env_path("SEGMENT_LEDGER")) is not None:
            values["ledger_path"] = ledger
        if (vsac := env_path("SEGMENT_VSAC_DIR")) is not None:
            values["vsac_dir"] = vsac
        for key, env in (
            ("tiger_base_url", "SEGMENT_TIGER_URL"),
            ("census_api_base_url", "SEGMENT_CENSUS_API_URL"),
            ("census_geocoder_url", "SEGMENT_CENSUS_GEOCODER_URL"),
        ):
            if os.environ.get(env):
                values[key] = os.environ[env].rstrip("/")
        if os.environ.get("SEGMENT_HTTP_TIMEOUT"):
            values["http_timeout_s"] = float(os.environ["SEGMENT_HTTP_TIMEOUT"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
