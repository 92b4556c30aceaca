"""``audit.html``: one self-contained, accessible page rendered from the published document.

No scripts, no external styles, fonts or images: the charts are inline SVG and a
Content-Security-Policy forbids any request, so the page opens offline and cannot leak
that it was opened. Everything shown comes from the suppressed document of
:func:`segment.audit.report_json.build_document`; every value is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from segment.audit.charts import STAGE_LABELS, all_charts, group_label
from segment.audit.metrics import FUNNEL_STAGES
from segment.audit.personal import personalization_html
from segment.audit.report_json import NEIGHBOURHOOD_NOTE

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


def _count(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value)) if value is not None else "&ndash;"


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value * 100:.1f}%"


def _interval(low: float | None, high: float | None, pct: bool = False) -> str:
    if low is None or high is None:
        return ""
    if pct:
        return f" ({low * 100:.1f}&ndash;{high * 100:.1f}%)"
    return f" ({low:.2f}&ndash;{high:.2f})"


def _table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str]
) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for row, cls in zip(rows, classes, strict=True):
        cells = [f'<th scope="row">{row[0]}</th>'] + [f'<td class="n">{c}</td>' for c in row[1:]]
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f"<figure>{svg}<figcaption class=\"muted\">{escape(caption)}</figcaption></figure>"


def _flag_words(sel: Mapping[str, Any]) -> str:
    flag = sel.get("flag")
    if not flag:
        return ""
    return f"{flag}{'' if sel.get('flag_clear') else ' (may be chance)'}"


def _dimension_section(index: int, dim: Mapping[str, Any], charts: Mapping[str, str]) -> str:
    name = escape(str(dim["name"]))
    ref = dim.get("reference_group")
    chosen = {"named": "named by the user", "largest": "the largest group"}.get(
        str(dim.get("reference_chosen")), ""
    )
    ref_text = (
        f"Reference group: <strong>{escape(group_label(str(dim['name']), str(ref)))}</strong> "
        f"({chosen})."
        if ref is not None
        else "No reference group: no group with a known value has 11 or more eligible people."
    )
    headers = [
        "Group",
        *(STAGE_LABELS[s] for s in FUNNEL_STAGES),
        "Selection rate (95% CI)",
        "Ratio to reference (95% CI)",
        "Flag",
    ]
    rows, classes = [], []
    for g in dim["groups"]:
        sel = g["selection"]
        label = escape(group_label(str(dim["name"]), str(g["group"]))) + (
            " (reference)" if g["is_reference"] else ""
        )
        rows.append(
            [
                label,
                *(_count(g["funnel"][s]) for s in FUNNEL_STAGES),
                _pct(sel["rate"]) + _interval(sel["ci_low"], sel["ci_high"], pct=True),
                ("&ndash;" if sel["ratio"] is None else f"{sel['ratio']:.2f}")
                + _interval(sel["ratio_ci_low"], sel["ratio_ci_high"]),
                escape(_flag_words(sel)),
            ]
        )
        classes.append(f"flag-{sel['flag']}" if sel.get("flag") else "")
    return (
        f'<section aria-labelledby="dim-{index}"><h3 id="dim-{index}">By {name}</h3>'
        f"<p>{ref_text}</p>"
        + _table(f"Funnel and selection by {dim['name']}", headers, rows, classes)
        + _figure(
            charts.get(f"ratio-{index}"),
            "Dots: selection-rate ratio to the reference group; lines: 95% interval; "
            "shaded: the 0.8-1.25 band.",
        )
        + _figure(charts.get(f"stages-{index}"), "Share of eligible people reaching each stage.")
        + "</section>"
    )


def _reach_table(document: Mapping[str, Any]) -> str:
    headers = [
        "Group",
        "Eligible",
        "No digital channel",
        "% of eligible",
        "Mail would reach",
        "Phone would reach",
        "Mail or phone would reach",
        "No channel at all",
    ]
    rows, classes = [], []
    for dim in document["dimensions"]:
        for g in dim["groups"]:
            r = g["reach"]
            rows.append(
                [
                    f"{escape(str(dim['name']))}: "
                    f"{escape(group_label(str(dim['name']), str(g['group'])))}",
                    _count(r["eligible"]),
                    _count(r["no_digital"]),
                    _pct(r["no_digital_rate"]),
                    _count(r["mail_fallback"]),
                    _count(r["phone_fallback"]),
                    _count(r["any_fallback"]),
                    _count(r["no_channel"]),
                ]
            )
            classes.append("")
    return _table(
        "Eligible people with no usable SMS or email, and what a fallback would reach",
        headers,
        rows,
        classes,
    )


def _delivery_html(document: Mapping[str, Any]) -> str:
    """Delivered and failed by group, when vendor feedback exists for the campaign."""
    delivery = document.get("delivery")
    if not delivery:
        return (
            "<p class=\"muted\">No vendor delivery feedback for this campaign yet "
            "(<code>segment feedback import</code>): only what was sent is known.</p>"
        )
    o = delivery["overall"]
    text = (
        f"<p>Of {_count(o['sent'])} people this campaign was sent to, vendors reported "
        f"{_count(o['delivered'])} delivered ({_pct(o['delivered_rate'])}) and "
        f"{_count(o['failed'])} failed or bounced ({_pct(o['failed_rate'])}); "
        f"{_count(o['unknown'])} have no report.</p>"
    )
    headers = ["Group", "Sent", "Delivered", "% delivered", "Failed or bounced", "% failed", "No report"]
    rows, classes = [], []
    for dim in delivery["dimensions"]:
        for g in dim["groups"]:
            rows.append([
                f"{escape(str(dim['name']))}: {escape(group_label(str(dim['name']), str(g['group'])))}",
                _count(g["sent"]), _count(g["delivered"]), _pct(g["delivered_rate"]),
                _count(g["failed"]), _pct(g["failed_rate"]), _count(g["unknown"]),
            ])
            classes.append("")
    return text + _table(
        "Delivered and failed by group (people sent this campaign, from vendor feedback)",
        headers, rows, classes,
    )


def _holdout_html(document: Mapping[str, Any]) -> str:
    """The holdout's balance on every group and what difference it can detect."""
    h = document.get("holdout")
    if not h:
        return ""
    plan = h["plan"]
    mde = plan["minimum_detectable_effect"]
    text = (
        f"<p>{_count(h['arms'].get('contact'))} people in the contact arm, {_count(h['arms'].get('holdout'))} held "
        f"out (never sent). With a baseline completion of {plan['baseline_rate'] * 100:.0f}%, the smallest "
        "difference detectable at 80% power is "
        + ("none" if mde is None else f"{mde * 100:.1f} points") + ".</p>"
    )
    if plan["warning"]:
        text += f'<p class="note" role="note"><strong>Warning.</strong> {escape(plan["warning"])}.</p>'
    if h["imbalanced"]:
        text += "<p class=\"note\" role=\"note\"><strong>Arms out of balance.</strong> " + "; ".join(
            f"{escape(i['dimension'])} = {escape(str(i['group']))}: standardized difference {i['std_difference']:.2f}"
            for i in h["imbalanced"]) + ". A randomized draw rarely does this: check the seed and strata.</p>"
    headers = ["Group", "Contact arm", "% of arm", "Holdout", "% of arm", "Standardized difference"]
    rows, classes = [], []
    for dim in h["balance"]:
        for g in dim["groups"]:
            d = g["std_difference"]
            rows.append([
                f"{escape(str(dim['name']))}: {escape(group_label(str(dim['name']), str(g['group'])))}",
                _count(g["contact"]), _pct(g["contact_share"]), _count(g["holdout"]), _pct(g["holdout_share"]),
                "&ndash;" if d is None else f"{d:+.3f}" + (" (imbalanced)" if g["imbalanced"] else ""),
            ])
            classes.append("flag-below" if g["imbalanced"] else "")
    return (
        '<section aria-labelledby="holdout"><h2 id="holdout">Holdout balance</h2>' + text
        + _table(f"Each group's share of each arm (|standardized difference| above {h['limit']:g} is imbalance)",
                 headers, rows, classes)
        + "</section>"
    )


def _geocoding_table(document: Mapping[str, Any]) -> str:
    precisions = list(document.get("overall", {}).get("geocoding", {}).get("precision", {}))
    headers = ["Group", "Patients", "Matched", "Precise", *(p.replace("_", " ") for p in precisions)]
    rows, classes = [], []
    for dim in document["dimensions"]:
        for g in dim["groups"]:
            geo = g["geocoding"]
            rows.append(
                [
                    f"{escape(str(dim['name']))}: "
                    f"{escape(group_label(str(dim['name']), str(g['group'])))}",
                    _count(geo["patients"]),
                    _pct(geo["match_rate"]),
                    _pct(geo["precise_rate"]),
                    *(_count(geo["precision"][p]) for p in precisions),
                ]
            )
            classes.append("")
    return _table(
        "Geocoding match rate and precision by group (all patients in the working folder)",
        headers,
        rows,
        classes,
    )


def _reach_sentence(reach: Mapping[str, Any], channels: Sequence[str]) -> str:
    """The reach gap and its remedy in one or two plain sentences."""
    text = (
        f"{_count(reach.get('no_digital'))} eligible people have no usable SMS or email "
        f"(no consent or no valid contact). Of them, a mail fallback would reach "
        f"{_count(reach.get('mail_fallback'))}, a phone call list "
        f"{_count(reach.get('phone_fallback'))}, either one "
        f"{_count(reach.get('any_fallback'))}; {_count(reach.get('no_channel'))} have no "
        "usable channel at all."
    )
    missing = [c for c in ("mail", "phone") if c not in {str(x) for x in channels}]
    if missing:
        text += (
            f" This campaign does not use {' or '.join(missing)}; adding "
            f"{'it' if len(missing) == 1 else 'them'} as a fallback would close part of the gap."
        )
    else:
        text += " This campaign already uses mail and phone as fallbacks."
    return text


def render_html(document: Mapping[str, Any], charts: Mapping[str, str] | None = None) -> str:
    """The complete ``audit.html`` page for a published audit document."""
    charts = dict(charts) if charts is not None else all_charts(document)
    campaign = document.get("campaign", {})
    code = escape(str(campaign.get("code") or "campaign"))
    overall = document.get("overall", {})
    funnel = overall.get("funnel", {})
    sel = overall.get("selection", {})
    flags = document.get("flags", [])
    reach = overall.get("reach", {})
    summary_items = [
        ("Eligible", _count(funnel.get("eligible"))),
        ("Selected", _count(funnel.get("selected"))),
        ("Selection rate", _pct(sel.get("rate"))),
        ("No digital channel", _count(reach.get("no_digital"))),
        ("Groups flagged", str(len(flags))),
    ]
    identity = document.get("identity") or {}
    if identity.get("linkage") == "probabilistic":
        summary_items.append(("Record pairs in identity review", _count(identity.get("review_pairs"))))
    summary = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in summary_items)
    if flags:
        flag_list = "".join(
            f'<li class="{escape(f["direction"])}">{escape(f["text"])}</li>' for f in flags
        )
        flag_html = (
            f'<section aria-labelledby="flags"><h2 id="flags">Flags</h2>'
            f'<ul class="flags">{flag_list}</ul></section>'
        )
    else:
        flag_html = (
            '<section aria-labelledby="flags"><h2 id="flags">Flags</h2>'
            "<p>No group's selection rate falls outside 0.8-1.25 times its reference "
            "group's.</p></section>"
        )
    channels = ", ".join(str(c) for c in campaign.get("channels", []))
    dims = "".join(
        _dimension_section(i, d, charts) for i, d in enumerate(document.get("dimensions", []))
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in document.get("notes", []))
    skipped = "".join(
        f"<p>Not audited by {escape(str(d['name']))}: {escape(str(d['reason']))}.</p>"
        for d in document.get("skipped_dimensions", [])
    )
    header = f"""<p class="muted">As of {escape(str(document.get("as_of") or ""))}; channels: {escape(channels)}.</p>
<p class="note" role="note"><strong>Read this first.</strong> {escape(NEIGHBOURHOOD_NOTE)}
Counts from 1 to 10 are shown as &lsquo;&lt;11&rsquo;.</p>"""
    main = f"""<section aria-labelledby="summary"><h2 id="summary">Summary</h2>
<dl class="summary">{summary}</dl></section>
{flag_html}
<section aria-labelledby="funnel"><h2 id="funnel">Funnel</h2>
{_figure(charts.get("funnel"), "Eligible people reaching each stage, all groups together.")}
</section>
<section aria-labelledby="groups"><h2 id="groups">Selection by group</h2>{skipped}{dims}</section>
<section aria-labelledby="reach"><h2 id="reach">Reach gaps</h2>
<p>{_reach_sentence(reach, campaign.get("channels", []))}</p>{_reach_table(document)}
<h3 id="delivery">Delivered and failed</h3>{_delivery_html(document)}
{personalization_html(dict(document), _table, group_label)}</section>
{_holdout_html(document)}
<section aria-labelledby="geocoding"><h2 id="geocoding">Geocoding by group</h2>
{_geocoding_table(document)}</section>
<section aria-labelledby="notes"><h2 id="notes">How to read this report</h2><ul>{notes}</ul></section>"""
    return page(f"Equity and reach audit: {code}", header, main)
