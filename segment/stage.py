"""The stage contract: what every pipeline stage declares and how it is run.

A stage (ingest, geocode, enrich, evaluate, audit, export) is an object holding its own
options and answering, for one :class:`StageContext` (the working folder, the as-of date,
the settings and the engine):

- :meth:`Stage.inputs` and :meth:`Stage.params`: the files it reads and the settings that
  change its result; together with segment's version they make its content key
  (:meth:`Stage.key`), which decides whether an earlier result can be reused;
- :meth:`Stage.outputs`: the files it writes (checked byte for byte before a reuse);
- :meth:`Stage.run`: does the work and returns a typed report (a dataclass).

``segment run`` (:mod:`segment.pipeline`) and each single-stage command (``segment
geocode`` and so on) build the same objects and call :func:`execute`, so there is one code
path. Each stage's object and public entry function live in ``segment/<stage>/run.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from segment.config import Settings

R = TypeVar("R")


@dataclass(frozen=True)
class SparkRun:
    """``--engine spark``: where Spark runs and which tables it reads and writes.

    ``patients``/``events``: canonical lake tables (a path or URI Spark reads) that replace
    the working folder's files; for ``segment run``, ``patients`` set means ingest is skipped.
    ``output``: where a single-stage command writes its Parquet (default the working folder).
    """

    master: str | None = None
    buckets: int | None = None
    patients: str | None = None
    events: str | None = None
    output: str | None = None

    @property
    def lake(self) -> bool:
        """True when the run reads canonical lake tables instead of ingesting sources."""
        return self.patients is not None


@dataclass
class StageContext:
    """What every stage of one run shares: where, as of when, with which settings and engine.

    ``spark`` set means geocode, enrich and evaluate run on Apache Spark; the session is
    started by the first stage that needs it (:meth:`spark_session`, through ``start_spark``,
    which the command line or :mod:`segment.pipeline` supplies), so a run whose Spark stages
    are all reused starts no JVM.
    """

    workdir: Path
    as_of: dt.date = field(default_factory=dt.date.today)
    settings: Settings = field(default_factory=Settings.from_env)
    spark: SparkRun | None = None
    #: the run id (`segment run`: the first 12 hex of the run's content key); "" outside a run
    run_id: str = ""
    #: starts the Spark session: returns (session, bucket count); called once
    start_spark: Callable[[], tuple[Any, int]] | None = field(default=None, repr=False)
    _session: list[tuple[Any, int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)  # a str from a Python caller

    def path(self, name: str) -> Path:
        """A file in the working folder."""
        return self.workdir / name

    def spark_session(self) -> tuple[Any, int]:
        """The Spark session and bucket count, started on first use."""
        if self.spark is None or self.start_spark is None:
            raise RuntimeError("spark_session() on a context without --engine spark")
        if not self._session:
            self._session.append(self.start_spark())
        return self._session[0]


def report_counts(report: Any) -> dict[str, int | float]:
    """The numeric figures of a stage report (a dataclass or a mapping), for the run log.

    Counts only, never values: booleans and anything that is not a number are left out.
    """
    if report is None:
        return {}
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        items = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    elif isinstance(report, Mapping):
        items = dict(report)
    else:
        items = {k: v for k, v in vars(report).items() if not k.startswith("_")}
    return {k: v for k, v in items.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class Stage(ABC, Generic[R]):
    """One pipeline stage: declared inputs, outputs and settings, a content key, a typed report.

    Subclasses are small frozen dataclasses holding the stage's own options (providers,
    rules folder, campaign…) and set :attr:`name`. Defaults: no inputs, no params, not
    reusable unless :attr:`cacheable`.
    """

    #: the stage's name in logs, the run log and ``.stage-hashes.json``
    name: ClassVar[str]
    #: whether an earlier result with the same key and intact outputs may be reused
    cacheable: ClassVar[bool] = True
    #: record the content key after the whole run instead of right after the stage (the
    #: audit reads the ledger, which export changes after it)
    record_after_run: ClassVar[bool] = False

    def inputs(self, ctx: StageContext) -> Sequence[Path]:
        """Files (or folders) whose content the result depends on."""
        return ()

    def outputs(self, ctx: StageContext) -> Sequence[Path]:
        """Files the stage writes (all must exist after a run for a later reuse)."""
        return ()

    def params(self, ctx: StageContext) -> Mapping[str, Any]:
        """Settings that change the result (each rendered with ``str``)."""
        return {}

    def key(self, ctx: StageContext) -> str:
        """The content key: changes when an input, a param or segment's version changes."""
        from segment.runstate import stage_key

        return stage_key(self.name, self.inputs(ctx), self.params(ctx))

    @abstractmethod
    def run(self, ctx: StageContext) -> R:
        """Do the work; return the stage's report."""

    def counts(self, report: R) -> dict[str, Any]:
        """The figures of a report for the run log and the run summary."""
        return report_counts(report)

    def status(self, report: R) -> str:
        """How the run went, for the run log: ``ran`` unless the stage says otherwise."""
        return "ran"

    def reused(self, ctx: StageContext) -> dict[str, Any] | None:
        """Counts of a reusable earlier result, or None when it cannot be reused after all."""
        return {}


def execute(stage: Stage[R], ctx: StageContext) -> R:
    """Run one stage now, without reuse (the single-stage commands).

    First, temporary files a killed process left in the working folder are removed (only
    those naming a process that is gone: a single-stage command holds no run lock), as
    ``segment run`` does before its stages. A bad ``SEGMENT_MEMORY_GB`` is refused here,
    also for a stage that never reads it (the spark engine, ingest of a small extract).
    """
    from segment.memory import memory_budget_bytes
    from segment.workdir import remove_stale_temp_files

    memory_budget_bytes()
    remove_stale_temp_files(ctx.workdir, owned_only=True)
    return stage.run(ctx)


#: a callable building a stage for a context: how :mod:`segment.pipeline` lists a run
StageFactory = Callable[[StageContext], Stage[Any]]
