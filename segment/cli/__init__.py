"""The command line: parse options, call one library function, hand results to report.

Commands live in one module per stage in this package; each module lists its commands
in ``COMMANDS`` and is discovered here, so the stages never edit a shared file.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
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
                f"unexpected internal error ({type(exc).__name__}); "
                "rerun with --verbose for the traceback",
                exc=exc,
            )
            ctx.exit(1)


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
