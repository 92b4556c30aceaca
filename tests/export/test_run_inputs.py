"""Item 3: every input that can change who is sent enters the run's content key.
Item 5: a run dated before contacts already in the ledger is refused unless --dry-run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from segment.campaign import load_campaign
from segment.cli import cli
from segment.config import Settings
from segment.errors import CampaignError, DeliveryError
from segment.export import export_campaign
from segment.pipeline import RunPlan
from tests.campaign.helpers import campaign_dict
from tests.export.conftest import AS_OF
from tests.export.helpers import export_campaign_file


def _manifest_matches_files(manifest_path: Path, folder: Path) -> None:
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        assert hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]


# -- item 3 -------------------------------------------------------------------------
def test_same_day_rerun_after_an_unsubscribe_is_a_new_run(workdir: Path, tmp_path: Path) -> None:
    unsub = tmp_path / "c" / "unsubscribes.csv"
    unsub.parent.mkdir(parents=True)
    unsub.write_text("email\nnobody@example.org\n")
    camp = export_campaign_file(tmp_path / "c", suppression=[{"path": "unsubscribes.csv", "kind": "email"}])
    out = tmp_path / "out"
    first = export_campaign(camp, workdir, out, as_of=AS_OF)
    (email_file,) = [f for f in first.files if f.channel == "email"]
    assert b"eve@example.org" in (out / email_file.name).read_bytes()
    first_manifest = first.manifest_path.read_bytes() if first.manifest_path else b""
    # Eve unsubscribes; the same day's rerun is another run, not "already delivered"
    unsub.write_text("email\nnobody@example.org\neve@example.org\n")
    second = export_campaign(camp, workdir, out, as_of=AS_OF)
    assert second.run_id != first.run_id and not second.already_delivered
    assert second.removed["suppressed"] == 1
    for f in second.files:
        data = (out / f.name).read_bytes()
        if f.name.endswith("_unsubscribe.csv"):  # Mailchimp received her before: she is unsubscribed there
            assert data == b"Email Address\neve@example.org\n"
        else:
            assert b"eve@example.org" not in data
    # each run's manifest describes its own files, byte for byte; the first is untouched
    assert first.manifest_path is not None and second.manifest_path is not None
    assert first.manifest_path.read_bytes() == first_manifest
    _manifest_matches_files(first.manifest_path, out)
    _manifest_matches_files(second.manifest_path, out)
    assert second.manifest["inputs"]["files"]["suppression:unsubscribes.csv"] != \
        first.manifest["inputs"]["files"]["suppression:unsubscribes.csv"]


def test_reusing_a_delivered_run_id_with_other_inputs_is_refused(workdir: Path, tmp_path: Path) -> None:
    unsub = tmp_path / "c" / "unsubscribes.csv"
    unsub.parent.mkdir(parents=True)
    unsub.write_text("email\nnobody@example.org\n")
    camp = export_campaign_file(tmp_path / "c", suppression=[{"path": "unsubscribes.csv", "kind": "email"}])
    out = tmp_path / "out"
    export_campaign(camp, workdir, out, as_of=AS_OF, run_id="nightly")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    unsub.write_text("email\nnobody@example.org\neve@example.org\n")
    with pytest.raises(DeliveryError, match=r"run nightly of SPRING-OUTREACH-2025 was already delivered .* "
                                            r"from different inputs; nothing was sent"):
        export_campaign(camp, workdir, out, as_of=AS_OF, run_id="nightly")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _run_project(root: Path) -> Path:
    (root / "rules" / "valuesets").mkdir(parents=True)
    (root / "rules" / "crc.yaml").write_text("id: crc\n")
    (root / "rules" / "valuesets" / "crc-codes.yaml").write_text("codes: [A]\n")
    (root / "ref").mkdir()
    (root / "ref" / "manifest.json").write_text('{"name": "pack-1"}')
    (root / "extract.csv").write_text("id\n1\n")
    (root / "unsub.csv").write_text("email\nnobody@example.org\n")
    data = campaign_dict(sources=[{"path": "extract.csv"}], rules="rules", reference="ref",
                         suppression=[{"path": "unsub.csv", "kind": "email"}], ledger="ledger.sqlite")
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("change", [
    "unsub.csv", "rules/crc.yaml", "rules/valuesets/crc-codes.yaml", "ref/manifest.json", "extract.csv",
    "campaign.yaml",
])
def test_run_id_of_segment_run_covers_every_input(tmp_path: Path, change: str) -> None:
    path = _run_project(tmp_path)
    settings = Settings(reference_dir=tmp_path / "ref", ledger_path=tmp_path / "l.sqlite")

    def key() -> str:
        campaign = load_campaign(path)
        return RunPlan.of(campaign, path, settings=settings, as_of=AS_OF).content_key()

    before = key()
    assert key() == before  # stable
    with open(tmp_path / change, "a", encoding="utf-8") as fh:
        fh.write("\n# changed\n")
    assert key() != before


# -- item 5 -------------------------------------------------------------------------
def test_backdated_run_is_refused_unless_dry_run(workdir: Path, tmp_path: Path) -> None:
    camp = export_campaign_file(tmp_path / "c", frequency_caps=[{"per_days": 7, "max": 1}])
    export_campaign(camp, workdir, tmp_path / "out", as_of=AS_OF)
    earlier = AS_OF - dt.timedelta(days=5)
    with pytest.raises(CampaignError, match=r"--as-of 2025-03-05 is before contacts already in the contact ledger "
                                            r"\(latest on 2025-03-10, campaign SPRING-OUTREACH-2025 run r\w+\)"):
        export_campaign(camp, workdir, tmp_path / "out2", as_of=earlier)
    assert not (tmp_path / "out2").exists()
    # a dry run may look back; its caps count the later contacts (per channel: P001, capped
    # for SMS, falls back to email, the one channel nobody used)
    preview = export_campaign(camp, workdir, tmp_path / "out2", as_of=earlier, dry_run=True)
    assert preview.sent == {"sms": 0, "email": 1} and preview.removed["frequency_capped"] == 3
    runner = CliRunner()
    args = ["export", str(workdir), str(camp), "--to", str(tmp_path / "out2"), "--as-of", "2025-03-05"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 1 and "a backdated run is refused" in r.stderr
    r = runner.invoke(cli, [*args, "--dry-run"])
    assert r.exit_code == 0, r.output
    # a run on the same day or later is fine
    later = export_campaign(camp, workdir, tmp_path / "out3", as_of=AS_OF + dt.timedelta(days=8))
    assert sum(later.sent.values()) == 4
