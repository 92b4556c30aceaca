"""Ingest within a memory budget: events in chunks and patient ranges give the unbatched outputs."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import segment.ingest.patientbatches as patientbatches
import segment.ingest.steps as steps
from segment.ingest import ingest
from segment.ingest.eventbatches import EventsPlan, estimated_rows, plan_events
from segment.ingest.identity import IdentityOptions, Linkage
from segment.ingest.readers import RawPart
from segment.synth import write_extract

TODAY = dt.date(2026, 2, 1)
DETERMINISTIC = IdentityOptions(linkage=Linkage.DETERMINISTIC)


def _messy_extract(folder: Path) -> list[Path]:
    """A generated extract of 2,500 people plus a second events file of the same source with
    ragged, blank, quoted, duplicated, orphan and bad rows (several events parts)."""
    write_extract(folder, 2500, seed=5)
    events = (folder / "ehr-events.csv").read_text().splitlines()
    header, rows = events[0], events[1:]
    who = rows[0].split(",")[0]
    extra = [header, *rows[:40], *rows[:40]]  # exact duplicates of rows in the first file too
    extra += [
        rows[7].rsplit(",", 1)[0],                       # cut off
        rows[8] + ",surplus",                           # one field too many
        "",                                             # blank line
        'NOBODY,condition,ICD10CM,E11.9,2020-01-01,,',  # orphan
        rows[9].replace(",20", ",19", 1).replace("-", "/"),  # another date layout
        f"{who},procedure,CPT,77067,2031-01-01,,",  # future date
        f"{who},observation,LOINC,4548-4,2019-05-05,not-a-number,%",
        f"{who},condition,WHO,X1,2019-05-05,,",  # unknown code system
        # the same test on one day: written in the order of unit, then value
        f"{who},observation,LOINC,4548-4,2019-06-06,7.1,%",
        f"{who},observation,LOINC,4548-4,2019-06-06,6.5,mmol/mol",
        f"{who},observation,LOINC,4548-4,2019-06-06,5.0,%",
    ]
    (folder / "ehr-events-2.csv").write_text("\n".join(extra) + "\n")  # no quotes: checked beside the read
    quoted = [header, f'{who},procedure,CPT,"77067",2018-03-03,,', f'"{who}",condition,ICD10CM,E11.9,2018-03-04',
              *rows[20:30]]
    (folder / "ehr-events-3.csv").write_text("\n".join(quoted) + "\n")  # quotes: checked before the read
    return sorted(folder.glob("*.csv"))


def _ingest(files: list[Path], out: Path, **options: Any) -> None:
    sources = ["crm" if f.name.startswith("crm") else "ehr" for f in files]
    ingest(files, out, as_of=TODAY, identity=DETERMINISTIC, allow_orphan_events=True, sources=sources, **options)


def _outputs(workdir: Path) -> dict[str, Any]:
    report = json.loads((workdir / "ingest-report.json").read_text())
    report.pop("created")
    report["identity"].pop("seconds", None)
    return {
        "patients": pl.read_parquet(workdir / "patients.parquet"),
        "events": pl.read_parquet(workdir / "events.parquet"),
        "rejects": (workdir / "rejects.csv").read_bytes(),
        "report": report,
    }


def _assert_same(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert_frame_equal(one["patients"], other["patients"])
    assert_frame_equal(one["events"], other["events"])
    assert one["rejects"] == other["rejects"]
    assert one["report"] == other["report"]


def test_a_tiny_budget_gives_the_unbatched_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _messy_extract(tmp_path / "in")
    _ingest(files, tmp_path / "whole")

    plans: list[EventsPlan] = []
    batched = steps.write_events_batched

    def spy(*args: Any) -> Any:
        plans.append(args[-1])
        return batched(*args)

    monkeypatch.setattr(steps, "write_events_batched", spy)
    chunks: list[int] = []
    concat = patientbatches.NormalizedRecords.concat

    def count(cls: type, pieces: list[patientbatches.NormalizedRecords]) -> patientbatches.NormalizedRecords:
        chunks.append(len(pieces))
        return concat(pieces)

    monkeypatch.setattr(patientbatches.NormalizedRecords, "concat", classmethod(count))
    merges: list[Any] = []
    by_range = steps.merge_spilled

    def spy_merge(*args: Any) -> Any:
        merges.append(by_range(*args))
        return merges[-1]

    monkeypatch.setattr(steps, "merge_spilled", spy_merge)
    # 300 kB: chunks of 1,000 rows and ranges of ~600 rows for ~55k event rows; the ~3,400
    # patient records normalized 1,000 at a time
    _ingest(files, tmp_path / "tiny", memory_budget=300_000)
    assert len(plans) == 1 and plans[0].chunk_rows == 1000
    assert len(chunks) == 1 and chunks[0] > 1, chunks
    assert len(merges) == 1 and merges[0].ranges > 1  # the records merged by range of patient ids
    tiny = _outputs(tmp_path / "tiny")
    whole = _outputs(tmp_path / "whole")
    assert tiny["report"]["reconciled"] is True
    reasons = set(tiny["report"]["problems_by_reason"])
    assert tiny["events"].height > 40_000 and {  # the messy rows are there
        "row has 6 fields, the header has 7 (cut off or misaligned)", "event date in the future",
        "row has 5 fields, the header has 7 (cut off or misaligned)",
        "unknown code system", "not a number", "unknown patient (no patient record with this id)",
    } <= reasons, reasons
    _assert_same(tiny, whole)
    # nothing spilled is left behind, and the outputs are owner-only
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert stat.S_IMODE((tmp_path / "tiny" / "events.parquet").stat().st_mode) == 0o600


def test_real_layouts_in_chunks(reference_data: Path, tmp_path: Path) -> None:
    """OMOP (a row may give two events: read whole), Synthea with claims, FHIR Bundles."""
    for sample in ("samples/omop/eunomia_synthea27nj_cdm54/csv",
                   "samples/synthea_csv/synthea_v3x_system_uri_sarabuzzi_ma_112p",
                   "samples/fhir_r4/synthea_bundles_jijones12_2024_ma"):
        name = Path(sample).name
        ingest([reference_data / sample], tmp_path / name / "whole", as_of=TODAY, allow_orphan_events=True)
        ingest([reference_data / sample], tmp_path / name / "tiny", as_of=TODAY, allow_orphan_events=True,
               memory_budget=20_000)
        _assert_same(_outputs(tmp_path / name / "tiny"), _outputs(tmp_path / name / "whole"))


def test_the_plan_follows_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "ehr-events.csv"
    line = "E0000001,condition,ICD10CM,E11.9,2020-01-01,,\n"
    path.write_text("patient_id,event_type,code_system,code,event_date,value,unit\n" + line * 50_000)
    part = RawPart("events", str(path), "ehr", pl.scan_csv(path))
    assert abs(estimated_rows(part) - 50_001) < 500
    assert plan_events([part], 8 * 2**30) is None  # fits: one pass, in memory
    plan = plan_events([part], 2_000_000)
    assert plan is not None and plan.chunk_rows == 2_500  # 1 MB for chunks of 400 bytes a row
    frame = RawPart("events", "bundle.ndjson", "fhir", pl.LazyFrame({"patient_id": ["a"] * 321}))
    assert estimated_rows(frame) == 321


def test_the_budget_given_to_ingest_bounds_the_identity_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ingest(memory_budget=...)` reaches the scoring's DuckDB, not only the Polars chunks."""
    from segment.ingest.identity import model as mdl
    from segment.ingest.identity import store

    write_extract(tmp_path / "in", 600, seed=2)
    files = sorted((tmp_path / "in").glob("*-patients.csv"))
    limits: list[str] = []
    connect = mdl.connection

    shares: list[float] = []

    def spy(spill: Path | None = None, budget: int | None = None, share: float = mdl.DUCKDB_SHARE) -> Any:
        con = connect(spill, budget, share)
        limits.append(con.sql("SELECT current_setting('memory_limit')").fetchone()[0])
        shares.append(share)
        return con

    monkeypatch.setattr(mdl, "connection", spy)
    monkeypatch.setenv("SEGMENT_MEMORY_GB", "8")
    ingest(files, tmp_path / "work", as_of=TODAY, identity=IdentityOptions(linkage=Linkage.PROBABILISTIC),
           memory_budget=2 * 1024**3)
    # 60% of the 2 GiB given, not of the 8 GiB in the environment
    assert limits and all(limit == "1.1 GiB" for limit in limits), limits
    # a tiny budget still leaves DuckDB its working minimum (it spills) instead of failing
    limits.clear()
    chunks: list[list[str]] = []
    rows_of = store.linkage_rows

    def spy_rows(records: pl.DataFrame) -> pl.DataFrame:
        chunks.append(records.columns)
        return rows_of(records)

    monkeypatch.setattr(store, "linkage_rows", spy_rows)
    ingest(files, tmp_path / "tiny", as_of=TODAY, identity=IdentityOptions(linkage=Linkage.PROBABILISTIC),
           memory_budget=300_000)
    assert limits and all(limit == "256.0 MiB" for limit in limits), limits
    # spilled records leave DuckDB a larger share of the budget: Polars holds little meanwhile
    assert shares == [mdl.DUCKDB_SHARE, mdl.DUCKDB_SPILLED_SHARE] and mdl.DUCKDB_SPILLED_SHARE > mdl.DUCKDB_SHARE
    # the records were spilled and merged by range; the linkage frame was built from the spilled
    # chunks' linkage columns alone (several chunks: test_identity_store), and the patients are
    # the ones the in-memory merge gave
    assert chunks and all("race" not in c and "first_name" in c for c in chunks), chunks
    _assert_same(_outputs(tmp_path / "tiny"), _outputs(tmp_path / "work"))


def test_ids_kept_from_the_last_ingest_survive_the_merge_by_range(tmp_path: Path) -> None:
    """A second ingest into the same folder keeps the first one's patient ids (crm:...) where
    a new source ordered first (ehr) joins their clusters, merged in memory or by range."""
    crm = [f for f in _messy_extract(tmp_path / "in") if f.name.startswith("crm")]
    files = [f for f in _messy_extract(tmp_path / "in") if f not in crm] + crm  # ehr first: its ids would win
    for name in ("whole", "tiny"):
        _ingest(crm, tmp_path / name)
    first = pl.read_parquet(tmp_path / "whole" / "patients.parquet")["patient_id"]
    _ingest(files, tmp_path / "whole")
    _ingest(files, tmp_path / "tiny", memory_budget=300_000)
    whole, tiny = _outputs(tmp_path / "whole"), _outputs(tmp_path / "tiny")
    _assert_same(tiny, whole)
    ids = whole["patients"]["patient_id"]
    kept = ids.is_in(first.implode()).sum()
    assert kept > 1000 and ids.str.starts_with("ehr:").sum() > 100  # both rules at work
