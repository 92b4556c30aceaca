"""One option vocabulary for every command: WORKDIR first, multi-value options, old spellings.

* The working folder is the first positional ``WORKDIR`` of every stage command (as the
  database is the first argument of every sqlite-utils command). The older spellings
  ``--out DIR`` (ingest) and ``--from DIR`` (audit, export) still work for one release: they
  are rewritten to the positional before Click parses the line, are hidden from the help,
  and print a one-line notice naming the new form.
* A :class:`MultiValueOption` takes several values after one flag *and* repeated flags
  (``--indicators oeps/*.csv --indicators acs.csv``), so a shell glob works.

Only Click lives here; nothing is imported from the stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

#: ``ctx.meta`` key holding the deprecation notices to print when the command runs
NOTICES = "segment.deprecation_notices"


class MultiValueOption(click.Option):
    """A repeatable option that also takes several values after one flag.

    ``--indicators a.csv b.csv --indicators c.csv`` gives ``(a.csv, b.csv, c.csv)``. The
    values after the flag run up to the next word that starts with ``-``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class SegmentCommand(click.Command):
    """A command that understands :class:`MultiValueOption` and deprecated option names.

    ``renamed`` maps an old option to ``None`` (its value becomes the first positional,
    ``WORKDIR``) or to the new option's name; the notice names the new form.
    """

    def __init__(
        self,
        *args: Any,
        renamed: Mapping[str, str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.renamed: dict[str, str | None] = dict(renamed or {})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Rewrite old spellings and spread multi-value options, then parse as usual."""
        args = self._rewrite_renamed(ctx, args)
        args = spread_multi_values(args, self._multi_value_flags())
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Print the deprecation notices (through the reporter, so JSON logs stay JSON), run."""
        notices: list[str] = ctx.meta.get(NOTICES, [])
        if notices:
            from segment.cli.options import get_reporter

            reporter = get_reporter(ctx)
            for notice in notices:
                reporter.warning("cli", notice)
        return super().invoke(ctx)

    # -- helpers ------------------------------------------------------------------
    def _multi_value_flags(self) -> set[str]:
        return {
            opt for p in self.params if isinstance(p, MultiValueOption) for opt in p.opts
        }

    def _rewrite_renamed(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not self.renamed:
            return args
        front: list[str] = []
        out: list[str] = []
        notices: list[str] = ctx.meta.setdefault(NOTICES, [])
        i = 0
        while i < len(args):
            word = args[i]
            if word == "--":
                out.extend(args[i:])
                break
            name, eq, inline = word.partition("=")
            if name not in self.renamed:
                out.append(word)
                i += 1
                continue
            if eq:
                value, i = inline, i + 1
            elif i + 1 < len(args):
                value, i = args[i + 1], i + 2
            else:
                raise click.UsageError(f"Option '{name}' requires an argument.", ctx)
            new = self.renamed[name]
            if new is None:
                if front:
                    raise click.UsageError(f"the working folder is given twice ({name})", ctx)
                front.append(value)
                usage = " ".join([ctx.command_path, *self.collect_usage_pieces(ctx)])
                notices.append(
                    f"`{name} DIR` is deprecated and will be removed in the next release: give "
                    f"the working folder as the first argument: `{usage}`"
                )
            else:
                out.extend([new, value])
                notices.append(
                    f"`{name}` is deprecated and will be removed in the next release: use `{new}`"
                )
        return front + out


def spread_multi_values(args: Sequence[str], flags: set[str]) -> list[str]:
    """``--x a b --y`` becomes ``--x a --x b --y`` for every flag in ``flags``.

    Values run up to the next word starting with ``-``; after ``--`` every word is
    positional and nothing is rewritten. ``--x=a`` takes exactly one value.
    """
    out: list[str] = []
    current: str | None = None
    taken = False
    for i, word in enumerate(args):
        if word == "--":
            out.extend(args[i:])
            break
        if word.startswith("-") and word != "-":
            current, taken = (word if word in flags else None), False
        elif current is not None:
            if taken:
                out.append(current)
            taken = True
        out.append(word)
    return out
