"""Vendor import rules (campaign/specs.py) tested on a file's cells: one test per kind of rule."""

from __future__ import annotations

import polars as pl
import pytest

from segment.campaign.model import Channel
from segment.campaign.profiles import resolve_profile
from segment.campaign.specs import VENDOR_SPECS, RuleKind
from segment.errors import DeliveryError
from segment.export.checks import RULE_TESTS, raise_failures, rule_failures

UUID = "3f1b8c52-6d4e-4a8b-9c0d-1e2f3a4b5c6d"


def _braze_sms(**over: list[str | None]) -> pl.DataFrame:
    cells: dict[str, list[str | None]] = {
        "external_id": ["a1", "a2"], "phone": ["+15555550100", "+15555550101"],
        "subscription_group_id": [UUID, UUID], "time_zone": ["America/New_York", "UTC"],
    }
    cells.update(over)
    return pl.DataFrame(cells, schema=dict.fromkeys(cells, pl.String))


def _broken(table: pl.DataFrame, profile: str, channel: Channel) -> dict[str, tuple[int, str]]:
    prof = resolve_profile(profile, channel)
    return {f.rule.id: (f.rows, f.detail) for f in rule_failures(table, prof)}


def test_every_rule_kind_has_a_test() -> None:
    assert set(RULE_TESTS) == set(RuleKind)
    used = {rule.kind for spec in VENDOR_SPECS.values() for rule in spec.rules}
    assert used == set(RuleKind)


def test_a_file_that_follows_the_rules_passes() -> None:
    assert _broken(_braze_sms(), "braze", Channel.SMS) == {}


def test_cell_pattern_counts_the_rows_breaking_it() -> None:
    table = _braze_sms(phone=["5555550100", None], time_zone=["Eastern", "UTC"])
    assert _broken(table, "braze", Channel.SMS) == {"braze-phone-e164": (1, ""), "braze-time-zone": (1, "")}


def test_not_blank_and_unique() -> None:
    table = _braze_sms(external_id=[None, None])
    assert _broken(table, "braze", Channel.SMS) == {"braze-external-id": (2, "")}
    table = _braze_sms(external_id=["a1", "a1"])
    assert _broken(table, "braze", Channel.SMS) == {"braze-one-row-per-user": (2, "duplicated values")}


def test_any_header() -> None:
    table = pl.DataFrame({"first_name": ["A"]})
    assert _broken(table, "braze", Channel.EMAIL) == {"braze-identifier": (
        1, "none of external_id, braze_id, email, phone")}


def test_header_pattern_and_required_headers_apply_to_their_channel_only() -> None:
    table = pl.DataFrame({"_ContactKey": ["ab12"], "_MobileNumber": ["15555550100"], "Locale": ["US"]})
    assert _broken(table, "sfmc", Channel.SMS) == {
        "sfmc-mc-headers": (1, "headers Locale"),
        "sfmc-mc-required": (1, "missing _Locale"),
    }
    # the same headers in an email file: the MobileConnect rules are about SMS only
    assert "sfmc-mc-headers" not in _broken(table, "sfmc", Channel.EMAIL)


def test_a_cell_rule_about_a_column_the_file_does_not_write_is_kept() -> None:
    table = pl.DataFrame({"external_id": ["a1"]})
    assert _broken(table, "braze", Channel.EMAIL) == {}


def test_max_rows() -> None:
    limit = next(r.limit for r in VENDOR_SPECS["sendgrid"].rules if r.kind is RuleKind.MAX_ROWS)
    assert limit is not None
    table = pl.DataFrame({"email": pl.repeat("a@example.org", limit + 1, eager=True)})
    broken = _broken(table, "sendgrid", Channel.EMAIL)
    assert broken["sendgrid-max-contacts"] == (limit + 1, f"{limit + 1} rows, limit {limit}")
    assert broken["sendgrid-email-unique"] == (limit + 1, "duplicated values")


def test_raise_failures_names_each_rule_and_its_source() -> None:
    prof = resolve_profile("braze", Channel.SMS)
    failures = rule_failures(_braze_sms(phone=["555", "556"], external_id=["a1", "a1"]), prof)
    with pytest.raises(DeliveryError) as err:
        raise_failures(failures)
    text = str(err.value)
    assert "rule braze-phone-e164" in text and "by 2 row(s)" in text
    assert "rule braze-one-row-per-user" in text and "[duplicated values]" in text
    assert "source https://www.braze.com/docs/" in text and "nothing was written" in text
    raise_failures([])  # nothing broken: nothing raised
