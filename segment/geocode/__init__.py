"""Geocoding: patient addresses to points, Census tracts, block groups and counties.

:func:`geocode` reads ``DIR/patients.parquet`` and writes ``DIR/geocoded.parquet`` (every
patient column plus ``GEOCODE_SCHEMA`` and ``geo_reason``), ``DIR/geocode-report.json``
and the cache ``DIR/geocode-cache.parquet``. Providers run in the order given; each
patient keeps the most precise result (ties: the earlier provider):

- ``source``: coordinates the extract already carries (``source_point``);
- ``offline``: TIGER address-range interpolation from the reference pack;
- ``census``: the Census Bureau batch geocoder - online, so only when asked for;
- ``zip``: the ZIP centroid (``zip_centroid``), flagged, with NO tract or block group.

Providers are objects in a registry (:mod:`segment.geocode.providers`). Work is done
once per distinct normalized address, and only for raw addresses the cache
does not already hold whole (see :mod:`segment.geocode.cache`); tract, block group and
county come from a vectorized point-in-polygon against the pack's polygons. ``street_centroid``
points get a tract too (the score says how far to trust it); ``zip_centroid`` points get
only the county, when the ZIP table carries one.
"""

from __future__ import annotations

from segment.geocode.assemble import PER_ADDRESS, TRACT_PRECISIONS
from segment.geocode.census_batch import CensusOptions
from segment.geocode.keys import ADDRESS_COLUMNS
from segment.geocode.providers import (
    DEFAULT_PROVIDERS,
    PROVIDERS,
    RANK,
    Provider,
    ProviderContext,
    parse_providers,
    register,
)
from segment.geocode.result import GeocodeResult
from segment.geocode.run import GeocodeStage, geocode

__all__ = [
    "ADDRESS_COLUMNS",
    "DEFAULT_PROVIDERS",
    "PER_ADDRESS",
    "PROVIDERS",
    "RANK",
    "TRACT_PRECISIONS",
    "CensusOptions",
    "GeocodeResult",
    "GeocodeStage",
    "Provider",
    "ProviderContext",
    "geocode",
    "parse_providers",
    "register",
]
