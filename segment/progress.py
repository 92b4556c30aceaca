"""Progress for the steps that take a while, shown only on a terminal.

Library code marks where a long step starts with one line, and never decides how (or
whether) it is shown::

    progress.step("ingest", "resolving identities")        # ends the step before it
    for rule in progress.track(rules, "evaluate", "rules"): # a bar over an iterable
        ...

A step lasts until the next step starts or the command ends. Nothing is shown unless
``segment.report`` installs a :class:`TerminalProgress`, which it does only when messages
are Rich and stderr is a terminal: never with ``--log-format plain|json``, under cron, in
a pipe or in CI logs. Descriptions carry stage names, step names, file names and counts,
never values from the data. :func:`segment.log.progress` (a context manager with a
total) is drawn by the same display, so a bar inside a step never starts a second live
display.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

T = TypeVar("T")
Advance = Callable[[int], None]


def _ignore(n: int) -> None:
    return None


class TerminalProgress:
    """One Rich live display for every step and bar of a command (stderr, transient)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.RLock()
        self._progress: Progress | None = None
        self._step: TaskID | None = None
        self._bars = 0

    def _display(self) -> Progress:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                _count_column(MofNCompleteColumn(), DownloadColumn()),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self._progress

    def step(self, description: str, total: int | None = None, *, unit: str = "items") -> Advance:
        """Start a step (ending the previous one); returns ``advance(n)``."""
        with self._lock:
            display = self._display()
            if self._step is not None:
                display.remove_task(self._step)
            task = display.add_task(description, total=total, unit=unit)
            self._step = task
        return lambda n: display.advance(task, n)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Advance]:
        """A bar for the duration of a block, under the current step."""
        with self._lock:
            display = self._display()
            task = display.add_task(description, total=total)
            self._bars += 1
        try:
            yield lambda n: display.advance(task, n)
        finally:
            with self._lock:
                display.remove_task(task)
                self._bars -= 1

    def finish(self) -> None:
        """End the current step and take the display off the screen."""
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
            self._progress, self._step, self._bars = None, None, 0


def _count_column(items: Any, size: Any) -> Any:
    """A column showing ``done/total`` items, or sizes for a step counted in bytes."""
    from rich.progress import ProgressColumn

    class CountColumn(ProgressColumn):
        def render(self, task: Any) -> Any:
            return (size if task.fields.get("unit") == "bytes" else items).render(task)

    return CountColumn()


_display: TerminalProgress | None = None


def install(display: TerminalProgress | None) -> None:
    """Show progress on ``display`` from now on (``None``: show nothing)."""
    global _display
    if _display is not None and _display is not display:
        _display.finish()
    _display = display


def active() -> bool:
    """Whether progress is being shown (a terminal is attached and messages are Rich)."""
    return _display is not None


def step(stage: str, what: str, total: int | None = None, *, unit: str = "items") -> Advance:
    """Mark the start of a long step of ``stage``; it lasts until the next step starts.

    ``unit="bytes"`` shows the counts as sizes (a download).
    """
    if _display is None:
        return _ignore
    return _display.step(f"{stage}: {what}", total, unit=unit)


def done() -> None:
    """End the current step (a stage calls this when it has finished its work)."""
    if _display is not None:
        _display.finish()


def track(items: Iterable[T], stage: str, what: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items``, drawing a bar of how many have been done."""
    if _display is None:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _display.bar(f"{stage}: {what}", total) as advance:
        for item in items:
            yield item
            advance(1)


def bar(description: str, total: int | None = None) -> contextlib.AbstractContextManager[Advance]:
    """A bar for a block (what :func:`segment.log.progress` draws on a terminal)."""
    if _display is None:
        return contextlib.nullcontext(_ignore)
    return _display.bar(description, total)


def for_terminal(console: Console, stream: Any) -> TerminalProgress | None:
    """A display on ``console`` when ``stream`` (stderr) is a terminal, else ``None``."""
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(console) if tty else None
