"""Benchmark ``segment evaluate``: all shipped rules on N patients and ~20 events each.

    python scripts/bench.py evaluate --patients 1000000

Generates canonical ``patients.parquet``, ``enriched.parquet`` and ``events.parquet``
with vectorized NumPy (cached under /tmp/segment-bench/evaluate-<N>/), then times:

1. ``segment.rules.evaluate`` with every shipped rule (load, plan, collect, write);
2. the same with only colorectal and breast screening;
3. colorectal and breast screening written directly as DuckDB SQL over the same
   Parquet files (same statuses, evidence dates and short reasons, written to Parquet);

and checks that (2) and (3) agree on every patient's status and evidence date.

With ``--ecqm`` (``python scripts/bench.py evaluate --ecqm --vsac DIR --patients 1000000``):
the eCQM rule colorectal-cancer-screening-cms130 with the full VSAC expansions (thousands of
codes, loaded with the project's loader), on events drawn so that every branch of the rule
is exercised (qualifying visits, hospice discharges, assessments with coded answers, orders,
conditions and encounters with an end), cached under /tmp/segment-bench/ecqm-cms130-<N>-<E>/.
Two whole processes are timed, wall time and each one's own peak RSS:

1. ``segment evaluate WORK --rules <folder with only CMS130> --vsac DIR --as-of 2026-12-31``;
2. the same logic written by hand as DuckDB SQL (a generated script), the value-set codes
   read from a Parquet table;

and their outputs are compared patient by patient (status and evidence_date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np
import polars as pl
from benchlib import RESULTS, measure
from ecqmbench import (
    DEFAULT_VSAC,
    ECQM_AS_OF,
    ECQM_RULE,
    ProcessRun,
    cms130_codes,
    cms130_duckdb_script,
    cms130_rules_folder,
    compare_cms130,
    generate_ecqm,
    run_process,
    show_branches,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from segment.rules import default_rules_dir, evaluate, load_rules  # noqa: E402
from segment.rules.codes import code_variants  # noqa: E402
from segment.rules.compiler import compile_rule  # noqa: E402
from segment.rules.model import RuleSet  # noqa: E402
from segment.schema import EVENT_SCHEMA, PATIENT_SCHEMA  # noqa: E402

AS_OF = dt.date(2026, 11, 23)
PAIR = ("breast-cancer-screening", "colorectal-cancer-screening")
EPOCH = dt.date(1970, 1, 1)


def _days(d: dt.date) -> int:
    return (d - EPOCH).days


def _code_pool(ruleset: RuleSet, rng: np.random.Generator) -> pl.DataFrame:
    """Codes events are drawn from: every value-set code (rare) plus many unrelated codes."""
    types = {"CPT": "procedure", "HCPCS": "procedure", "LOINC": "observation", "SNOMED": "procedure",
             "CVX": "immunization", "ICD10CM": "condition"}
    rows = []
    for vs in ruleset.valuesets.values():
        for system, code in sorted(vs.codes):
            spelled = sorted(code_variants(system, code))[0 if system != "ICD10CM" else -1]
            rows.append((types.get(system, "procedure"), system, spelled, 1.0))
        for system, prefix in sorted(vs.prefixes):
            rows.append(("condition", system, f"{prefix}.9", 1.0))
    relevant = len(rows)
    noise = 2000
    for i in range(noise):
        system = ["SNOMED", "CPT", "LOINC", "ICD10CM"][i % 4]
        code = {"SNOMED": f"9{i:08d}", "CPT": f"{10000 + i:05d}", "LOINC": f"9{i:05d}-0",
                "ICD10CM": f"J{i % 100:02d}.{i % 10}"}[system]
        rows.append((types[system], system, code, 1.0))
    frame = pl.DataFrame(rows, schema=["event_type", "code_system", "code", "weight"], orient="row")
    # about 15% of events carry a value-set code, 85% are unrelated
    weights = np.concatenate([np.full(relevant, 0.15 / relevant), np.full(noise, 0.85 / noise)])
    return frame.with_columns(weight=pl.Series(weights))


def generate(folder: Path, n: int, per_patient: int, seed: int = 0) -> None:
    """Write patients.parquet, enriched.parquet and events.parquet with NumPy (vectorized)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = pl.Series("patient_id", np.arange(n)).cast(pl.String).str.zfill(8)
    ids = ("P" + ids).alias("patient_id")
    birth = rng.integers(_days(dt.date(1930, 1, 1)), _days(dt.date(2024, 12, 31)), n)
    birth_null = rng.random(n) < 0.005
    sex = rng.choice(np.array(["F", "M", "X", "U"]), n, p=[0.5, 0.485, 0.01, 0.005])
    sex_null = rng.random(n) < 0.005
    deceased = rng.random(n) < 0.02
    death = birth + rng.integers(1, 90 * 365, n)
    phone = rng.choice(np.array(["mobile", "landline", "unknown"]), n, p=[0.65, 0.25, 0.10])
    patients = pl.DataFrame({
        "patient_id": ids,
        "birth_date": pl.Series(birth).cast(pl.Date),
        "sex": pl.Series(sex),
        "deceased_date": pl.Series(death).cast(pl.Date),
        "email": pl.Series(rng.random(n) < 0.7),
        "phone_type": pl.Series(phone),
        "has_phone": pl.Series(rng.random(n) < 0.9),
    }).with_columns(
        email=pl.when(pl.col("email")).then(pl.lit("someone@example.org")),
        phone_type=pl.when(pl.col("has_phone")).then(pl.col("phone_type")),
    ).drop("has_phone").with_columns(
        birth_date=pl.when(pl.Series(birth_null)).then(None).otherwise(pl.col("birth_date")),
        sex=pl.when(pl.Series(sex_null)).then(None).otherwise(pl.col("sex")),
        deceased_date=pl.when(pl.Series(deceased) & (pl.col("deceased_date") <= AS_OF))
        .then(pl.col("deceased_date")).otherwise(None),
    )
    patients = patients.with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in PATIENT_SCHEMA.items() if c not in patients.columns]
    ).select(list(PATIENT_SCHEMA))
    patients.write_parquet(folder / "patients.parquet")
    q = rng.integers(1, 6, n).astype(np.int8)
    enriched = patients.with_columns(
        tract_geoid=pl.lit("25017350100"),
        need_index_quintile=pl.Series(q).cast(pl.Int8),
        svi_overall_rank=pl.Series(rng.random(n)),
        internet_no_access_pct=pl.Series(rng.random(n) * 40),
    ).with_columns(
        need_index_quintile=pl.when(pl.Series(rng.random(n) < 0.03)).then(None)
        .otherwise(pl.col("need_index_quintile")),
        svi_overall_rank=pl.when(pl.Series(rng.random(n) < 0.05)).then(None)
        .otherwise(pl.col("svi_overall_rank")),
    )
    enriched.write_parquet(folder / "enriched.parquet")
    del enriched, patients

    pool = _code_pool(load_rules(default_rules_dir()), rng)
    m = n * per_patient
    chunk = 5_000_000
    parts = []
    start, end = _days(dt.date(2010, 1, 1)), _days(AS_OF)
    weights = pool["weight"].to_numpy()
    weights = weights / weights.sum()
    for lo in range(0, m, chunk):
        k = min(chunk, m - lo)
        pick = rng.choice(len(pool), k, p=weights)
        who = rng.integers(0, n, k)
        when = rng.integers(start, end + 1, k)
        parts.append(
            pool.select("event_type", "code_system", "code")[pick].with_columns(
                patient_id="P" + pl.Series(who).cast(pl.String).str.zfill(8),
                event_date=pl.Series(when).cast(pl.Date),
                value=pl.lit(None, pl.Float64),
                unit=pl.lit(None, pl.String),
                event_end=pl.lit(None, pl.Date),
                value_code=pl.lit(None, pl.String),
                encounter_class=pl.lit(None, pl.String),
                discharge_disposition=pl.lit(None, pl.String),
            ).select(list(EVENT_SCHEMA))
        )
    pl.concat(parts).write_parquet(folder / "events.parquet", row_group_size=1_000_000)


def duckdb_sql(folder: Path, ruleset: RuleSet, as_of: dt.date) -> str:
    """Colorectal and breast screening as hand-written SQL over the same Parquet files."""
    names = ["colonoscopy", "ct-colonography", "flexible-sigmoidoscopy", "sdna-fit", "fit",
             "colorectal-cancer", "total-colectomy", "hospice", "mammography",
             "bilateral-mastectomy", "mastectomy-left", "mastectomy-right"]
    exact = ", ".join(
        f"('{s}', '{v}', '{n}')"
        for n in names for s, c in sorted(ruleset.valuesets[n].codes) for v in sorted(code_variants(s, c))
    )
    prefixes = ", ".join(f"('{c}', '{n}')" for n in names for _s, c in sorted(ruleset.valuesets[n].prefixes))
    d = f"DATE '{as_of.isoformat()}'"
    md = as_of.month * 100 + as_of.day

    def ago(years: int) -> str:
        return f"DATE '{as_of.replace(year=as_of.year - years).isoformat()}'"

    my = f"DATE '{as_of.year}-01-01'"
    col = {n: f'"{n}"' for n in names}
    cols = ",\n  ".join(f"max(last) FILTER (WHERE vs = '{n}') AS {col[n]}" for n in names)

    def fmt(c: str) -> str:
        return f"strftime({c}, '%Y-%m-%d')"

    return f"""
COPY (
WITH codes(code_system, code, vs) AS (VALUES {exact}),
prefixes(prefix, vs) AS (VALUES {prefixes}),
ev AS (SELECT patient_id, code_system, code, event_date FROM read_parquet('{folder}/events.parquet')
       WHERE event_date <= {d}),
hits AS (
  SELECT ev.patient_id, codes.vs, ev.event_date FROM ev JOIN codes USING (code_system, code)
  UNION ALL
  SELECT ev.patient_id, prefixes.vs, ev.event_date FROM ev JOIN prefixes
    ON ev.code_system = 'ICD10CM' AND starts_with(upper(replace(ev.code, '.', '')), prefixes.prefix)),
last AS (SELECT patient_id, vs, max(event_date) AS last FROM hits GROUP BY ALL),
wide AS (SELECT patient_id,
  {cols}
  FROM last GROUP BY patient_id),
p AS (SELECT patient_id, birth_date, sex, deceased_date,
        {as_of.year} - year(birth_date)
        - CASE WHEN {md} < month(birth_date) * 100 + day(birth_date) THEN 1 ELSE 0 END AS age
      FROM read_parquet('{folder}/patients.parquet')),
j AS (SELECT * FROM p LEFT JOIN wide USING (patient_id))
SELECT patient_id, 'colorectal-cancer-screening' AS rule_id, 1 AS rule_version,
  CASE WHEN age NOT BETWEEN 45 AND 75 THEN 'not_in_population'
       WHEN birth_date IS NULL THEN 'unknown'
       WHEN deceased_date <= {d} OR {col['colorectal-cancer']} IS NOT NULL
            OR {col['total-colectomy']} IS NOT NULL OR {col['hospice']} >= {my} THEN 'excluded'
       WHEN {col['colonoscopy']} >= {ago(10)} OR {col['ct-colonography']} >= {ago(5)}
            OR {col['flexible-sigmoidoscopy']} >= {ago(5)} OR {col['sdna-fit']} >= {ago(3)}
            OR {col['fit']} >= {ago(1)} THEN 'not_due'
       ELSE 'due' END AS status,
  CASE WHEN age NOT BETWEEN 45 AND 75 THEN 'aged ' || age || ' on {as_of}, outside 45-75'
       WHEN birth_date IS NULL THEN 'birth date missing; cannot check age 45-75'
       WHEN deceased_date <= {d} THEN 'died on ' || {fmt('deceased_date')}
       WHEN {col['colorectal-cancer']} IS NOT NULL THEN 'colorectal cancer on ' || {fmt(col['colorectal-cancer'])}
       WHEN {col['total-colectomy']} IS NOT NULL THEN 'total colectomy on ' || {fmt(col['total-colectomy'])}
       WHEN {col['hospice']} >= {my} THEN 'hospice care on ' || {fmt(col['hospice'])}
       WHEN {col['colonoscopy']} >= {ago(10)} THEN 'colonoscopy on ' || {fmt(col['colonoscopy'])} || ' is within 10 years'
       WHEN {col['ct-colonography']} >= {ago(5)} THEN 'CT colonography on ' || {fmt(col['ct-colonography'])} || ' is within 5 years'
       WHEN {col['flexible-sigmoidoscopy']} >= {ago(5)} THEN 'flexible sigmoidoscopy on ' || {fmt(col['flexible-sigmoidoscopy'])} || ' is within 5 years'
       WHEN {col['sdna-fit']} >= {ago(3)} THEN 'stool DNA-FIT on ' || {fmt(col['sdna-fit'])} || ' is within 3 years'
       WHEN {col['fit']} >= {ago(1)} THEN 'FIT/FOBT on ' || {fmt(col['fit'])} || ' is within 1 year'
       ELSE 'no qualifying colorectal cancer screening' END AS reason,
  CASE WHEN age NOT BETWEEN 45 AND 75 OR birth_date IS NULL THEN NULL
       WHEN deceased_date <= {d} THEN deceased_date
       WHEN {col['colorectal-cancer']} IS NOT NULL OR {col['total-colectomy']} IS NOT NULL
            OR {col['hospice']} >= {my}
         THEN coalesce({col['colorectal-cancer']}, {col['total-colectomy']}, {col['hospice']})
       WHEN {col['colonoscopy']} >= {ago(10)} THEN {col['colonoscopy']}
       WHEN {col['ct-colonography']} >= {ago(5)} THEN {col['ct-colonography']}
       WHEN {col['flexible-sigmoidoscopy']} >= {ago(5)} THEN {col['flexible-sigmoidoscopy']}
       WHEN {col['sdna-fit']} >= {ago(3)} THEN {col['sdna-fit']}
       WHEN {col['fit']} >= {ago(1)} THEN {col['fit']}
       ELSE greatest({col['colonoscopy']}, {col['ct-colonography']}, {col['flexible-sigmoidoscopy']},
                     {col['sdna-fit']}, {col['fit']}) END AS evidence_date
FROM j
UNION ALL
SELECT patient_id, 'breast-cancer-screening', 1,
  CASE WHEN age NOT BETWEEN 40 AND 74 OR sex IN ('M') THEN 'not_in_population'
       WHEN birth_date IS NULL OR sex IS NULL OR sex IN ('U', 'X') THEN 'unknown'
       WHEN deceased_date <= {d} OR {col['bilateral-mastectomy']} IS NOT NULL
            OR ({col['mastectomy-left']} IS NOT NULL AND {col['mastectomy-right']} IS NOT NULL)
            OR {col['hospice']} >= {my} THEN 'excluded'
       WHEN {col['mammography']} >= {ago(2)} THEN 'not_due'
       ELSE 'due' END,
  CASE WHEN age NOT BETWEEN 40 AND 74 THEN 'aged ' || age || ' on {as_of}, outside 40-74'
       WHEN sex IN ('M') THEN 'sex M; rule is for F'
       WHEN birth_date IS NULL THEN 'birth date missing; cannot check age 40-74'
       WHEN sex IS NULL OR sex IN ('U', 'X') THEN 'sex ' || coalesce(sex, 'missing') || '; rule is for F, cannot decide'
       WHEN deceased_date <= {d} THEN 'died on ' || {fmt('deceased_date')}
       WHEN {col['bilateral-mastectomy']} IS NOT NULL THEN 'bilateral mastectomy on ' || {fmt(col['bilateral-mastectomy'])}
       WHEN {col['mastectomy-left']} IS NOT NULL AND {col['mastectomy-right']} IS NOT NULL THEN 'left and right mastectomy'
       WHEN {col['hospice']} >= {my} THEN 'hospice care on ' || {fmt(col['hospice'])}
       WHEN {col['mammography']} >= {ago(2)} THEN 'mammogram on ' || {fmt(col['mammography'])} || ' is within 2 years'
       ELSE 'no qualifying mammogram' END,
  CASE WHEN age NOT BETWEEN 40 AND 74 OR sex IN ('M') OR birth_date IS NULL OR sex IS NULL
            OR sex IN ('U', 'X') THEN NULL
       WHEN deceased_date <= {d} THEN deceased_date
       WHEN {col['bilateral-mastectomy']} IS NOT NULL THEN {col['bilateral-mastectomy']}
       WHEN {col['mastectomy-left']} IS NOT NULL AND {col['mastectomy-right']} IS NOT NULL
         THEN greatest({col['mastectomy-left']}, {col['mastectomy-right']})
       WHEN {col['hospice']} >= {my} THEN {col['hospice']}
       ELSE {col['mammography']} END
FROM j
) TO '{folder}/duckdb-eligibility.parquet' (FORMAT parquet)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.py evaluate")
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--events-per-patient", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/segment-bench"))
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--ecqm", action="store_true",
                        help="CMS130 with the full VSAC value sets: `segment evaluate` vs DuckDB SQL")
    parser.add_argument("--vsac", type=Path, default=DEFAULT_VSAC, help="VSAC folder (with --ecqm)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each process (with --ecqm; best is kept)")
    parser.add_argument("--process", action="store_true",
                        help="colorectal + breast as whole processes: `segment evaluate` vs a DuckDB SQL script")
    parser.add_argument("--engine", choices=["polars", "spark"], default="polars",
                        help="spark: time the spark engine beside the Polars engine (same inputs, same run)")
    parser.add_argument("--buckets", default="4", help="with --engine spark: bucket counts, comma-separated (scaling)")
    parser.add_argument("--master", default="local[2]", help="with --engine spark: the Spark master")
    args = parser.parse_args(argv)
    if args.ecqm:
        return main_ecqm(args)
    if args.engine == "spark":
        return main_spark(args)
    if args.process:
        return main_process(args)
    folder = args.cache / f"evaluate-{args.patients}-{args.events_per_patient}"
    if args.regenerate or not (folder / "events.parquet").exists():
        with measure("generate inputs (NumPy)", patients=args.patients):
            generate(folder, args.patients, args.events_per_patient)
    n_events = pl.scan_parquet(folder / "events.parquet").select(pl.len()).collect().item()
    print(f"inputs: {args.patients:,} patients, {n_events:,} events in {folder}", flush=True)
    rules = default_rules_dir()

    with measure("evaluate: all 9 shipped rules") as row:
        result = evaluate(folder, rules, AS_OF)
        row["rows"] = f"{result.rows:,}"
    pair = list(PAIR)
    with measure("evaluate: colorectal + breast (Polars)") as row:
        result = evaluate(folder, rules, AS_OF, only=pair)
        row["rows"] = f"{result.rows:,}"
    polars_out = pl.read_parquet(folder / "eligibility.parquet")

    import duckdb

    sql = duckdb_sql(folder, load_rules(rules), AS_OF)
    with measure("colorectal + breast (DuckDB SQL)") as row:
        con = duckdb.connect()
        con.execute(sql)
        con.close()
    duck = pl.read_parquet(folder / "duckdb-eligibility.parquet")
    row["rows"] = f"{duck.height:,}"
    joined = polars_out.join(duck, on=["patient_id", "rule_id"], how="full", suffix="_duck")
    status_diff = joined.filter(pl.col("status").ne_missing(pl.col("status_duck"))).height
    date_diff = joined.filter(pl.col("evidence_date").ne_missing(pl.col("evidence_date_duck"))).height
    print(f"Polars vs DuckDB: {joined.height:,} rows, status differs in {status_diff}, "
          f"evidence_date differs in {date_diff}", flush=True)
    print(polars_out.group_by("rule_id", "status").len().sort("rule_id", "status"), flush=True)
    RESULTS.print()
    return 0 if status_diff == 0 and date_diff == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def pair_rules_folder(target: Path) -> Path:
    """A rules folder holding only colorectal and breast screening and the value sets they name."""
    import shutil

    shipped = default_rules_dir()
    if target.exists():
        shutil.rmtree(target)
    (target / "valuesets").mkdir(parents=True)
    for rule in PAIR:
        shutil.copy(shipped / f"{rule}.yaml", target)
    ruleset = load_rules(shipped)
    names = {e.valueset for r in ruleset.rules if r.id in PAIR
             for e in compile_rule(r, ruleset.valuesets, AS_OF).evidence}
    for name in sorted(names):
        shutil.copy(shipped / "valuesets" / f"{name}.yaml", target / "valuesets")
    return target


def main_process(args: argparse.Namespace) -> int:
    """Colorectal + breast: the whole ``segment evaluate`` process against the whole DuckDB SQL process."""
    folder = args.cache / f"evaluate-{args.patients}-{args.events_per_patient}"
    if args.regenerate or not (folder / "events.parquet").exists():
        with measure("generate inputs (NumPy)", patients=args.patients):
            generate(folder, args.patients, args.events_per_patient)
    rules = pair_rules_folder(args.cache / "rules-colorectal-breast")
    script = folder / "pair_duckdb.py"
    sql = duckdb_sql(folder, load_rules(default_rules_dir()), AS_OF)
    script.write_text(f"import duckdb\n\nSQL = {sql!r}\n\nduckdb.connect().execute(SQL)\n")
    segment = Path(sys.executable).parent / "segment"
    commands = {
        "segment evaluate (Polars)": [str(segment), "evaluate", str(folder), "--rules", str(rules),
                                      "--as-of", AS_OF.isoformat(), "--log-format", "plain"],
        "hand-written SQL (DuckDB)": [sys.executable, str(script)],
    }
    for cmd in commands.values():
        print("  $ " + " ".join(cmd), flush=True)
    runs: dict[str, list[ProcessRun]] = {name: [] for name in commands}
    for i in range(args.repeat):
        for name in (list(commands) if i % 2 == 0 else list(reversed(commands))):
            run = run_process(commands[name], folder / f"{name.split()[0]}.log")
            runs[name].append(run)
            print(f"{name:<28} wall {run.wall_s:7.2f} s   cpu {run.cpu_s:7.2f} s   peak {run.peak_gib:5.2f} GiB   "
                  f"exit {run.code}   load {run.load[0]:.2f} {run.load[1]:.2f} {run.load[2]:.2f}", flush=True)
            if run.code:
                print((folder / f"{name.split()[0]}.log").read_text()[-3000:], file=sys.stderr)
                return 1
    polars_out = pl.read_parquet(folder / "eligibility.parquet")
    duck = pl.read_parquet(folder / "duckdb-eligibility.parquet")
    joined = polars_out.join(duck, on=["patient_id", "rule_id"], how="full", suffix="_duck")
    status_diff = joined.filter(pl.col("status").ne_missing(pl.col("status_duck"))).height
    date_diff = joined.filter(pl.col("evidence_date").ne_missing(pl.col("evidence_date_duck"))).height
    print(f"segment vs DuckDB: {joined.height:,} rows, status differs in {status_diff}, "
          f"evidence_date differs in {date_diff}", flush=True)
    seg = min(runs["segment evaluate (Polars)"], key=lambda r: r.wall_s)
    duck_run = min(runs["hand-written SQL (DuckDB)"], key=lambda r: r.wall_s)
    cpu_ratio = min(r.cpu_s for r in runs["segment evaluate (Polars)"]) / min(
        r.cpu_s for r in runs["hand-written SQL (DuckDB)"])
    ratio = seg.wall_s / duck_run.wall_s
    print(f"best of {args.repeat}: segment {seg.wall_s:.2f} s ({seg.peak_gib:.2f} GiB), DuckDB {duck_run.wall_s:.2f} s "
          f"({duck_run.peak_gib:.2f} GiB); wall ratio {ratio:.2f} (target <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'}); "
          f"CPU-time ratio {cpu_ratio:.2f}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    return 0 if status_diff == 0 and date_diff == 0 else 1


def main_ecqm(args: argparse.Namespace) -> int:
    """CMS130 with the full VSAC sets: ``segment evaluate`` vs hand-written DuckDB SQL, whole processes."""
    vsac = args.vsac.resolve()
    cache = args.cache / f"ecqm-cms130-{args.patients}-{args.events_per_patient}"
    rules = cms130_rules_folder(args.cache / "rules-cms130")
    ruleset = load_rules(rules, vsac=vsac)
    n_codes = sum(len(v.codes) for v in ruleset.valuesets.values())
    print(f"rules: {rules} ({ECQM_RULE} only; {len(ruleset.valuesets)} value sets, {n_codes:,} codes)", flush=True)
    if args.regenerate or not (cache / "events.parquet").exists():
        with measure("generate inputs (NumPy)", patients=args.patients):
            generate_ecqm(cache, args.patients, args.events_per_patient, ruleset)
    n_events = pl.scan_parquet(cache / "events.parquet").select(pl.len()).collect().item()
    codes = cms130_codes(ruleset)
    codes.write_parquet(cache / "cms130-codes.parquet")
    print(f"inputs: {args.patients:,} patients, {n_events:,} events in {cache}; the SQL's value-set table: "
          f"{codes.height:,} code spellings in {codes['valueset'].n_unique()} sets", flush=True)
    script = cache / "cms130_duckdb.py"
    duck_out = cache / "duckdb-cms130.parquet"
    script.write_text(cms130_duckdb_script(cache, cache / "cms130-codes.parquet", duck_out, ECQM_AS_OF))
    segment = Path(sys.executable).parent / "segment"
    commands = {
        "segment evaluate (Polars)": [str(segment), "evaluate", str(cache), "--rules", str(rules), "--vsac",
                                      str(vsac), "--as-of", ECQM_AS_OF.isoformat(), "--log-format", "plain"],
        "hand-written SQL (DuckDB)": [sys.executable, str(script)],
    }
    print("  $ " + " ".join(commands["segment evaluate (Polars)"]), flush=True)
    print("  $ " + " ".join(commands["hand-written SQL (DuckDB)"]), flush=True)
    runs: dict[str, list[ProcessRun]] = {name: [] for name in commands}
    for i in range(args.repeat):
        order = list(commands) if i % 2 == 0 else list(reversed(commands))
        for name in order:
            run = run_process(commands[name], cache / f"{name.split()[0]}.log")
            runs[name].append(run)
            print(f"{name:<28} wall {run.wall_s:7.2f} s   cpu {run.cpu_s:7.2f} s   peak {run.peak_gib:5.2f} GiB   "
                  f"exit {run.code}   "
                  f"load {run.load[0]:.2f} {run.load[1]:.2f} {run.load[2]:.2f}", flush=True)
            if run.code:
                print((cache / f"{name.split()[0]}.log").read_text()[-3000:], file=sys.stderr)
                return 1
    polars_out = pl.read_parquet(cache / "eligibility.parquet")
    duck = pl.read_parquet(duck_out)
    show_branches(polars_out)
    differences = compare_cms130(polars_out, duck)
    best = {name: min(r, key=lambda x: x.wall_s) for name, r in runs.items()}
    seg, sql = best["segment evaluate (Polars)"], best["hand-written SQL (DuckDB)"]
    ratio = seg.wall_s / sql.wall_s
    cpu_ratio = min(r.cpu_s for r in runs["segment evaluate (Polars)"]) / min(
        r.cpu_s for r in runs["hand-written SQL (DuckDB)"])
    print(f"best of {args.repeat}: segment {seg.wall_s:.2f} s ({seg.peak_gib:.2f} GiB), DuckDB {sql.wall_s:.2f} s "
          f"({sql.peak_gib:.2f} GiB); wall ratio {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'}); "
          f"CPU-time ratio {cpu_ratio:.2f}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    return 0 if differences == 0 else 1


def main_spark(args: argparse.Namespace) -> int:
    """All shipped rules on both engines; the spark engine once per bucket count; rows compared."""
    import time

    from segment.spark.evaluate import evaluate_spark
    from segment.spark.session import SparkSettings, spark_session

    folder = args.cache / f"evaluate-{args.patients}-{args.events_per_patient}"
    if args.regenerate or not (folder / "events.parquet").exists():
        with measure("generate inputs (NumPy)", patients=args.patients):
            generate(folder, args.patients, args.events_per_patient)
    rules = default_rules_dir()
    with measure("evaluate: all 9 shipped rules (Polars engine)") as row:
        result = evaluate(folder, rules, AS_OF)
        row["rows"] = f"{result.rows:,}"
    polars_out = pl.read_parquet(folder / "eligibility.parquet").sort("patient_id", "rule_id")
    t0 = time.perf_counter()
    spark = spark_session(SparkSettings(master=args.master, conf={"spark.ui.enabled": "false"}))
    print(f"spark session ({args.master}) started in {time.perf_counter() - t0:.1f} s", flush=True)
    out = folder / "spark-out"
    failed = 0
    for buckets in [int(b) for b in str(args.buckets).split(",")]:
        spark.conf.set("spark.sql.shuffle.partitions", str(buckets))
        with measure(f"evaluate: all 9 shipped rules (spark engine, {buckets} buckets)") as row:
            sresult = evaluate_spark(folder, rules, AS_OF, spark=spark, buckets=buckets, out=str(out))
            row["rows"] = f"{sresult.rows:,}"
            row["per bucket"] = f"{args.patients // buckets:,} patients"
        spark_out = pl.read_parquet(out / "eligibility.parquet").sort("patient_id", "rule_id")
        same = spark_out.equals(polars_out) and sresult.waterfall == result.waterfall
        failed += not same
        print(f"spark ({buckets} buckets) vs Polars: {'identical' if same else 'DIFFERENT'} rows and waterfall",
              flush=True)
    RESULTS.print()
    return 1 if failed else 0
