"""Charts for the audit report, written directly as inline SVG (bars and intervals).

Charts are drawn only from the published (suppressed) document, so a hidden count is
never drawn as a bar length or a point. Text stays text (the reader's sans-serif, no
embedded or downloaded font), labels from data are escaped and never interpreted, every
SVG carries a ``<title>`` and ``<desc>`` for screen readers, and every element id starts
with the chart id so several SVGs can share a page. Each mark carries its figure in a
``data-value`` attribute (and a tooltip), so tests and readers can check what was drawn.
No plotting library: a chart is a few hundred bytes of markup, written in microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from segment.audit.metrics import BAND_HIGH, BAND_LOW, FUNNEL_STAGES

STAGE_LABELS = {
    "eligible": "Eligible",
    "geocoded_precise": "Geocoded precisely",
    "enriched": "Enriched (tract data)",
    "contactable": "Contactable",
    "selected": "Selected",
}
_COLOURS = {"below": "#b2182b", "above": "#2166ac", None: "#333333"}
_NEED_LABELS = {"1": "1 (least need)", "5": "5 (most need)"}
_BAR = "#4d7ea8"
_PALETTE = ("#4d7ea8", "#8fb3d9", "#e0a458", "#5b8c5a")
_BAND = "#d9ead3"
_AXIS = "#333333"
_MUTED = "#555555"

# Layout, in SVG user units (pixels at 100%): a 12 px sans-serif, whose average glyph is
# taken as 0.6 em wide to size the label column (labels are never cut; the chart widens).
_FONT = 12
_SMALL = 11
_PLOT_W = 440
_ROW = 26
_TOP = 34
_BOTTOM = 46
_PAD = 10


def group_label(dimension: str, group: str) -> str:
    """How a group is named in the report (need-index quintiles say which end is which)."""
    if dimension == "need_index_quintile":
        return _NEED_LABELS.get(group, group)
    return group


def _text_width(text: str, size: int = _FONT) -> float:
    return 0.6 * size * len(text)


def _num(value: float) -> str:
    """A coordinate with at most two decimals (short markup, stable output)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = _FONT,
          fill: str = _AXIS, cls: str | None = None, weight: str | None = None) -> str:
    attrs = f'x="{_num(x)}" y="{_num(y)}" font-size="{size}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if cls:
        attrs += f' class="{cls}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    return f'<text {attrs} dominant-baseline="middle">{escape(text)}</text>'


def _svg(chart_id: str, width: float, height: float, title: str, description: str,
         body: Iterable[str]) -> str:
    """An inline ``<svg>`` element with a title and description for screen readers."""
    w, h = math.ceil(width), math.ceil(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{chart_id}" class="chart" '
        f'width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        'font-family="system-ui, -apple-system, \'Segoe UI\', Roboto, Helvetica, Arial, sans-serif">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _nice_ticks(top: float, most: int = 8) -> list[float]:
    """Round tick values from 0 to ``top`` (steps 1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0]
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    step = max(step, 1.0)  # counts of people: whole numbers
    return [i * step for i in range(int(top // step) + 1)]


def _x_axis(left: float, y: float, width: float, ticks: Sequence[tuple[float, str]],
            label: str) -> list[str]:
    """A horizontal axis line with ticks, tick labels and an axis label under it."""
    out = [f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + width)}" y2="{_num(y)}" '
           f'stroke="{_AXIS}" stroke-width="1"/>']
    for x, text in ticks:
        out.append(f'<line x1="{_num(x)}" y1="{_num(y)}" x2="{_num(x)}" y2="{_num(y + 4)}" '
                   f'stroke="{_AXIS}" stroke-width="1"/>')
        out.append(_text(x, y + 12, text, anchor="middle", size=_SMALL, cls="tick"))
    out.append(_text(left + width / 2, y + 32, label, anchor="middle", size=_FONT))
    return out


def _y_labels(left: float, rows: Sequence[tuple[float, str]]) -> list[str]:
    """Row labels right-aligned against the plot, with a vertical axis line."""
    return [_text(left - 6, y, text, anchor="end") for y, text in rows]


def _fmt_tick(value: float) -> str:
    return f"{value:g}"


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
    top = max(values) if any(values) else 1
    x_max = top * 1.25
    left = _PAD + max(_text_width(t) for t in labels) + 8
    plot_top = _TOP
    height = plot_top + _ROW * len(labels) + _BOTTOM
    width = left + _PLOT_W + _PAD

    def x(v: float) -> float:
        return left + _PLOT_W * v / x_max

    body = [_text(_PAD, 16, "Campaign funnel: eligible people reaching each stage",
                  size=13, weight="bold")]
    rows = []
    for i, (label, value, text) in enumerate(zip(labels, values, shown, strict=True)):
        y = plot_top + _ROW * i + _ROW / 2
        rows.append((y, label))
        if value:
            body.append(
                f'<rect x="{_num(left)}" y="{_num(y - _ROW * 0.35)}" width="{_num(x(value) - left)}" '
                f'height="{_num(_ROW * 0.7)}" fill="{_BAR}" data-value="{value}">'
                f"<title>{escape(label)}: {escape(text)}</title></rect>")
        body.append(_text(x(value) + 4, y, text, size=_SMALL, cls="value"))
    body += _y_labels(left, rows)
    axis_y = plot_top + _ROW * len(labels)
    body += _x_axis(left, axis_y, _PLOT_W,
                    [(x(t), _fmt_tick(t)) for t in _nice_ticks(x_max) if t <= x_max], "People")
    desc = "; ".join(f"{lbl}: {txt}" for lbl, txt in zip(labels, shown, strict=True))
    return _svg(chart_id, width, height, "Campaign funnel", desc, body)


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> tuple[list[str], float]:
    """Colour swatches with labels, one a line; returns the markup and its width."""
    out = []
    for i, (colour, label) in enumerate(items):
        yy = y + i * 18
        out.append(f'<rect x="{_num(x)}" y="{_num(yy - 5)}" width="10" height="10" fill="{colour}"/>')
        out.append(_text(x + 15, yy, label, size=_SMALL))
    width = 15 + max((_text_width(label, _SMALL) for _, label in items), default=0)
    return out, width


def stage_rates_chart(dimension: Mapping[str, Any], chart_id: str) -> str | None:
    """Grouped bars per group: share of the eligible reaching each later stage."""
    groups = [g for g in dimension["groups"] if not g["suppressed"]]
    if not groups:
        return None
    stages = FUNNEL_STAGES[1:]
    names = [group_label(dimension["name"], str(g["group"])) for g in groups]
    left = _PAD + max(_text_width(n) for n in names) + 8
    band = _ROW * 1.6  # one group's block of bars
    plot_top = _TOP
    plot_h = band * len(groups)
    bar_h = band * 0.8 / len(stages)

    def x(rate_pct: float) -> float:
        return left + _PLOT_W * rate_pct / 100

    body = [_text(_PAD, 16, f"Funnel by {dimension['name']}", size=13, weight="bold")]
    parts: list[str] = []
    rows = []
    for g_index, (g, name) in enumerate(zip(groups, names, strict=True)):
        y0 = plot_top + band * g_index + band * 0.1
        rows.append((plot_top + band * g_index + band / 2, name))
        for s_index, stage in enumerate(stages):
            rate = g["funnel_rates"].get(stage)
            if rate is None:
                continue
            pct = rate * 100
            label = f"{name} {STAGE_LABELS[stage]} {pct:.0f}%"
            body.append(
                f'<rect x="{_num(left)}" y="{_num(y0 + s_index * bar_h)}" '
                f'width="{_num(x(pct) - left)}" height="{_num(bar_h)}" fill="{_PALETTE[s_index]}" '
                f'data-value="{rate!r}"><title>{escape(label)}</title></rect>')
    # the description lists stage by stage, as the bars are read in the legend's order
    for stage in stages:
        for g, name in zip(groups, names, strict=True):
            rate = g["funnel_rates"].get(stage)
            if rate is not None:
                parts.append(f"{name} {STAGE_LABELS[stage]} {rate * 100:.0f}%")
    body += _y_labels(left, rows)
    body.append(f'<line x1="{_num(left)}" y1="{_num(plot_top)}" x2="{_num(left)}" '
                f'y2="{_num(plot_top + plot_h)}" stroke="{_AXIS}" stroke-width="1"/>')
    body += _x_axis(left, plot_top + plot_h, _PLOT_W,
                    [(x(t), _fmt_tick(t)) for t in range(0, 101, 20)],
                    "% of eligible people (hidden figures are not drawn)")
    legend_w = 0.0
    if parts:
        legend, legend_w = _legend(left + _PLOT_W + 16, plot_top + 8,
                                   [(_PALETTE[i], STAGE_LABELS[s]) for i, s in enumerate(stages)])
        body += legend
    width = left + _PLOT_W + (16 + legend_w if parts else 0) + _PAD
    height = plot_top + plot_h + _BOTTOM
    return _svg(chart_id, width, height, f"Funnel by {dimension['name']}",
                "; ".join(parts) or "every figure is suppressed", body)


def ratio_chart(dimension: Mapping[str, Any], chart_id: str) -> str | None:
    """Selection-rate ratio to the reference group, with 95% intervals and the band."""
    groups = list(dimension["groups"])
    if not groups or dimension.get("reference_group") is None:
        return None
    names = [group_label(dimension["name"], str(g["group"])) + (
        " (reference)" if g["is_reference"] else "") for g in groups]
    lows, highs = [BAND_LOW], [BAND_HIGH]
    for g in groups:
        sel = g["selection"]
        ratio = sel.get("ratio")
        if ratio is None or ratio <= 0:
            continue
        lo, hi = sel.get("ratio_ci_low"), sel.get("ratio_ci_high")
        if lo is not None and hi is not None and lo > 0:
            lows.append(lo)
            highs.append(hi)
        lows.append(ratio)
        highs.append(ratio)
    lo_lim = max(min(lows) / 1.3, 0.01)
    hi_lim = min(max(highs) * 1.3, 100.0)
    left = _PAD + max(_text_width(n) for n in names) + 8
    plot_top = _TOP
    plot_h = _ROW * len(groups) + 8

    def x(v: float) -> float:
        v = min(max(v, lo_lim), hi_lim)  # an interval beyond the axis stops at its edge
        return left + _PLOT_W * (math.log(v) - math.log(lo_lim)) / (
            math.log(hi_lim) - math.log(lo_lim))

    body = [_text(_PAD, 16, f"Selection-rate ratio by {dimension['name']}", size=13,
                  weight="bold"),
            f'<rect x="{_num(x(BAND_LOW))}" y="{_num(plot_top)}" '
            f'width="{_num(x(BAND_HIGH) - x(BAND_LOW))}" height="{_num(plot_h)}" fill="{_BAND}"/>',
            f'<line x1="{_num(x(1.0))}" y1="{_num(plot_top)}" x2="{_num(x(1.0))}" '
            f'y2="{_num(plot_top + plot_h)}" stroke="#777777" stroke-width="0.8"/>']
    parts: list[str] = []
    rows = []
    for index, (g, name) in enumerate(zip(groups, names, strict=True)):
        y = plot_top + 4 + _ROW * index + _ROW / 2
        rows.append((y, name))
        sel = g["selection"]
        ratio = sel.get("ratio")
        if ratio is None or ratio <= 0:
            note = "suppressed" if g["suppressed"] or ratio is None else "no one selected"
            if sel.get("flag"):
                note = f"flagged {sel['flag']}; exact figures suppressed"
            body.append(_text(x(1.0) + 6, y, note, size=_SMALL, fill=_MUTED, cls="chart-note"))
            parts.append(f"{name}: {note}")
            continue
        colour = _COLOURS.get(sel.get("flag"), "#333333")
        lo, hi = sel.get("ratio_ci_low"), sel.get("ratio_ci_high")
        tip = f"{name}: ratio {ratio:.2f}"
        if lo is not None and hi is not None and lo > 0:
            tip += f" (95% interval {lo:.2f} to {hi:.2f})"
            body.append(
                f'<line x1="{_num(x(lo))}" y1="{_num(y)}" x2="{_num(x(hi))}" y2="{_num(y)}" '
                f'stroke="{colour}" stroke-width="1.5" class="interval" '
                f'data-low="{lo!r}" data-high="{hi!r}"/>')
        if sel.get("flag"):
            tip += f", {sel['flag']}"
        body.append(f'<circle cx="{_num(x(ratio))}" cy="{_num(y)}" r="4" fill="{colour}" '
                    f'class="ratio" data-value="{ratio!r}"><title>{escape(tip)}</title></circle>')
        parts.append(f"{name}: ratio {ratio:.2f}" + (f", {sel['flag']}" if sel.get("flag") else ""))
    body += _y_labels(left, rows)
    ticks = [t for t in (0.1, 0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0, 10.0) if lo_lim <= t <= hi_lim]
    body += _x_axis(left, plot_top + plot_h, _PLOT_W, [(x(t), _fmt_tick(t)) for t in ticks],
                    "Selection rate ratio to the reference group (log scale; lines: 95% interval)")
    legend, legend_w = _legend(left + _PLOT_W + 16, plot_top + 8, [(_BAND, "0.8-1.25 band")])
    body += legend
    width = max(left + _PLOT_W + 16 + legend_w + _PAD,
                left + _PLOT_W / 2 + _text_width(
                    "Selection rate ratio to the reference group (log scale; lines: 95% interval)") / 2
                + _PAD)
    height = plot_top + plot_h + _BOTTOM
    return _svg(chart_id, width, height, f"Selection-rate ratio by {dimension['name']}",
                "; ".join(parts) + ". Shaded band: 0.8 to 1.25.", body)


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


_ARM_COLOURS = {"contact": "#2166ac", "holdout": "#e0a458"}


def cumulative_incidence_chart(curve: Mapping[str, Any], chart_id: str = "completion") -> str | None:
    """Step lines: share of each arm that has completed, by day since the send (``segment measure``).

    ``curve`` is ``{"days": [0..W], "contact": [share...], "holdout": [share...]}`` from the
    published measurement (absent when an arm is too small to draw). Each line carries its
    final share as ``data-value`` and each weekly mark its share and day.
    """
    days = list(curve.get("days") or [])
    if not days or "contact" not in curve or "holdout" not in curve:
        return None
    top_share = max(max(curve["contact"]), max(curve["holdout"]), 0.01)
    step = next(s for s in (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25) if s * 6 >= top_share * 1.1)
    y_max = step * math.ceil(top_share * 1.1 / step)
    left, plot_top, plot_h = _PAD + 44, _TOP + 8, 220
    width = left + _PLOT_W + 150
    height = plot_top + plot_h + _BOTTOM
    last = max(days[-1], 1)

    def x(day: float) -> float:
        return left + _PLOT_W * day / last

    def y(share: float) -> float:
        return plot_top + plot_h * (1 - share / y_max)

    body = [_text(_PAD, 16, "Completion over time by arm (cumulative incidence)", size=13, weight="bold")]
    ticks = [i * step for i in range(round(y_max / step) + 1)]
    for t in ticks:
        body.append(f'<line x1="{_num(left)}" y1="{_num(y(t))}" x2="{_num(left + _PLOT_W)}" y2="{_num(y(t))}" '
                    'stroke="#dddddd" stroke-width="1"/>')
        body.append(_text(left - 6, y(t), f"{t * 100:g}%", anchor="end", size=_SMALL, cls="tick"))
    week_ticks = [d for d in days if d % 7 == 0] if last > 14 else days
    stride = max(1, len(week_ticks) // 10)
    body += _x_axis(left, plot_top + plot_h, _PLOT_W,
                    [(x(d), str(d)) for d in week_ticks[::stride]], "Days since the send")
    labels = {"contact": "Contacted arm", "holdout": "Held-out arm"}
    desc = []
    for arm in ("contact", "holdout"):
        series = list(curve[arm])
        path = f"M{_num(x(days[0]))} {_num(y(series[0]))}"
        for d, share in zip(days[1:], series[1:], strict=True):
            path += f"H{_num(x(d))}V{_num(y(share))}"
        colour = _ARM_COLOURS[arm]
        body.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" class="arm-{arm}" '
                    f'data-value="{series[-1]:.6f}"><title>{labels[arm]}: {series[-1] * 100:.1f}% completed '
                    f'by day {days[-1]}</title></path>')
        for d, share in zip(days, series, strict=True):
            if d % 7 == 0 or d == days[-1]:
                body.append(f'<circle cx="{_num(x(d))}" cy="{_num(y(share))}" r="2.5" fill="{colour}" '
                            f'class="mark-{arm}" data-day="{d}" data-value="{share:.6f}"/>')
        desc.append(f"{labels[arm]}: {series[-1] * 100:.1f}% completed by day {days[-1]}")
    legend, _ = _legend(left + _PLOT_W + 16, plot_top + 10,
                        [(_ARM_COLOURS[a], labels[a]) for a in ("contact", "holdout")])
    body += legend
    return _svg(chart_id, width, height, "Completion over time by arm", "; ".join(desc), body)
