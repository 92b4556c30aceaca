"""Synthea CSV exports, every layout from 2017 to 3.x: a folder with patients.csv.

Columns are found by header name, ignoring case (``ID`` in 2017-2018, ``Id`` since), so
every version's layout reads the same way. What changes between versions, and how each
change is read:

- **patients.csv** -- ``Id, BIRTHDATE, DEATHDATE, FIRST, LAST, GENDER, RACE, ETHNICITY,
  ADDRESS, CITY, STATE, ZIP, LAT, LON`` become the canonical patient columns (LAT/LON as
  ``source_lat``/``source_lon``); Synthea's uniqueness digits are stripped from names
  (``Mauro926`` -> ``Mauro``). COUNTY, FIPS, INCOME, MIDDLE, SSN and the other columns
  have no canonical column and are left out. 2017 exports have no CITY/STATE/ZIP: their
  ADDRESS holds the whole address (``786 Ena Rest Apt. 656 Ashland MA 01721 US``) and is
  split by :mod:`.address` (a field-level problem where it cannot be). RACE and
  ETHNICITY pass through as written: 2017-2018 exports put an ancestry (``irish``) in
  ETHNICITY and ``hispanic`` in RACE; the race and ethnicity normalizer reads both.
- **Events** (:mod:`.clinical`): conditions (START, STOP), procedures (START, or DATE
  before 3.0; STOP), encounters (START, or DATE in 2017; STOP; ENCOUNTERCLASS as given:
  wellness, ambulatory, outpatient, urgentcare, emergency, inpatient, snf, home,
  hospice, virtual), immunizations (DATE), observations (DATE, VALUE, UNITS, TYPE) and
  medications (START, STOP). STOP is ``event_end``. REASONCODE is not an event.
- **Code systems**: 3.x conditions and procedures may carry a SYSTEM column, a label
  (``SNOMED-CT``) or a URI (``http://snomed.info/sct``), passed through as written for
  :mod:`segment.ingest.codesystems`. Without it: conditions, procedures and encounters
  are SNOMED CT, immunizations CVX, medications RxNorm, observations LOINC -- except
  that an observation code shaped like a SNOMED CT id (digits only: LogMAR acuity,
  2017's cause-of-death rows) is SNOMED CT, and Synthea-local codes (``X9999-1``) are
  rejected.
- **Observations**: VALUE is the event value only where TYPE is ``numeric`` (2017 has no
  TYPE: where VALUE reads as a number), with its UNITS. A ``text`` VALUE is Synthea's
  display text (``Never smoked tobacco (finding)``; for LOINC 56799-0 the patient's
  street), not a code: it goes neither to ``value`` nor to ``value_code``. The yearly
  GBD rows (CODE QALY, DALY, QOLS) are skipped by name, not rejected.
- **Claims** (3.x, :mod:`.claims`): claims.csv diagnoses and claims_transactions.csv
  CHARGE lines are matched back to the clinical rows of their encounter; only what
  matches nothing is read (on every sample, nothing).

``_record`` is the row's ``Id`` where the table has one (patients, encounters, claims),
else its ENCOUNTER. Dates pass through raw (``2019-02-17`` or ``2019-02-17T05:07:38Z``).

allergies.csv gives ``allergy`` events (START to STOP; CODE in SYSTEM, SNOMED CT when the
file has no SYSTEM column). Not read (no rows of the extract's patients or events): careplans.csv, devices.csv, supplies.csv, imaging_studies.csv,
payers.csv, payer_transitions.csv, providers.csv, organizations.csv, and any other file.
"""

from __future__ import annotations

from pathlib import Path

from segment.errors import InputDataError
from segment.ingest.readers import ReadResult
from segment.ingest.readers.synthea.claims import read_claims
from segment.ingest.readers.synthea.clinical import CLINICAL, read_clinical
from segment.ingest.readers.synthea.patients import read_patients
from segment.ingest.readers.synthea.table import Table, header_of, open_table

__all__ = ["is_synthea_folder", "read_synthea"]

#: every Synthea patients.csv since 2017 has these columns (names compared in upper case)
SYNTHEA_MARKERS = ("ID", "BIRTHDATE", "FIRST", "LAST", "GENDER")
#: ... and at least one of these, which a hand-made patient list rarely has
SYNTHEA_SIGNS = ("SSN", "DRIVERS", "PASSPORT", "BIRTHPLACE", "MAIDEN")
#: files opened only to match claims against (not read as events)
_MATCH_ONLY: tuple[str, ...] = ()
_CLAIMS = ("claims.csv", "claims_transactions.csv")


def is_synthea_folder(folder: Path) -> bool:
    """True when ``folder`` holds a Synthea patients.csv, by its header (any case, any version)."""
    path = folder / "patients.csv"
    if not path.is_file():
        return False
    header = set(header_of(path))
    return all(m in header for m in SYNTHEA_MARKERS) and any(s in header for s in SYNTHEA_SIGNS)


def read_synthea(folder: Path, *, source: str | None = None) -> ReadResult:
    """Read a Synthea CSV folder (2017 to 3.x) into raw canonical patients and events."""
    src = source or "synthea"
    if not (folder / "patients.csv").is_file():
        raise InputDataError("not a Synthea export: missing patients.csv", path=folder)
    result = ReadResult()
    read_patients(open_table(folder / "patients.csv"), src, result)
    tables: dict[str, Table] = {}
    for spec in CLINICAL:
        path = folder / spec.file
        if path.is_file():
            tables[spec.file] = open_table(path)
            read_clinical(spec, tables[spec.file], src, result)
    if any((folder / f).is_file() for f in _CLAIMS):
        for name in (*_MATCH_ONLY, *_CLAIMS):
            if (folder / name).is_file():
                tables[name] = open_table(folder / name)
        read_claims(tables, src, result)
    return result
