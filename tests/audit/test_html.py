"""audit.html as a file: self-contained, escaped, accessible, suppressed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from segment.audit import audit_document
from segment.audit.html import render_html
from segment.audit.report_json import NEIGHBOURHOOD_NOTE
from segment.errors import ConfigError

from .conftest import FLAGGED
from .helpers import AS_OF, cohorts


def _page(*specs: tuple[int, dict[str, Any]]) -> tuple[dict[str, Any], str]:
    enriched, contacts = cohorts(*specs)
    doc = audit_document(
        enriched, contacts, channels=["sms", "email"], as_of=AS_OF,
        campaign_info={"code": "HTML-TEST"},
    )
    return doc, render_html(doc)


def test_page_is_self_contained() -> None:
    _, html = _page(*FLAGGED)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html and "@font-face" not in html
    assert "<img" not in html.lower()
    # the only URLs are XML namespace names, never fetched
    urls = set(re.findall(r"https?://[^\s\"')<]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink",
                    "http://purl.org/dc/elements/1.1/", "http://creativecommons.org/ns#",
                    "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
                    "http://purl.org/dc/dcmitype/StillImage", "https://matplotlib.org/"}
    assert re.findall(r"url\((?!#)", html) == []
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_first_screen_and_structure() -> None:
    doc, html = _page(*FLAGGED)
    body = html[html.index("<body>"):]
    assert body.index(NEIGHBOURHOOD_NOTE) < body.index("<table")
    assert body.index(NEIGHBOURHOOD_NOTE) < body.index("<svg")
    assert '<html lang="en">' in html
    # charts: the funnel, and a ratio and a stage chart per dimension with groups
    assert html.count("<svg") == 1 + 2 * len(doc["dimensions"])
    titles = re.findall(r'<svg[^>]*role="img" aria-labelledby="([^"]+)"', html)
    assert len(titles) == html.count("<svg")
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids must be unique across the page"
    assert '<th scope="col">Selection rate (95% CI)</th>' in html
    assert "0.8-1.25 band" in html
    # flags in plain words
    assert "race = Black: selected at a rate below 0.8 times that of the reference group" in html


def test_group_values_are_escaped() -> None:
    _, html = _page((30, {"race": "<b>x</b> & co"}), (30, {"race": "White"}))
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt; &amp; co" in html


def test_small_group_suppressed_in_tables_and_chart_text() -> None:
    _, html = _page(*FLAGGED)
    asian_rows = re.findall(r'<tr[^>]*><th scope="row">(?:race: )?Asian</th>(.*?)</tr>', html)
    assert len(asian_rows) == 3  # funnel, reach and geocoding tables
    for row in asian_rows:
        cells = re.findall(r'<td class="n">([^<]*)</td>', row)
        assert all(c in ("&lt;11", "suppressed", "&ndash;", "") for c in cells), cells
    assert "Asian: suppressed" in html  # the ratio chart says so instead of drawing a dot


def test_reach_gap_sentence_names_the_remedy() -> None:
    _, html = _page(*FLAGGED)
    assert (
        "25 eligible people have no usable SMS or email (no consent or no valid contact). "
        "Of them, a mail fallback would reach 25, a phone call list 0, either one 25; "
        "0 have no usable channel at all. This campaign does not use mail or phone"
    ) in html


def _cells(section: dict[str, Any]) -> dict[str, Any]:
    geo = section["geocoding"]
    return {
        **{f"funnel.{k}": v for k, v in section["funnel"].items()},
        **{f"reach.{k}": v for k, v in section["reach"].items() if not k.endswith("rate")},
        "geo.patients": geo["patients"], "geo.matched": geo["matched"],
        "geo.precise": geo["precise"],
        **{f"geo.{k}": v for k, v in geo["precision"].items()},
    }


def test_no_hidden_count_recoverable_from_the_overall_total() -> None:
    small_and_missing = (
        (60, {"race": "White"}), (40, {"race": "White", "contact_status": "suppressed"}),
        (9, {"race": "Asian"}), (30, {"race": "Black"}),
        (14, {"race": "Black", "reachable_sms": False, "reachable_email": False,
              "contact_status": "no_consent_or_contact"}),
    )
    for specs in (FLAGGED, small_and_missing):
        doc, _ = _page(*specs)
        overall = _cells(doc["overall"])
        for dim in doc["dimensions"]:
            groups = [_cells(g) for g in dim["groups"]]
            for key, total in overall.items():
                if not isinstance(total, int):
                    continue
                hidden = [g[key] for g in groups if not isinstance(g[key], int)]
                shown = sum(g[key] for g in groups if isinstance(g[key], int))
                # a single hidden cell of a column is recoverable only when it is zero
                # (zero describes nobody); the hidden cells' sum, which the total gives
                # away, is never a small count
                assert len(hidden) != 1 or total == shown, (dim["name"], key)
                assert total - shown == 0 or total - shown >= 11, (dim["name"], key)


def test_absent_default_dimension_is_skipped_and_said() -> None:
    enriched, contacts = cohorts(*FLAGGED)
    doc = audit_document(
        enriched.drop("rurality"), contacts, channels=["sms"], as_of=AS_OF
    )
    assert [d["name"] for d in doc["dimensions"]] == [
        "race", "ethnicity", "sex", "age_band", "language", "need_index_quintile",
    ]
    assert doc["skipped_dimensions"] == [
        {"name": "rurality", "column": "rurality",
         "reason": "enriched.parquet has no `rurality`"},
    ]
    assert "Not audited by rurality: enriched.parquet has no `rurality`." in render_html(doc)
    with pytest.raises(ConfigError, match="lacks column"):
        audit_document(
            enriched.drop("rurality"), contacts, channels=["sms"], as_of=AS_OF,
            groups=["county_fips", "tract_geoid"],
        )


def test_labels_from_data_are_plain_text_in_charts() -> None:
    doc, html = _page(
        (40, {"race": "$x^2$ group", "need_index_quintile": 5}),
        (60, {"race": "White", "need_index_quintile": 1}),
    )
    assert "$x^2$ group" in html  # drawn as text, not parsed as mathtext
    assert "5 (most need)" in html and "1 (least need)" in html
    quintiles = next(d for d in doc["dimensions"] if d["name"] == "need_index_quintile")
    assert [g["group"] for g in quintiles["groups"]] == ["1", "5"]  # JSON keeps raw values


def test_zero_eligible_group_in_every_output() -> None:
    doc, html = _page(
        (60, {"race": "White"}), (40, {"race": "White", "contact_status": "suppressed"}),
        (25, {"race": "Black", "in_audience": False, "contact_status": "not_in_audience"}),
    )
    race = next(d for d in doc["dimensions"] if d["name"] == "race")
    black = next(g for g in race["groups"] if g["group"] == "Black")
    assert black["funnel"] == {
        "eligible": 0, "geocoded_precise": 0, "enriched": 0, "contactable": 0, "selected": 0,
    }
    assert black["geocoding"]["patients"] == 25
    assert black["selection"] == {
        "rate": None, "ci_low": None, "ci_high": None, "ratio": None,
        "ratio_ci_low": None, "ratio_ci_high": None, "flag": None, "flag_clear": None,
    }
    assert black["funnel_rates"] == dict.fromkeys(
        ("geocoded_precise", "enriched", "contactable", "selected")
    )
    assert doc["flags"] == []
    row = re.search(r'<tr[^>]*><th scope="row">Black</th>(.*?)</tr>', html)
    assert row is not None
    cells = re.findall(r'<td class="n">([^<]*)</td>', row.group(1))
    assert cells == ["0", "0", "0", "0", "0", "&ndash;", "&ndash;", ""]
