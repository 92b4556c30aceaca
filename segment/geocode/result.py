"""The geocode stage's report: counts for ``geocode-report.json`` and the CLI table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from segment.geocode.assemble import count
from segment.schema import GeoPrecision


@dataclass(frozen=True)
class GeocodeResult:
    """What a geocode run did: counts for the report and the CLI table."""

    output: Path
    patients: int
    addresses: int
    providers: tuple[str, ...]
    by_precision: dict[str, int]
    by_reason: dict[str, int]
    by_provider: dict[str, int]
    geocoded_new: dict[str, int]
    from_cache: dict[str, int]
    pack: dict[str, Any] = field(default_factory=dict)
    #: batches of patients joined to their results one at a time (see :mod:`segment.memory`)
    batches: int = 1

    @classmethod
    def of(cls, output: Path, counts: pl.DataFrame, *, addresses: int, providers: tuple[str, ...],
           geocoded_new: dict[str, int], from_cache: dict[str, int], pack: Any) -> GeocodeResult:
        """The report of a run from its table of patients per precision, reason and provider."""
        return cls(
            output=output,
            patients=int(counts["len"].sum()) if counts.height else 0,
            addresses=addresses,
            providers=providers,
            by_precision=count(counts, "geo_precision", [p.value for p in GeoPrecision]),
            by_reason=count(counts.filter(pl.col("geo_reason").is_not_null()), "geo_reason"),
            by_provider=count(counts, "_provider"),
            geocoded_new=geocoded_new,
            from_cache=from_cache,
            pack={"name": pack.name, "id": pack.pack_id, "tract_vintage": pack.tract_vintage,
                  "synthetic": pack.manifest.synthetic},
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``geocode-report.json`` content."""
        return {
            "patients": self.patients,
            "addresses": self.addresses,
            "providers": list(self.providers),
            "by_precision": self.by_precision,
            "by_reason": self.by_reason,
            "by_provider": self.by_provider,
            "geocoded_new": self.geocoded_new,
            "geocoded_new_total": sum(self.geocoded_new.values()),
            "from_cache": self.from_cache,
            "pack": self.pack,
            "tract_policy": "zip_centroid rows carry no tract_geoid or block_group_geoid; "
                            "county_fips only when the ZIP table gives one",
        }
