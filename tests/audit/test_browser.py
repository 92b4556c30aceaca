"""audit.html in headless Chromium: renders, no console errors, no network, charts present.

Drives Debian's ``chromium`` over the Chrome DevTools Protocol (websocket-client).
Skips with a reason when Chromium is not installed, unless SEGMENT_REQUIRE_BROWSER is
set (CI), in which case a missing browser fails the test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segment.audit import audit_campaign

from .test_integration import _workdir

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("SEGMENT_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (SEGMENT_REQUIRE_BROWSER is set)")
    pytest.skip(reason)


def _chromium() -> str:
    for name in (os.environ.get("SEGMENT_CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    _unavailable("chromium not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


class _Page:
    """A minimal CDP session on one page target."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=20, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {method}")
            self.events.append(json.loads(self.ws.recv()))

    def drain(self, seconds: float) -> None:
        import websocket

        self.ws.settimeout(seconds)
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            while True:
                self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@contextlib.contextmanager
def _browser(profile: Path) -> Iterator[_Page]:
    exe = _chromium()
    try:
        import websocket  # noqa: F401
    except ImportError:
        _unavailable("websocket-client not installed (pip install -e '.[test]')")
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    page: _Page | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.loads(resp.read())
        target = next(t for t in targets if t.get("type") == "page")
        page = _Page(target["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


INFO_JS = """({
    title: document.title,
    svgs: document.querySelectorAll('svg').length,
    svgTitles: document.querySelectorAll('svg > title').length,
    drawn: [...document.querySelectorAll('svg')].filter(
        s => s.getBoundingClientRect().width > 100).length,
    noteTop: (document.querySelector('.note') || {getBoundingClientRect: () => ({top: -1})})
        .getBoundingClientRect().top,
    viewport: window.innerHeight,
    tables: document.querySelectorAll('table').length,
})"""


def _open(url: str, profile: Path, screenshot: Path) -> tuple[list[str], list[Any], dict[str, Any]]:
    """Load ``url``; return (requested URLs, console/log errors, page facts)."""
    with _browser(profile) as page:
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("Page.loadEventFired")
        page.drain(1.0)  # anything late: lazy requests, deferred errors
        info = page.evaluate(INFO_JS)
        shot = page.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    screenshot.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    requests = [
        e["params"]["request"]["url"]
        for e in page.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    errors = [
        e["params"]
        for e in page.events
        if (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    return requests, errors, info


def open_offline(html: Path | None, tmp_path: Path) -> dict[str, Any]:
    """Open a report page: it draws something, asks for nothing but itself and logs no error."""
    assert html is not None
    url = html.resolve().as_uri()
    screenshot = tmp_path / f"{html.stem}.png"
    requests, errors, info = _open(url, tmp_path / "profile", screenshot)
    assert screenshot.stat().st_size > 10_000
    assert requests == [url], f"unexpected network requests: {requests}"
    assert errors == []
    return info


def test_audit_html_renders_offline_in_chromium(tmp_path: Path) -> None:
    campaign, work = _workdir(tmp_path)
    info = open_offline(audit_campaign(campaign, work).html_path, tmp_path)
    assert info["title"] == "Equity and reach audit: AUDIT-TEST-01"
    assert info["svgs"] == info["svgTitles"] >= 3
    assert info["drawn"] == info["svgs"]
    assert info["tables"] >= 3
    assert 0 <= info["noteTop"] < info["viewport"]  # the neighbourhood note is on screen 1


def test_the_harness_sees_requests_and_errors(tmp_path: Path) -> None:
    """The checks above can fail: a page that fetches and logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>bad</title></head><body>'
        '<img src="http://127.0.0.1:9/pixel.png" alt="">'
        "<script>console.error('broken')</script></body></html>",
        encoding="utf-8",
    )
    requests, errors, _ = _open(page.as_uri(), tmp_path / "profile", tmp_path / "bad.png")
    assert "http://127.0.0.1:9/pixel.png" in requests
    assert any(e.get("type") == "error" for e in errors)
