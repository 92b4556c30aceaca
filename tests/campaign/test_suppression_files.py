"""Suppression lists as people really save them: encodings, headerless files, spreadsheet damage.

Each test writes the file the way the failing tool writes it (Excel's "Unicode text" is
UTF-16, its CSV carries a byte-order mark, a phone column saved as a number...) and
checks both the entries used and the lines reported unreadable, by line number only.
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
from pathlib import Path

import polars as pl
import pytest

from segment.campaign import load_suppression, plan_contacts
from segment.campaign.model import SuppressionFile, SuppressionKind
from segment.campaign.suppression import LOST_DIGITS, NOT_EMAIL, NOT_PHONE
from segment.errors import CampaignError
from tests.campaign.frames import due, patients
from tests.campaign.helpers import make_campaign

EMAIL = SuppressionKind.EMAIL
PHONE = SuppressionKind.PHONE


def _spec(path: Path, kind: SuppressionKind, **kw: str) -> SuppressionFile:
    return SuppressionFile(path=path, kind=kind, **kw)


def _values(frame: pl.DataFrame) -> list[str]:
    return frame.get_column("value").to_list()


@pytest.mark.parametrize(
    "codec, bom",
    [
        ("utf-16-le", codecs.BOM_UTF16_LE),   # Excel "Unicode Text"
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-16-le", b""),                    # UTF-16 without a byte-order mark
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-8", codecs.BOM_UTF8),            # Excel "CSV UTF-8"
    ],
)
def test_unicode_lists_suppress_what_they_list(tmp_path: Path, codec: str, bom: bytes) -> None:
    path = tmp_path / "unsubscribes.csv"
    path.write_bytes(bom + "Email\r\nJo@Example.org\r\nsam@example.org\r\n".encode(codec))
    sup = load_suppression([_spec(path, EMAIL)])
    assert _values(sup.emails) == ["jo@example.org", "sam@example.org"]
    assert sup.counts == {"unsubscribes.csv": 2}
    assert sup.files[0].unreadable == {}


def test_utf16_phone_list_matches_patients(tmp_path: Path) -> None:
    # before: read as UTF-8 with replacement characters, it matched nobody while the
    # manifest counted two entries
    (tmp_path / "dnc.txt").write_bytes(codecs.BOM_UTF16_LE + "(617) 555-0199\n617.555.0142\n".encode("utf-16-le"))
    c = make_campaign(tmp_path, channels=["sms"], vendors={"sms": {"profile": "twilio"}},
                      suppression=[{"path": "dnc.txt", "kind": "phone"}])
    pts = patients({"phone_e164": "+16175550199", "sms_consent": True},
                   {"phone_e164": "+16175550142", "sms_consent": True},
                   {"phone_e164": "+16175550100", "sms_consent": True})
    out = plan_contacts(c, pts, due(3), None, dt.date(2025, 3, 10)).collect()
    assert out.get_column("contact_status").to_list() == ["suppressed", "suppressed", "selected"]


def test_headerless_csv_keeps_its_first_entry(tmp_path: Path) -> None:
    path = tmp_path / "optouts.csv"
    path.write_text("jo@example.org\nsam@example.org\n")
    sup = load_suppression([_spec(path, EMAIL)])
    assert _values(sup.emails) == ["jo@example.org", "sam@example.org"]
    # a headerless two-column phone list: the column that holds phones is found
    phones = tmp_path / "phones.csv"
    phones.write_text("6175550199,complaint\n6175550142,moved\n")
    sup = load_suppression([_spec(phones, PHONE)])
    assert _values(sup.phones) == ["+16175550142", "+16175550199"]
    # a headerless patient-id list vs one with an unusual header word
    ids = tmp_path / "ids.csv"
    ids.write_text("ehr:1001\nehr:1002\n")
    assert _values(load_suppression([_spec(ids, SuppressionKind.PATIENT_ID)]).patient_ids) == [
        "ehr:1001", "ehr:1002"]
    ids.write_text("PatientKey\nehr:1001\n")
    assert _values(load_suppression([_spec(ids, SuppressionKind.PATIENT_ID)]).patient_ids) == ["ehr:1001"]


def test_txt_with_byte_order_mark_keeps_its_first_entry(tmp_path: Path) -> None:
    path = tmp_path / "unsubscribes.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"jo@example.org\nsam@example.org\n")
    sup = load_suppression([_spec(path, EMAIL)])
    assert _values(sup.emails) == ["jo@example.org", "sam@example.org"]
    assert sup.counts == {"unsubscribes.txt": 2}


def test_spreadsheet_mangled_phones(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text(
        "phone\n"
        "16175557155.0\n"        # 2: Excel's float text: digits intact
        "1.6175550142E+10\n"     # 3: scientific, every digit still there
        "1.61756E+10\n"          # 4: scientific, digits lost: never guessed
        "tel:+1-617-555-0123\n"  # 5
        "call me\n"              # 6
        "\n"                     # 7: a blank line is not an entry
        "6175550100\n"           # 8
    )
    sup = load_suppression([_spec(path, PHONE)])
    assert _values(sup.phones) == ["+16175550100", "+16175550123", "+16175550142", "+16175557155"]
    report = sup.files[0]
    assert report.entries == 4
    assert report.unreadable == {LOST_DIGITS: (4,), NOT_PHONE: (6,)}
    assert sup.counts == {"dnc.csv": 4}


def test_mailto_and_display_name_forms(tmp_path: Path) -> None:
    path = tmp_path / "unsubscribes.csv"
    path.write_text(
        "email\n"
        "mailto:Jo@Example.org\n"
        '"Sam Lee <sam@example.org>"\n'
        "Ana Silva <mailto:ana@example.org>\n"
        "mailto:kim@example.org?subject=unsubscribe\n"
        "'lee@example.org'\n"
        "not an address\n"
    )
    sup = load_suppression([_spec(path, EMAIL)])
    assert _values(sup.emails) == [
        "ana@example.org", "jo@example.org", "kim@example.org", "lee@example.org", "sam@example.org"]
    assert sup.files[0].unreadable == {NOT_EMAIL: (7,)}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_unreadable_lines_are_logged_by_number_without_values(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text("phone\n6175550199\n1.61756E+10\nQzsecret-street\n")
    handler = _Collect()
    logger = logging.getLogger("segment.export")  # a CLI test may stop propagation to root
    logger.addHandler(handler)
    try:
        load_suppression([_spec(path, PHONE)])
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert "dnc.csv" in text and "2 lines unreadable" in text
    assert "(line 3)" in text and "(line 4)" in text
    assert "Qzsecret" not in text and "1.61756" not in text


def test_a_list_where_nothing_parsed_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dnc.csv"
    path.write_text("phone\nQzsecret one\n1.61756E+10\n")
    with pytest.raises(CampaignError) as info:
        load_suppression([_spec(path, PHONE)])
    message = info.value.one_line()
    assert "no line could be read as a phone number" in message
    assert "(line 3)" in message and "(line 2)" in message
    assert "Qzsecret" not in message and "1.61756" not in message
    # a header and nothing else, or an empty file: a list that suppresses nobody
    path.write_text("phone\n")
    with pytest.raises(CampaignError, match="lists no entries"):
        load_suppression([_spec(path, PHONE)])
    path.write_bytes(b"")
    with pytest.raises(CampaignError, match="lists no entries"):
        load_suppression([_spec(path, PHONE)])


def test_files_that_are_not_text_or_not_utf8_are_named(tmp_path: Path) -> None:
    book = tmp_path / "dnc.csv"
    book.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(CampaignError, match="not text but a zip archive"):
        load_suppression([_spec(book, PHONE)])
    latin = tmp_path / "emails.txt"
    latin.write_bytes("jo@example.org\nren\xe9@example.org\n".encode("latin-1"))
    with pytest.raises(CampaignError, match=r"emails\.txt:2: suppression file: file is not UTF-8"):
        load_suppression([_spec(latin, EMAIL)])


def test_opt_out_replies_in_utf16_with_unreadable_addresses(tmp_path: Path) -> None:
    path = tmp_path / "replies.csv"
    text = "From,Body\n+16175550111,STOP\n+16175550112,thanks\nQzsecret,stop\nJo <jo@example.org>,unsubscribe\n"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    sup = load_suppression([_spec(path, SuppressionKind.OPT_OUT)])
    assert _values(sup.sms_phones) == ["+16175550111"]
    assert _values(sup.emails) == ["jo@example.org"]
    report = sup.files[0]
    assert (report.entries, report.other_replies, report.unreadable) == (2, 1, {NOT_PHONE: (4,)})


def test_column_named_but_file_headerless_names_no_value(tmp_path: Path) -> None:
    path = tmp_path / "emails.csv"
    path.write_text("jo@example.org,Qzsecret\n")
    with pytest.raises(CampaignError) as info:
        load_suppression([_spec(path, EMAIL, column="Email")])
    assert "no header row" in str(info.value)
    assert "jo@example.org" not in str(info.value) and "Qzsecret" not in str(info.value)
