"""The eCQM CMS130 benchmark's parts (``bench.py evaluate --ecqm``): inputs, rule folder, SQL, runs.

Events are drawn so that every branch of colorectal-cancer-screening-cms130 is exercised, with
codes from the real VSAC expansions (loaded with the project's loader); the same rule is
written by hand as DuckDB SQL over the same Parquet files, reading the value-set codes from a
table; each side runs as a whole process, timed with its own peak RSS.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segment.rules.codes import code_variants  # noqa: E402
from segment.rules.compiler import compile_rule  # noqa: E402
from segment.rules.model import RuleSet  # noqa: E402
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA  # noqa: E402

EPOCH = dt.date(1970, 1, 1)


def _days(d: dt.date) -> int:
    return (d - EPOCH).days


ECQM_RULE = "colorectal-cancer-screening-cms130"
ECQM_AS_OF = dt.date(2026, 12, 31)
ECQM_RULES = ROOT / "rules" / "ecqm"
DEFAULT_VSAC = Path("/work/shared/reference/vsac/ecqm_cms_2025")

#: short names the hand-written SQL uses -> the value sets the rule names (OID or local name)
CMS130_SETS: dict[str, str] = {
    "qualifying-visit": "adult-outpatient-encounters",
    "discharge-to-hospice": "discharge-to-hospice",
    "hospice-encounter": "2.16.840.1.113883.3.464.1003.1003",
    "hospice-care-assessment": "hospice-care-assessment",
    "answer-yes": "answer-yes",
    "hospice-care-ambulatory": "2.16.840.1.113883.3.526.3.1584",
    "hospice-diagnosis": "2.16.840.1.113883.3.464.1003.1165",
    "colorectal-cancer": "2.16.840.1.113883.3.464.1003.108.12.1001",
    "total-colectomy": "2.16.840.1.113883.3.464.1003.198.12.1019",
    "frailty-device": "frailty-device",
    "medical-equipment-used": "medical-equipment-used",
    "frailty-diagnosis": "2.16.840.1.113883.3.464.1003.113.12.1074",
    "frailty-encounter": "2.16.840.1.113883.3.464.1003.101.12.1088",
    "frailty-symptom": "2.16.840.1.113883.3.464.1003.113.12.1075",
    "advanced-illness": "2.16.840.1.113883.3.464.1003.110.12.1082",
    "dementia-medications": "2.16.840.1.113883.3.464.1003.196.12.1510",
    "housing-status": "housing-status",
    "lives-in-nursing-home": "lives-in-nursing-home",
    "facit-pal": "facit-pal",
    "palliative-diagnosis": "2.16.840.1.113883.3.464.1003.1167",
    "palliative-encounter": "2.16.840.1.113883.3.464.1003.101.12.1090",
    "palliative-intervention": "2.16.840.1.113883.3.464.1003.198.12.1135",
    "fobt": "2.16.840.1.113883.3.464.1003.198.12.1011",
    "sdna-fit": "2.16.840.1.113883.3.464.1003.108.12.1039",
    "flexible-sigmoidoscopy": "2.16.840.1.113883.3.464.1003.198.12.1010",
    "ct-colonography": "2.16.840.1.113883.3.464.1003.108.12.1038",
    "colonoscopy": "2.16.840.1.113883.3.464.1003.108.12.1020",
}

# event_end policies: none, same day or open, short span, long span (conditions), supply
END_NONE, END_VISIT, END_SHORT, END_LONG, END_SUPPLY, END_RARE = range(6)


@dataclass(frozen=True)
class Category:
    """A kind of event the generator draws: its codes, type, share of all events and context."""

    name: str
    event_type: str  # "*": a random type (value-set codes under the wrong type)
    share: float
    codes: tuple[tuple[str, str], ...]  # (code_system, code spelling)
    end: int = END_NONE
    answers: tuple[tuple[str | None, float], ...] = ()  # value_code and its probability
    dispositions: tuple[tuple[str | None, float], ...] = ()
    encounter_class: str | None = None


def _spellings(ruleset: RuleSet, name: str) -> tuple[tuple[str, str], ...]:
    """Every spelling the engine matches (ICD-10-CM with/without dot, lower case) of a value set."""
    vs = ruleset.valuesets[CMS130_SETS.get(name, name)]
    return tuple(sorted({(s, v) for s, c in vs.codes for v in code_variants(s, c)}))


def _answer_pool(codes: list[str], p_match: float, noise: list[str], p_null: float) -> tuple[tuple[str | None, float], ...]:
    match = [(c, p_match / len(codes)) for c in codes]
    other = [(c, (1 - p_match - p_null) / len(noise)) for c in noise]
    return (*match, *other, (None, p_null))


def ecqm_categories(ruleset: RuleSet) -> list[Category]:
    """Event kinds covering every branch of CMS130 (about 30% of events), the rest unrelated codes."""
    sp = functools.partial(_spellings, ruleset)
    hospice_disp = sorted({c for _s, c in sp("discharge-to-hospice")})
    frailty_devices = sorted({c for _s, c in ruleset.valuesets["frailty-device"].codes})
    cats = [
        Category("qualifying visit", "encounter", 0.12, sp("qualifying-visit"), END_VISIT,
                 encounter_class="ambulatory"),
        Category("inpatient stay", "encounter", 0.01,
                 (("SNOMED", "8715000"), ("SNOMED", "32485007"), ("SNOMED", "183452005")), END_SHORT,
                 dispositions=_answer_pool(hospice_disp, 0.25, ["01", "home", "50", "51", "hosp", "306689006"], 0.1),
                 encounter_class="inpatient"),
        Category("hospice encounter", "encounter", 0.004, sp("hospice-encounter"), END_SHORT,
                 encounter_class="home health"),
        Category("hospice assessment", "observation", 0.004, sp("hospice-care-assessment"),
                 answers=(("373066001", 0.5), ("373067005", 0.4), (None, 0.1))),
        Category("hospice order", "order", 0.002, sp("hospice-care-ambulatory")),
        Category("hospice procedure", "procedure", 0.002, sp("hospice-care-ambulatory"), END_RARE),
        Category("hospice diagnosis", "condition", 0.002, sp("hospice-diagnosis"), END_LONG),
        Category("colorectal cancer", "condition", 0.004, sp("colorectal-cancer"), END_LONG),
        Category("total colectomy", "procedure", 0.003, sp("total-colectomy"), END_RARE),
        Category("frailty device order", "order", 0.004, sp("frailty-device")),
        Category("medical equipment used", "observation", 0.004, sp("medical-equipment-used"),
                 answers=_answer_pool(frailty_devices, 0.5, ["705416005", "87405001", "1234"], 0.1)),
        Category("frailty diagnosis", "condition", 0.01, sp("frailty-diagnosis"), END_LONG),
        Category("frailty encounter", "encounter", 0.008, sp("frailty-encounter"), END_SHORT),
        Category("frailty symptom", "observation", 0.008, sp("frailty-symptom"), END_RARE),
        Category("advanced illness", "condition", 0.015, sp("advanced-illness"), END_LONG),
        Category("dementia medication", "medication", 0.008, sp("dementia-medications"), END_SUPPLY),
        Category("housing status", "observation", 0.01, sp("housing-status"),
                 answers=_answer_pool(["160734000"], 0.2, ["32911000", "160943002", "224221006"], 0.1)),
        Category("FACIT-Pal", "observation", 0.002, sp("facit-pal")),
        Category("palliative diagnosis", "condition", 0.002, sp("palliative-diagnosis"), END_LONG),
        Category("palliative encounter", "encounter", 0.002, sp("palliative-encounter"), END_SHORT),
        Category("palliative intervention", "procedure", 0.002, sp("palliative-intervention"), END_RARE),
        Category("FOBT", "observation", 0.02, sp("fobt"), END_RARE),
        Category("stool DNA with FIT", "observation", 0.008, sp("sdna-fit"), END_RARE),
        Category("flexible sigmoidoscopy", "procedure", 0.004, sp("flexible-sigmoidoscopy"), END_RARE),
        Category("CT colonography", "observation", 0.004, sp("ct-colonography"), END_RARE),
        Category("colonoscopy", "procedure", 0.015, sp("colonoscopy"), END_RARE),
    ]
    relevant = sorted({c for cat in cats for c in cat.codes} | {c for n in CMS130_SETS for c in sp(n)})
    cats.append(Category("value-set code, any type", "*", 0.02, tuple(relevant), END_RARE))
    taken = {code for _s, code in relevant}
    noise: list[tuple[str, str]] = []
    for i in range(4000):
        system = ["SNOMED", "CPT", "LOINC", "ICD10CM", "RXNORM"][i % 5]
        code = {"SNOMED": f"9{i:08d}", "CPT": f"{10000 + i:05d}", "LOINC": f"9{i:05d}-0",
                "ICD10CM": f"J{i % 100:02d}.{i % 10}", "RXNORM": f"8{i:06d}"}[system]
        if code not in taken and code.replace(".", "") not in taken:
            noise.append((system, code))
    rest = 1.0 - sum(c.share for c in cats)
    by_type = {"SNOMED": "procedure", "CPT": "encounter", "LOINC": "observation", "ICD10CM": "condition",
               "RXNORM": "medication"}
    for system, event_type in by_type.items():
        codes = tuple(c for c in noise if c[0] == system)
        cats.append(Category(f"unrelated {system}", event_type, rest / len(by_type), codes,
                             END_LONG if event_type == "condition" else END_RARE))
    return cats


def _nullable(values: list[str | None], index: np.ndarray) -> pl.Series:
    """``values[index]`` as strings, null where ``index`` is -1 or the value is None."""
    table = pl.Series([v for v in values], dtype=pl.String)
    picked = table.gather(pl.Series(np.maximum(index, 0), dtype=pl.UInt32))
    return pl.select(pl.when(pl.Series(index) >= 0).then(picked)).to_series()


def generate_ecqm(folder: Path, n: int, per_patient: int, ruleset: RuleSet, seed: int = 0) -> None:
    """Patients (ages around the 46-75 band) and events drawn from the CMS130 categories."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = ("P" + pl.Series(np.arange(n)).cast(pl.String).str.zfill(8)).alias("patient_id")
    # two thirds born 1940-1985 (around the 46-75 band on 2026-12-31), the rest 1925-2024
    birth = np.where(rng.random(n) < 0.67,
                     rng.integers(_days(dt.date(1940, 1, 1)), _days(dt.date(1985, 12, 31)), n),
                     rng.integers(_days(dt.date(1925, 1, 1)), _days(dt.date(2024, 12, 31)), n))
    sex = rng.choice(np.array(["F", "M", "X", "U"]), n, p=[0.5, 0.485, 0.01, 0.005])
    death = birth + rng.integers(20 * 365, 100 * 365, n)
    patients = pl.DataFrame({
        "patient_id": ids,
        "birth_date": pl.Series(birth).cast(pl.Date),
        "sex": pl.Series(sex),
        "deceased_date": pl.Series(death).cast(pl.Date),
    }).with_columns(
        birth_date=pl.when(pl.Series(rng.random(n) < 0.005)).then(None).otherwise(pl.col("birth_date")),
        deceased_date=pl.when(pl.Series(rng.random(n) < 0.02) & (pl.col("deceased_date") <= ECQM_AS_OF))
        .then(pl.col("deceased_date")),
    )
    patients = patients.with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in PATIENT_SCHEMA.items() if c not in patients.columns]
    ).select(list(PATIENT_SCHEMA))
    patients.write_parquet(folder / "patients.parquet")
    patients.with_columns(
        tract_geoid=pl.lit("25017350100"),
        need_index_quintile=pl.Series(rng.integers(1, 6, n)).cast(pl.Int8),
    ).write_parquet(folder / "enriched.parquet")
    del patients

    cats = ecqm_categories(ruleset)
    # one flat pool of (category, type, system, code); canonical spellings 4x as likely as variants
    rows, weights = [], []
    for k, cat in enumerate(cats):
        canon = [1.0 if code == code.upper() and (system != "ICD10CM" or "." in code) else 0.25
                 for system, code in cat.codes]
        total = sum(canon)
        for (system, code), w in zip(cat.codes, canon, strict=True):
            rows.append((k, cat.event_type, system, code))
            weights.append(cat.share * w / total)
    pool = pl.DataFrame(rows, schema={"cat": pl.Int32, "event_type": pl.String, "code_system": pl.String,
                                      "code": pl.String}, orient="row")
    p = np.array(weights) / sum(weights)
    end_policy = np.array([c.end for c in cats])
    klass = pl.Series([c.encounter_class for c in cats], dtype=pl.String)
    types = np.array(["condition", "procedure", "immunization", "observation", "encounter", "medication", "order"])
    last_day = _days(ECQM_AS_OF) + 180  # some events after the as-of date, which every rule ignores
    m = n * per_patient
    parts = []
    for lo in range(0, m, 5_000_000):
        k = min(5_000_000, m - lo)
        pick = rng.choice(len(pool), k, p=p)
        drawn = pool[pick]
        cat = drawn["cat"].to_numpy()
        # recent years are denser: about 16% of events fall in the measurement year
        when = np.maximum(last_day - rng.exponential(5 * 365, k).astype(np.int64), _days(dt.date(2005, 1, 1)))
        policy = end_policy[cat]
        u = rng.random(k)
        span = np.select(
            [policy == END_VISIT, policy == END_SHORT, policy == END_LONG, policy == END_SUPPLY, policy == END_RARE],
            [np.where(u < 0.7, 0, -1), np.where(u < 0.8, rng.integers(0, 60, k), -1),
             np.where(u < 0.6, rng.integers(1, 3 * 365, k), -1), np.where(u < 0.9, rng.integers(30, 365, k), -1),
             np.where(u < 0.1, rng.integers(0, 3, k), -1)],
            default=-1,
        )
        answer = np.full(k, -1)
        disposition = np.full(k, -1)
        answer_values: list[str | None] = []
        disposition_values: list[str | None] = []
        for c, category in enumerate(cats):
            for pool_spec, index, values in ((category.answers, answer, answer_values),
                                             (category.dispositions, disposition, disposition_values)):
                if not pool_spec:
                    continue
                mask = cat == c
                offset = len(values)
                values.extend(v for v, _p in pool_spec)
                probs = np.array([q for _v, q in pool_spec])
                index[mask] = offset + rng.choice(len(pool_spec), int(mask.sum()), p=probs / probs.sum())
        random_type = pl.Series(types[rng.integers(0, len(types), k)])
        parts.append(drawn.select(
            patient_id="P" + pl.Series(rng.integers(0, n, k)).cast(pl.String).str.zfill(8),
            event_type=pl.when(pl.col("event_type") == "*").then(random_type).otherwise(pl.col("event_type")),
            code_system="code_system",
            code="code",
            event_date=pl.when(pl.Series(rng.random(k) < 0.001)).then(None)
            .otherwise(pl.Series(when).cast(pl.Date)),
            # one observation in ten without a result (CMS130 counts FOBT and sDNA only with one)
            value=pl.when((pl.col("event_type") == "observation") & pl.Series(rng.random(k) >= 0.1))
            .then(pl.Series(rng.random(k) * 10)),
            unit=pl.lit(None, pl.String),
            event_end=pl.when(pl.Series(span) >= 0).then(pl.Series(when + span).cast(pl.Date)),
            value_code=_nullable(answer_values, answer),
            encounter_class=klass.gather(pl.Series(cat, dtype=pl.UInt32)),
            discharge_disposition=_nullable(disposition_values, disposition),
        ).select(list(EVENT_SCHEMA)))
    pl.concat(parts).write_parquet(folder / "events.parquet", row_group_size=1_000_000)


def cms130_rules_folder(target: Path) -> Path:
    """A rules folder holding only the CMS130 rule and the local value sets it names."""
    if target.exists():
        shutil.rmtree(target)
    (target / "valuesets").mkdir(parents=True)
    shutil.copy(ECQM_RULES / f"{ECQM_RULE}.yaml", target)
    for name in CMS130_SETS.values():
        local = ECQM_RULES / "valuesets" / f"{name}.yaml"
        if local.exists():
            shutil.copy(local, target / "valuesets")
    return target


def cms130_codes(ruleset: RuleSet) -> pl.DataFrame:
    """The value-set table the SQL reads: (valueset, code_system, code), every spelling the engine matches."""
    rule = next(r for r in ruleset.rules if r.id == ECQM_RULE)
    named = {e.valueset for e in compile_rule(rule, ruleset.valuesets, ECQM_AS_OF).evidence}
    named |= {e.answer for e in compile_rule(rule, ruleset.valuesets, ECQM_AS_OF).evidence if e.answer}
    missing = named - set(CMS130_SETS.values())
    if missing:
        raise SystemExit(f"the CMS130 rule names value sets the SQL does not know: {sorted(missing)}")
    if any(ruleset.valuesets[v].prefixes for v in CMS130_SETS.values()):
        raise SystemExit("a CMS130 value set has ICD-10-CM prefixes; the SQL matches exact codes only")
    rows = [(short, s, c) for short in CMS130_SETS for s, c in _spellings(ruleset, short)]
    return pl.DataFrame(rows, schema=["valueset", "code_system", "code"], orient="row")


CMS130_SQL = """
-- CMS130 (colorectal-cancer-screening-cms130) by hand, as docs/rules.md defines the rule
COPY (
WITH vs AS (SELECT valueset, code_system, code FROM read_parquet('{codes}')),
ev AS NOT MATERIALIZED (  -- read where used, not spooled
  SELECT patient_id, event_type, code_system, code, event_date,
         coalesce(event_end, {as_of}) AS ends, value_code, discharge_disposition,
         value IS NOT NULL OR value_code IS NOT NULL AS has_result
  FROM read_parquet('{events}')
  WHERE event_date <= {as_of}
),
-- events whose code is in a value set the rule names, with the answer sets their value_code is in
coded AS (
  SELECT ev.patient_id, ev.event_type, vs.valueset, ev.event_date, ev.ends, a.valueset AS answer, ev.has_result
  FROM ev JOIN vs ON ev.code_system = vs.code_system AND ev.code = vs.code
  LEFT JOIN (SELECT DISTINCT valueset, code FROM vs
             WHERE valueset IN ('answer-yes', 'lives-in-nursing-home', 'frailty-device')) a
    ON ev.value_code = a.code
),
last AS (
  SELECT patient_id,
    max(CASE WHEN valueset = 'qualifying-visit' AND event_type = 'encounter' THEN event_date END) AS visit,
    max(CASE WHEN valueset = 'hospice-encounter' AND event_type = 'encounter' THEN event_date END) AS hospice_enc,
    max(CASE WHEN valueset = 'hospice-encounter' AND event_type = 'encounter' THEN ends END) AS hospice_enc_end,
    max(CASE WHEN valueset = 'hospice-care-assessment' AND event_type = 'observation'
                            AND answer = 'answer-yes' THEN event_date END) AS hospice_yes,
    max(CASE WHEN valueset = 'hospice-care-ambulatory' AND event_type = 'order' THEN event_date END) AS hospice_order,
    max(CASE WHEN valueset = 'hospice-care-ambulatory' AND event_type = 'procedure' THEN event_date END) AS hospice_proc,
    max(CASE WHEN valueset = 'hospice-diagnosis' AND event_type = 'condition' THEN event_date END) AS hospice_dx,
    max(CASE WHEN valueset = 'hospice-diagnosis' AND event_type = 'condition' THEN ends END) AS hospice_dx_end,
    max(CASE WHEN valueset = 'colorectal-cancer' AND event_type = 'condition' THEN event_date END) AS cancer,
    max(CASE WHEN valueset = 'total-colectomy' AND event_type = 'procedure' THEN event_date END) AS colectomy,
    max(CASE WHEN valueset = 'frailty-device' AND event_type = 'order' THEN event_date END) AS frailty_order,
    max(CASE WHEN valueset = 'medical-equipment-used' AND event_type = 'observation'
                            AND answer = 'frailty-device' THEN event_date END) AS frailty_equipment,
    max(CASE WHEN valueset = 'frailty-diagnosis' AND event_type = 'condition' THEN event_date END) AS frailty_dx,
    max(CASE WHEN valueset = 'frailty-diagnosis' AND event_type = 'condition' THEN ends END) AS frailty_dx_end,
    max(CASE WHEN valueset = 'frailty-encounter' AND event_type = 'encounter' THEN event_date END) AS frailty_enc,
    max(CASE WHEN valueset = 'frailty-encounter' AND event_type = 'encounter' THEN ends END) AS frailty_enc_end,
    max(CASE WHEN valueset = 'frailty-symptom' AND event_type = 'observation' THEN event_date END) AS frailty_symptom,
    max(CASE WHEN valueset = 'advanced-illness' AND event_type = 'condition' THEN event_date END) AS illness,
    max(CASE WHEN valueset = 'dementia-medications' AND event_type = 'medication' THEN event_date END) AS dementia_med,
    max(CASE WHEN valueset = 'housing-status' THEN event_date END) AS housing,
    max(CASE WHEN valueset = 'housing-status' AND event_type = 'observation'
                            AND answer = 'lives-in-nursing-home' THEN event_date END) AS nursing_home,
    max(CASE WHEN valueset = 'facit-pal' AND event_type = 'observation' THEN event_date END) AS facit_pal,
    max(CASE WHEN valueset = 'palliative-diagnosis' AND event_type = 'condition' THEN event_date END) AS pall_dx,
    max(CASE WHEN valueset = 'palliative-diagnosis' AND event_type = 'condition' THEN ends END) AS pall_dx_end,
    max(CASE WHEN valueset = 'palliative-encounter' AND event_type = 'encounter' THEN event_date END) AS pall_enc,
    max(CASE WHEN valueset = 'palliative-encounter' AND event_type = 'encounter' THEN ends END) AS pall_enc_end,
    max(CASE WHEN valueset = 'palliative-intervention' AND event_type = 'procedure' THEN event_date END) AS pall_proc,
    max(CASE WHEN valueset = 'fobt' AND event_type = 'observation' AND has_result THEN event_date END) AS fobt,
    max(CASE WHEN valueset = 'sdna-fit' AND event_type = 'observation' AND has_result THEN event_date END) AS sdna,
    max(CASE WHEN valueset = 'flexible-sigmoidoscopy' AND event_type = 'procedure' THEN event_date END) AS flexsig,
    max(CASE WHEN valueset = 'ct-colonography' AND event_type = 'observation' THEN event_date END) AS ctc,
    max(CASE WHEN valueset = 'colonoscopy' AND event_type = 'procedure' THEN event_date END) AS colonoscopy
  FROM coded GROUP BY patient_id
),
-- encounters discharged to hospice: the disposition, in any code system
discharge AS (
  SELECT patient_id, max(event_date) AS discharged, max(ends) AS discharged_end FROM ev
  WHERE event_type = 'encounter'
    AND discharge_disposition IN (SELECT code FROM vs WHERE valueset = 'discharge-to-hospice')
  GROUP BY patient_id
),
p AS (
  SELECT patient_id, birth_date,
         {year} - year(birth_date) - CASE WHEN {md} < month(birth_date) * 100 + day(birth_date)
                                          THEN 1 ELSE 0 END AS age  -- age on 31 December
  FROM read_parquet('{patients}')
),
-- each criterion's date when it holds (the first part that holds, in the rule's order), else null
c AS (
  SELECT patient_id, birth_date, age,
    coalesce(visit >= {my}, false) AS visited,
    CASE WHEN discharged_end >= {my} THEN discharged
         WHEN hospice_enc_end >= {my} THEN hospice_enc
         WHEN hospice_yes >= {my} THEN hospice_yes
         WHEN hospice_order >= {my} THEN hospice_order
         WHEN hospice_proc >= {my} THEN hospice_proc
         WHEN hospice_dx_end >= {my} THEN hospice_dx END AS hospice,
    cancer, colectomy,
    CASE WHEN frailty_order >= {my} THEN frailty_order
         WHEN frailty_equipment >= {my} THEN frailty_equipment
         WHEN frailty_dx_end >= {my} THEN frailty_dx
         WHEN frailty_enc_end >= {my} THEN frailty_enc
         WHEN frailty_symptom >= {my} THEN frailty_symptom END AS frailty,
    CASE WHEN illness >= {my_1} THEN illness
         WHEN dementia_med >= {my_1} THEN dementia_med END AS advanced,
    CASE WHEN nursing_home >= housing THEN nursing_home END AS nursing,
    CASE WHEN facit_pal >= {my} THEN facit_pal
         WHEN pall_dx_end >= {my} THEN pall_dx
         WHEN pall_enc_end >= {my} THEN pall_enc
         WHEN pall_proc >= {my} THEN pall_proc END AS palliative,
    CASE WHEN fobt >= {my} THEN fobt
         WHEN sdna >= {my_2} THEN sdna
         WHEN flexsig >= {my_4} THEN flexsig
         WHEN ctc >= {my_4} THEN ctc
         WHEN colonoscopy >= {my_9} THEN colonoscopy END AS screened,
    greatest(fobt, sdna, flexsig, ctc, colonoscopy) AS last_test
  FROM p LEFT JOIN last USING (patient_id) LEFT JOIN discharge USING (patient_id)
),
d AS (
  SELECT *,
    CASE WHEN NOT visited OR age NOT BETWEEN 46 AND 75 THEN 'not_in_population'
         WHEN birth_date IS NULL THEN 'unknown'
         WHEN hospice IS NOT NULL OR cancer IS NOT NULL OR colectomy IS NOT NULL
              OR (age >= 66 AND frailty IS NOT NULL AND advanced IS NOT NULL)
              OR (age >= 66 AND nursing IS NOT NULL) OR palliative IS NOT NULL THEN 'excluded'
         WHEN screened IS NOT NULL THEN 'not_due'
         ELSE 'due' END AS status
  FROM c
)
SELECT patient_id, '{rule}' AS rule_id, 1::INTEGER AS rule_version, status,
  CASE WHEN status IN ('not_in_population', 'unknown') THEN NULL
       WHEN status = 'excluded' THEN
         CASE WHEN hospice IS NOT NULL THEN hospice
              WHEN cancer IS NOT NULL THEN cancer
              WHEN colectomy IS NOT NULL THEN colectomy
              WHEN age >= 66 AND frailty IS NOT NULL AND advanced IS NOT NULL THEN greatest(frailty, advanced)
              WHEN age >= 66 AND nursing IS NOT NULL THEN nursing
              ELSE palliative END
       WHEN status = 'not_due' THEN screened
       ELSE last_test END AS evidence_date
FROM d
) TO '{out}' (FORMAT parquet)
"""


def cms130_duckdb_script(folder: Path, codes: Path, out: Path, as_of: dt.date) -> str:
    """A standalone Python script running the hand-written CMS130 SQL with DuckDB."""
    def lit(day: dt.date) -> str:
        return f"DATE '{day.isoformat()}'"

    year_start = {k: lit(dt.date(as_of.year - k, 1, 1)) for k in (0, 1, 2, 4, 9)}
    patients = folder / ("enriched.parquet" if (folder / "enriched.parquet").exists() else "patients.parquet")
    sql = CMS130_SQL.format(
        codes=codes, events=folder / "events.parquet", patients=patients, out=out, rule=ECQM_RULE,
        as_of=lit(as_of), year=as_of.year, md=1231, my=year_start[0], my_1=year_start[1],
        my_2=year_start[2], my_4=year_start[4], my_9=year_start[9],
    )
    return f"import duckdb\n\nSQL = {sql!r}\n\nduckdb.connect().execute(SQL)\n"


@dataclass(frozen=True)
class ProcessRun:
    """A whole process: wall time, its own peak RSS, exit code."""

    wall_s: float
    peak_gib: float
    cpu_s: float  # user + system, all threads: steadier than wall time on a shared machine
    code: int
    load: tuple[float, float, float]


def run_process(cmd: list[str], log: Path) -> ProcessRun:
    """Run ``cmd`` to completion under ``/usr/bin/time``: its peak RSS is the command's own.

    (A child forked from this process and exec'd would report at least this process's RSS
    as its ``ru_maxrss``: Linux carries the pre-exec high-water mark over.)
    """
    timing = log.with_suffix(".time")
    wrapped = ["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(timing), *cmd] if Path("/usr/bin/time").exists() else cmd
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.run(wrapped, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
    if wrapped is cmd:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    else:
        fields = timing.read_text().split()[-4:]
        peak_kib, cpu = int(fields[1]), float(fields[2]) + float(fields[3])
    return ProcessRun(wall, peak_kib / (1024 * 1024), cpu, proc.returncode, os.getloadavg())


def compare_cms130(polars_out: pl.DataFrame, duck: pl.DataFrame) -> int:
    """Print status/evidence_date differences per patient (and a few of them); return their count."""
    joined = polars_out.join(duck, on=["patient_id", "rule_id"], how="full", suffix="_duck", coalesce=True)
    diff = joined.filter(
        pl.col("status").ne_missing(pl.col("status_duck"))
        | pl.col("evidence_date").ne_missing(pl.col("evidence_date_duck"))
    )
    status_diff = joined.filter(pl.col("status").ne_missing(pl.col("status_duck"))).height
    date_diff = joined.filter(pl.col("evidence_date").ne_missing(pl.col("evidence_date_duck"))).height
    print(f"segment vs DuckDB SQL: {joined.height:,} rows (segment {polars_out.height:,}, DuckDB {duck.height:,}); "
          f"status differs in {status_diff:,}, evidence_date differs in {date_diff:,}", flush=True)
    if diff.height:
        with pl.Config(tbl_cols=-1, fmt_str_lengths=120, tbl_width_chars=250):
            print(diff.select("patient_id", "status", "status_duck", "evidence_date", "evidence_date_duck",
                              "reason").head(8), flush=True)
    return diff.height


def show_branches(polars_out: pl.DataFrame) -> None:
    """Statuses, and what excluded or qualified patients, by the engine's reason (dates blanked)."""
    print(polars_out.group_by("status").len().sort("status"), flush=True)
    shapes = polars_out.filter(pl.col("status").is_in(["excluded", "not_due"])).select(
        "status",
        reason=pl.col("reason").str.replace_all(r"\d{4}-\d{2}-\d{2}", "D").str.replace_all(r"aged \d+", "aged N")
        .str.slice(0, 110),
    ).group_by("status", "reason").len().sort("status", "len", descending=[False, True])
    with pl.Config(tbl_rows=40, fmt_str_lengths=110, tbl_width_chars=160):
        print(shapes, flush=True)
