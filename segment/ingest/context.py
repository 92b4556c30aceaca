"""Encounter context: the setting of a visit and where the patient went at discharge.

``encounter_class`` is normalized to one small vocabulary, whatever the source calls it:

| canonical | FHIR R4 ``Encounter.class`` (HL7 v3 ActCode) | Synthea ``ENCOUNTERCLASS`` | other spellings |
| --- | --- | --- | --- |
| ambulatory | AMB | ambulatory, outpatient | outpatient visit, office |
| wellness | | wellness | preventive |
| urgent_care | | urgentcare | urgent care |
| emergency | EMER | emergency | ER, ED, emergency room visit |
| inpatient | IMP, ACUTE, NONAC | inpatient | inpatient visit, hospitalization |
| observation | OBSENC | | observation stay |
| short_stay | SS | | |
| home | HH | home | home health, home visit |
| hospice | | hospice | |
| skilled_nursing | | snf | skilled nursing facility, SNF |
| virtual | VR | virtual | telehealth, telemedicine |
| field | FLD | | |
| pre_admission | PRENC | | |

A spelling not in the table is kept, lower-cased with spaces as ``_``, so no information
is lost (rules can name it); the table only makes the same setting read the same.
``discharge_disposition`` keeps the source's code as written, trimmed (a NUBC patient
discharge status such as ``51``, a SNOMED CT concept, or the FHIR code ``hosp``): the
measures name their own codes and the rules compare against them.
"""

from __future__ import annotations

import polars as pl

from segment.ingest.normalize import blank_to_null

_CLASSES: dict[str, tuple[str, ...]] = {
    "ambulatory": ("amb", "ambulatory", "outpatient", "outpatient visit", "office", "office visit", "op"),
    "wellness": ("wellness", "preventive", "well visit"),
    "urgent_care": ("urgentcare", "urgent care", "urgent_care", "uc"),
    "emergency": ("emer", "emergency", "er", "ed", "emergency room visit", "emergency department",
                  "emergency room"),
    "inpatient": ("imp", "acute", "nonac", "inpatient", "inpatient visit", "inpatient encounter",
                  "hospitalization", "ip"),
    "observation": ("obsenc", "observation", "observation stay", "observation encounter"),
    "short_stay": ("ss", "short stay", "short_stay"),
    "home": ("hh", "home", "home health", "home visit", "home_health"),
    "hospice": ("hospice",),
    "skilled_nursing": ("snf", "skilled nursing facility", "skilled nursing", "skilled_nursing"),
    "virtual": ("vr", "virtual", "telehealth", "telemedicine", "telehealth visit"),
    "field": ("fld", "field"),
    "pre_admission": ("prenc", "pre-admission", "pre_admission", "preadmission"),
}
#: lower-cased spelling -> canonical encounter class
ENCOUNTER_CLASS_SPELLINGS: dict[str, str] = {
    spelling: canonical for canonical, spellings in _CLASSES.items() for spelling in spellings
}


def normalize_encounter_class(column: pl.Expr) -> pl.Expr:
    """Canonical encounter class; unknown spellings kept as lower-case words joined by ``_``."""
    key = blank_to_null(column).str.to_lowercase()
    kept = key.str.replace_all(r"[\s\-]+", "_")
    return key.replace_strict(ENCOUNTER_CLASS_SPELLINGS, default=kept, return_dtype=pl.String)

