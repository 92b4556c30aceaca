"""What may leave in a vendor file: the PHI lint for fields, campaign codes and file names.

Default-deny: only contact fields and a few derived, non-clinical fields may be listed
without justification. Every other column (birth date, sex, race, rule reasons and
dates, codes, SDOH/need indicators, tracts, coordinates...) is refused unless the
campaign lists it under ``allow_phi:`` with a justification, which the manifest records
(HIPAA minimum necessary for a routine disclosure).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

from segment.errors import ReferenceDataError

#: contact fields a marketing vendor needs to reach the person
CONTACT_FIELDS = frozenset({
    "first_name", "last_name", "email", "phone_e164", "address_line1", "address_line2",
    "city", "state", "zip5", "language",
})

#: fields computed by the export, none of them clinical
DERIVED_FIELDS = frozenset({
    "contact_id", "campaign_code", "channel", "timezone", "send_after_utc", "country",
    "contact_key", "utc_offset", "is_honor_dst", "variant_code",
})

SAFE_FIELDS = CONTACT_FIELDS | DERIVED_FIELDS

_SUBSTRING_MIN = 5
WORDS_FILE = "clinical_words.txt"

#: how digits and symbols stand for letters (``C0L0N``, ``CANC3R``, ``@LCOHOL``); ``1`` is
#: tried as both ``i`` and ``l``
_LEET = str.maketrans({
    "0": "o", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "+": "t",
})


def normalize_word(word: str) -> str:
    """A word as matched: NFKC, lower case, letters and digits only (``Hep-C`` -> ``hepc``)."""
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", word).lower())


@cache
def default_clinical_words() -> tuple[str, ...]:
    """The shipped clinical words (``reference_data/clinical_words.txt``), read once."""
    from segment.resources import reference_data_dir

    path = reference_data_dir() / WORDS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReferenceDataError(f"cannot read the clinical word list ({type(exc).__name__})", path=path) from exc
    words = (normalize_word(line.split("#", 1)[0]) for line in text.splitlines())
    return tuple(dict.fromkeys(w for w in words if w))


@cache
def _word_list(extra: tuple[str, ...]) -> tuple[str, ...]:
    words = {*default_clinical_words(), *(normalize_word(w) for w in extra)}
    return tuple(sorted((w for w in words if w), key=lambda w: (-len(w), w)))


def _forms(text: str) -> list[list[str]]:
    """The text's runs, read four ways: letters only, letters and digits, and with digits
    and symbols as the letters they stand for (``1`` as ``i``, then as ``l``)."""
    low = unicodedata.normalize("NFKC", text).lower()
    tokens = [t for t in re.findall(r"[a-z0-9@$!|+]+", low) if re.search(r"[a-z]", t)]
    leet = [t.translate(_LEET) for t in tokens]
    return [
        re.findall(r"[a-z]+", low),
        re.findall(r"[a-z0-9]+", low),
        [t.replace("1", "i") for t in leet],
        [t.replace("1", "l") for t in leet],
    ]


def _joins(runs: list[str]) -> set[str]:
    """Each run and each concatenation of adjacent runs (``hep`` + ``c`` -> ``hepc``)."""
    return {"".join(runs[i:j]) for i in range(len(runs)) for j in range(i + 1, len(runs) + 1)}


def clinical_word_in(text: str, extra: Iterable[str] = ()) -> str | None:
    """The first clinical word found in ``text`` (a code or file name), or None.

    Case, separators and digits written as letters do not hide a word: ``FLU2025`` holds
    ``flu``, ``HEP-C`` ``hepc``, ``C0L0N-CANC3R`` ``cancer``. A word must equal a run of
    letters or a concatenation of adjacent runs; words of five letters or more also match
    inside longer text (``BOWELSCREEN`` holds ``screen``). ``extra`` adds a campaign's
    own words. The shipped words are data: ``reference_data/clinical_words.txt``.
    """
    words = _word_list(tuple(extra))
    forms = [(_joins(runs), "".join(runs)) for runs in _forms(text) if runs]
    for word in words:
        for joins, joined in forms:
            if word in joins or (len(word) >= _SUBSTRING_MIN and word in joined):
                return word
    return None
