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
from segment.audit.page import count, figure, group_rows, interval, page, pct, table
from segment.audit.personal import personalization_html
from segment.audit.report_json import NEIGHBOURHOOD_NOTE


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
                *(count(g["funnel"][s]) for s in FUNNEL_STAGES),
                pct(sel["rate"]) + interval(sel["ci_low"], sel["ci_high"], pct=True),
                ("&ndash;" if sel["ratio"] is None else f"{sel['ratio']:.2f}")
                + interval(sel["ratio_ci_low"], sel["ratio_ci_high"]),
                escape(_flag_words(sel)),
            ]
        )
        classes.append(f"flag-{sel['flag']}" if sel.get("flag") else "")
    return (
        f'<section aria-labelledby="dim-{index}"><h3 id="dim-{index}">By {name}</h3>'
        f"<p>{ref_text}</p>"
        + table(f"Funnel and selection by {dim['name']}", headers, rows, classes)
        + figure(
            charts.get(f"ratio-{index}"),
            "Dots: selection-rate ratio to the reference group; lines: 95% interval; "
            "shaded: the 0.8-1.25 band.",
        )
        + figure(charts.get(f"stages-{index}"), "Share of eligible people reaching each stage.")
        + "</section>"
    )


def _reach_table(document: Mapping[str, Any]) -> str:
    headers = ["Group", "Eligible", "No digital channel", "% of eligible", "Mail would reach",
               "Phone would reach", "Mail or phone would reach", "No channel at all"]

    def cells(g: Mapping[str, Any]) -> list[str]:
        r = g["reach"]
        return [count(r["eligible"]), count(r["no_digital"]), pct(r["no_digital_rate"]),
                count(r["mail_fallback"]), count(r["phone_fallback"]), count(r["any_fallback"]),
                count(r["no_channel"])]

    return table("Eligible people with no usable SMS or email, and what a fallback would reach",
                 headers, group_rows(document["dimensions"], cells))


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
        f"<p>Of {count(o['sent'])} people this campaign was sent to, vendors reported "
        f"{count(o['delivered'])} delivered ({pct(o['delivered_rate'])}) and "
        f"{count(o['failed'])} failed or bounced ({pct(o['failed_rate'])}); "
        f"{count(o['unknown'])} have no report.</p>"
    )
    headers = ["Group", "Sent", "Delivered", "% delivered", "Failed or bounced", "% failed", "No report"]
    rows = group_rows(delivery["dimensions"], lambda g: [
        count(g["sent"]), count(g["delivered"]), pct(g["delivered_rate"]),
        count(g["failed"]), pct(g["failed_rate"]), count(g["unknown"])])
    return text + table(
        "Delivered and failed by group (people sent this campaign, from vendor feedback)", headers, rows)


def _holdout_html(document: Mapping[str, Any]) -> str:
    """The holdout's balance on every group and what difference it can detect."""
    h = document.get("holdout")
    if not h:
        return ""
    plan = h["plan"]
    mde = plan["minimum_detectable_effect"]
    text = (
        f"<p>{count(h['arms'].get('contact'))} people in the contact arm, {count(h['arms'].get('holdout'))} held "
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

    def cells(g: Mapping[str, Any]) -> list[str]:
        d = g["std_difference"]
        return [count(g["contact"]), pct(g["contact_share"]), count(g["holdout"]), pct(g["holdout_share"]),
                "&ndash;" if d is None else f"{d:+.3f}" + (" (imbalanced)" if g["imbalanced"] else "")]

    classes = ["flag-below" if g["imbalanced"] else "" for dim in h["balance"] for g in dim["groups"]]
    return (
        '<section aria-labelledby="holdout"><h2 id="holdout">Holdout balance</h2>' + text
        + table(f"Each group's share of each arm (|standardized difference| above {h['limit']:g} is imbalance)",
                headers, group_rows(h["balance"], cells), classes)
        + "</section>"
    )


def _geocoding_table(document: Mapping[str, Any]) -> str:
    precisions = list(document.get("overall", {}).get("geocoding", {}).get("precision", {}))
    headers = ["Group", "Patients", "Matched", "Precise", *(p.replace("_", " ") for p in precisions)]
    rows = group_rows(document["dimensions"], lambda g: [
        count(g["geocoding"]["patients"]), pct(g["geocoding"]["match_rate"]), pct(g["geocoding"]["precise_rate"]),
        *(count(g["geocoding"]["precision"][p]) for p in precisions)])
    return table("Geocoding match rate and precision by group (all patients in the working folder)",
                 headers, rows)


def _reach_sentence(reach: Mapping[str, Any], channels: Sequence[str]) -> str:
    """The reach gap and its remedy in one or two plain sentences."""
    text = (
        f"{count(reach.get('no_digital'))} eligible people have no usable SMS or email "
        f"(no consent or no valid contact). Of them, a mail fallback would reach "
        f"{count(reach.get('mail_fallback'))}, a phone call list "
        f"{count(reach.get('phone_fallback'))}, either one "
        f"{count(reach.get('any_fallback'))}; {count(reach.get('no_channel'))} have no "
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
        ("Eligible", count(funnel.get("eligible"))),
        ("Selected", count(funnel.get("selected"))),
        ("Selection rate", pct(sel.get("rate"))),
        ("No digital channel", count(reach.get("no_digital"))),
        ("Groups flagged", str(len(flags))),
    ]
    identity = document.get("identity") or {}
    if identity.get("linkage") == "probabilistic":
        summary_items.append(("Record pairs in identity review", count(identity.get("review_pairs"))))
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
{figure(charts.get("funnel"), "Eligible people reaching each stage, all groups together.")}
</section>
<section aria-labelledby="groups"><h2 id="groups">Selection by group</h2>{skipped}{dims}</section>
<section aria-labelledby="reach"><h2 id="reach">Reach gaps</h2>
<p>{_reach_sentence(reach, campaign.get("channels", []))}</p>{_reach_table(document)}
<h3 id="delivery">Delivered and failed</h3>{_delivery_html(document)}
{personalization_html(dict(document))}</section>
{_holdout_html(document)}
<section aria-labelledby="geocoding"><h2 id="geocoding">Geocoding by group</h2>
{_geocoding_table(document)}</section>
<section aria-labelledby="notes"><h2 id="notes">How to read this report</h2><ul>{notes}</ul></section>"""
    return page(f"Equity and reach audit: {code}", header, main)
