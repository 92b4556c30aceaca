"""JSON documents (``.json``, optionally gzip): a Bundle's top level walked, its entries cut out in batches.

The top level of a document is walked by hand, its members decoded by ``json``. A
Bundle's ``entry`` array is not parsed here: its objects are found by a vectorized scan
of the bytes (:func:`_top_objects`: quotes, then the braces outside strings, then their
depth) and handed on as text, a batch per chunk read, so memory holds one chunk and one
batch whatever the Bundle's size. Each entry's JSON is checked later, by Polars, when it
is decoded (or by :mod:`.bundles` for an entry no decode reads).

Why not parse every entry here: building Python objects for every entry (the C scanner
of ``json``) took 40% of the read's time (measured). Why not decode the whole Bundle with
Polars: its entries mix types whose elements share names but not shapes
(``Encounter.type`` is a list, ``DocumentReference.type`` is not; ``Patient.name`` a list,
``Organization.name`` a string), so one struct schema for every entry fails on real
Synthea Bundles; decoding leniently (nulls where a shape differs) measured five times
slower than decoding each type against its own schema, and would hide a resource that
does not fit R4.

A member of the array that is not an object (never seen in real Bundles) is decoded by
``json`` on its own and handed on as text the same way.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from segment.errors import InputDataError
from segment.ingest.readers.fhir.sources import (
    WHOLE_DOCUMENT_LIMIT,
    check_bom,
    not_utf8,
    read_chunks,
)

#: decompressed bytes read (and scanned for entries) at a time
DOCUMENT_CHUNK = 16 * 1024 * 1024
#: bytes decoded at first to read a top-level value (doubled until the value fits)
_VALUE_WINDOW = 64 * 1024
_WS = re.compile(rb"[ \t\n\r]*")
_NUMBER_GOES_ON = ("", *"0123456789.eE+-")
#: what may stand between two entries
_GAP = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*")
_QUOTE, _BACKSLASH, _OPEN, _CLOSE, _SPACE = 0x22, 0x5C, 0x7B, 0x7D, 0x20
Positions = npt.NDArray[np.int64]


def _top_objects(buf: bytes, start: int) -> tuple[Positions, Positions]:
    """The objects at the top level of ``buf[start:]``: where each opens and closes (``closes`` may be one short).

    ``start`` must be outside any string and any object. Only quotes and braces are
    looked at: a quote counts unless an odd run of backslashes precedes it, and a brace
    outside strings (an even number of quotes before it) moves the depth. Whether the
    text is JSON at all is checked later.
    """
    a = np.frombuffer(buf, np.uint8)[start:]
    quotes = np.flatnonzero(a == _QUOTE)
    # bytes 0x7B-0x7F: '{', '|', '}', '~', DEL (as int8, the bytes of multi-byte UTF-8 are negative)
    braces = np.flatnonzero(a.view(np.int8) >= _OPEN)
    kind = a[braces]
    brace = (kind == _OPEN) | (kind == _CLOSE)
    braces, kind = braces[brace], kind[brace]
    before = np.searchsorted(quotes, braces)
    after_backslash = quotes[quotes > 0]
    after_backslash = after_backslash[a[after_backslash - 1] == _BACKSLASH]
    if after_backslash.size:
        run = np.ones(after_backslash.size, np.int64)  # backslashes just before each of these quotes
        look = after_backslash - 2
        going = np.flatnonzero(look >= 0)
        while going.size:
            going = going[a[look[going]] == _BACKSLASH]
            run[going] += 1
            look[going] -= 1
            going = going[look[going] >= 0]
        before -= np.searchsorted(after_backslash[run % 2 == 1], braces)  # escaped: not a quote
    outside = before % 2 == 0
    braces, kind = braces[outside], kind[outside]
    step = np.where(kind == _OPEN, 1, -1)
    depth = np.cumsum(step)
    opens = braces[(step == 1) & (depth == 1)] + start
    closes = braces[(step == -1) & (depth == 0)] + start
    return opens, closes


class JsonStream:
    """One JSON document read in chunks of bytes, UTF-8 checked as they come."""

    _decoder = json.JSONDecoder()

    def __init__(self, path: Path, max_value: int, chunk: int, *, exact: bool = False) -> None:
        self.path = path
        self.max_value = max_value
        self.exact = exact  # every entry parsed by json: slow, for the error a flawed document gives
        self._chunks = read_chunks(path, chunk)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = b""
        self.pos = 0
        self.eof = False
        self._dropped = 0  # bytes before buf (lines are counted only for an error, by reading again)
        self._first = True
        self._scan: tuple[bytes, Positions, Positions] | None = None

    def close(self) -> None:
        """Close the file."""
        self._chunks.close()

    def _more(self) -> None:
        chunk = next(self._chunks, None)
        try:
            if chunk is None:
                self._utf8.decode(b"", final=True)
                self.eof = True
            else:
                if self._first:
                    chunk, self._first = check_bom(self.path, chunk), False
                if not chunk.isascii() or self._utf8.getstate()[0]:
                    self._utf8.decode(chunk)  # only checked: the text is sliced from the bytes
        except UnicodeDecodeError as exc:
            line = line_at(self.path, self._dropped + len(self.buf))
            raise not_utf8(self.path, chunk or b"", line, exc) from None
        self._dropped += self.pos
        rest = self.buf[self.pos :]
        self.buf = rest + chunk if rest and chunk else (rest or chunk or b"")  # no copy when one is empty
        self.pos = 0

    def error(self, what: str) -> InputDataError:
        """A one-line error at the current position."""
        return InputDataError(f"not valid JSON ({what})", path=self.path, line=line_at(self.path, self._dropped + self.pos))

    def peek(self) -> bytes:
        """The next character that is not white space (``b""`` at the end)."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self._more()

    def take(self, char: str) -> None:
        """Step over ``char`` (after white space), or fail."""
        found = self.peek()
        if found != char.encode():
            if char == "{" and found == b"[" and self._dropped + self.pos == 0:
                raise InputDataError(
                    "a JSON array of resources, not a FHIR resource or Bundle: write one resource per "
                    "line (.ndjson) or wrap them in a Bundle (resourceType Bundle, entry[].resource)",
                    path=self.path, line=1,
                )
            raise self.error(f"expected '{char}'")
        self.pos += 1

    def value(self) -> tuple[Any, str]:
        """The next value and its source text."""
        self.peek()
        window = _VALUE_WINDOW
        while True:
            whole = self.pos + window >= len(self.buf)
            text = self.buf[self.pos : self.pos + window].decode("utf-8", "ignore")  # a cut character dropped
            try:
                obj, end = self._decoder.raw_decode(text)
                # a number may go on after the text read ("0" of "0.5"); anything else ends with its own delimiter
                number = isinstance(obj, int | float) and not isinstance(obj, bool)
                if not number or (whole and self.eof) or text[end : end + 1] not in _NUMBER_GOES_ON:
                    self.pos += end if text.isascii() else len(text[:end].encode())
                    return obj, text[:end]
            except json.JSONDecodeError as exc:
                if whole and self.eof:
                    raise self.error(exc.msg) from None
                if whole and len(self.buf) - self.pos > self.max_value:
                    raise self.error(f"a value longer than {self.max_value // 2**20} MB") from None
            if whole:
                self._more()
            else:
                window *= 2

    # -- a Bundle's entries ----------------------------------------------------------------
    def entries(self) -> Iterator[pl.DataFrame]:
        """After the ``[`` of a non-empty array: its members in batches, ``line`` (text) and ``_at`` (byte offset).

        Reads up to and including the closing ``]``.
        """
        while True:
            if self.peek() == b"{" and not self.exact:
                yield self._objects()
            else:
                at = self._dropped + self.pos
                _, text = self.value()
                yield pl.DataFrame({"line": [text], "_at": [at]}, schema={"line": pl.String, "_at": pl.Int64})
            if self.peek() == b",":
                self.pos += 1
                continue
            self.take("]")
            return

    def _objects(self) -> pl.DataFrame:
        """The objects from here that are complete and separated by commas only; at least one."""
        while True:
            opens, closes = self._scanned()
            if closes.size:
                break
            if self.eof:
                self.value()  # not a complete object: the error json gives
                raise self.error("expected '}'")
            if len(self.buf) - self.pos > self.max_value:
                raise self.error(f"a value longer than {self.max_value // 2**20} MB")
            self._more()
        n = min(opens.size, closes.size)
        gaps = [self.buf[c + 1 : o] for c, o in zip(closes[: n - 1].tolist(), opens[1:n].tolist(), strict=True)]
        commas = {gap: gap.find(b",") for gap in set(gaps) if _GAP.fullmatch(gap)}
        if len(commas) < len(set(gaps)):  # something else than an object follows: stop before it
            n = next(i for i, gap in enumerate(gaps) if gap not in commas) + 1
            gaps = gaps[: n - 1]
        first, end = int(opens[0]), int(closes[n - 1]) + 1
        data = bytearray(memoryview(self.buf)[first:end])
        if gaps:  # each entry's text runs to the next one's: its comma becomes a space
            comma = closes[: n - 1] + 1 - first
            comma += np.fromiter((commas[gap] for gap in gaps), np.int64, len(gaps)) if len(commas) > 1 else commas[gaps[0]]
            np.frombuffer(data, np.uint8)[comma] = _SPACE
        offsets = np.append(opens[:n] - first, end - first)
        text = pa.Array.from_buffers(pa.large_utf8(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        at = opens[:n] + self._dropped
        self.pos = end
        return pl.DataFrame({"line": pl.Series(text), "_at": at}, schema={"line": pl.String, "_at": pl.Int64})

    def _scanned(self) -> tuple[Positions, Positions]:
        """:func:`_top_objects` from ``pos``, re-using the last scan of the same buffer (no rescans after a non-object)."""
        if self._scan is not None and self._scan[0] is self.buf:
            _, opens, closes = self._scan
            i = int(np.searchsorted(opens, self.pos))
            if i < opens.size and opens[i] == self.pos:
                return opens[i:], closes[i:]
        opens, closes = _top_objects(self.buf, self.pos)
        self._scan = (self.buf, opens, closes)
        return opens, closes


def stream_document(
    path: Path, max_entry: int = WHOLE_DOCUMENT_LIMIT, chunk: int | None = None, *, exact: bool = False
) -> Generator[tuple[str, Any], None, None]:
    """Walk a JSON document's top level: ``(name, value)`` per member, ``("entry[]", batch)`` per batch of entries.

    A batch (:meth:`JsonStream.entries`) holds the text of some members of a top-level
    ``entry`` array, so a Bundle of any size is read in bounded memory (``chunk`` bytes
    read at a time, :data:`DOCUMENT_CHUNK` unless given). ``exact``: every entry parsed
    by ``json`` on the way (slow: :func:`first_error`).
    """
    js = JsonStream(path, max_entry, chunk or DOCUMENT_CHUNK, exact=exact)
    try:
        yield from _walk(js)
    finally:
        js.close()


def _walk(js: JsonStream) -> Iterator[tuple[str, Any]]:
    js.take("{")
    if js.peek() == b"}":
        return
    while True:
        key, _ = js.value()
        if not isinstance(key, str):
            raise js.error("expected a key")
        js.take(":")
        if key == "entry" and js.peek() == b"[":
            js.take("[")
            if js.peek() == b"]":
                js.pos += 1
            else:
                for batch in js.entries():
                    yield "entry[]", batch
        else:
            yield key, js.value()[0]
        if js.peek() == b",":
            js.pos += 1
            continue
        js.take("}")
        return


def line_at(path: Path, offset: int) -> int:
    """The line of the document's byte ``offset`` (counted after a byte-order mark; read again, for an error)."""
    line, seen = 1, 0
    for chunk in read_chunks(path, DOCUMENT_CHUNK):
        if not seen and chunk.startswith(codecs.BOM_UTF8):
            offset += len(codecs.BOM_UTF8)
        line += chunk.count(b"\n", 0, max(0, offset - seen))
        seen += len(chunk)
        if seen >= offset:
            break
    return line


def first_error(path: Path) -> InputDataError | None:
    """The error of the document's first flaw, found by parsing every entry with ``json``.

    The scan for entries may trip over a flaw later in the text (a lost quote turns the
    rest inside out), and an entry is checked only when its type is decoded: this gives
    the message and line of the first flaw, as a parse from the start does.
    """
    try:
        for _ in stream_document(path, exact=True):
            pass
    except InputDataError as exc:
        return exc
    return None


def load_entry(text: str, path: Path, at: int) -> Any:
    """An entry's text parsed by ``json``; text that is not JSON stops the read at the document's first flaw."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = first_error(path) or InputDataError(f"not valid JSON ({exc.msg})", path=path, line=line_at(path, at))
        raise error from None
