"""EvaluateStage: what it declares for `segment run`, and that it runs the same evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment.config import Settings
from segment.errors import RulesError
from segment.rules import EvaluateStage, evaluate
from segment.stage import StageContext, execute
from segment.workdir import ELIGIBILITY, ENRICHED, EVALUATE_REPORT, EVENTS, PATIENTS

from .helpers import MINI_RULE, D, events, mini_folder, patients
from .test_vsac import SYN_OID, fhir_json

AS_OF = D(2026, 1, 1)


def _work(root: Path) -> Path:
    work = root / "work"
    work.mkdir(parents=True)
    patients(
        {"patient_id": "a", "birth_date": D(1960, 1, 1), "sex": "F"},
        {"patient_id": "b", "birth_date": D(1990, 1, 1), "sex": "M"},
        {"patient_id": "c", "birth_date": D(1965, 6, 1), "sex": "M"},
    ).write_parquet(work / PATIENTS)
    events(("a", "procedure", "CPT", "45378", D(2020, 5, 1))).write_parquet(work / EVENTS)
    return work


def test_stage_declares_the_files_segment_run_keys_on(tmp_path: Path) -> None:
    rules, work = tmp_path / "rules", tmp_path / "work"
    stage = EvaluateStage(rules)
    ctx = StageContext(workdir=work, as_of=AS_OF, settings=Settings())
    assert stage.name == "evaluate"
    assert list(stage.inputs(ctx)) == [work / ENRICHED, work / EVENTS, rules]
    assert list(stage.outputs(ctx)) == [work / ELIGIBILITY, work / EVALUATE_REPORT]
    assert dict(stage.params(ctx)) == {"as_of": AS_OF}
    vsac = tmp_path / "vsac"
    assert list(stage.inputs(StageContext(workdir=work, settings=Settings(vsac_dir=vsac))))[-1] == vsac


def test_stage_runs_evaluate(tmp_path: Path) -> None:
    rules = mini_folder(tmp_path / "rules")
    staged, direct = _work(tmp_path / "staged"), _work(tmp_path / "direct")
    stage = EvaluateStage(rules)
    result = execute(stage, StageContext(workdir=staged, as_of=AS_OF, settings=Settings()))
    expected = evaluate(direct, rules, AS_OF)
    assert_frame_equal(pl.read_parquet(staged / ELIGIBILITY), pl.read_parquet(direct / ELIGIBILITY))
    assert (result.patients, result.rows, result.waterfall) == (expected.patients, expected.rows,
                                                                expected.waterfall)
    assert pl.read_parquet(staged / ELIGIBILITY).sort("patient_id")["status"].to_list() == [
        "not_due", "not_in_population", "due"]
    assert stage.counts(result) == {"patients": 3, "rows": 3, "batches": 1}
    assert json.loads((staged / EVALUATE_REPORT).read_text())["as_of"] == "2026-01-01"


def test_key_changes_with_the_as_of_date_and_a_rule_file(tmp_path: Path) -> None:
    rules = mini_folder(tmp_path / "rules")
    work = _work(tmp_path)
    pl.read_parquet(work / PATIENTS).write_parquet(work / ENRICHED)
    stage = EvaluateStage(rules)
    key = stage.key(StageContext(workdir=work, as_of=AS_OF, settings=Settings()))
    assert stage.key(StageContext(workdir=work, as_of=AS_OF, settings=Settings())) == key
    assert stage.key(StageContext(workdir=work, as_of=D(2026, 1, 2), settings=Settings())) != key
    mini_folder(rules, MINI_RULE.replace("within: 10 years", "within: 5 years"))
    assert stage.key(StageContext(workdir=work, as_of=AS_OF, settings=Settings())) != key


def test_the_settings_vsac_folder_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_VSAC_DIR", raising=False)
    rules = mini_folder(tmp_path / "rules", MINI_RULE.replace("valueset: colonoscopy", f"valueset: '{SYN_OID}'"))
    vsac = tmp_path / "downloads"
    vsac.mkdir()
    (vsac / "colonoscopy.json").write_text(fhir_json(), encoding="utf-8")
    work = _work(tmp_path)
    stage = EvaluateStage(rules)
    with pytest.raises(RulesError, match="no VSAC file is loaded"):
        execute(stage, StageContext(workdir=work, as_of=AS_OF, settings=Settings()))
    result = execute(stage, StageContext(workdir=work, as_of=AS_OF, settings=Settings(vsac_dir=vsac)))
    assert result.rows == 3
    # patient a's colonoscopy is in the official set read from the settings' folder
    statuses = pl.read_parquet(work / ELIGIBILITY).sort("patient_id")["status"].to_list()
    assert statuses == ["not_due", "not_in_population", "due"]
