"""Vendor cells carry no NUL or bidirectional-control characters; plain emails are not altered.

The faults: a NUL or an RLO (U+202E) in a name went into the vendor file as is (a NUL
truncates the record in C-based importers; an override makes the text display other
than it reads); ``=jo@example.org`` / ``+jo@example.org`` / ``-jo@example.org``, valid
addresses, were sent as ``'=jo@...``, which is another address.
"""

from __future__ import annotations

import polars as pl
import pytest

from segment.campaign.model import Channel
from segment.campaign.profiles import resolve_profile
from segment.export.writer import neutralize, to_csv_bytes, vendor_table
from tests.campaign.frames import patients


def _table(*rows: dict[str, object], profile: str = "mailchimp", channel: Channel = Channel.EMAIL,
           fields: tuple[str, ...] = ("first_name", "last_name")):  # type: ignore[no-untyped-def]
    frame = patients(*rows).collect().with_columns(
        pl.lit(str(channel)).alias("channel"), pl.lit(None, pl.String).alias("timezone"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("send_after_utc"),
    )
    prof = resolve_profile(profile, channel)
    return vendor_table(frame, prof, list(fields), code="SPRING-OUTREACH-2025", options={}), prof


def test_nul_and_bidi_controls_are_removed_and_counted() -> None:
    table, prof = _table(
        {"first_name": "Ana\x00Maria", "last_name": "Silva", "email": "ana@example.org", "email_consent": True},
        {"first_name": "\u202eorP", "last_name": "Li\u2066\u2069", "email": "bo@example.org", "email_consent": True},
        {"first_name": "Cy", "last_name": "Park", "email": "cy@example.org", "email_consent": True},
    )
    names = table.frame.select("First Name", "Last Name").rows()
    assert names == [("AnaMaria", "Silva"), ("orP", "Li"), ("Cy", "Park")]
    assert table.cleaned_cells == 3  # Ana's first name, Bo's first and last name
    blob, _ = to_csv_bytes(table.frame, prof)
    assert b"\x00" not in blob and "\u202e".encode() not in blob


def test_a_bidi_control_cannot_hide_a_formula() -> None:
    # U+202E before "=" kept the cell from starting with "="; removed, the guard sees it
    table, _ = _table({"first_name": "\u202e=HYPERLINK(\"http://x\")", "last_name": "Li",
                       "email": "li@example.org", "email_consent": True})
    assert table.frame.get_column("First Name").to_list() == ["'=HYPERLINK(\"http://x\")"]


@pytest.mark.parametrize("address", ["=jo@example.org", "+jo@example.org", "-jo@example.org",
                                     "jo+spring@example.org"])
def test_plain_emails_starting_with_formula_characters_are_not_altered(address: str) -> None:
    table, _ = _table({"first_name": "Jo", "last_name": "Li", "email": address, "email_consent": True})
    assert address in table.frame.row(0)


@pytest.mark.parametrize("payload", [
    "=cmd|'/Ccalc'!A0@example.org",          # DDE: a valid dot-atom, still a formula
    "=HYPERLINK(\"http://x\")@example.org",
    "-2+3(1)@example.org",
])
def test_email_cells_that_could_run_a_function_are_still_neutralized(payload: str) -> None:
    out = pl.select(neutralize(pl.lit(payload), email=True)).item()
    assert out == "'" + payload


def test_names_starting_with_formula_characters_are_still_neutralized() -> None:
    table, _ = _table({"first_name": "=jo@example.org", "last_name": "+SUM(A1)",
                       "email": "jo@example.org", "email_consent": True})
    row = table.frame.row(0)
    assert "'=jo@example.org" in row and "'+SUM(A1)" in row
