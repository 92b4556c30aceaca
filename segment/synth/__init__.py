"""Synthetic data: messy patient extracts at any size and the demo world geography.

``write_extract`` writes a canonical-layout extract as two (or three) source systems
would export it; ``write_demo_world`` writes a fictional county in Census formats, an
extract whose addresses lie on its streets, and a reference pack built from them.
"""

from __future__ import annotations

from segment.synth.demo import DemoWorld, SynthSummary, synthesize, write_demo_world
from segment.synth.extract import DEFAULT_REF_DATE, ExtractFiles, write_extract
from segment.synth.world import DemoGeography, build_geography, write_geography_sources

__all__ = [
    "DEFAULT_REF_DATE",
    "DemoGeography",
    "DemoWorld",
    "ExtractFiles",
    "SynthSummary",
    "build_geography",
    "synthesize",
    "write_demo_world",
    "write_extract",
    "write_geography_sources",
]
