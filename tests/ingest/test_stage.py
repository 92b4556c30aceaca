"""IngestStage: the stage contract for ingest (key, inputs, outputs, one code path with ingest())."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from segment.cli import cli
from segment.config import Settings
from segment.ingest import IngestStage, ingest
from segment.ingest.identity import Linkage
from segment.runstate import stage_key
from segment.schema import PHONE_TYPE, InputFormat
from segment.stage import StageContext, execute

AS_OF = dt.date(2025, 6, 1)

PATIENTS = """patient_id,first_name,last_name,birth_date,sex,phone_e164,phone_type
P1,Ann,Lee,1960-01-02,F,(617) 253-1000,cell
P2,Bob,Ray,1970-05-06,M,(402) 555-0199,
P3,No,Birth,,F,,
"""
EVENTS = """patient_id,event_type,code_system,code,event_date
P1,procedure,CPT,77067,2024-02-01
P2,procedure,NOPE,77067,2024-02-01
P9,procedure,CPT,77067,2024-02-01
"""
MAPPING = """version: 1
patients:
  columns: {id: patient_id, dob: birth_date}
"""


@dataclass(frozen=True)
class _Source:
    """A campaign ``sources`` entry as segment.campaign.model.Source gives it."""

    path: Path
    name: str | None = None
    format: InputFormat | None = None
    mapping: Path | None = None


@pytest.fixture
def extract(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clinic-patients.csv").write_text(PATIENTS, encoding="utf-8")
    (folder / "clinic-events.csv").write_text(EVENTS, encoding="utf-8")
    return [folder / "clinic-patients.csv", folder / "clinic-events.csv"]


def _context(workdir: Path) -> StageContext:
    return StageContext(workdir=workdir, as_of=AS_OF, settings=Settings.from_env())


def test_stage_declares_what_segment_run_keys_on(extract: list[Path], tmp_path: Path) -> None:
    mapping = tmp_path / "layout.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    sources = [_Source(extract[0], "clinic", InputFormat.CANONICAL), _Source(extract[1], "clinic")]
    stage = IngestStage.of_sources(sources, allow_orphan_events=True, linkage="deterministic")
    ctx = _context(tmp_path / "w")
    assert stage.name == "ingest"
    assert list(stage.inputs(ctx)) == extract
    assert [p.name for p in stage.outputs(ctx)] == [
        "patients.parquet", "events.parquet", "rejects.csv", "ingest-report.json"]
    params = stage.params(ctx)
    assert params == {
        "sources": [["clinic", InputFormat.CANONICAL, "None"], ["clinic", None, "None"]],
        "as_of": AS_OF, "allow_orphan_events": True, "linkage": Linkage.DETERMINISTIC,
    }
    assert stage.key(ctx) == stage_key("ingest", extract, params)
    # a mapping file is an input: editing it changes the key
    mapped = IngestStage.of_sources([_Source(extract[0], "clinic", mapping=mapping)])
    assert mapping in mapped.inputs(ctx)
    before = mapped.key(ctx)
    mapping.write_text(MAPPING.replace("dob", "birth"), encoding="utf-8")
    assert mapped.key(ctx) != before
    # so are the as-of date and the linkage
    assert stage.key(StageContext(workdir=ctx.workdir, as_of=AS_OF + dt.timedelta(days=1),
                                  settings=ctx.settings)) != stage.key(ctx)
    other = IngestStage.of_sources(sources, allow_orphan_events=True, linkage="probabilistic")
    assert other.key(ctx) != stage.key(ctx)


def test_stage_runs_ingest_itself(extract: list[Path], tmp_path: Path) -> None:
    stage = IngestStage.of_sources([_Source(p, "clinic") for p in extract], allow_orphan_events=True)
    result = execute(stage, _context(tmp_path / "staged"))
    direct = ingest(extract, tmp_path / "direct", as_of=AS_OF, sources=["clinic", "clinic"],
                    allow_orphan_events=True)
    assert result.workdir == tmp_path / "staged"
    assert (result.patients, result.events_written, result.events_rejected, result.reject_lines) == (
        direct.patients, direct.events_written, direct.events_rejected, direct.reject_lines) == (2, 1, 2, 3)
    for name in ("rejects.csv",):
        assert (tmp_path / "staged" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes()
    for name in ("patients.parquet", "events.parquet"):
        assert_frame_equal(pl.read_parquet(tmp_path / "staged" / name), pl.read_parquet(tmp_path / "direct" / name))
    assert stage.counts(result)["patients"] == 2


def test_row_problems_reach_rejects_as_column_and_reason(extract: list[Path], tmp_path: Path) -> None:
    ingest(extract, tmp_path / "w", as_of=AS_OF, allow_orphan_events=True)
    rejects = pl.read_csv(tmp_path / "w" / "rejects.csv", infer_schema=False)
    rows = sorted(rejects.select("column", "value", "reason", "level").iter_rows())
    assert rows == [
        ("birth_date", None, "missing birth date", "row"),
        ("code_system", "NOPE", "unknown code system", "row"),
        ("patient_id", "P9", "unknown patient (no patient record with this id)", "row"),
    ]


def test_phone_type_is_an_enum_of_phone_types(extract: list[Path], tmp_path: Path) -> None:
    ingest(extract, tmp_path / "w", as_of=AS_OF, allow_orphan_events=True)
    patients = pl.read_parquet(tmp_path / "w" / "patients.parquet")
    assert patients.schema["phone_type"] == PHONE_TYPE
    assert dict(patients.select("patient_id", pl.col("phone_type").cast(pl.String)).iter_rows()) == {
        "clinic:P1": "mobile", "clinic:P2": "unknown"}


def test_cli_ingest_goes_through_the_stage(extract: list[Path], tmp_path: Path) -> None:
    work = tmp_path / "w"
    run = CliRunner().invoke(cli, ["ingest", str(work), *map(str, extract), "--allow-orphan-events"])
    assert run.exit_code == 0, run.output
    report = json.loads((work / "ingest-report.json").read_text())
    assert report["patients"]["after_deduplication"] == 2
    assert report["reconciled"] is True
