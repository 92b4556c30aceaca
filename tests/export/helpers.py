"""Campaign files for export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segment.campaign import Campaign, load_campaign


def export_campaign_file(folder: Path, name: str = "campaign.yaml", **over: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "code": "SPRING-OUTREACH-2025",
        "audience": {"all": {"crc": "due"}},
        "channels": ["sms", "email"],
        "vendors": {
            "sms": {"profile": "twilio", "fields": ["first_name"]},
            "email": {"profile": "mailchimp", "fields": ["first_name", "last_name"]},
        },
        "ledger": "ledger.sqlite",
    }
    data.update(over)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load(folder: Path, **over: Any) -> Campaign:
    return load_campaign(export_campaign_file(folder, **over))
