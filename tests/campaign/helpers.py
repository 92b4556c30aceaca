"""Write small campaign files for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from segment.campaign import Campaign, load_campaign


def campaign_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "code": "SPRING-OUTREACH-2025",
        "audience": {"all": {"crc": "due"}},
        "channels": ["sms", "email"],
        "vendors": {
            "sms": {"profile": "twilio", "fields": ["first_name"]},
            "email": {"profile": "mailchimp", "fields": ["first_name", "last_name"]},
        },
        # Mailchimp offers no BAA and the test audience is a screening rule: the fixture
        # declares an agreement so the default campaign may export (tests/feedback checks refusal)
        "baa": [{"vendor": "mailchimp", "signed": True, "note": "test fixture"}],
    }
    base.update(over)
    return base


def make_campaign(folder: Path, name: str = "campaign.yaml", **over: Any) -> Campaign:
    path = folder / name
    path.write_text(yaml.safe_dump(campaign_dict(**over), sort_keys=False), encoding="utf-8")
    return load_campaign(path)
