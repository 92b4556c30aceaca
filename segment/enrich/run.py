"""The enrich stage: :func:`enrich_workdir` (the entry point) and :class:`EnrichStage`.

``segment enrich`` and ``segment run`` both go through :class:`EnrichStage`; with
``--engine spark`` they run its Spark twin (:class:`segment.spark.stages.SparkEnrichStage`). The plan itself is
:func:`segment.enrich.core.enrich` (lazy in, lazy out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import polars as pl

from segment import progress
from segment import workdir as wd
from segment.enrich.core import EnrichReport, EnrichTally, enrich, open_enrich_pack
from segment.log import get_logger
from segment.memory import Batch, ParquetAppender, patient_batches, table_rows
from segment.stage import Stage, StageContext

log = get_logger("enrich")


def enrich_workdir(
    workdir: Path, reference_dir: Path, *, crosswalk: Path | None = None
) -> EnrichReport:
    """Read ``geocoded.parquet``, write ``enriched.parquet`` and ``enrich-report.json``."""
    geocoded = wd.scan(workdir, wd.GEOCODED, produced_by="geocode")
    batches = patient_batches(table_rows(Path(workdir) / wd.GEOCODED), ENRICH_BYTES_PER_PATIENT)
    if len(batches) == 1:
        frame, report = enrich(geocoded, reference_dir, crosswalk=crosswalk)
        enriched = frame.collect()
        report = report.with_counts(enriched)
        wd.write_parquet(enriched, Path(workdir) / wd.ENRICHED)
    else:
        report = _enrich_batches(geocoded, reference_dir, crosswalk, Path(workdir) / wd.ENRICHED, batches)
    report = replace(report, batches=len(batches))
    wd.write_json(Path(workdir) / wd.ENRICH_REPORT, report.to_dict())
    log.info("enriched", patients=report.patients, **{
        k: v for k, v in report.sdoh_source.items()
    })
    return report


#: enrich's working set per patient (the geocoded columns in, the indicator columns out)
ENRICH_BYTES_PER_PATIENT = 2000


def _enrich_batches(geocoded: pl.LazyFrame, reference_dir: Path, crosswalk: Path | None, target: Path,
                    batches: list[Batch]) -> EnrichReport:
    """Batch by batch of patients, appended to one file; the report's counts summed."""
    report: EnrichReport | None = None
    tallies: list[EnrichTally] = []
    epack = open_enrich_pack(reference_dir)  # the pack once, not once per batch
    with ParquetAppender(target) as out:
        for batch in batches:
            progress.step("enrich", f"batch {batch.index + 1} of {batch.count}")
            frame, planned = enrich(batch.patients(geocoded), epack, crosswalk=crosswalk)
            report = report or planned
            part = frame.collect()
            tallies.append(EnrichTally.of(part, report.columns_added))
            out.append(part)
            del part
        out.close()
    assert report is not None  # at least one batch
    return report.with_tally(EnrichTally.total(tallies))


@dataclass(frozen=True)
class EnrichStage(Stage[EnrichReport]):
    """Area indicators, the need index and HP2030 gaps joined to geocoded patients (``enriched.parquet``).

    ``crosswalk``: a tract relationship file when the pack's indicators are keyed to
    another tract vintage than its tracts. ``patients``: the geocoded table ``segment
    enrich --engine spark`` reads instead of the working folder's (not the context's
    ``spark.patients``: in ``segment run`` that is the lake table ingest would read). The
    reference pack is the context's ``settings.reference_dir``; the Spark output location
    is the context's ``spark.output``.
    """

    crosswalk: Path | None = None
    patients: str | None = None
    name: ClassVar[str] = "enrich"

    def inputs(self, ctx: StageContext) -> Sequence[Path]:
        """The geocoded patients, the reference pack's manifest, and the crosswalk when given."""
        crosswalk = [self.crosswalk] if self.crosswalk is not None else []
        return [ctx.path(wd.GEOCODED), ctx.settings.reference_dir / "manifest.json", *crosswalk]

    def outputs(self, ctx: StageContext) -> Sequence[Path]:
        """``enriched.parquet`` and ``enrich-report.json``."""
        return [ctx.path(wd.ENRICHED), ctx.path(wd.ENRICH_REPORT)]

    def run(self, ctx: StageContext) -> EnrichReport:
        """Enrich the working folder with Polars (on Spark: :class:`segment.spark.stages.SparkEnrichStage`)."""
        return enrich_workdir(ctx.workdir, ctx.settings.reference_dir, crosswalk=self.crosswalk)
