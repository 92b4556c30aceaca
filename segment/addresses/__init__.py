"""Postal addresses: USPS Publication 28 tables and vectorized parsing and normalization.

A bottom-layer package (it imports no pipeline stage): ingest uses it to compare and
clean addresses, geocode to parse them into street keys for TIGER ranges.
"""

from __future__ import annotations
