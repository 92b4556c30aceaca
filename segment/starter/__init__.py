"""`segment init DIR`: a starter project a user can fill in and run.

The project holds a commented campaign file, a mapping template for the user's columns, a
rules folder with one shipped rule and the value sets it uses, an empty ``extract/`` folder
and a README of next steps. Nothing is ever overwritten: when any file it would write exists,
nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from segment import workdir as wd
from segment.errors import ConfigError

#: the shipped rule copied into a starter project (the starter campaign's audience names it)
STARTER_RULE = "colorectal-cancer-screening"
#: files written from the templates, by name in the project
TEMPLATES = ("campaign.yaml", "mapping.yaml", "README.md")


@dataclass(frozen=True)
class StarterProject:
    """What :func:`write_starter_project` wrote."""

    root: Path
    files: list[Path]
    rule: str


def _valuesets(node: Any) -> Iterator[str]:
    """Every ``valueset:`` name a rule document refers to, wherever it is nested."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "valueset" and isinstance(value, str):
                yield value
            else:
                yield from _valuesets(value)
    elif isinstance(node, list):
        for item in node:
            yield from _valuesets(item)


def _template(name: str) -> str:
    return resources.files("segment.starter").joinpath("templates", name).read_text(encoding="utf-8")


def starter_files(root: Path, rules_dir: Path) -> dict[Path, bytes]:
    """The files of a starter project under ``root``: relative path -> content."""
    rule_path = rules_dir / f"{STARTER_RULE}.yaml"
    rule_text = rule_path.read_bytes()
    files: dict[Path, bytes] = {}
    for name in TEMPLATES:
        text = _template(name)
        if name == "README.md":
            text = text.replace("{name}", root.resolve().name).replace("{rule}", STARTER_RULE)
        files[Path(name)] = text.encode("utf-8")
    files[Path("rules") / rule_path.name] = rule_text
    for valueset in sorted(set(_valuesets(yaml.safe_load(rule_text)))):
        source = next(iter(sorted((rules_dir / "valuesets").glob(f"{valueset}.*"))), None)
        if source is None:
            raise ConfigError(f"{rule_path}: value set `{valueset}` not found in {rules_dir / 'valuesets'}")
        files[Path("rules") / "valuesets" / source.name] = source.read_bytes()
    return files


def write_starter_project(folder: str | Path, rules_dir: Path | None = None) -> StarterProject:
    """Write a starter project into ``folder`` (created owner-only); never overwrite a file.

    ``rules_dir`` is where the rule is copied from (default: the shipped rules).
    """
    from segment.rules.loader import default_rules_dir

    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root}: is a file; segment init needs a new or existing folder")
    files = starter_files(root, rules_dir or default_rules_dir())
    existing = sorted(str(rel) for rel in [*files, Path("extract")] if (root / rel).exists())
    if existing:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise ConfigError(
            f"{root}: segment init does not overwrite, and {len(existing)} of its files already "
            f"exist ({shown}); choose a new folder"
        )
    written: list[Path] = []
    for rel, content in files.items():
        target = root / rel
        wd.ensure_private_dir(target.parent)
        # O_EXCL: a file that appeared since the check above is refused, not replaced
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        written.append(target)
    wd.ensure_private_dir(root / "extract")
    return StarterProject(root=root, files=written, rule=STARTER_RULE)
