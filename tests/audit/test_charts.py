"""Audit charts written as SVG: the same figures and groups as the matplotlib charts they replace.

``data/charts_matplotlib_baseline.json`` was captured from the matplotlib implementation
(commit 4fcd90a) for the documents below: each chart's title, description (every figure
and group it shows, in words) and text elements. The SVG charts must say the same things;
only the funnel's automatic axis ticks may differ. The marks themselves carry their figure
(``data-value``), checked against the published document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from segment.audit.charts import all_charts
from segment.audit.metrics import FUNNEL_STAGES

from .test_html import _page

BASELINE = json.loads((Path(__file__).parent / "data" / "charts_matplotlib_baseline.json").read_text())


def _specs(name: str) -> tuple[tuple[int, dict[str, Any]], ...]:
    return tuple((n, o) for n, o in BASELINE[name]["specs"])


def _content(svg: str, chart_id: str) -> dict[str, Any]:
    title = re.search(r'<title id="[^"]*">(.*?)</title>', svg)
    desc = re.search(r'<desc id="[^"]*">(.*?)</desc>', svg)
    assert title and desc
    texts = []
    for attrs, text in re.findall(r"<text([^>]*)>(.*?)</text>", svg, re.S):
        if chart_id == "funnel" and 'class="tick"' in attrs:
            continue  # automatic axis ticks: a layout choice, not a figure
        texts.append(unescape(text).strip())
    return {"title": unescape(title.group(1)), "desc": unescape(desc.group(1)),
            "texts": Counter(texts)}


def _baseline_content(chart_id: str, chart: dict[str, Any]) -> dict[str, Any]:
    texts = [t.strip() for t in chart["texts"]]
    if chart_id == "funnel":  # matplotlib writes the x ticks first, then the axis label
        texts = texts[texts.index("People"):]
    return {"title": chart["title"], "desc": chart["desc"], "texts": Counter(texts)}


@pytest.mark.parametrize("name", sorted(BASELINE))
def test_same_charts_figures_and_groups_as_matplotlib(name: str) -> None:
    doc, html = _page(*_specs(name))
    charts = all_charts(doc)
    assert sorted(charts) == sorted(BASELINE[name]["charts"])
    for chart_id, svg in charts.items():
        expected = _baseline_content(chart_id, BASELINE[name]["charts"][chart_id])
        assert _content(svg, chart_id) == expected, chart_id
        assert svg in html


def _values(svg: str, tag: str, attr: str = "data-value") -> list[float]:
    return [float(v) for v in re.findall(rf'<{tag}[^>]*\b{attr}="([^"]+)"', svg)]


@pytest.mark.parametrize("name", sorted(BASELINE))
def test_marks_carry_the_documents_figures(name: str) -> None:
    doc, _ = _page(*_specs(name))
    charts = all_charts(doc)
    funnel = doc["overall"]["funnel"]
    drawn = [funnel[s] for s in FUNNEL_STAGES if isinstance(funnel[s], int) and funnel[s] > 0]
    assert _values(charts["funnel"], "rect") == drawn
    for index, dim in enumerate(doc["dimensions"]):
        shown = [g for g in dim["groups"] if not g["suppressed"]]
        stages = charts.get(f"stages-{index}")
        rates = [g["funnel_rates"][s] for g in shown for s in FUNNEL_STAGES[1:]
                 if g["funnel_rates"][s] is not None]
        assert (_values(stages, "rect") if stages else []) == rates
        ratio_svg = charts.get(f"ratio-{index}")
        if ratio_svg is None:
            assert dim.get("reference_group") is None
            continue
        sels = [g["selection"] for g in dim["groups"]]
        ratios = [s["ratio"] for s in sels if s["ratio"] is not None and s["ratio"] > 0]
        assert _values(ratio_svg, "circle") == ratios
        cis = [(s["ratio_ci_low"], s["ratio_ci_high"]) for s in sels
               if s["ratio"] is not None and s["ratio"] > 0
               and s["ratio_ci_low"] is not None and s["ratio_ci_high"] is not None
               and s["ratio_ci_low"] > 0]
        lows = _values(ratio_svg, "line", "data-low")
        highs = _values(ratio_svg, "line", "data-high")
        assert list(zip(lows, highs, strict=True)) == cis


def test_suppressed_groups_draw_no_mark() -> None:
    doc, _ = _page(*_specs("flagged"))
    race = doc["dimensions"][0]
    assert race["name"] == "race"
    svg = all_charts(doc)["ratio-0"]
    hidden = [g for g in race["groups"] if g["suppressed"]]
    assert hidden, "the fixture has a suppressed group"
    assert svg.count("<circle") == len([g for g in race["groups"] if g["selection"]["ratio"]])
    for g in hidden:
        assert f"{g['group']}: suppressed" in svg


def test_bars_are_proportional_and_inside_the_chart() -> None:
    doc, _ = _page(*_specs("flagged"))
    svg = all_charts(doc)["funnel"]
    widths = [float(w) for w in re.findall(r'<rect[^>]*width="([^"]+)"[^>]*data-value', svg)]
    values = _values(svg, "rect")
    assert len(widths) == len(values) == 5
    scale = widths[0] / values[0]
    for width, value in zip(widths, values, strict=True):
        assert width == pytest.approx(value * scale, abs=0.01)
    total = float(re.search(r'<svg[^>]*width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    xs = [float(x) for x in re.findall(r'<rect x="([^"]+)"', svg)]
    assert all(0 <= x and x + w <= total for x, w in zip(xs, widths, strict=False))


def test_chart_ids_are_page_unique_and_labels_escaped() -> None:
    _, html = _page((40, {"race": '<script>"x" & </svg>'}), (60, {"race": "White"}))
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert "<script" not in html and "&lt;/svg&gt;" in html


def test_charts_need_no_plotting_library() -> None:
    code = ("import sys; import segment.audit.html, segment.audit.charts; "
            "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
