from __future__ import annotations

import csv
import io
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler

import polars as pl
import pytest
from reference.localserver import reply, serve

from segment.config import Settings
from segment.errors import NetworkError
from segment.geocode.census_batch import CensusOptions, census_geocode, parse_response


def _form(h: BaseHTTPRequestHandler) -> dict[str, bytes]:
    body = h.rfile.read(int(h.headers["Content-Length"]))
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in msg.iter_parts()}


def make_handler(state: dict[str, int]):  # type: ignore[no-untyped-def]
    def handle(h: BaseHTTPRequestHandler) -> None:
        assert h.path == "/geocoder/geographies/addressbatch"
        form = _form(h)
        assert form["benchmark"] == b"Public_AR_Current" and form["vintage"] == b"Current_Current"
        state["requests"] += 1
        if state["requests"] == 1:  # the first batch fails: an HTML error page with 200
            reply(h, 200, b"<html><p>Service unavailable</p></html>", "text/html")
            return
        rows = list(csv.reader(io.StringIO(form["addressFile"].decode("latin-1"))))
        out = []
        for rid, street, city, st, z in reversed(rows):  # answers come in any order
            assert len([rid, street, city, st, z]) == 5
            if "TIE" in street and state["ties"] == 0:
                out.append(f'"{rid}","{street}, {city}, {st}, {z}","Tie"')
            elif "TIE" in street or "MAIN" in street:
                out.append(f'"{rid}","{street}, {city}, {st}, {z}","Match","Exact",'
                           f'"{street}, {city.upper()}, {st}, {z}","-71.05,42.32","1001","L",'
                           f'"25","025","000100","1004"')
            else:
                out.append(f'"{rid}","{street}, {city}, {st}, {z}","No_Match"')
        if any("TIE" in r[1] for r in rows):
            state["ties"] += 1
        reply(h, 200, ("\n".join(out) + "\n").encode("latin-1"), "text/plain")
    return handle


def test_batch_protocol_retry_ties_and_chunking() -> None:
    state = {"requests": 0, "ties": 0}
    rows = pl.DataFrame({
        "id": [str(i) for i in range(5)],
        "street": ["1 MAIN ST", "2 NOWHERE, LN", "3 TIE RD", "4 MAIN ST", '5 "Q" ST'],
        "city": ["Boston"] * 5, "state": ["MA"] * 5, "zip": ["02119"] * 5,
    })
    with serve(make_handler(state)) as url:
        settings = Settings(census_geocoder_url=f"{url}/geocoder")
        got = census_geocode(rows, settings, CensusOptions(batch_size=2, workers=2,
                                                           backoff_s=0.01))
    assert got["id"].to_list() == ["0", "1", "2", "3", "4"]
    assert got["match"].to_list() == ["Match", "No_Match", "Match", "Match", "No_Match"]
    assert got["lon"][0] == -71.05 and got["lat"][0] == 42.32
    assert got["tract_geoid"][0] == "25025000100" and got["block_group_geoid"][0] == "250250001001"
    assert state["requests"] == 3 + 1 + 1  # 3 batches, one retried, one tie resubmission


def test_batch_gives_up_after_attempts() -> None:
    def always_fail(h: BaseHTTPRequestHandler) -> None:
        h.rfile.read(int(h.headers["Content-Length"]))
        reply(h, 503, b"busy", "text/plain")

    with serve(always_fail) as url:
        settings = Settings(census_geocoder_url=f"{url}/geocoder")
        rows = pl.DataFrame({"id": ["1"], "street": ["1 MAIN ST"], "city": ["B"],
                             "state": ["MA"], "zip": ["02119"]})
        with pytest.raises(NetworkError, match=r"batch 1 \(1 addresses\) after 2 attempts: HTTP 503"):
            census_geocode(rows, settings, CensusOptions(attempts=2, backoff_s=0.01))


def test_parse_short_rows_only() -> None:
    got = parse_response('"2","79 Wistful Vista, Wistful Vista, IL, ","No_Match"\n')
    assert got["match"].to_list() == ["No_Match"] and got["lat"].to_list() == [None]
