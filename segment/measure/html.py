"""``measure.html``: the measurement as one self-contained page in the audit's style.

No scripts, no external anything (the audit's Content-Security-Policy); the completion
chart is inline SVG; everything shown comes from the suppressed ``measure.json`` document
and every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from segment.audit.charts import cumulative_incidence_chart, group_label
from segment.audit.page import count, figure, page, pct, table


def _ci(section: Mapping[str, Any], scale: float = 100.0, unit: str = "") -> str:
    value, low, high = section.get("value"), section.get("ci_low"), section.get("ci_high")
    if value is None:
        return "&ndash;"
    text = f"{value * scale:.1f}{unit}"
    if low is not None and high is not None:
        text += f" ({low * scale:.1f} to {high * scale:.1f}{unit})"
    return text


def _nnt(section: Mapping[str, Any]) -> str:
    value, low, high = section.get("value"), section.get("ci_low"), section.get("ci_high")
    if value is None:
        return "&ndash; (no benefit shown)"
    text = f"{value:.0f}"
    return text + (f" ({low:.0f} to {high:.0f})" if low is not None else " (interval unbounded: the effect may be zero)")


def _money(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:,.2f}"


def _arm_rate(arm: Mapping[str, Any]) -> str:
    rate = arm.get("rate")
    if rate is None:
        return "&ndash;"
    return f"{rate * 100:.1f}% ({arm['ci_low'] * 100:.1f}&ndash;{arm['ci_high'] * 100:.1f}%)"


def _analysis_table(doc: Mapping[str, Any]) -> str:
    itt, pp = doc["intention_to_treat"], doc["per_protocol"]
    headers = ["Analysis", "Treated: people", "Treated: completed", "Treated: rate (95% CI)",
               "Held out: people", "Held out: completed", "Held out: rate (95% CI)",
               "Difference, points (95% CI)", "Relative lift, % (95% CI)", "Number needed to contact"]
    rows = []
    for name, a, arm in (("Intention to treat (everyone assigned)", itt, itt["contact"]),
                         ("Per protocol (reached only)", pp, pp["reached"])):
        h = a["holdout"]
        rows.append([escape(name), count(arm["assigned"]), count(arm["completed"]), _arm_rate(arm),
                     count(h["assigned"]), count(h["completed"]), _arm_rate(h),
                     _ci(a["difference"]), _ci(a["relative_lift"]), _nnt(a["number_needed_to_contact"])])
    return table("Completion by arm", headers, rows, ["", ""])


def _group_tables(doc: Mapping[str, Any]) -> str:
    out = []
    for index, dim in enumerate(doc.get("dimensions", [])):
        headers = ["Group", "Contacted", "Completed", "Rate", "Held out", "Completed", "Rate",
                   "Difference, points (95% CI)", "Relative lift, % (95% CI)"]
        rows = []
        for g in dim["groups"]:
            c, h = g["contact"], g["holdout"]
            rows.append([escape(group_label(str(dim["name"]), str(g["group"]))), count(c["assigned"]),
                         count(c["completed"]), pct(c["rate"]), count(h["assigned"]), count(h["completed"]),
                         pct(h["rate"]), _ci(g["difference"]), _ci(g["relative_lift"])])
        het = dim.get("heterogeneity")
        het_text = (
            f"Does the effect differ between groups? Cochran's Q = {het['q']:.2f} on {het['df']} df, "
            f"p = {het['p_value']:.3f}"
            + (" (the effect differs between groups)." if het["p_value"] < 0.05 else
               " (no evidence that it differs).")
            if het else "Too few groups with 11 or more people in each arm to test whether the effect differs."
        )
        out.append(
            f'<section aria-labelledby="mdim-{index}"><h3 id="mdim-{index}">By {escape(str(dim["name"]))}</h3>'
            + table(f"Intention-to-treat completion by {dim['name']}", headers, rows, [""] * len(rows))
            + f"<p>{escape(het_text)}</p></section>"
        )
    return "".join(out)


def _lost_table(doc: Mapping[str, Any]) -> str:
    lost = doc["lost"]
    reasons = (("not_in_extract", "No longer in the extract (moved away, left, removed)"),
               ("died", "Died within the window without completing"),
               ("merged_duplicate", "Merged with another assigned patient"))
    rows = [[escape(label), count(lost["contact"][key]), count(lost["holdout"][key])] for key, label in reasons]
    return (table("Patients lost between extracts (left out of both arms)", ["Reason", "Contacted arm", "Held-out arm"],
                   rows, [""] * len(rows))
            + f"<p>Followed to the record they were merged into by the linkage model: "
            f"{count(lost['merged_followed'])}.</p>")


def render_html(doc: Mapping[str, Any]) -> str:
    """The complete ``measure.html`` page for a published measurement."""
    campaign = doc.get("campaign", {})
    code = escape(str(campaign.get("code") or "campaign"))
    itt = doc["intention_to_treat"]
    cost = doc["cost"]
    plan = doc["plan"]
    summary_items = [
        ("Contacted arm", count(itt["contact"]["assigned"])),
        ("Held out", count(itt["holdout"]["assigned"])),
        ("Difference (points)", _ci(itt["difference"])),
        ("Cost per extra completion", _money(cost["per_additional_completion"]["value"])),
    ]
    summary = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in summary_items)
    chart = cumulative_incidence_chart(doc["curve"]) if doc.get("curve") else None
    chart_html = figure(chart, "Share of each arm that has completed, by day since the send.") if chart else (
        "<p>No chart: an arm has fewer than 11 people.</p>")
    per = cost["per_additional_completion"]
    cost_text = (
        f"Messages to the contacted arm cost {_money(cost['total'])} "
        f"({', '.join(f'{escape(ch)}: {n:,}' for ch, n in cost['messages'].items()) or 'none'}). "
        + (f"Each additional completed screening cost {_money(per['value'])}"
           + (f" (95% interval {_money(per['ci_low'])} to {_money(per['ci_high'])})." if per["ci_low"] is not None
              else "; the interval is unbounded because the effect may be zero.")
           if per["value"] is not None else "No additional completions to divide the cost by.")
    )
    if cost["channels_without_cost"]:
        cost_text = ("No cost is declared for " + ", ".join(escape(c) for c in cost["channels_without_cost"])
                     + " (campaign <code>costs:</code>), so the cost is not computed.")
    plan_text = (
        f"With {plan['contact']:,} contacted and {plan['holdout']:,} held out and a baseline completion of "
        f"{plan['baseline_rate'] * 100:.1f}% ({escape(plan['baseline_source'])}), the smallest difference "
        f"detectable with 80% power is "
        + ("none" if plan["minimum_detectable_effect"] is None else f"{plan['minimum_detectable_effect'] * 100:.1f} points")
        + "."
    )
    warn = f'<p class="note" role="note"><strong>Warning.</strong> {escape(plan["warning"])}.</p>' if plan["warning"] else ""
    follow = doc["follow_up"]
    follow_text = "" if follow["complete"] else (
        f'<p class="note" role="note"><strong>Follow-up is not complete.</strong> {count(follow["incomplete"])} '
        f"people have not yet had their full {doc['window_days']}-day window by {escape(doc['as_of'])}; "
        "completion may still rise.</p>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in doc.get("notes", []))
    header = f"""<p class="muted">As of {escape(doc['as_of'])}; completion window {doc['window_days']} days;
rules: {escape(', '.join(doc.get('rules', [])))}.</p>
{follow_text}"""
    main = f"""<section aria-labelledby="summary"><h2 id="summary">Summary</h2>
<dl class="summary">{summary}</dl>{_analysis_table(doc)}</section>
<section aria-labelledby="curve"><h2 id="curve">Completion over time</h2>{chart_html}</section>
<section aria-labelledby="cost"><h2 id="cost">Cost</h2><p>{cost_text}</p></section>
<section aria-labelledby="plan"><h2 id="plan">Could this holdout detect an effect?</h2><p>{plan_text}</p>{warn}</section>
<section aria-labelledby="groups"><h2 id="groups">By group</h2>{_group_tables(doc)}</section>
<section aria-labelledby="lost"><h2 id="lost">Lost patients</h2>{_lost_table(doc)}</section>
<section aria-labelledby="notes"><h2 id="notes">How to read this report</h2><ul>{notes}</ul></section>"""
    return page(f"Did it work? Campaign measurement: {code}", header, main)
