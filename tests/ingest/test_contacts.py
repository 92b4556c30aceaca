from __future__ import annotations

import re

import phonenumbers
import polars as pl
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from segment.ingest.emails import DOT_ATOM, email_lookup, validate_one
from segment.ingest.patients import contact_lookups
from segment.ingest.phones import phone_lookup


def _phones(values: list[str]) -> dict[str, tuple]:
    out = phone_lookup(pl.LazyFrame({"phone_raw": values}), "phone_raw").collect()
    return {r[0]: r[1:] for r in out.iter_rows()}


def test_phone_formats() -> None:
    got = _phones(["(617) 253-1000", "+1 617.253.1000", "12345", "+44 20 7946 0958", "call me"])
    assert got["(617) 253-1000"][0] == "+16172531000"
    assert got["+1 617.253.1000"][0] == "+16172531000"
    assert got["12345"] == (None, None, "invalid phone number")
    assert got["+44 20 7946 0958"][0] == "+442079460958"
    assert got["call me"][2] is not None


_LAYOUTS = ["({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "1{a}{b}{c}", "{a}.{b}.{c}"]


@settings(max_examples=8, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=2_000_000_000, max_value=9_999_999_999),
                          st.sampled_from(_LAYOUTS)), min_size=1, max_size=60))
def test_fast_path_agrees_with_phonenumbers(numbers: list[tuple[int, str]]) -> None:
    texts = [layout.format(a=str(n)[:3], b=str(n)[3:6], c=str(n)[6:]) for n, layout in numbers]
    got = _phones(texts)
    for text in texts:
        try:
            lib = phonenumbers.parse(text, "US")
            valid = phonenumbers.is_valid_number(lib)
            expected = phonenumbers.format_number(lib, phonenumbers.PhoneNumberFormat.E164) if valid else None
        except phonenumbers.NumberParseException:
            expected = None
        assert got[text][0] == expected, text


def test_each_distinct_phone_once() -> None:
    out = phone_lookup(pl.LazyFrame({"phone_raw": ["617-253-1000"] * 5 + ["x"] * 3}), "phone_raw").collect()
    assert out.height == 2


_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True)
_domain = st.sampled_from(["gmail.com", "mail.example.com", "localhost", "x.test", "bad_domain.com", "ü.de", "a.b"])


@settings(max_examples=60, deadline=None)
@given(_local, _domain)
def test_emails_agree_with_email_validator(local: str, domain: str) -> None:
    addr = f"{local}@{domain}"
    got = email_lookup(pl.LazyFrame({"email_raw": [addr]}), "email_raw").collect()
    try:
        expected = validate_email(addr, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        expected = None
    assert got["email"][0] == expected


def _reference_email(text: str) -> str | None:
    """The email rule written out per text: split at the last @ (a regular expression)."""
    e = text.strip().lower()
    m = re.fullmatch(r"(.*)@([^@]*)", e)
    if m and re.fullmatch(DOT_ATOM[1:-1], m.group(1)) and len(m.group(1).encode()) <= 64:
        domain = validate_one("x@" + m.group(2))
        if domain["problem"] is None and len(e.encode()) <= 254:
            return m.group(1) + "@" + str(domain["email"])[2:]
        return None
    return validate_one(e)["email"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet="ab.@ -\nZ", max_size=14), min_size=1, max_size=12))
def test_emails_split_at_the_last_at_sign(texts: list[str]) -> None:
    got = email_lookup(pl.LazyFrame({"email_raw": texts}), "email_raw").collect()
    answers = dict(zip(got["email_raw"].to_list(), got["email"].to_list(), strict=True))
    assert {t: answers[t] for t in texts} == {t: _reference_email(t) for t in texts}


def test_record_contacts_blank_markers_and_repeats() -> None:
    raw_phones = [" (617) 253-1000 ", "617-253-1000", "  ", "null", None, "555-0100", " (617) 253-1000 "]
    raw_emails = ["A@Example.com ", " N/A ", "", None, "bad@", "a@example.com", "A@Example.com "]
    records = pl.DataFrame({
        "phone_e164": raw_phones, "email": raw_emails, "phone_type": [None] * 7,
        "phone__raw": raw_phones, "email__raw": raw_emails,
        "_phone_type_src": [None, "landline", None, None, None, None, None],
    }, schema_overrides={"phone_type": pl.String, "_phone_type_src": pl.String})
    out = contact_lookups(records)
    assert out["phone_e164"].to_list() == ["+16172531000", "+16172531000", None, None, None, None, "+16172531000"]
    assert out["phone_type"].to_list() == ["unknown", "landline", None, None, None, None, "unknown"]
    assert out["phone_e164__problem"].to_list() == [None, None, None, None, None, "invalid phone number", None]
    assert out["email"].to_list() == ["a@example.com", None, None, None, None, "a@example.com", "a@example.com"]
    assert out["email__problem"].to_list() == [None, None, None, None, "invalid email", None, None]
