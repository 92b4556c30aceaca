"""The error hierarchy: typed, expected failures that carry their context.

Library code raises these; only the CLI turns them into a one-line ``Error: ...``
message and an exit code. Messages never contain patient values (names, dates of
birth, addresses, phones, emails): they name files, rows, columns, keys and ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


class SegmentError(Exception):
    """An expected failure with a one-line, PHI-free explanation."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        rule_id: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.rule_id = rule_id
        self.key = key
        self.hint = hint

    def location(self) -> str:
        """``file:line`` (or just the file) where the problem is, or ``""``."""
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)

    def one_line(self) -> str:
        """The message as a single line, prefixed by its location."""
        parts = []
        loc = self.location()
        if loc:
            parts.append(loc)
        if self.rule_id:
            parts.append(self.rule_id)
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(SegmentError):
    """A configuration, mapping, rule or campaign file is malformed or invalid."""

    def __init__(self, message: str, *, context: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: numbered source lines around the problem, shown under the message
        self.context = context


class RulesError(ConfigError):
    """A rule or value-set file is malformed or invalid."""


class CampaignError(ConfigError):
    """A campaign file is malformed or invalid."""


class InputDataError(SegmentError):
    """An input extract cannot be read: missing file, wrong encoding, missing column."""


class ReferenceDataError(SegmentError):
    """A reference pack is missing, incomplete, tampered with or incompatible."""


class GeocodeError(SegmentError):
    """Geocoding could not run (not: an address that did not match)."""


class NetworkError(SegmentError):
    """A remote service could not be reached or answered wrongly after retries."""


class DeliveryError(SegmentError):
    """Vendor files could not be written, encrypted or delivered."""


class PrivacyError(SegmentError):
    """An action would let protected or clinical information leave where it must not."""


class LockError(SegmentError):
    """Another run holds the working folder's lock."""


class StageInputError(SegmentError):
    """A stage's input (a previous stage's output) is missing from the working folder."""


class EngineError(SegmentError):
    """The compute engine (Spark) cannot run: not installed, no Java, master unreachable."""


def invalid_value(
    key: str,
    value: object,
    valid: Iterable[object] | str,
    *,
    path: str | Path | None = None,
    line: int | None = None,
    rule_id: str | None = None,
    error: type[ConfigError] = ConfigError,
) -> ConfigError:
    """Build the one message shape for a valid-but-wrong value.

    ``rules/flu.yaml:12: flu-vaccine: key `kind`: found 'screen'; valid options are: screening, risk``
    """
    if isinstance(valid, str):
        options = valid
    else:
        options = "valid options are: " + ", ".join(str(v) for v in valid)
    return error(
        f"key `{key}`: found {value!r}; {options}",
        path=path,
        line=line,
        rule_id=rule_id,
        key=key,
    )
