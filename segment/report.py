"""All terminal output: Rich on a terminal, plain lines or JSON lines otherwise.

Commands hand results here; nothing else in the package imports Rich, but for the live
progress display (``segment.progress``), which this module installs on a terminal. Tables and
results go to stdout (they are the command's output); log messages go to stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from segment import log as seglog
from segment import progress
from segment.errors import SegmentError


class LogFormat(StrEnum):
    """How messages are written."""

    AUTO = "auto"
    RICH = "rich"
    PLAIN = "plain"
    JSON = "json"


#: a number under a key naming one of these is a label (a year, a vintage), not a count
_LABEL_KEYS = ("year", "vintage", "version", "seed")


def _fmt_value(value: Any, key: str | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and key and any(w in key.lower() for w in _LABEL_KEYS):
        return str(value)  # vintage=2010, not 2,010
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _describe_exception(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, SegmentError):  # messages of our own errors are PHI-free by contract
        return f"{name}: {exc.one_line()}"
    if type(exc).__module__.split(".")[0] == "segment":  # raised by segment's code, vetted text
        return f"{name}: {exc}"
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        return f"{name}: [Errno {exc.errno}] {os.strerror(exc.errno)}"
    return f"{name} (message withheld: it may quote input data)"


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and the exceptions that led to it, without any value.

    Frames show file, line, function and source line only (never frame locals); an
    exception's message is shown only for segment's own exception classes, whose messages
    carry no patient values. A library's message (a Polars parse error quotes the raw row) is
    withheld: ``--verbose`` output is pasted into tickets and chats.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    lines: list[str] = []
    for i, item in enumerate(reversed(chain)):
        if i:
            lines.append("\nThe above exception led to the following one:\n\n")
        lines.append("Traceback (most recent call last; values withheld):\n")
        for frame in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n')
            if frame.line:
                lines.append(f"    {frame.line.strip()}\n")
        lines.append(_describe_exception(item) + "\n")
    return "".join(lines)


class _Handler(logging.Handler):
    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.log_record(record)
        except Exception:  # pragma: no cover - logging must never crash the run
            self.handleError(record)


class Reporter:
    """Renders messages, tables, results and errors for one CLI invocation."""

    def __init__(
        self,
        log_format: LogFormat | str = LogFormat.AUTO,
        *,
        verbose: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.verbose = verbose
        fmt = LogFormat(log_format)
        if fmt is LogFormat.AUTO:
            fmt = LogFormat.RICH if _isatty(self.stderr) else LogFormat.PLAIN
        self.format = fmt
        self.err_console = Console(file=self.stderr, highlight=False, soft_wrap=True)
        self.out_console = Console(file=self.stdout, highlight=False, soft_wrap=True)
        self._handler: _Handler | None = None

    # -- wiring ---------------------------------------------------------------
    def install(self) -> None:
        """Route the library's stage logs and progress through this reporter."""
        root = logging.getLogger("segment")
        for h in list(root.handlers):
            if isinstance(h, _Handler):
                root.removeHandler(h)
        self._handler = _Handler(self)
        root.addHandler(self._handler)
        root.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        root.propagate = False
        # progress only on a terminal, and only with Rich messages (never plain or JSON lines)
        display = progress.for_terminal(self.err_console, self.stderr) if self.format is LogFormat.RICH else None
        progress.install(display)
        seglog.set_progress_factory(progress.bar if display is not None else None)

    def uninstall(self) -> None:
        """Undo :meth:`install` (used by tests running several commands in one process)."""
        if self._handler is not None:
            logging.getLogger("segment").removeHandler(self._handler)
            self._handler = None
        progress.install(None)
        seglog.set_progress_factory(None)

    # -- messages -------------------------------------------------------------
    def log_record(self, record: logging.LogRecord) -> None:
        """Write one log record in the chosen format."""
        stage = getattr(record, "stage", record.name.removeprefix("segment."))
        counts = getattr(record, "counts", {}) or {}
        message = record.getMessage()
        self.message(record.levelname.lower(), stage, message, counts)

    def message(
        self, level: str, stage: str, message: str, counts: Mapping[str, Any] | None = None
    ) -> None:
        """Write a message line to stderr."""
        counts = dict(counts or {})
        if self.format is LogFormat.JSON:
            obj = {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "stage": stage,
                "message": message,
                "counts": counts,
            }
            self.stderr.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
            self.stderr.flush()
            return
        suffix = " ".join(f"{k}={_fmt_value(v, k)}" for k, v in counts.items())
        text = f"{stage}: {message}" + (f" ({suffix})" if suffix else "")
        if self.format is LogFormat.RICH:
            style = {"warning": "yellow", "error": "bold red", "debug": "dim"}.get(level, "")
            self.err_console.print(text, style=style or None, markup=False)
        else:
            prefix = "" if level == "info" else f"{level.upper()}: "
            self.stderr.write(prefix + text + "\n")
            self.stderr.flush()

    def info(self, stage: str, message: str, **counts: Any) -> None:
        """Write an informational message."""
        self.message("info", stage, message, counts)

    def warning(self, stage: str, message: str, **counts: Any) -> None:
        """Write a warning."""
        self.message("warning", stage, message, counts)

    def error(self, text: str, *, context: str | None = None, exc: BaseException | None = None) -> None:
        """Write ``Error: <one line>`` (and the traceback with --verbose) to stderr."""
        progress.done()
        if self.format is LogFormat.JSON:
            self.message("error", "cli", f"{text}\n{context}" if context else text)  # one JSON line
        else:
            self.stderr.write(f"Error: {text}\n")
            if context:
                self.stderr.write(context + "\n")
        if self.verbose and exc is not None:
            self.stderr.write(scrubbed_traceback(exc))
        self.stderr.flush()

    # -- results --------------------------------------------------------------
    def table(
        self,
        title: str,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
    ) -> None:
        """Show rows as a table on stdout (Rich on a terminal, aligned text otherwise)."""
        progress.done()  # the live display leaves the screen before the results are drawn
        cols = list(columns or (list(rows[0].keys()) if rows else []))
        if self.format is LogFormat.JSON:
            payload = {"table": title, "rows": [{c: r.get(c) for c in cols} for r in rows]}
            self.stdout.write(json.dumps(payload, default=str) + "\n")
            return
        if self.format is LogFormat.RICH and _isatty(self.stdout):
            t = Table(title=title, title_justify="left")
            for c in cols:
                t.add_column(c, justify="right" if _numeric(rows, c) else "left")
            for r in rows:
                t.add_row(*(_fmt_value(r.get(c), c) for c in cols))
            self.out_console.print(t)
            return
        cells = [[_fmt_value(r.get(c), c) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = [title]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        for row in cells:
            lines.append(
                "  ".join(
                    v.rjust(w) if _numeric(rows, c) else v.ljust(w)
                    for v, w, c in zip(row, widths, cols, strict=True)
                ).rstrip()
            )
        self.stdout.write("\n".join(lines) + "\n")

    def result(self, title: str, values: Mapping[str, Any]) -> None:
        """Show a short key: value summary on stdout."""
        progress.done()
        if self.format is LogFormat.JSON:
            self.stdout.write(json.dumps({"result": title, **dict(values)}, default=str) + "\n")
            return
        width = max((len(k) for k in values), default=0)
        lines = [title] + [f"  {k.ljust(width)}  {_fmt_value(v, k)}" for k, v in values.items()]
        if self.format is LogFormat.RICH and _isatty(self.stdout):
            self.out_console.print("\n".join(lines), markup=False)
        else:
            self.stdout.write("\n".join(lines) + "\n")

    def lines(self, lines: Sequence[str]) -> None:
        """Write plain lines of data to stdout."""
        progress.done()
        for line in lines:
            self.stdout.write(line + "\n")


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
