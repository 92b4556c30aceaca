"""Where the shipped data folders are: `rules/` and `reference_data/`.

They live at the project root (data, not code). In a source checkout or an editable
install they are found beside the package; a wheel install puts them under
``<prefix>/share/segment/`` (see ``[tool.setuptools.data-files]`` in pyproject.toml).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from segment.errors import ReferenceDataError

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` (``rules`` or ``reference_data``)."""
    candidates = [
        _PACKAGE_DIR.parent / name,
        Path(sys.prefix) / "share" / "segment" / name,
        Path(sysconfig.get_path("data")) / "share" / "segment" / name,
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ReferenceDataError(
        f"shipped folder `{name}` not found (looked beside the package and under share/segment); "
        "reinstall segment"
    )


def shipped_rules_dir() -> Path:
    """The rules and value sets that ship with segment."""
    return shipped_dir("rules")


def reference_data_dir() -> Path:
    """The small bundled reference tables (HP2030 objectives, indicator maps)."""
    return shipped_dir("reference_data")
