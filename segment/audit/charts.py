"""Charts for the audit report, drawn with matplotlib (Agg) and returned as inline SVG.

Charts are drawn only from the published (suppressed) document, so a hidden count is
never drawn as a bar length or a point. Text stays text (``svg.fonttype = none``: no
embedded or downloaded fonts), every SVG carries a ``<title>`` and ``<desc>`` for
screen readers, and element ids are salted per chart so several SVGs can share a page.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping
from html import escape
from typing import Any, TypeVar, cast

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from segment.audit.metrics import BAND_HIGH, BAND_LOW, FUNNEL_STAGES

STAGE_LABELS = {
    "eligible": "Eligible",
    "geocoded_precise": "Geocoded precisely",
    "enriched": "Enriched (tract data)",
    "contactable": "Contactable",
    "selected": "Selected",
}
_COLOURS = {"below": "#b2182b", "above": "#2166ac", None: "#333333"}
#: labels come from data: never parse "$...$" as mathtext
_RC: Any = {"text.parse_math": False, "svg.fonttype": "none"}
_NEED_LABELS = {"1": "1 (least need)", "5": "5 (most need)"}

F = TypeVar("F", bound=Callable[..., Any])


def _plain_text(fn: F) -> F:
    """Draw with data-safe text settings (no mathtext), restoring them afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)

    return cast(F, wrapper)


def group_label(dimension: str, group: str) -> str:
    """How a group is named in the report (need-index quintiles say which end is which)."""
    if dimension == "need_index_quintile":
        return _NEED_LABELS.get(group, group)
    return group


def _to_svg(fig: Figure, chart_id: str, title: str, description: str) -> str:
    """Serialize ``fig`` as an inline ``<svg>`` element with a title and description."""
    buf = io.StringIO()
    svg_rc: Any = {**_RC, "svg.hashsalt": chart_id}
    with matplotlib.rc_context(svg_rc):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    # salted, page-unique ids (matplotlib names patches and clip paths per figure)
    svg = re.sub(r'id="([^"]+)"', rf'id="{chart_id}-\1"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', rf'url(#{chart_id}-\1)', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{chart_id}-\1"', svg)
    head_end = svg.index(">") + 1
    opening = svg[:head_end].replace(
        "<svg", f'<svg role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"', 1
    )
    return (
        opening
        + f'<title id="{chart_id}-title">{escape(title)}</title>'
        + f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        + svg[head_end:]
    )


@_plain_text
def funnel_chart(overall: Mapping[str, Any], chart_id: str = "funnel") -> str:
    """Horizontal bars: how many eligible people reach each stage (hidden counts: no bar)."""
    funnel = overall.get("funnel", {})
    labels, values, shown = [], [], []
    for stage in FUNNEL_STAGES:
        value = funnel.get(stage)
        labels.append(STAGE_LABELS[stage])
        is_number = isinstance(value, int)
        values.append(value if is_number else 0)
        shown.append(str(value) if is_number else f"{value} (not drawn)")
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    ypos = list(range(len(labels)))[::-1]
    ax.barh(ypos, values, color="#4d7ea8")
    ax.set_yticks(ypos, labels)
    top = max(values) if any(values) else 1
    for y, v, text in zip(ypos, values, shown, strict=True):
        ax.text(v + top * 0.01, y, text, va="center", fontsize=9)
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel("People")
    ax.set_title("Campaign funnel: eligible people reaching each stage")
    ax.spines[["top", "right"]].set_visible(False)
    desc = "; ".join(f"{lbl}: {txt}" for lbl, txt in zip(labels, shown, strict=True))
    return _to_svg(fig, chart_id, "Campaign funnel", desc)


@_plain_text
def stage_rates_chart(dimension: Mapping[str, Any], chart_id: str) -> str | None:
    """Grouped bars per group: share of the eligible reaching each later stage."""
    groups = [g for g in dimension["groups"] if not g["suppressed"]]
    if not groups:
        return None
    stages = FUNNEL_STAGES[1:]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.55 * len(groups) * 1.0 + 1.0))
    height = 0.8 / len(stages)
    palette = ("#4d7ea8", "#8fb3d9", "#e0a458", "#5b8c5a")
    parts = []
    for s_index, stage in enumerate(stages):
        ys, xs = [], []
        for g_index, g in enumerate(groups):
            rate = g["funnel_rates"].get(stage)
            if rate is None:
                continue
            ys.append(len(groups) - 1 - g_index + 0.4 - (s_index + 0.5) * height)
            xs.append(rate * 100)
            parts.append(
                f"{group_label(dimension['name'], g['group'])} {STAGE_LABELS[stage]} "
                f"{rate * 100:.0f}%"
            )
        if xs:
            ax.barh(ys, xs, height=height, color=palette[s_index], label=STAGE_LABELS[stage])
    ax.set_yticks(
        [len(groups) - 1 - i for i in range(len(groups))],
        [group_label(dimension["name"], str(g["group"])) for g in groups],
    )
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of eligible people (hidden figures are not drawn)")
    ax.set_title(f"Funnel by {dimension['name']}")
    if parts:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _to_svg(
        fig,
        chart_id,
        f"Funnel by {dimension['name']}",
        "; ".join(parts) or "every figure is suppressed",
    )


@_plain_text
def ratio_chart(dimension: Mapping[str, Any], chart_id: str) -> str | None:
    """Selection-rate ratio to the reference group, with 95% intervals and the band."""
    groups = list(dimension["groups"])
    if not groups or dimension.get("reference_group") is None:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.42 * len(groups)))
    ax.axvspan(BAND_LOW, BAND_HIGH, color="#d9ead3", label="0.8-1.25 band")
    ax.axvline(1.0, color="#777777", linewidth=0.8)
    lows, highs, parts = [BAND_LOW], [BAND_HIGH], []
    labels = []
    for index, g in enumerate(groups):
        y = len(groups) - 1 - index
        sel = g["selection"]
        name = group_label(dimension["name"], str(g["group"])) + (
            " (reference)" if g["is_reference"] else ""
        )
        labels.append((y, name))
        ratio = sel.get("ratio")
        if ratio is None or ratio <= 0:
            note = "suppressed" if g["suppressed"] or ratio is None else "no one selected"
            if sel.get("flag"):
                note = f"flagged {sel['flag']}; exact figures suppressed"
            ax.text(1.0, y, f"  {note}", va="center", fontsize=8, color="#555555")
            parts.append(f"{name}: {note}")
            continue
        colour = _COLOURS.get(sel.get("flag"), "#333333")
        lo, hi = sel.get("ratio_ci_low"), sel.get("ratio_ci_high")
        if lo is not None and hi is not None and lo > 0:
            ax.plot([lo, hi], [y, y], color=colour, linewidth=1.5)
            lows.append(lo)
            highs.append(hi)
        ax.plot([ratio], [y], "o", color=colour)
        lows.append(ratio)
        highs.append(ratio)
        parts.append(f"{name}: ratio {ratio:.2f}" + (f", {sel['flag']}" if sel.get("flag") else ""))
    ax.set_xscale("log")
    lo_lim = max(min(lows) / 1.3, 0.01)
    hi_lim = min(max(highs) * 1.3, 100.0)
    ax.set_xlim(lo_lim, hi_lim)
    ticks = [t for t in (0.1, 0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0, 10.0) if lo_lim <= t <= hi_lim]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks([y for y, _ in labels], [n for _, n in labels])
    ax.set_ylim(-0.7, len(groups) - 0.3)
    ax.set_xlabel("Selection rate ratio to the reference group (log scale; lines: 95% interval)")
    ax.set_title(f"Selection-rate ratio by {dimension['name']}")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _to_svg(
        fig,
        chart_id,
        f"Selection-rate ratio by {dimension['name']}",
        "; ".join(parts) + ". Shaded band: 0.8 to 1.25.",
    )


def all_charts(document: Mapping[str, Any]) -> dict[str, str]:
    """Every chart of a report, keyed by chart id (``funnel``, ``ratio-<dim>``, ...)."""
    charts = {"funnel": funnel_chart(document.get("overall", {}))}
    for index, dim in enumerate(document.get("dimensions", [])):
        for prefix, draw in (("ratio", ratio_chart), ("stages", stage_rates_chart)):
            chart_id = f"{prefix}-{index}"
            svg = draw(dim, chart_id)
            if svg is not None:
                charts[chart_id] = svg
    return charts
