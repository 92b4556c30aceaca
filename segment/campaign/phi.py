"""What may leave in a vendor file: the PHI lint for fields, campaign codes and file names.

Default-deny: only contact fields and a few derived, non-clinical fields may be listed
without justification. Every other column (birth date, sex, race, rule reasons and
dates, codes, SDOH/need indicators, tracts, coordinates...) is refused unless the
campaign lists it under ``allow_phi:`` with a justification, which the manifest records
(HIPAA minimum necessary for a routine disclosure).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: contact fields a marketing vendor needs to reach the person
CONTACT_FIELDS = frozenset({
    "first_name", "last_name", "email", "phone_e164", "address_line1", "address_line2",
    "city", "state", "zip5", "language",
})

#: fields computed by the export, none of them clinical
DERIVED_FIELDS = frozenset({
    "contact_id", "campaign_code", "channel", "timezone", "send_after_utc", "country",
})

SAFE_FIELDS = CONTACT_FIELDS | DERIVED_FIELDS

#: default clinical words a campaign code or vendor file name may not contain
DEFAULT_CLINICAL_WORDS: tuple[str, ...] = (
    "a1c", "abortion", "addiction", "aids", "alcohol", "alzheimer", "asthma", "breast",
    "cancer", "cardiac", "cervical", "chemo", "ckd", "colon", "colonoscopy", "colorectal",
    "contraception", "copd", "covid", "crc", "dementia", "depression", "diabetes", "diabetic",
    "diagnosis", "dialysis", "disease", "fertility", "fit", "flu", "genetic", "hba1c", "hcv",
    "heart", "hepatitis", "hiv", "hospice", "hpv", "hypertension", "immunization",
    "influenza", "insulin", "ivf", "kidney", "lung", "mammo", "mammogram", "mammography",
    "mental", "obesity", "oncology", "opioid", "pap", "pregnancy", "pregnant", "prenatal",
    "prostate", "psychiatric", "screening", "sexual", "std", "sti", "stroke", "substance",
    "transplant", "tumor", "vaccination", "vaccine",
)

_SUBSTRING_MIN = 5


def clinical_word_in(text: str, extra: Iterable[str] = ()) -> str | None:
    """The first clinical word found in ``text`` (a code or file name), or None.

    Words are matched against the letter runs of the text, case-insensitively
    (``FLU2025`` holds ``flu``); words of five letters or more also match inside a
    longer run (``colonoscopyq1``).
    """
    words = sorted(
        {w.strip().lower() for w in (*DEFAULT_CLINICAL_WORDS, *extra) if w.strip()},
        key=lambda w: (-len(w), w),
    )
    runs = re.findall(r"[a-z]+", text.lower())
    for word in words:
        for run in runs:
            if run == word or (len(word) >= _SUBSTRING_MIN and word in run):
                return word
    return None


def needs_justification(field: str) -> bool:
    """True when ``field`` may leave only with an ``allow_phi`` justification."""
    return field not in SAFE_FIELDS
