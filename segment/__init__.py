"""segment: patient extracts to explainable, privacy-safe campaign segment lists."""

from __future__ import annotations

__version__ = "0.1.0"
