"""The Spark twins of the geocode, enrich and evaluate stages (``--engine spark``).

Each twin is its stage with :meth:`~segment.stage.Stage.run` on Apache Spark: the same
options, inputs, outputs and content key, so ``segment run`` reuses a stage the same way
on either engine. :func:`on_spark` turns a stage into its twin (a stage without one, such
as ingest or audit, is returned as it is). The stage modules know nothing of Spark; this
module, above them, is the only place the engines meet.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from segment.enrich.core import EnrichReport
from segment.enrich.run import EnrichStage
from segment.geocode.result import GeocodeResult
from segment.geocode.run import GeocodeStage
from segment.rules.loader import using_vsac
from segment.rules.run import EvaluateReport, EvaluateStage
from segment.stage import Stage, StageContext


def _spark(ctx: StageContext) -> tuple[Any, int, Any]:
    """The session, bucket count and Spark options of a context run on Spark."""
    if ctx.spark is None:
        raise RuntimeError("a Spark stage needs a context with --engine spark")
    session, buckets = ctx.spark_session()
    return session, buckets, ctx.spark


@dataclasses.dataclass(frozen=True)
class SparkGeocodeStage(GeocodeStage):
    """:class:`~segment.geocode.run.GeocodeStage` on Spark (partitions by address, no cache)."""

    def run(self, ctx: StageContext) -> GeocodeResult:
        """Geocode the context's patients (the lake table when given) on Spark."""
        from segment.spark.geocode import geocode_spark

        session, buckets, options = _spark(ctx)
        return geocode_spark(ctx.workdir, spark=session, buckets=buckets,
                             providers=list(self.providers) if self.providers is not None else None,
                             settings=ctx.settings, patients=options.patients, out=options.output)


@dataclasses.dataclass(frozen=True)
class SparkEnrichStage(EnrichStage):
    """:class:`~segment.enrich.run.EnrichStage` on Spark."""

    def run(self, ctx: StageContext) -> EnrichReport:
        """Enrich each partition of the geocoded patients on Spark."""
        from segment.spark.enrich import enrich_spark

        session, _buckets, options = _spark(ctx)
        return enrich_spark(ctx.workdir, ctx.settings.reference_dir, spark=session, crosswalk=self.crosswalk,
                            patients=self.patients, out=options.output)


@dataclasses.dataclass(frozen=True)
class SparkEvaluateStage(EvaluateStage):
    """:class:`~segment.rules.run.EvaluateStage` on Spark, bucket by bucket."""

    def run(self, ctx: StageContext) -> EvaluateReport:
        """Evaluate every bucket of patients and events on Spark."""
        from segment.spark.evaluate import evaluate_spark

        session, buckets, options = _spark(ctx)
        with using_vsac(ctx.settings.vsac_dir):  # evaluate_spark loads the rules itself
            return evaluate_spark(ctx.workdir, self.rules, ctx.as_of, spark=session, buckets=buckets,
                                  patients=self.patients, events=options.events, out=options.output)


#: each Polars stage and its Spark twin
TWINS: dict[type[Stage[Any]], type[Stage[Any]]] = {
    GeocodeStage: SparkGeocodeStage,
    EnrichStage: SparkEnrichStage,
    EvaluateStage: SparkEvaluateStage,
}


def on_spark(stage: Stage[Any]) -> Stage[Any]:
    """``stage``'s Spark twin with the same options, or ``stage`` when it has none."""
    twin = TWINS.get(type(stage))
    if twin is None:
        return stage
    assert dataclasses.is_dataclass(stage)
    return twin(**{f.name: getattr(stage, f.name) for f in dataclasses.fields(stage)})
