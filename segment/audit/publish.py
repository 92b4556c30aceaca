"""Writing a published report: the JSON document and its self-contained HTML page side by side.

``audit.json``/``audit.html`` and ``measure.json``/``measure.html`` are written the same way:
the HTML where the caller says (or the working folder's default name), the JSON beside it with
the same stem, both atomically and owner-only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segment import workdir as wd


@dataclass(frozen=True)
class ReportResult:
    """What a report produced: the published document and where it was written."""

    document: dict[str, Any]
    json_path: Path | None = None
    html_path: Path | None = None


def write_report(document: Mapping[str, Any], html_path: Path,
                 render: Callable[[Mapping[str, Any]], str]) -> tuple[Path, Path]:
    """Write ``document`` as JSON beside ``html_path`` (same stem) and its page; return (json, html)."""
    json_path = html_path.with_suffix(".json")
    wd.write_json(json_path, document)
    with wd.atomic_open(html_path, "w", encoding="utf-8") as fh:
        fh.write(render(document))
    return json_path, html_path
