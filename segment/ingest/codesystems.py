"""Code systems as extracts name them: labels, FHIR URIs and HL7 OIDs, one table.

Every reader passes the source's own spelling of a code system through; this table
turns it into the canonical name (:class:`segment.schema.CodeSystem`), so a Synthea
``SYSTEM`` column (``http://snomed.info/sct`` or ``SNOMED-CT``), a FHIR ``coding.system``,
an OMOP ``vocabulary_id`` (``SNOMED``, ``ICD10CM``, ``CPT4``) and a canonical CSV
(``ICD-10``) are all read the same way. Matching ignores case, surrounding blanks and a
trailing slash. The URIs are the ones HL7 publishes for FHIR R4 (terminology.hl7.org,
"Using external terminologies"); the OIDs are those of the HL7 OID registry.
"""

from __future__ import annotations

import polars as pl

from segment.schema import CodeSystem

_NAMES: dict[CodeSystem, tuple[str, ...]] = {
    CodeSystem.SNOMED: (
        "SNOMED", "SNOMEDCT", "SNOMED-CT", "SNOMED CT", "SNOMEDCT_US", "SNOMED_CT", "SCT",
        "http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96", "2.16.840.1.113883.6.96",
    ),
    CodeSystem.LOINC: (
        "LOINC", "LN", "http://loinc.org", "urn:oid:2.16.840.1.113883.6.1", "2.16.840.1.113883.6.1",
    ),
    CodeSystem.ICD10CM: (
        "ICD10CM", "ICD-10-CM", "ICD10-CM", "ICD10", "ICD-10", "ICD 10 CM", "I10",
        "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-us",
        "urn:oid:2.16.840.1.113883.6.90", "2.16.840.1.113883.6.90",
    ),
    CodeSystem.ICD10PCS: (
        "ICD10PCS", "ICD-10-PCS", "ICD10-PCS", "ICD 10 PCS", "I10P",
        "http://www.cms.gov/Medicare/Coding/ICD10", "https://www.cms.gov/Medicare/Coding/ICD10",
        "http://hl7.org/fhir/sid/icd-10-pcs",
        "urn:oid:2.16.840.1.113883.6.4", "2.16.840.1.113883.6.4",
    ),
    CodeSystem.CPT: (
        "CPT", "CPT4", "CPT-4", "C4", "http://www.ama-assn.org/go/cpt",
        "urn:oid:2.16.840.1.113883.6.12", "2.16.840.1.113883.6.12",
    ),
    CodeSystem.HCPCS: (
        "HCPCS", "HCPCS2", "HCPCS LEVEL II", "HCPCS-II", "HCPCSII", "HCPCS LEVEL 2",
        "http://www.nlm.nih.gov/research/umls/hcpcs", "https://www.nlm.nih.gov/research/umls/hcpcs",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285", "2.16.840.1.113883.6.285",
        "urn:oid:2.16.840.1.113883.6.14", "2.16.840.1.113883.6.14",
    ),
    CodeSystem.CVX: (
        "CVX", "http://hl7.org/fhir/sid/cvx", "urn:oid:2.16.840.1.113883.12.292",
        "2.16.840.1.113883.12.292",
    ),
    CodeSystem.VISIT: ("VISIT", "OMOP VISIT", "https://fhir.ohdsi.org/CodeSystem/visit"),
    CodeSystem.POS: (
        "POS", "CMS PLACE OF SERVICE", "PLACE OF SERVICE",
        "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
        "urn:oid:2.16.840.1.113883.15.5", "2.16.840.1.113883.15.5",
    ),
    CodeSystem.RXNORM: (
        "RXNORM", "RX-NORM", "RXCUI", "http://www.nlm.nih.gov/research/umls/rxnorm",
        "urn:oid:2.16.840.1.113883.6.88", "2.16.840.1.113883.6.88",
    ),
}


def _key(text: str) -> str:
    return text.strip().rstrip("/").upper()


#: upper-cased spelling (URI, OID or label) -> canonical code system name
SYSTEM_SPELLINGS: dict[str, str] = {
    _key(spelling): system.value for system, spellings in _NAMES.items() for spelling in spellings
}
def canonical_system(text: str | None) -> str | None:
    """The canonical name for one spelling of a code system, or None when unknown."""
    if text is None:
        return None
    return SYSTEM_SPELLINGS.get(_key(text))


def normalize_system(column: pl.Expr) -> pl.Expr:
    """Canonical code system names for a text column (null where the spelling is unknown)."""
    key = column.str.strip_chars().str.strip_chars_end("/").str.to_uppercase()
    return key.replace_strict(SYSTEM_SPELLINGS, default=None, return_dtype=pl.String)
