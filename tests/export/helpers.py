"""Campaign files for export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segment.campaign import Campaign, load_campaign
from tests.campaign.helpers import campaign_dict


def export_campaign_file(folder: Path, name: str = "campaign.yaml", **over: Any) -> Path:
    data = campaign_dict(ledger="ledger.sqlite", **over)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load(folder: Path, **over: Any) -> Campaign:
    return load_campaign(export_campaign_file(folder, **over))
