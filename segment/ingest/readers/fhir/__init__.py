"""FHIR R4: bulk-export NDJSON and Bundles (collection, transaction, searchset, batch...), gzip or not.

What is read, and how, is documented where it is done:

- :mod:`.sources`: opening files (gzip by magic bytes, UTF-8, batches of lines);
- :mod:`.documents`: JSON documents, a Bundle's entries cut out of the bytes by a
  vectorized scan, in batches whatever the Bundle's size;
- :mod:`.reader`: the flow, and what becomes of every line (a part, a named reject, or a
  named skip: a type nothing reads, an OperationOutcome, a bulk-export log);
- :mod:`.bundles`: the same for Bundle entries, of many files at once (entries without a
  resource skipped);
- :mod:`.resources`: decoding by Polars against a fixed schema per type (:mod:`.schemas`),
  many files at a time, and the rejects of lines that do not decode;
- :mod:`.patients`: Patient choices (name, address and its geolocation, phone, language,
  race and ethnicity, the partial birth-date policy);
- :mod:`.events`: Condition, Procedure, Immunization, Observation, DiagnosticReport,
  Encounter, ServiceRequest, MedicationRequest, MedicationDispense, and the statuses that
  mean an event did not happen;
- :mod:`.claims`: Claim and ExplanationOfBenefit items, diagnoses and procedures;
- :mod:`.consent`: the rule that turns a Consent into email/SMS consent.
"""

from __future__ import annotations

from pathlib import Path

from segment.ingest.readers.fhir.reader import read_fhir
from segment.ingest.readers.fhir.sources import NDJSON_SUFFIXES, is_fhir_file

__all__ = ["is_fhir_file", "is_ndjson", "read_fhir"]


def is_ndjson(path: Path) -> bool:
    """An NDJSON file by its name (``.ndjson``, ``.jsonl``, also gzip-compressed)."""
    return path.is_file() and path.name.lower().endswith((*NDJSON_SUFFIXES, ".ndjson.txt"))
