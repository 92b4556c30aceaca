"""The engine options (``--engine``, ``--master``, ``--buckets``, table URIs), defined once.

``evaluate``, ``geocode`` and ``enrich`` take all of them, ``run`` the engine, master,
buckets and input tables. Only Click lives here; the session comes from
:mod:`segment.spark.session`, imported when ``--engine spark`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from segment.stage import SparkRun, Stage

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    from pyspark.sql import SparkSession

    from segment.config import Settings
    from segment.stage import StageContext

ENGINES = ("polars", "spark")
F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=Stage[Any])


@dataclass(frozen=True)
class EngineChoice(SparkRun):
    """What the engine options said: the engine, and the Spark options it takes."""

    engine: str = "polars"

    @property
    def spark(self) -> bool:
        """True for ``--engine spark``."""
        return self.engine == "spark"

    def check(self) -> EngineChoice:
        """A usage error when a spark-only option is given without ``--engine spark``."""
        if not self.spark:
            given = [flag for flag, value in (("--master", self.master), ("--buckets", self.buckets),
                                              ("--patients", self.patients), ("--events", self.events),
                                              ("--output", self.output)) if value is not None]
            if given:
                raise click.UsageError(f"{', '.join(given)} need(s) --engine spark")
        return self

    def session(self, campaign: Any | None = None) -> tuple[SparkSession, int]:
        """The Spark session and bucket count (options < campaign ``spark:`` block < environment)."""
        from segment.spark.session import start_session

        return start_session(self, campaign)


    def stage(self, stage: S) -> S:
        """``stage`` for this engine: with ``--engine spark``, its Spark twin (:mod:`segment.spark.stages`)."""
        if not self.spark:
            return stage
        from segment.spark.stages import on_spark

        return cast("S", on_spark(stage))

    def context(self, workdir: Path, *, as_of: dt.date | None = None, settings: Settings | None = None,
                campaign: Any | None = None) -> StageContext:
        """The :class:`~segment.stage.StageContext` a single-stage command runs its stage with.

        With ``--engine spark`` it carries the Spark options and starts the session when the
        stage first asks for it.
        """
        import datetime as dt

        from segment.config import Settings
        from segment.stage import StageContext

        return StageContext(workdir=workdir, as_of=as_of or dt.date.today(),
                            settings=settings or Settings.from_env(), spark=self if self.spark else None,
                            start_spark=(lambda: self.session(campaign)) if self.spark else None)


def engine_options(*, tables: tuple[str, ...] = ("patients",), output: bool = True) -> Callable[[F], F]:
    """Add ``--engine``, ``--master``, ``--buckets`` and the table URI options to a command."""
    described = {
        "patients": "Patient table for --engine spark: a path or URI Spark reads (Parquet, "
                    "delta:URI, table:NAME). Default: the working folder's file.",
        "events": "Event table for --engine spark (as --patients). Default: WORKDIR/events.parquet.",
    }

    def decorator(fn: F) -> F:
        if output:
            fn = click.option("--output", "output", default=None, metavar="URI",
                              help="Where --engine spark writes its Parquet output: a local folder "
                              "(one owner-only file, default WORKDIR) or a URI (a Parquet dataset).")(fn)
        for name in reversed(tables):
            fn = click.option(f"--{name}", f"{name}_uri", default=None, metavar="URI", help=described[name])(fn)
        fn = click.option("--buckets", type=click.IntRange(min=1), default=None, metavar="N",
                          help="Patient buckets (Spark tasks), each run by one Polars call "
                          "(default: SEGMENT_SPARK_BUCKETS, else 2 per core).")(fn)
        fn = click.option("--master", default=None, metavar="URL",
                          help="Spark master: local[*] (default), spark://HOST:PORT, yarn, "
                          "k8s://... (default: SEGMENT_SPARK_MASTER).")(fn)
        fn = click.option("--engine", type=click.Choice(ENGINES), default="polars", show_default=True,
                          help="polars: this machine; spark: Apache Spark (pip install "
                          "'segment[spark]', docs/spark.md). Both give identical rows.")(fn)
        return fn

    return decorator


def engine_choice(engine: str, master: str | None, buckets: int | None, patients: str | None = None,
                  events: str | None = None, output: str | None = None) -> EngineChoice:
    """The checked :class:`EngineChoice` of a command's options."""
    return EngineChoice(master=master, buckets=buckets, patients=patients, events=events, output=output,
                        engine=engine).check()
