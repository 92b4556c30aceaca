"""Problems found in a campaign file: located one by one, reported all together.

A check builds each problem with :class:`Where` (the file, and the raw YAML for line
numbers) in the one message shape: file, line, key, the value found and what is valid.
:func:`raise_problems` raises nothing for no problem, the problem itself for one, and
:class:`CampaignProblems` for several: its message is the first problem's, and the list of
all of them (``… and N more`` past :data:`SHOWN`) is shown under it, as ``segment rules
check`` lists a rules folder's problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from segment.config import LineDict, key_line
from segment.errors import CampaignError, ConfigError, PrivacyError, SegmentError, invalid_value

#: problems listed under the message before "… and N more"
SHOWN = 20


@dataclass(frozen=True)
class Where:
    """The campaign file being checked: its path, and its raw YAML for line numbers."""

    raw: LineDict
    path: Path

    def line(self, *keys: str | int) -> int | None:
        """The line of the deepest of ``keys`` present in the file."""
        return key_line(self.raw, *keys)

    def problem(self, message: str, *keys: str | int, key: str, privacy: bool = False) -> SegmentError:
        """A :class:`CampaignError` (or, with ``privacy``, a :class:`PrivacyError`) at ``keys``'s line."""
        error = PrivacyError if privacy else CampaignError
        return error(message, path=self.path, line=self.line(*keys), key=key)

    def invalid(self, key: str, value: object, valid: Iterable[object] | str, *keys: str | int) -> ConfigError:
        """``key `k`: found 'v'; valid options are: …`` at ``keys``'s line."""
        return invalid_value(key, value, valid, path=self.path, line=self.line(*keys), error=CampaignError)


def listing(problems: Sequence[SegmentError], shown: int = SHOWN) -> str:
    """One indented line per problem, the list cut at ``shown`` with ``… and N more``."""
    lines = [f"  {p.one_line()}" for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"  … and {len(problems) - shown} more")
    return "\n".join(lines)


class CampaignProblems(CampaignError):
    """Several problems in one campaign file; :attr:`problems` holds each, located."""

    def __init__(self, problems: Sequence[SegmentError]) -> None:
        first = problems[0]
        more = len(problems) - 1
        super().__init__(
            first.message, path=first.path, line=first.line, key=first.key,
            hint=f"and {more} more problem{'s' if more != 1 else ''}, all listed below",
            context=listing(problems),
        )
        self.problems = tuple(problems)


class CampaignPrivacyProblems(CampaignProblems, PrivacyError):
    """Several problems, at least one of which would let protected information leave."""


def raise_problems(problems: Sequence[SegmentError]) -> None:
    """Raise the one problem, or all of them as :class:`CampaignProblems`; nothing when none."""
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0]
    if any(isinstance(p, PrivacyError) for p in problems):
        raise CampaignPrivacyProblems(problems)
    raise CampaignProblems(problems)
