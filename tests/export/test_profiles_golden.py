"""Each vendor profile against a golden file, with formula injection neutralized in every one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segment.export import export_campaign
from tests.export.conftest import AS_OF, NOW
from tests.export.helpers import export_campaign_file

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("SEGMENT_UPDATE_GOLDEN"))

CASES: dict[str, dict] = {
    "mailchimp": {"channels": ["sms", "email"], "vendors": {
        "sms": {"profile": "mailchimp", "fields": ["first_name", "last_name", "language"]},
        "email": {"profile": "mailchimp", "fields": ["first_name", "last_name", "language"]}}},
    "braze": {"channels": ["sms", "email"], "vendors": {
        "sms": {"profile": "braze", "fields": ["first_name", "last_name"],
                "options": {"subscription_group_id": "3f2c0c1e-0000-4000-8000-000000000001"}},
        "email": {"profile": "braze", "fields": ["first_name", "last_name", "language"]}}},
    "sfmc": {"channels": ["sms", "email"], "vendors": {
        "sms": {"profile": "sfmc", "fields": ["first_name"]},
        "email": {"profile": "sfmc", "fields": ["first_name", "last_name"]}}},
    "twilio": {"channels": ["sms"], "vendors": {
        "sms": {"profile": "twilio", "fields": ["first_name", "language"]}}},
    "mail": {"channels": ["mail"], "vendors": {"mail": {"profile": "mail", "fields": ["language"]}}},
    "phone": {"channels": ["phone"], "vendors": {"phone": {"profile": "phone", "fields": ["language"]}}},
    "generic": {
        "channels": ["email"],
        "profiles": {"crm-upload": {"base": "generic", "delimiter": ";", "quoting": "always",
                                    "line_terminator": "\r\n", "encoding": "utf-8-sig",
                                    "max_field_bytes": 20,
                                    "columns": [{"header": "Id", "field": "contact_id", "required": True},
                                                {"header": "Mail", "field": "email", "required": True,
                                                 "overflow": "reject", "max_bytes": 100},
                                                {"header": "Given", "field": "first_name"}]}},
        "vendors": {"email": {"profile": "crm-upload", "fields": ["first_name", "zip5"]}},
    },
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_profile_matches_golden(name: str, workdir: Path, tmp_path: Path) -> None:
    campaign = export_campaign_file(tmp_path / "c", **CASES[name])
    out = tmp_path / "out"
    result = export_campaign(campaign, workdir, out, as_of=AS_OF, run_id="run1", now=NOW)
    assert result.files, "every case writes at least one file"
    for f in result.files:
        data = (out / f.name).read_bytes()
        golden = GOLDEN / f"{name}__{f.channel}.csv"
        if UPDATE:
            golden.parent.mkdir(exist_ok=True)
            golden.write_bytes(data)
        assert data == golden.read_bytes(), f"{f.name} differs from {golden.name}"
        text = data.decode("utf-8-sig")
        # formula injection: no cell may start with = + - @ tab CR unless it is an E.164 phone
        for line in text.splitlines()[1:]:
            for cell in line.replace('"', "").split(";" if name == "generic" else ","):
                if cell[:1] == "-" and cell[1:].replace(".", "", 1).isdigit():
                    continue  # a negative number (SFMC _UTCOffset) is data, not a formula
                if cell[:1] in ("=", "-", "@", "\t", "\r"):
                    pytest.fail(f"unneutralized cell in {name}: {cell[:10]!r}")
                if cell.startswith("+"):
                    assert cell[1:].isdigit(), f"only E.164 phones may start with + ({name})"
