"""ExportStage: the one path `segment export` and `segment run` take; settings, run ids, status, counts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from segment import __version__
from segment.campaign import load_campaign
from segment.cli import cli
from segment.config import Settings
from segment.errors import DeliveryError
from segment.export import ExportStage, export_campaign
from segment.stage import StageContext, execute
from tests.campaign.helpers import campaign_dict
from tests.export.conftest import AS_OF, NOW


def _campaign_without_ledger(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign_dict(), sort_keys=False), encoding="utf-8")
    return path


def test_stage_honours_the_callers_settings_and_reports_each_status(workdir: Path, tmp_path: Path) -> None:
    campaign = load_campaign(_campaign_without_ledger(tmp_path / "c"))
    ledger = tmp_path / "elsewhere" / "ledger.sqlite"
    ctx = StageContext(workdir=workdir, as_of=AS_OF, settings=Settings.from_env(ledger_path=ledger))
    out = tmp_path / "out"

    dry_stage = ExportStage(campaign, out, dry_run=True)
    dry = execute(dry_stage, ctx)
    assert dry_stage.status(dry) == "dry-run" and not out.exists() and not ledger.exists()

    stage = ExportStage(campaign, out)
    first = execute(stage, ctx)
    assert stage.status(first) == "ran"
    assert ledger.exists()  # the context's ledger, not the environment's default
    assert first.ledger_rows == sum(first.sent.values()) == 4
    counts = stage.counts(first)
    assert counts == {
        "sent": 4, "sent by email": 2, "sent by sms": 2,
        **{f"removed: {why}": n for why, n in sorted(first.removed.items()) if n},
        "vendor files": 2, "batches": 1, "destination": str(out), "manifest": str(first.manifest_path),
    }
    assert counts["removed: no_consent_or_contact"] == 1
    assert {f.name for f in first.files} <= {p.name for p in out.iterdir()}

    again = execute(stage, ctx)
    assert stage.status(again) == "reused" and again.already_delivered and again.ledger_rows == 0
    assert stage.counts(again)["already delivered"] == "yes: nothing sent again"
    assert stage.counts(again)["sent"] == 4


def test_run_id_comes_from_the_option_then_the_run_then_the_exports_own_key(
    workdir: Path, tmp_path: Path
) -> None:
    campaign = load_campaign(_campaign_without_ledger(tmp_path / "c"))
    settings = Settings.from_env(ledger_path=tmp_path / "ledger.sqlite")
    run_key = hashlib.sha256(b"a whole run").hexdigest()
    in_run = StageContext(workdir=workdir, as_of=AS_OF, settings=settings, run_id=run_key)
    alone = StageContext(workdir=workdir, as_of=AS_OF, settings=settings)

    assert execute(ExportStage(campaign, tmp_path / "o1", dry_run=True), in_run).run_id == run_key[:12]
    assert execute(ExportStage(campaign, tmp_path / "o1", dry_run=True, run_id="mine"), in_run).run_id == "mine"
    own = execute(ExportStage(campaign, tmp_path / "o1", dry_run=True), alone)
    # the export's own content key: the canonical-JSON SHA-256 of its inputs, date, mode and version
    direct = export_campaign(campaign, workdir, tmp_path / "o2", as_of=AS_OF, dry_run=True, settings=settings,
                             now=NOW)
    payload = {"files": direct.manifest["inputs"]["files"], "as_of": AS_OF.isoformat(), "mode": "full",
               "version": __version__}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert direct.manifest["inputs"]["hash"] == key
    assert own.run_id == direct.run_id == f"r{key[:12]}"


def test_stage_is_a_frozen_dataclass_never_cached(tmp_path: Path) -> None:
    campaign = load_campaign(_campaign_without_ledger(tmp_path / "c"))
    stage = ExportStage(campaign, tmp_path / "out")
    assert dataclasses.is_dataclass(stage) and ExportStage.cacheable is False and stage.name == "export"
    assert [f.name for f in dataclasses.fields(stage)] == ["campaign", "destination", "dry_run", "mode", "run_id"]


def test_an_unsafe_run_id_is_refused_before_anything_is_read_or_written(workdir: Path, tmp_path: Path) -> None:
    camp = _campaign_without_ledger(tmp_path / "c")
    ledger = tmp_path / "ledger.sqlite"
    (workdir / "eligibility.parquet").unlink()  # it is never read: the run id is checked first
    for bad in ("../up", "a/b", ".hidden", "x" * 65, "semi;colon"):
        r = CliRunner().invoke(cli, ["export", str(workdir), str(camp), "--to", str(tmp_path / "out"),
                                     "--run-id", bad], env={"SEGMENT_LEDGER": str(ledger)})
        assert r.exit_code == 1, (bad, r.output)
        assert r.stderr.strip().splitlines() == [
            "Error: a run id may use letters, digits, `-` and `_` only (max 64)"], bad
    assert not (tmp_path / "out").exists() and not ledger.exists()
    with pytest.raises(DeliveryError, match="a run id may use"):
        export_campaign(camp, workdir, tmp_path / "out", run_id="../up", ledger=ledger)
