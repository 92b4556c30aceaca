"""Codes as rules compare them: normalized spellings, variants, and shape checks per system.

Shared by the rule loader and the VSAC readers (:mod:`segment.rules.vsac`), which both
normalize and check codes; neither imports the other for them.
"""

from __future__ import annotations

import re

from segment.schema import CodeSystem

VALUESETS_DIR = "valuesets"

#: what a normalized code looks like, per system (checked by ``rules check``)
CODE_PATTERNS: dict[str, re.Pattern[str]] = {
    CodeSystem.CPT: re.compile(r"^\d{4}[0-9FTU]$"),
    CodeSystem.HCPCS: re.compile(r"^[A-V]\d{4}$"),
    CodeSystem.LOINC: re.compile(r"^\d{1,7}-\d$"),
    CodeSystem.SNOMED: re.compile(r"^\d{6,18}$"),
    CodeSystem.CVX: re.compile(r"^\d{1,3}$"),
    CodeSystem.ICD10CM: re.compile(r"^[A-TV-Z]\d[0-9AB][0-9A-TV-Z]{0,4}$"),
    CodeSystem.RXNORM: re.compile(r"^\d{1,10}$"),
    CodeSystem.ICD10PCS: re.compile(r"^[0-9A-HJ-NP-Z]{7}$"),
    CodeSystem.VISIT: re.compile(r"^[A-Z]{1,10}$"),
    CodeSystem.POS: re.compile(r"^\d{2}$"),
}
CODE_FORMS = {
    CodeSystem.CPT: "5 characters: 4 digits then a digit, F, T or U",
    CodeSystem.HCPCS: "a letter A-V then 4 digits",
    CodeSystem.LOINC: "digits, a hyphen and a valid mod-10 check digit (4548-4)",
    CodeSystem.SNOMED: "6 to 18 digits with a valid Verhoeff check digit",
    CodeSystem.CVX: "1 to 3 digits",
    CodeSystem.ICD10CM: "a letter, 2 characters, optional dot, up to 4 more (E11.9); E11* for a prefix",
    CodeSystem.RXNORM: "digits",
    CodeSystem.ICD10PCS: "7 characters, digits and letters but I and O (0HTV0ZZ)",
    CodeSystem.VISIT: "an OMOP visit concept code in capitals (OP, IP, ER, ERIP)",
    CodeSystem.POS: "two digits (23)",
}


def normalize_code(system: str, code: str) -> str:
    """A code as rules compare it: trimmed, upper case, ICD-10 without dot, CVX without leading zeros."""
    text = str(code).strip().upper()
    if system == CodeSystem.ICD10CM:
        text = text.replace(".", "")
    elif system == CodeSystem.CVX and text.isdigit():
        text = text.lstrip("0") or "0"
    return text


def code_variants(system: str, code: str) -> set[str]:
    """Spellings an extract may carry for a normalized code (matched without touching events).

    ICD-10-CM with and without the dot, CVX with leading zeros, codes with letters in
    lower case too.
    """
    out = {code}
    if system == CodeSystem.ICD10CM and len(code) > 3:
        out.add(f"{code[:3]}.{code[3:]}")
    if system == CodeSystem.CVX and code.isdigit():
        out.update({code.zfill(2), code.zfill(3)})
    out.update({c.lower() for c in out})
    return out


_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def is_verhoeff_valid(digits: str) -> bool:
    """SNOMED CT identifiers end in a Verhoeff check digit; a typo almost always breaks it."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def is_loinc_valid(code: str) -> bool:
    """LOINC codes end in a mod-10 (Luhn) check digit after the hyphen."""
    digits = code.replace("-", "")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_code_valid(system: str, code: str) -> bool:
    """Whether a normalized code has the shape its system requires."""
    if system == CodeSystem.ICD10CM and code.endswith("*"):
        return bool(re.fullmatch(r"[A-TV-Z]\d[0-9AB][0-9A-TV-Z]{0,3}", code[:-1]))
    pattern = CODE_PATTERNS.get(system)
    if pattern is None or not pattern.match(code):
        return False
    if system == CodeSystem.SNOMED:
        return is_verhoeff_valid(code)
    return system != CodeSystem.LOINC or is_loinc_valid(code)
