"""The audit's breakdowns by message variant, journey step and preferred channel (suppressed like the funnel)."""

from __future__ import annotations

import polars as pl

from segment.audit import audit_document
from segment.audit.html import render_html
from tests.audit.helpers import AS_OF, cohorts


def _doc_pref(on_pref: list[bool | None]) -> dict:
    enriched, contacts = cohorts((75, {}))
    c = contacts.collect().with_columns(pl.Series("on_preferred", on_pref, pl.Boolean))
    return audit_document(enriched, c.lazy(), channels=["sms"], as_of=AS_OF)


def _doc(steps: pl.DataFrame | None = None) -> dict:
    enriched, contacts = cohorts(
        (30, {"language": "es"}),
        (40, {"language": "en"}),
        (5, {"language": "en", "contact_status": "suppressed"}),
    )
    c = contacts.collect()
    variant = ["V-ES"] * 30 + ["V-RIDE"] * 12 + ["V-BASE"] * 28 + [None] * 5
    on_pref = [True] * 15 + [False] * 15 + [None] * 45
    contacts = c.with_columns(pl.Series("variant", variant, pl.String),
                              pl.Series("on_preferred", on_pref, pl.Boolean)).lazy()
    return audit_document(enriched, contacts, channels=["sms", "email"], as_of=AS_OF,
                          variants=["V-BASE", "V-ES", "V-RIDE"], journey_steps=steps, n_steps=3 if steps is not None
                          else 0)


def _group(section: dict, dim: str, group: str) -> dict:
    d = next(x for x in section["dimensions"] if x["name"] == dim)
    return next(g for g in d["groups"] if g["group"] == group)


def test_variants_by_group() -> None:
    doc = _doc()
    v = doc["variants"]
    assert v["codes"] == ["V-BASE", "V-ES", "V-RIDE"]
    assert v["overall"] == {"selected": 70, "V-BASE": 28, "V-ES": 30, "V-RIDE": 12}
    assert _group(v, "language", "es") == {"group": "es", "selected": 30, "V-BASE": 0, "V-ES": 30, "V-RIDE": 0}
    assert _group(v, "language", "en") == {"group": "en", "selected": 40, "V-BASE": 28, "V-ES": 0, "V-RIDE": 12}


def test_small_variant_cells_are_suppressed() -> None:
    enriched, contacts = cohorts((30, {"language": "es"}), (40, {"language": "en"}))
    c = contacts.collect().with_columns(pl.Series("variant", ["V-ES"] * 25 + ["V-BASE"] * 45, pl.String))
    doc = audit_document(enriched, c.lazy(), channels=["sms"], as_of=AS_OF, variants=["V-BASE", "V-ES"])
    es = _group(doc["variants"], "language", "es")
    # 5 Spanish speakers got V-BASE: hidden, and V-ES (25 = 30 - 5) too, or it would reveal the 5
    assert es["V-BASE"] == "<11" and es["V-ES"] == "suppressed"


def test_preferred_channel_and_steps() -> None:
    steps = pl.DataFrame({"patient_id": [f"P{i:05d}" for i in range(1, 71)] + [f"P{i:05d}" for i in range(1, 31)],
                          "step": [1] * 70 + [2] * 30}, schema={"patient_id": pl.String, "step": pl.Int32})
    doc = _doc(steps)
    assert doc["preferred_channel"]["overall"] == {"selected": 70, "with a preferred channel": 30,
                                                   "reached on it": 15}
    assert doc["journey_steps"]["overall"] == {"eligible": 75, "step 1": 70, "step 2": 30, "step 3": 0}
    assert _group(doc["journey_steps"], "language", "es")["step 2"] == 30
    # 10 with a preference not reached on it would be revealed by subtraction: one cell hidden
    tight = _doc_pref([True] * 20 + [False] * 10 + [None] * 45)["preferred_channel"]["overall"]
    assert tight["reached on it"] == "suppressed"
    html = render_html(doc)
    assert "Selected by message variant" in html and "Reached by journey step" in html
    assert "Reached on their preferred channel" in html


def test_no_personalization_no_sections() -> None:
    enriched, contacts = cohorts((30, {}))
    doc = audit_document(enriched, contacts, channels=["sms"], as_of=AS_OF)
    assert doc["variants"] is None and doc["journey_steps"] is None and doc["preferred_channel"] is None
