"""How numbers print: counts with thousands separators, years and vintages as written."""

from __future__ import annotations

from segment.report import _fmt_value


def test_counts_get_separators_and_labels_do_not() -> None:
    assert _fmt_value(200456, "event_rows") == "200,456"
    assert _fmt_value(2010, "vintage") == "2010"
    assert _fmt_value(2020, "indicator_tract_vintage") == "2020"
    assert _fmt_value(2022, "source year") == "2022"
    assert _fmt_value(2010) == "2,010"  # no key: a count
    assert _fmt_value(True, "vintage") == "True"
    assert _fmt_value(0.25, "share") == "0.25"
