"""The clinical-word check on campaign codes and vendor file names cannot be dodged.

The fault: BOWEL-SCREEN, PAPSMEAR, HEP-C, METHADONE and C0L0N-CANC3R all passed as
"neutral" campaign codes, and went out in vendor file names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from segment.campaign import phi
from segment.campaign.phi import clinical_word_in, default_clinical_words
from segment.errors import PrivacyError
from segment.resources import reference_data_dir
from tests.campaign.helpers import make_campaign


@pytest.mark.parametrize("code, word", [
    ("BOWEL-SCREEN", "screen"),
    ("PAPSMEAR", "papsmear"),
    ("PAP-SMEAR-Q2", "papsmear"),
    ("HEP-C", "hepc"),
    ("HEPC-2025", "hepc"),
    ("METHADONE", "methadone"),
    ("C0L0N-CANC3R", "cancer"),
    ("PR3GN4NCY-CARE", "pregnancy"),
    ("1NSUL1N", "insulin"),
    ("ALCOHO1-FREE", "alcohol"),
    ("SUB0X0NE", "suboxone"),
    ("PREP-HIV", "prep"),
    ("FLU2025", "flu"),
    ("A1C-CHECK", "a1c"),
    ("STD_TESTING", "std"),
    ("S-T-D", "std"),
    ("LDCT-2025", "ldct"),
    ("MPOX-VAX", "mpox"),
    ("SUICIDE-PREVENTION", "suicide"),
    ("POSTPARTUM-VISIT", "postpartum"),
    ("BIPOLAR-FOLLOWUP", "bipolar"),
])
def test_hidden_clinical_words_are_found(code: str, word: str) -> None:
    assert clinical_word_in(code) == word


@pytest.mark.parametrize("code", [
    "SPRING-OUTREACH-2025", "FALL-OUTREACH-2025", "AUDIT-TEST-01", "WINTER-NOTE",
    "OUTFIT-25", "PROFIT-Q3", "SUMMER-SALE", "CHECK-IN-2026", "r3fa9c1e0b2d4",
])
def test_neutral_codes_pass(code: str) -> None:
    assert clinical_word_in(code) is None


def test_every_named_family_is_in_the_shipped_list() -> None:
    words = set(default_clinical_words())
    screening = {"colonoscopy", "mammogram", "papsmear", "bowel", "fobt", "ldct", "psa"}
    infectious = {"hiv", "hepc", "hepb", "syphilis", "tuberculosis", "mpox"}
    substance = {"methadone", "buprenorphine", "naloxone", "opioid", "alcohol", "fentanyl"}
    reproductive = {"abortion", "contraception", "ivf", "prenatal", "postpartum", "miscarriage"}
    mental = {"depression", "bipolar", "schizophrenia", "ptsd", "suicide", "psychiatric"}
    assert screening | infectious | substance | reproductive | mental <= words


def test_the_list_is_data_read_once() -> None:
    path = reference_data_dir() / phi.WORDS_FILE
    assert path.is_file()
    assert "methadone" in path.read_text()
    default_clinical_words.cache_clear()
    phi._word_list.cache_clear()
    for extra in ([], ["glow"], ["rxq"]):
        clinical_word_in("NEUTRAL-CODE", extra)
    assert default_clinical_words.cache_info().misses == 1


def test_campaign_words_are_normalized_too() -> None:
    assert clinical_word_in("GLOW-2025", ["Glow"]) == "glow"
    assert clinical_word_in("RX-Q-1", ["rx-q"]) == "rxq"


def test_campaign_code_and_file_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="clinical word `cancer`"):
        make_campaign(tmp_path, code="C0L0N-CANC3R")
    with pytest.raises(PrivacyError, match="clinical word `hepc`"):
        make_campaign(tmp_path, code="HEP-C")
    with pytest.raises(PrivacyError, match="key `file_name`: contains the clinical word `methadone`"):
        make_campaign(tmp_path, file_name="METHAD0NE_{code}_{run_id}")
