"""The ingest stage: ``ingest`` (the entry point) and :class:`IngestStage`.

``ingest(paths, workdir)`` reads canonical CSV/Parquet (directly or through a mapping
file), Synthea CSV exports, FHIR R4 bulk NDJSON or Bundles and OMOP CDM extracts, and
writes ``patients.parquet``, ``events.parquet``, ``rejects.csv`` and
``ingest-report.json`` into ``workdir`` (the steps: :mod:`segment.ingest.steps`).
``segment ingest`` and ``segment run`` both go through :class:`IngestStage`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from segment import workdir as wd
from segment.errors import InputDataError
from segment.ingest.detect import InputSpec
from segment.ingest.identity import IdentityOptions, Linkage
from segment.ingest.mapping import Mapping as MappingFile
from segment.ingest.mapping import load_mapping
from segment.ingest.readers.files import cleanup_temporary
from segment.ingest.results import MAX_ORPHAN_FRACTION, IngestResult
from segment.ingest.steps import IngestSettings, ingest_specs
from segment.schema import InputFormat
from segment.stage import Stage, StageContext


def input_specs(
    paths: Sequence[str | Path | InputSpec],
    *,
    input_format: InputFormat | str | None = None,
    mapping: MappingFile | str | Path | None = None,
    sources: Sequence[str | None] | None = None,
) -> tuple[InputSpec, ...]:
    """The inputs of an ingest, each with its source name, format and mapping.

    ``sources`` names the source system of each path, in order (None: derived, see
    :mod:`segment.ingest.detect`); ``input_format`` and ``mapping`` apply to every path
    that does not set its own (an :class:`InputSpec` does); the format is detected when None.
    """
    fmt = InputFormat(input_format).value if input_format else None
    if mapping is not None and not isinstance(mapping, MappingFile):
        mapping = load_mapping(mapping)
    if not paths:
        raise InputDataError("no input paths given")
    if sources is not None and len(sources) != len(paths):
        raise InputDataError(f"{len(sources)} source names for {len(paths)} paths: give one per path")
    return tuple(
        InputSpec.of(p, source=sources[i] if sources is not None else None, input_format=fmt, mapping=mapping)
        for i, p in enumerate(paths)
    )


def ingest(
    paths: Sequence[str | Path | InputSpec],
    workdir: str | Path,
    *,
    input_format: InputFormat | str | None = None,
    mapping: MappingFile | str | Path | None = None,
    as_of: dt.date | None = None,
    sources: Sequence[str | None] | None = None,
    max_orphan_fraction: float = MAX_ORPHAN_FRACTION,
    allow_orphan_events: bool = False,
    identity: IdentityOptions | None = None,
    memory_budget: int | None = None,
) -> IngestResult:
    """Load, validate, normalize and de-duplicate extracts into the working folder ``workdir``.

    ``paths`` are files or folders (or :class:`InputSpec` objects carrying their own source
    name, format and mapping); ``sources``, ``input_format`` and ``mapping``: see
    :func:`input_specs`. ``as_of`` (default today) is the date after which an event date
    is in the future. Raises :class:`InputDataError` when more than ``max_orphan_fraction``
    of the event rows point at no patient, unless ``allow_orphan_events``. ``identity``
    chooses how records are matched (:mod:`segment.ingest.identity`; default ``auto``).
    ``memory_budget`` (bytes; default ``SEGMENT_MEMORY_GB``, see :mod:`segment.memory`): events
    that would not fit it are processed in chunks (:mod:`segment.ingest.eventbatches`), with
    the same outputs.
    """
    started = time.perf_counter()
    settings = IngestSettings(as_of or dt.date.today(), max_orphan_fraction, allow_orphan_events,
                              (identity or IdentityOptions()).checked(), memory_budget)
    specs = list(input_specs(paths, input_format=input_format, mapping=mapping, sources=sources))
    try:
        # the events are read and looked up on a second thread while the patients are
        # normalized and merged (Polars releases the GIL); leaving the block waits for it
        with ThreadPoolExecutor(1, thread_name_prefix="segment-events") as pool:
            return ingest_specs(specs, Path(workdir), settings, started, pool)
    finally:
        cleanup_temporary()  # decompressed copies of .gz inputs


class SourceLike(Protocol):
    """A campaign's ``sources`` entry (:class:`segment.campaign.model.Source`)."""

    @property
    def path(self) -> Path: ...  # noqa: D102
    @property
    def name(self) -> str | None: ...  # noqa: D102
    @property
    def format(self) -> Any: ...  # noqa: D102
    @property
    def mapping(self) -> Path | None: ...  # noqa: D102


@dataclass(frozen=True)
class IngestStage(Stage[IngestResult]):
    """``ingest`` as a pipeline stage: the extracts, their mapping files and the identity options.

    ``sources`` is what names the inputs in the stage key: one (name, format, mapping)
    triple per source, as the campaign's ``sources`` give them.
    """

    name: ClassVar[str] = "ingest"

    specs: tuple[InputSpec, ...]
    sources: tuple[tuple[str | None, Any, str], ...] = ()
    mapping_files: tuple[Path, ...] = ()
    allow_orphan_events: bool = False
    max_orphan_fraction: float = MAX_ORPHAN_FRACTION
    identity: IdentityOptions = field(default_factory=IdentityOptions)

    @classmethod
    def of_sources(
        cls, sources: Sequence[SourceLike], *, allow_orphan_events: bool = False,
        linkage: str = Linkage.AUTO.value, linkage_model: Path | None = None,
    ) -> IngestStage:
        """The stage for a campaign's ``sources`` (each with its own name, format and mapping)."""
        specs = tuple(
            InputSpec.of(Path(s.path), source=s.name, input_format=s.format,
                         mapping=load_mapping(s.mapping) if s.mapping else None)
            for s in sources
        )
        return cls(
            specs, tuple((s.name, s.format, str(s.mapping)) for s in sources),
            tuple(sorted({Path(s.mapping) for s in sources if s.mapping})),
            allow_orphan_events, identity=IdentityOptions(Linkage(linkage), linkage_model),
        )

    def inputs(self, ctx: StageContext) -> Sequence[Path]:
        """The extracts, their mapping files and a pinned linkage model."""
        model = [self.identity.model] if self.identity.model else []
        return [*(s.path for s in self.specs), *self.mapping_files, *model]

    def outputs(self, ctx: StageContext) -> Sequence[Path]:
        """patients.parquet, events.parquet, rejects.csv, ingest-report.json."""
        return [ctx.path(wd.PATIENTS), ctx.path(wd.EVENTS), ctx.path(wd.REJECTS), ctx.path(wd.INGEST_REPORT)]

    def params(self, ctx: StageContext) -> Mapping[str, Any]:
        """The sources' names, formats and mappings, the as-of date, the orphan policy, the linkage."""
        return {"sources": [list(s) for s in self.sources], "as_of": ctx.as_of,
                "allow_orphan_events": self.allow_orphan_events, "linkage": self.identity.linkage}

    def run(self, ctx: StageContext) -> IngestResult:
        """Ingest into the context's working folder."""
        return ingest(self.specs, ctx.workdir, as_of=ctx.as_of, max_orphan_fraction=self.max_orphan_fraction,
                      allow_orphan_events=self.allow_orphan_events, identity=self.identity)
