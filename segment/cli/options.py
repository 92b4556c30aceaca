"""Options shared by several commands, defined once, and the command decorator.

Every command is declared with :func:`command` (or :func:`group`), which appends the
command's example to its help text and adds ``--verbose`` and ``--log-format`` so they
work before or after the command name.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # imported where used: `segment --help` loads neither pydantic nor Rich
    from segment.config import Settings
    from segment.report import Reporter

# The values of segment.report.LogFormat, spelled here so that defining the option does not
# import Rich; tests/test_startup.py checks that the two agree.
LOG_FORMATS = ("auto", "rich", "plain", "json")

F = TypeVar("F", bound=Callable[..., Any])


def _set_meta(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Record a global option on the root context, wherever on the line it was given."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value:
            ctx.find_root().meta[f"segment.{key}"] = value
        return value

    return callback


def _global_params() -> list[click.Option]:
    return [
        click.Option(
            ["--verbose", "-v"],
            is_flag=True,
            default=None,
            expose_value=False,
            is_eager=True,
            callback=_set_meta("verbose"),
            help="Show debug messages and tracebacks.",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(LOG_FORMATS),
            default=None,
            expose_value=False,
            is_eager=True,
            callback=_set_meta("log_format"),
            help="Message format: auto (Rich on a terminal, plain otherwise), plain or json.",
        ),
    ]


def with_example(help_text: str | None, example: str) -> str:
    """Help text ending with an example block that Click prints verbatim."""
    body = inspect.cleandoc(help_text or "").rstrip()
    lines = "\n".join(f"  {line}" for line in example.strip().splitlines())
    return f"{body}\n\n\b\nExample:\n{lines}"


def command(name: str | None = None, *, example: str, **kwargs: Any) -> Callable[[F], click.Command]:
    """Declare a command whose help ends with ``example``."""

    def decorator(fn: F) -> click.Command:
        cmd = click.command(name, **kwargs)(fn)
        cmd.help = with_example(cmd.help, example)
        cmd.params.extend(_global_params())
        return cmd

    return decorator


def get_reporter(ctx: click.Context | None = None) -> Reporter:
    """The reporter for this invocation, built once from the global options."""
    from segment.report import LogFormat, Reporter

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    reporter: Reporter | None = root.meta.get("segment.reporter")
    if reporter is None:
        reporter = Reporter(
            root.meta.get("segment.log_format") or LogFormat.AUTO,
            verbose=bool(root.meta.get("segment.verbose")),
        )
        reporter.install()
        root.meta["segment.reporter"] = reporter
        root.call_on_close(reporter.uninstall)
    return reporter


def settings(reference: Path | None = None) -> Settings:
    """Settings from the environment, with a ``--reference`` override."""
    from segment.config import Settings

    return Settings.from_env(reference_dir=reference)


# -- shared options (defined once) ---------------------------------------------------
out_option = click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Working folder to write outputs into (created owner-only).",
)

reference_option = click.option(
    "--reference",
    "reference",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="SEGMENT_REFERENCE",
    help="Reference pack folder (default: SEGMENT_REFERENCE or the per-user data folder).",
)


def _parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date as YYYY-MM-DD, found {value!r}") from None


as_of_option = click.option(
    "--as-of",
    "as_of",
    default=None,
    callback=_parse_date,
    metavar="YYYY-MM-DD",
    help="Run date for ages, look-back windows and caps (default: today).",
)

workdir_argument = click.argument(
    "workdir", type=click.Path(file_okay=False, exists=True, path_type=Path)
)
