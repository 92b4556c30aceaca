"""measure.html in headless Chromium: renders offline, no errors, the completion chart drawn."""

from __future__ import annotations

from pathlib import Path

from segment.measure import measure_campaign
from tests.audit.test_browser import open_offline

from .conftest import LATER, Measured
from .test_measure import _later

CHART_JS = """({
    paths: [...document.querySelectorAll('#chart-completion path')].map(
        p => [p.getAttribute('class'), Number(p.dataset.value), p.getTotalLength() > 100]),
    marks: document.querySelectorAll('#chart-completion circle').length,
    chartWidth: document.querySelector('#chart-completion').getBoundingClientRect().width,
})"""


def test_measure_html_renders_offline_in_chromium(measured: Measured, tmp_path: Path) -> None:
    work, _ = _later(measured, tmp_path)
    result = measure_campaign(measured.campaign, work, as_of=LATER)
    info = open_offline(result.html_path, tmp_path)
    assert info["title"] == "Did it work? Campaign measurement: SPRING-OUTREACH-2025"
    assert info["svgs"] == info["svgTitles"] == info["drawn"] == 1
    assert info["tables"] >= 3
    assert result.html_path is not None
    chart = _open_chart(result.html_path.resolve().as_uri(), tmp_path / "profile2")
    assert [(c, round(v, 4), long) for c, v, long in chart["paths"]] == [
        ("arm-contact", round(97 / 317, 4), True), ("arm-holdout", round(15 / 80, 4), True)]
    assert chart["marks"] == 2 * 14  # days 0, 7, ..., 84 and day 90, per arm
    assert chart["chartWidth"] > 400


def _open_chart(url: str, profile: Path) -> dict[str, object]:
    from tests.audit.test_browser import _browser

    with _browser(profile) as page:
        page.call("Page.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        return dict(page.evaluate(CHART_JS))
