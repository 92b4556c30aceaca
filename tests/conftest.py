"""Shared fixtures: the one way tests find ../shared/reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _find_reference() -> Path | None:
    env = os.environ.get("SEGMENT_TEST_DATA", "").strip()
    candidates = [Path(env)] if env else []
    candidates.append(PROJECT_ROOT.parent / "shared" / "reference")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The real public reference data (TIGER, OEPS, Synthea, HP2030), read in place.

    Skips with a clear reason when absent; CI sets SEGMENT_REQUIRE_TEST_DATA=1 so
    that a missing folder fails instead of silently skipping.
    """
    found = _find_reference()
    if found is None:
        reason = (
            "reference data not found: expected ../shared/reference beside the project "
            "root, or a folder named by SEGMENT_TEST_DATA"
        )
        if os.environ.get("SEGMENT_REQUIRE_TEST_DATA"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found
