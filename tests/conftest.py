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


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic demo world (sources, messy extract, reference pack), made once."""
    from segment.synth import write_demo_world

    root = tmp_path_factory.mktemp("world")
    write_demo_world(root, 400, seed=3)
    return root


@pytest.fixture
def demo(tmp_path: Path, demo_world: Path) -> dict[str, Path]:
    """The two demo campaigns over the shared demo world, with their own work/ledger/exports."""
    from segment.demo import write_demo_campaigns
    from segment.synth.extract import DEFAULT_REF_DATE

    (tmp_path / "world").symlink_to(demo_world)
    spring, fall = write_demo_campaigns(tmp_path, DEFAULT_REF_DATE)
    return {"root": tmp_path, "spring": spring, "fall": fall, "work": tmp_path / "work",
            "ledger": tmp_path / "ledger.sqlite", "exports": tmp_path / "exports"}
