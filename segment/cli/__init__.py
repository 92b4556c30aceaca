"""The command line: parse options, call one library function, hand results to report.

Commands live in one module per stage in this package; each module lists its commands
in ``COMMANDS`` and is discovered here, so the stages never edit a shared file.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import re
import sqlite3
from typing import Any

import click

from segment import __version__
from segment.cli.options import _global_params, get_reporter, with_example
from segment.errors import ConfigError, SegmentError


class SegmentGroup(click.Group):
    """A group that turns expected errors into ``Error: <one line>`` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; expected failures become one line on stderr, exit 1."""
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except SegmentError as exc:
            context = exc.context if isinstance(exc, ConfigError) else None
            get_reporter(ctx).error(exc.one_line(), context=context, exc=exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # `segment ... | head`: the reader left; stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            ctx.exit(1)
        except Exception as exc:  # an unexpected failure: one line, traceback with --verbose
            get_reporter(ctx).error(
                known_failure(exc)
                or f"unexpected internal error ({type(exc).__name__}); rerun with --verbose for the traceback",
                exc=exc,
            )
            ctx.exit(1)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _errno_of(exc: BaseException) -> int | None:
    """The OS error number of ``exc`` or of what caused it (Polars reports ``(os error 28)``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        if isinstance(current, OSError) and isinstance(current.errno, int):
            return current.errno
        match = re.search(r"\(os error (\d+)\)", str(current))
        if match:
            return int(match.group(1))
        current = current.__cause__ or current.__context__
    return None


def known_failure(exc: BaseException) -> str | None:
    """A specific one-line reason for a failure that is not a bug, or None.

    Disk full, permissions, memory, a locked or corrupt SQLite file (the contact ledger,
    the geocode cache) and input nested too deeply are conditions of the machine or the
    files, not of segment: say which, without quoting any value.
    """
    code = _errno_of(exc)
    where = getattr(exc, "filename", None)
    place = f" ({where})" if isinstance(where, str | os.PathLike) else ""
    if code in _DISK_FULL:
        return (
            f"disk full: no space left on the device{place}; free some space (or write to "
            "another disk) and rerun"
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied{place}: check the owner and mode of the file or folder"
    if code == errno.EROFS:
        return f"read-only file system{place}: write to a folder on a writable disk"
    if isinstance(exc, MemoryError):
        return "out of memory: run on a machine with more memory, or split the extract"
    if isinstance(exc, RecursionError):
        return "an input is nested too deeply to read (thousands of levels); it is not a valid extract"
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return (
                "an SQLite database (the contact ledger or a cache) is locked by another process; "
                "rerun when that process has finished"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return (
                "an SQLite database (the contact ledger or a cache) is corrupt or not an SQLite "
                "file; restore it from a backup"
            )
        return f"an SQLite database (the contact ledger or a cache) failed ({type(exc).__name__})"
    return None


def group(name: str, *, example: str, help: str) -> SegmentGroup:
    """A command group whose help ends with ``example``."""
    g = SegmentGroup(name=name, help=with_example(help, example))
    g.params.extend(_global_params())
    return g


@click.group(
    cls=SegmentGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100},
    help=with_example(
        "Turn patient extracts into explainable, privacy-safe campaign segment lists.",
        "segment demo --out demo-work",
    ),
)
@click.version_option(__version__, prog_name="segment")
def cli() -> None:
    """Root command group."""
    # Everything segment writes can hold PHI: owner-only whatever the user's umask.
    os.umask(0o077)


cli.params.extend(_global_params())


def _register() -> None:
    from segment import cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "options":
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="segment")
