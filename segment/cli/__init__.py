"""The command line: parse options, call one library function, hand results to report.

Commands live in one module per stage in this package; each module lists its commands in
``COMMANDS``. The root group loads them lazily (the Click lazy-group pattern): ``LAZY_COMMANDS``
maps each command name to its module and short help, so ``segment --help``, ``--version`` and
shell completion print without importing any stage (nor Polars, GeoPandas, pandas ...), and a
command's module is imported only when that command runs. A module missing from the table
still works (it is imported at start-up and its ``COMMANDS`` registered); ``tests/test_startup.py``
fails until it is listed.
"""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import re
from typing import TYPE_CHECKING, Any

import click

from segment import __version__
from segment.cli.options import _global_params, get_reporter, with_example
from segment.errors import ConfigError, SegmentError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


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
    import sqlite3  # only for the isinstance check; costs start-up otherwise

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


# name -> (module, short help). The short help is what `segment --help` and shell completion
# show without importing the module; tests/test_startup.py checks it against the real commands.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("segment.cli.audit",
              "Show who a campaign reaches and who it leaves out (audit.html + audit.json)."),
    "demo": ("segment.cli.run",
             "Generate the synthetic demo world and run two campaigns on it end to end."),
    "enrich": ("segment.cli.enrich",
               "Join area-level SDOH indicators, a need index and HP2030 gaps to geocoded patients."),
    "evaluate": ("segment.cli.evaluate",
                 "Apply every rule to every patient and write eligibility.parquet."),
    "explain": ("segment.cli.evaluate",
                "Show why one patient is or is not due for each rule, with their SDOH columns."),
    "export": ("segment.cli.export",
               "Write one vendor file per channel, a per-run manifest and a .done trigger file."),
    "feedback": ("segment.cli.feedback",
                 "Read vendors' delivery, bounce and opt-out exports into the contact ledger."),
    "geocode": ("segment.cli.geocode",
                "Geocode patients offline: source points, TIGER address ranges, ZIP centroids."),
    "identity": ("segment.cli.identity",
                 "Show how source records were linked into patients: model, clusters, review pairs."),
    "init": ("segment.cli.init",
             "Write a starter project: a commented campaign, a mapping template and a rules folder."),
    "ingest": ("segment.cli.ingest",
               "Load, validate, normalize and de-duplicate patient extracts into a working folder."),
    "journey": ("segment.cli.journey",
                "Show where patients stand in a campaign's multi-touch journey."),
    "measure": ("segment.cli.measure",
                "Measure completion lift against the holdout (measure.html + measure.json)."),
    "purge": ("segment.cli.purge",
              "Remove segment's working outputs older than a retention period."),
    "reference": ("segment.cli.reference",
                  "Manage reference packs: tract polygons, address ranges, ZIP centroids, indicators."),
    "rules": ("segment.cli.rules",
              "Check, test and list the screening and risk rules in a rules folder."),
    "run": ("segment.cli.run",
            "Run the whole pipeline for one campaign: ingest to export, safe under cron."),
    "synth": ("segment.cli.synth",
              "Write a realistic, messy synthetic patient extract (no real person in it)."),
}


def _command_in(module_name: str, name: str) -> click.Command | None:
    module = importlib.import_module(module_name)
    for command in getattr(module, "COMMANDS", ()):
        if command.name == name:
            return command
    return None


class LazyGroup(SegmentGroup):
    """The root group: commands imported when invoked, listed from :data:`LAZY_COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, without importing any command module."""
        return sorted({*LAZY_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module on first use."""
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            command = _command_in(LAZY_COMMANDS[cmd_name][0], cmd_name)
            if command is not None:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each short help, from the table (no import)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(name, self._short_help(name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete command names with their short help, without importing them."""
        from click.shell_completion import CompletionItem

        items = [
            CompletionItem(name, help=self._short_help(name, 45))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        # The group's own options (--version, --log-format ...) as Click completes them.
        items.extend(click.Command.shell_complete(self, ctx, incomplete))
        return items

    def _short_help(self, name: str, limit: int) -> str:
        if name in LAZY_COMMANDS and name not in self.commands:
            # Shortened exactly as Click shortens a loaded command's help.
            return click.Command(name, help=LAZY_COMMANDS[name][1]).get_short_help_str(limit)
        return self.commands[name].get_short_help_str(limit)


@click.group(
    cls=LazyGroup,
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


def _register_unlisted() -> None:
    """Register commands of modules missing from :data:`LAZY_COMMANDS` (imported now)."""
    from segment import cli as package

    listed = {module for module, _ in LAZY_COMMANDS.values()}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        name = f"{package.__name__}.{info.name}"
        if info.name.startswith("_") or info.name == "options" or name in listed:
            continue
        module = importlib.import_module(name)
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register_unlisted()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="segment")
