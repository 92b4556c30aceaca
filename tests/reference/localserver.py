"""A local HTTP server on 127.0.0.1 speaking the Census protocols, for tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(handle: Handler) -> Iterator[str]:
    """Run ``handle`` for every GET/POST on a thread; yield the base URL."""

    class _H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(h: BaseHTTPRequestHandler, status: int, body: bytes,
          content_type: str = "application/octet-stream", headers: dict[str, str] | None = None
          ) -> None:
    """Send one complete answer with a Content-Length."""
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class CensusServer:
    """Census-Bureau-shaped answers for ``reference pull`` tests.

    ``files`` maps URL paths (``/geo/tiger/TIGER2019/TRACT/tl_2019_25_tract.zip``) to
    bytes, served with HTTP Range support (206 + Content-Range, 416 past the end).
    ``acs`` maps ``(state, county)`` to tract rows (dicts of variable -> text, plus
    ``tract``) answered at ``/data/{year}/acs/acs5`` in the Census API's list-of-lists
    shape, only the requested ``get`` fields, in order, then ``state``, ``county``,
    ``tract``. Failures are injected per path: ``fail[path] = [503, 500]`` answers those
    statuses first; ``cut[path] = n`` sends the full Content-Length but closes the
    connection after ``n`` bytes, once. Every request is recorded in ``seen``.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    acs: dict[tuple[str, str], list[dict[str, str | None]]] = field(default_factory=dict)
    year: int = 2019
    fail: dict[str, list[int]] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_for(self, path: str) -> list[Seen]:
        """The requests received for ``path`` (without query), in order."""
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        """Answer one request (the ``serve`` callback)."""
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.seen.append(Seen(url.path, query, dict(h.headers.items()), time.monotonic()))
            pending = self.fail.get(url.path)
            status = pending.pop(0) if pending else None
        if status is not None:
            reply(h, status, b"<html><body>Service temporarily unavailable</body></html>",
                  "text/html")
            return
        api = f"/data/{self.year}/acs/acs5"
        if url.path == api:
            self._acs(h, query)
        elif url.path.startswith(api + "/variables/"):
            var = url.path.rsplit("/", 1)[-1].removesuffix(".json")
            kind = "int" if var.endswith("E") and "_" in var else (
                "string" if var == "NAME" else None)
            if kind is None:
                reply(h, 404, b"unknown variable", "text/plain")
            else:
                reply(h, 200, json.dumps({"name": var, "predicateType": kind}).encode(),
                      "application/json")
        elif url.path in self.files:
            self._file(h, url.path)
        else:
            reply(h, 404, b"<html><body>Not Found</body></html>", "text/html")

    def _file(self, h: BaseHTTPRequestHandler, path: str) -> None:
        body = self.files[path]
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                reply(h, 416, b"", headers={"Content-Range": f"bytes */{len(body)}"})
                return
            reply(h, 206, body[start:], headers={
                "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}",
                "Accept-Ranges": "bytes"})
            return
        with self._lock:
            cut = self.cut.pop(path, None)
        if cut is None:
            reply(h, 200, body, headers={"Accept-Ranges": "bytes"})
            return
        # the full length is announced, then the connection drops part way
        h.send_response(200)
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        h.wfile.write(body[:cut])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    def _acs(self, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        if not query.get("key"):
            reply(h, 200, b"<html><head><title>Invalid Key</title></head></html>",
                  "text/html")
            return
        fields = query["get"].split(",")
        state = query["in"].split("state:")[1].split()[0]
        county = query["in"].split("county:")[1].split()[0]
        if query["for"] != "tract:*":
            reply(h, 400, b"error: only tract:* is served here", "text/plain")
            return
        rows = self.acs.get((state, county))
        if not rows:
            reply(h, 204, b"")
            return
        table: list[list[str | None]] = [[*fields, "state", "county", "tract"]]
        for r in rows:
            table.append([r.get(f) for f in fields] + [state, county, r["tract"]])
        reply(h, 200, json.dumps(table).encode(), "application/json")
