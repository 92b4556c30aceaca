"""The self-contained report page and its parts, shared by ``audit.html`` and ``measure.html``.

:func:`page` is the skeleton (a Content-Security-Policy that forbids every request, the
inline style, the title and header); :func:`table`, :func:`figure`, :func:`count`,
:func:`pct` and :func:`interval` build its tables, charts and figures; :func:`group_rows`
builds one row per (dimension, group) of a published section. Every value is escaped by
the caller or here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from segment.audit.charts import group_label

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:70rem;padding:1rem 1.5rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #ddd}
.note{background:#fff8e1;border-left:5px solid #e0a458;padding:.6rem 1rem;margin:1rem 0}
.flags li.below{color:#8b1a1a}.flags li.above{color:#1c4f80}
.summary{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0;padding:0}
.summary div{background:#f3f6f9;padding:.6rem 1rem;border-radius:.4rem;min-width:9rem}
.summary dt{font-size:.8rem;color:#444}.summary dd{margin:0;font-size:1.3rem;font-weight:600}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem}td.n{text-align:right}
th{background:#eef1f4}tr.flag-below td{background:#fbe9e9}tr.flag-above td{background:#e8f0fa}
figure{margin:.8rem 0}svg{max-width:100%;height:auto}
.muted{color:#555;font-size:.85rem}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def page(title: str, header: str, main: str) -> str:
    """A whole self-contained report page: the CSP, the style, ``<h1>title`` then ``header`` and ``main``.

    ``title``, ``header`` and ``main`` are HTML (already escaped).
    """
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{title}</h1>
{header}
</header>
<main>
{main}
</main>
</body>
</html>
"""


def count(value: Any) -> str:
    """A published count: ``1,234``, ``<11``/``suppressed`` as written, a dash for none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value)) if value is not None else "&ndash;"


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal, a dash for none."""
    return "&ndash;" if value is None else f"{value * 100:.1f}%"


def interval(low: float | None, high: float | None, pct: bool = False) -> str:
    """`` (low&ndash;high)`` (percentages with ``pct``), empty when either limit is missing."""
    if low is None or high is None:
        return ""
    if pct:
        return f" ({low * 100:.1f}&ndash;{high * 100:.1f}%)"
    return f" ({low:.2f}&ndash;{high:.2f})"


def table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None
) -> str:
    """An accessible table: ``caption``, column headers, rows whose first cell is the row header.

    Cells are HTML (already escaped); ``classes`` (one per row, default none) style the rows.
    """
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for row, cls in zip(rows, classes if classes is not None else [""] * len(rows), strict=True):
        cells = [f'<th scope="row">{row[0]}</th>'] + [f'<td class="n">{c}</td>' for c in row[1:]]
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def figure(svg: str | None, caption: str) -> str:
    """An inline SVG chart with its caption; empty when there is no chart."""
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption class=\"muted\">{escape(caption)}</figcaption></figure>"


def group_cell(dimension: Any, group: Any) -> str:
    """The row header of a group: ``dimension: group label`` (escaped)."""
    return f"{escape(str(dimension))}: {escape(group_label(str(dimension), str(group)))}"


def group_rows(dimensions: Sequence[Mapping[str, Any]],
               cells: Callable[[Mapping[str, Any]], Sequence[str]]) -> list[list[str]]:
    """One table row per group of every dimension: :func:`group_cell`, then ``cells(group)``."""
    return [[group_cell(dim["name"], g["group"]), *cells(g)] for dim in dimensions for g in dim["groups"]]
