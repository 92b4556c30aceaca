"""The Splink model: comparisons, blocking rules, training, saving and pinning.

**Comparisons** (levels from most to least alike; the first that holds decides):

- ``first_name``: missing, exact (term-frequency adjusted: a rare name counts more), the
  same after nickname mapping (Bill = William), first and last name swapped (each
  Jaro-Winkler >= 0.90 to the other's place), Jaro-Winkler >= 0.92, >= 0.80, one name in
  the other's place, anything else;
- ``last_name``: missing, exact (term-frequency adjusted), names swapped (weight 0: the
  first name weighs the swap), Jaro-Winkler >= 0.92, one contains the other (a
  double-barrelled name: ``Smith`` in ``Smith-Jones``), Jaro-Winkler >= 0.80, anything
  else between two women's records (a married name), anything else;
- ``birth_date``: missing, exact, day and month transposed, one character off
  (Damerau-Levenshtein 1: a mistyped or two swapped digits), the same year, anything else;
- ``sex`` (F or M; X and U are missing), ``phone``: missing, exact, anything else;
- ``identifier`` (SSN last four or an enterprise id): missing, exact, consecutive numbers
  (twins), one character off (6 characters or more; shorter), anything else;
- ``address``: missing, the same line 1 (Publication 28 normalized, without its unit) and
  ZIP, the same line 1, in the same ZIP a similar street (spaces ignored) with the same
  house number (or one missing), a similar street and the same number in another ZIP, the
  same street in the same ZIP (another house), the same ZIP only, anything else;
- ``email``: missing, exact (case ignored), the same but for the last name, the same
  local part, anything else.

**Training** (:func:`train`): u by random sampling of 1 million record pairs (fixed seed);
m by expectation maximisation in two sessions, one blocked on birth date (it estimates
every comparison but birth date) and one on first name, last name and ZIP (it estimates
birth date); the prior probability that two records match (lambda) from the pairs that
agree exactly on first name (nickname-mapped), last name and birth date, counted in
Polars and taken as 0.7 of the true matches. An extract over :data:`TRAIN_RECORDS`
records trains u and m on complete birth-date and last-name blocks of about that many
records. Below :data:`MIN_TRAIN_RECORDS` records (or when an EM session cannot run) m
keeps the documented priors :data:`PRIOR_M` and lambda is :func:`prior_lambda`; below
:data:`MIN_U_RECORDS` u keeps :data:`PRIOR_U` too. A level EM saw (almost) no matches in
keeps an m of at least :data:`M_FLOOR`, so its weight cannot outvote everything else.

**Saving and pinning**: the trained model is written as ``identity-model.json`` in the
working folder: Splink's own settings JSON (every m and u) inside an envelope that names
the model format and the Splink major version. ``--linkage-model FILE`` loads such a file
instead of training, so the same extract gives the same identities night after night.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from segment.errors import ConfigError
from segment.log import get_logger
from segment.memory import memory_budget_bytes

if TYPE_CHECKING:
    import duckdb

    from segment.ingest.identity.store import LinkageData

log = get_logger("identity")

#: the envelope's format number: bump when the comparisons change incompatibly
#: (2: fuzzy name swaps, unit-free addresses, consecutive and near identifiers)
MODEL_FORMAT = 2
MODEL_KIND = "segment-identity-model"
SPLINK_MAJOR = 4
#: below this many records m keeps its priors (EM on a handful of pairs is noise)
MIN_TRAIN_RECORDS = 2_000
#: below this many records u keeps its priors too
MIN_U_RECORDS = 200
#: EM runs on about this many records of a larger extract (complete blocks)
TRAIN_RECORDS = 100_000
U_MAX_PAIRS = 1_000_000
SEED = 15

#: m and u of the last-name comparison's "names swapped" level (fixed: weight 0)
SWAP_NEUTRAL = 0.001
#: an identifier of at least this many characters that is one character off is a typo of
#: one record's number (a 4-digit SSN tail one off is too likely by chance)
LONG_IDENTIFIER = 6

# prior m (share of true matches at the level) and u (share of non-matches), per level
# label, in the order of the levels after the null level; they sum to 1 per comparison
PRIOR_M: dict[str, list[float]] = {
    "first_name": [0.86, 0.04, 0.005, 0.05, 0.03, 0.002, 0.013],
    "last_name": [0.90, 0.04, 0.01, 0.02, 0.02, 0.01],
    "birth_date": [0.96, 0.01, 0.02, 0.005, 0.005],
    "sex": [0.98, 0.02],
    "address": [0.70, 0.05, 0.05, 0.02, 0.02, 0.06, 0.10],
    "phone": [0.85, 0.15],
    "email": [0.85, 0.01, 0.03, 0.11],
    "identifier": [0.95, 0.002, 0.02, 0.008, 0.02],
}
PRIOR_U: dict[str, list[float]] = {
    "first_name": [0.01, 0.001, 0.0001, 0.005, 0.05, 0.0005, 0.9334],
    "last_name": [0.005, 0.002, 0.0005, 0.03, 0.28, 0.6825],
    "birth_date": [0.00005, 0.000005, 0.0002, 0.012, 0.987745],
    "sex": [0.5, 0.5],
    "address": [0.00002, 0.00001, 0.00002, 0.00001, 0.0005, 0.05, 0.94944],
    "phone": [0.00002, 0.99998],
    "email": [0.00002, 0.00001, 0.00005, 0.99992],
    "identifier": [0.0001, 0.0002, 0.00005, 0.0008, 0.99885],
}


#: per comparison, its levels after the missing one: SQL condition, label, level options
_JW = "jaro_winkler_similarity"
#: first and last name swapped, each alike (Jaro-Winkler >= 0.9) to the other's place; one of
#: them starting with the same letter is tested first, as it is cheap
_SWAPPED = (
    '(substr("first_name_l", 1, 1) = substr("last_name_r", 1, 1) OR substr("last_name_l", 1, 1) = '
    f'substr("first_name_r", 1, 1)) AND {_JW}("first_name_l", "last_name_r") >= 0.9 AND '
    f'{_JW}("last_name_l", "first_name_r") >= 0.9'
)
#: an email's local part without the record's last name and punctuation (``cote_s31`` -> ``s31``)
_EMAIL_REST = ("regexp_replace(replace(lower(split_part(\"email_{s}\", '@', 1)), \"last_name_{s}\", ''), "
               "'[^a-z0-9]', '', 'g')")
LEVELS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "first_name": [
        ('"first_name_l" = "first_name_r"', "exact",
         {"tf_adjustment_column": "first_name", "tf_adjustment_weight": 1.0}),
        ('"first_canon_l" = "first_canon_r"', "nickname", {}),
        (_SWAPPED, "names swapped", {}),
        (f'{_JW}("first_name_l", "first_name_r") >= 0.92', "jaro-winkler >= 0.92", {}),
        (f'{_JW}("first_name_l", "first_name_r") >= 0.8', "jaro-winkler >= 0.80", {}),
        ('"first_name_l" = "last_name_r" OR "last_name_l" = "first_name_r"', "one name in the other's place",
         {}),
    ],
    "last_name": [
        ('"last_name_l" = "last_name_r"', "exact",
         {"tf_adjustment_column": "last_name", "tf_adjustment_weight": 1.0}),
        # the first-name comparison weighs a swap; here it is neither for nor against
        (_SWAPPED, "names swapped", {"m_probability": SWAP_NEUTRAL, "u_probability": SWAP_NEUTRAL,
                           "fix_m_probability": True, "fix_u_probability": True}),
        (f'{_JW}("last_name_l", "last_name_r") >= 0.92', "jaro-winkler >= 0.92", {}),
        ('length("last_name_l") >= 3 AND length("last_name_r") >= 3 AND '
         '(contains("last_name_l", "last_name_r") OR contains("last_name_r", "last_name_l"))',
         "one contains the other", {}),
        (f'{_JW}("last_name_l", "last_name_r") >= 0.8', "jaro-winkler >= 0.80", {}),
        # most women who marry take the husband's name: a different last name weighs less
        # between two women's records than otherwise
        ('"sex_l" = \'F\' AND "sex_r" = \'F\'', "different, both women", {}),
    ],
    "birth_date": [
        ('"birth_date_l" = "birth_date_r"', "exact", {}),
        ('"birth_year_l" = "birth_year_r" AND "birth_month_l" = "birth_day_r" '
         'AND "birth_day_l" = "birth_month_r"', "day and month transposed", {}),
        ('damerau_levenshtein("birth_date_l", "birth_date_r") <= 1', "one digit off", {}),
        ('"birth_year_l" = "birth_year_r"', "same year", {}),
    ],
    "sex": [('"sex_l" = "sex_r"', "exact", {})],
    "address": [
        ('"address_l" = "address_r" AND "zip5_l" = "zip5_r"', "line 1 and ZIP", {}),
        ('"address_l" = "address_r"', "line 1", {}),
        # the same house number and ZIP with a street alike (a mistyped ORCHARD is not ORCH), or
        # one number missing and a street more alike
        ('"zip5_l" = "zip5_r" AND (("address_number_l" = "address_number_r" AND '
         f'{_JW}("address_street_l", "address_street_r") >= 0.85) OR (("address_number_l" IS NULL '
         f'OR "address_number_r" IS NULL) AND {_JW}("address_street_l", "address_street_r") >= 0.9))',
         "similar line 1, same ZIP", {}),
        (f'"address_number_l" = "address_number_r" AND {_JW}("address_street_l", "address_street_r") >= 0.9',
         "similar line 1, other ZIP", {}),
        (f'"zip5_l" = "zip5_r" AND {_JW}("address_street_l", "address_street_r") >= 0.9',
         "same street, same ZIP", {}),
        ('"zip5_l" = "zip5_r"', "ZIP only", {}),
    ],
    "phone": [('"phone_l" = "phone_r"', "exact", {})],
    "email": [
        ('"email_l" = "email_r"', "exact", {}),
        # an address built from the name changes with it: jane.smith82 is jane.doe82 married
        # (the cheap tests first: each is evaluated only where those before it hold)
        ('"last_name_l" <> "last_name_r" AND length("last_name_l") >= 2 AND length("last_name_r") >= 2 AND '
         'contains("email_l", "last_name_l") AND contains("email_r", "last_name_r") AND '
         f"{_EMAIL_REST.format(s='l')} = {_EMAIL_REST.format(s='r')} AND "
         f"regexp_matches({_EMAIL_REST.format(s='l')}, '[a-z].*[a-z0-9]|[0-9].*[a-z]')",
         "the same but for the last name", {}),
        ("split_part(\"email_l\", '@', 1) = split_part(\"email_r\", '@', 1)", "same local part", {}),
    ],
    "identifier": [
        ('"identifier_l" = "identifier_r"', "exact", {}),
        # twins and siblings registered together get the next number: no proof of one person
        ('abs(try_cast("identifier_l" AS BIGINT) - try_cast("identifier_r" AS BIGINT)) = 1',
         "consecutive numbers", {}),
        (f'length("identifier_l") >= {LONG_IDENTIFIER} AND damerau_levenshtein("identifier_l", "identifier_r") <= 1',
         "one character off", {}),
        ('damerau_levenshtein("identifier_l", "identifier_r") <= 1', "one character off (short)", {}),
    ],
}


def _levels(name: str, priors: bool) -> list[Any]:
    import splink.comparison_level_library as cll

    def lv(sql: str, label: str, **extra: Any) -> Any:
        return cll.CustomLevel(sql, label_for_charts=label).configure(**extra)

    null_sql = {
        "address": '"address_l" IS NULL OR "address_r" IS NULL',
    }.get(name, f'"{name}_l" IS NULL OR "{name}_r" IS NULL')
    levels = [cll.CustomLevel(null_sql, label_for_charts="missing").configure(is_null_level=True)]
    prior = iter(zip(PRIOR_M[name], PRIOR_U[name], strict=True))
    for sql, label, extra in LEVELS[name]:
        if priors and "fix_m_probability" not in extra:  # a fixed level keeps its own m and u
            m, u = next(prior)
            extra = {**extra, "m_probability": m, "u_probability": u}
        levels.append(lv(sql, label, **extra))
    else_extra: dict[str, Any] = {}
    if priors:
        else_extra = {"m_probability": PRIOR_M[name][-1], "u_probability": PRIOR_U[name][-1]}
    levels.append(cll.ElseLevel().configure(label_for_charts="different", **else_extra))
    return levels


COMPARISONS = ("first_name", "last_name", "birth_date", "sex", "address", "phone", "email", "identifier")


#: the column Splink knows records by: their number (features.record_numbers), not the id's text
UID = "_record_number"


def blocking_rules() -> list[Any]:
    """Candidate pairs: records agreeing on any of these (hot values left out)."""
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    # the names and birth-date parts as numbers (features._code): the same pairs, faster joins
    return [
        # the same birth date and one name the same: the other name mistyped (its first letter
        # kept), or changed in the same ZIP (a married name, a middle name used). A birth date
        # and one name alone pair strangers by the tens of millions in a large extract (the
        # pairs grow with the square of the records); such a pair found by no other rule (no
        # shared phone, email or address) has only name and birth date for it: review at best
        block_on("_i_birth_date", "_i_first_canon", "_i_last_name_initial"),
        block_on("_i_birth_date", "_i_first_canon", "_i_zip5"),
        block_on("_i_birth_date", "_i_last_name", "_i_first_name_initial"),
        block_on("_i_birth_date", "_i_last_name", "_i_zip5"),
        block_on("_b_phone"),
        block_on("_b_email"),
        block_on("_b_identifier"),
        # the same name and a birth date with one part wrong (or day and month transposed); a
        # wrong year or month only in one ZIP: a common name's birthday in any year or month
        # pairs strangers by the million in a large extract, and such pairs, found by nothing
        # else, have only name and birth date for them (review at best)
        block_on("_i_first_canon", "_i_last_name", "_i_birth_month", "_i_birth_day", "_i_zip5"),
        block_on("_i_first_canon", "_i_last_name", "_i_birth_year", "_i_birth_month", "_i_zip5"),
        block_on("_i_first_canon", "_i_last_name", "_i_birth_year", "_i_birth_day", "_i_zip5"),
        CustomRule(
            'l._i_first_canon = r._i_first_canon AND l._i_last_name = r._i_last_name '
            'AND l._i_birth_year = r._i_birth_year '
            'AND l._i_birth_month = r._i_birth_day AND l._i_birth_day = r._i_birth_month',
            sql_dialect="duckdb",
        ),
        block_on("_b_address", "_i_first_canon"),
        block_on("_b_address", "_i_last_name"),
        # both names mistyped, or a name in the other's place, at one home
        block_on("_b_address", "_i_birth_date"),
        # a married name or a birth date mistyped, on a phone shared by a household
        block_on("_b_phone_shared", "_i_first_canon"),
        # first and last name swapped (exactly, or with the birth date to hold a typo)
        CustomRule('l._i_first_name = r._i_last_name AND l._i_last_name = r._i_first_name '
                   'AND l._i_birth_year = r._i_birth_year', sql_dialect="duckdb"),
        CustomRule('l._i_first_name = r._i_last_name AND l._i_last_name = r._i_first_name '
                   'AND l._i_birth_month = r._i_birth_month AND l._i_birth_day = r._i_birth_day', sql_dialect="duckdb"),
        CustomRule('l._i_first_name = r._i_last_name AND l._i_last_name = r._i_first_name '
                   'AND l._i_zip5 = r._i_zip5', sql_dialect="duckdb"),
        CustomRule('l._i_first_name = r._i_last_name AND l._i_birth_date = r._i_birth_date', sql_dialect="duckdb"),
        CustomRule('l._i_last_name = r._i_first_name AND l._i_birth_date = r._i_birth_date', sql_dialect="duckdb"),
    ]


def settings(comparisons: tuple[str, ...], priors: bool, lam: float = 1e-5) -> Any:
    """Splink settings for ``comparisons`` (with prior m/u when ``priors``)."""
    import splink.comparison_library as cl
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UID,
        comparisons=[
            cl.CustomComparison(output_column_name=name, comparison_levels=_levels(name, priors))
            for name in comparisons
        ],
        blocking_rules_to_generate_predictions=blocking_rules(),
        probability_two_random_records_match=lam,
        retain_matching_columns=True,  # with it, the gamma (level) of each comparison
        retain_intermediate_calculation_columns=False,
        additional_columns_to_retain=["source"],
        max_iterations=20,
        em_convergence=1e-4,
    )


@dataclass(frozen=True)
class LinkageModel:
    """A trained (or loaded) model: Splink's settings dict and how it came to be."""

    settings: dict[str, Any]
    trained_on: int
    m_from: str  # "em" or "priors"
    u_from: str  # "random sampling" or "priors"
    created: str
    source: str  # "trained" or the pinned file's path

    def envelope(self) -> dict[str, Any]:
        """The JSON written to ``identity-model.json``."""
        import splink

        return {
            "kind": MODEL_KIND, "format": MODEL_FORMAT, "splink_version": splink.__version__,
            "created": self.created, "trained_on_records": self.trained_on,
            "m_from": self.m_from, "u_from": self.u_from, "splink_settings": self.settings,
        }

    @property
    def comparisons(self) -> list[str]:
        """The comparison names, in order."""
        return [c["output_column_name"] for c in self.settings["comparisons"]]


#: the share of the memory budget given to DuckDB's buffer manager while pairs are scored
DUCKDB_SHARE = 0.6
#: the share when the records and their linkage frame are on disk (spilled: Polars holds little
#: while DuckDB scores). 3M people with SEGMENT_MEMORY_GB=4: scoring 27.5-29.5 s at 0.6,
#: 22.1-24.0 s at 0.75-0.85; the process peak 3.70 GiB at 0.6, 3.79 at 0.75, 4.19 at 0.85
DUCKDB_SPILLED_SHARE = 0.75
#: the least memory DuckDB is given, whatever the budget
DUCKDB_FLOOR_BYTES = 256 * 2**20


def connection(
    spill: Path | None = None, budget: int | None = None, share: float = DUCKDB_SHARE,
) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB (threads = cores, memory within the budget), without a progress bar.

    ``spill``: an owner-only folder for DuckDB's temporary files (without it, DuckDB's
    default: ``.tmp`` in the current folder). ``share``: of the budget, DuckDB's memory limit.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    if spill is not None:
        con.execute(f"SET temp_directory = '{spill.as_posix()}'")
    # DuckDB spills past its limit; by default it takes 80% of the machine, here a share of
    # the memory budget (SEGMENT_MEMORY_GB), leaving the rest to the Polars frames around it
    budget = memory_budget_bytes() if budget is None else budget
    # never below DuckDB's working minimum: a tiny budget (tests, small machines) spills, not fails
    limit = max(int(budget * share), DUCKDB_FLOOR_BYTES)
    con.execute(f"SET memory_limit = '{limit // 2**20}MiB'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


def make_linker(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame | LinkageData, table: str,
                settings_: Any) -> Any:
    """A Splink linker over ``frame`` (in memory, or the linkage frame's parts) as ``table`` in ``con``."""
    from splink import DuckDBAPI, Linker

    if isinstance(settings_, dict):
        # candidate pairs come from this version's blocking rules, also for a pinned model
        # (its m and u are the model; which pairs are scored is not)
        rules = [{"blocking_rule": r.get_blocking_rule("duckdb").blocking_rule_sql, "sql_dialect": "duckdb"}
                 for r in blocking_rules()]
        settings_ = {**settings_, "retain_matching_columns": True, "blocking_rules_to_generate_predictions": rules,
                     "unique_id_column_name": UID}
    if isinstance(frame, pl.DataFrame):
        con.register(table, frame.drop("unique_id", strict=False).to_arrow())  # Arrow buffers: no copy
    else:
        frame.register(con, table)
    return Linker(table, settings_, DuckDBAPI(connection=con), set_up_basic_logging=False)


def _training_sample(frame: pl.LazyFrame, n: int) -> pl.DataFrame | None:
    """Complete birth-date and last-name blocks of about :data:`TRAIN_RECORDS` of the ``n``
    records (None: train on all of them).

    The pairs within the birth-date blocks grow with the square of the records (0.9M at 1M
    people, 9M at 10M), but taking fewer blocks where they would be more than 4M pairs cost
    1.2% of the merges at 10M people (3,375,626 -> 3,334,603 pairs merged, 34,257 more in
    review): EM then saw too few matches to tell them apart. Every block is kept.
    """
    if n <= TRAIN_RECORDS:
        return None
    k = math.ceil(2 * n / TRAIN_RECORDS)
    return frame.filter(
        (pl.col("birth_date").hash(SEED) % k == 0) | (pl.col("last_name").hash(SEED) % k == 0)
    ).collect(engine="streaming")


def _present(frame: pl.LazyFrame, n: int) -> tuple[str, ...]:
    """Comparisons whose columns hold data (an extract without identifiers skips that one)."""
    optional = ("identifier", "email", "phone", "address", "sex")
    nulls = frame.select(pl.col(c).null_count() for c in optional).collect(engine="streaming").row(0)
    empty = {c for c, k in zip(optional, nulls, strict=True) if k == n}
    return tuple(c for c in COMPARISONS if c not in empty)


def quiet_splink() -> None:
    """Splink's own log lines (level names, EM iterations) go nowhere; ours carry the counts."""
    logging.getLogger("splink").setLevel(logging.ERROR)


def train(data: LinkageData, con: duckdb.DuckDBPyConnection) -> tuple[LinkageModel, Any]:
    """Estimate the model on ``data`` (the linkage frame); returns it and a linker over ``data``."""
    from splink import block_on

    quiet_splink()

    frame = data.lazy()
    n = data.rows
    comparisons = _present(frame, n)
    use_em = n >= MIN_TRAIN_RECORDS
    use_u = n >= MIN_U_RECORDS
    lam = estimate_lambda(frame, n) if n >= MIN_TRAIN_RECORDS else prior_lambda(n)
    sample = _training_sample(frame, n) if use_em else None
    # a linker over the records only when it trains on them all (the scoring linker comes after)
    trainer = make_linker(con, data, "records", settings(comparisons, priors=True, lam=lam)) \
        if sample is None or sample.height == n else \
        make_linker(con, sample, "train_sample", settings(comparisons, priors=True, lam=lam))
    started = time.perf_counter()
    if use_u:
        trainer.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=SEED)
    u_seconds = time.perf_counter() - started
    m_from = "priors"
    if use_em:
        try:
            trainer.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
            trainer.training.estimate_parameters_using_expectation_maximisation(
                block_on("first_canon", "last_name", "zip5")
            )
            m_from = "em"
        except Exception as exc:  # Splink raises plain exceptions when a session has no pairs
            log.warning("EM could not run; m keeps its priors", reason=type(exc).__name__)
    # parallel sums differ in the last bits from run to run: rounded, the same extract gives
    # the same model file and the same scores
    # the file names the records' id column as before: every linker sets its own (make_linker)
    trained = _rounded({**_settings_dict(trainer), "probability_two_random_records_match": lam,
                        "unique_id_column_name": "unique_id"})
    linker = make_linker(con, data, "records", trained)
    model = LinkageModel(
        settings=trained, trained_on=n, m_from=m_from,
        u_from="random sampling" if use_u else "priors",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), source="trained",
    )
    log.info("linkage model trained", records=n, training_records=n if sample is None else sample.height,
             m_from=m_from,
             u_from=model.u_from, u_seconds=round(u_seconds, 1),
             em_seconds=round(time.perf_counter() - started - u_seconds, 1))
    return model, linker


#: the share of true matching pairs that agree exactly on first name (nickname-mapped),
#: last name and birth date: the recall assumed when the prior is estimated from them
LAMBDA_RECALL = 0.7


def estimate_lambda(frame: pl.LazyFrame, n: int) -> float:
    """The prior probability that two of the ``n`` records match: pairs agreeing on name and
    birth date / recall.

    Counted per group in Polars (k records of one key give k(k-1)/2 pairs), over all pairs.
    """
    agreeing = (
        frame.drop_nulls(["first_canon", "last_name", "birth_date"])
        .group_by("first_canon", "last_name", "birth_date").len()
        .select((pl.col("len").cast(pl.Float64) * (pl.col("len") - 1) / 2).sum()).collect(engine="streaming").item()
    ) or 0.0
    total = n * (n - 1) / 2
    lam = agreeing / LAMBDA_RECALL / total if total else 0.0
    return lam if 0.0 < lam < 1.0 else prior_lambda(n)


def prior_lambda(n: int) -> float:
    """The prior probability that two records match when the extract is too small to estimate it.

    About one record in two has a duplicate: n/2 matching pairs among n(n-1)/2.
    """
    return min(0.5, 1.0 / max(n - 1, 1))


#: the least m of a level: one EM saw (almost) no matches in must not outvote everything else
M_FLOOR = 1e-4


def _rounded(settings_: dict[str, Any]) -> dict[str, Any]:
    """m, u and lambda to 10 significant digits, m at least :data:`M_FLOOR`; no random linker id."""
    def r(x: Any) -> Any:
        return float(f"{x:.10g}") if isinstance(x, float) else x

    def level(lv: dict[str, Any]) -> dict[str, Any]:
        out = {k: r(v) if k in ("m_probability", "u_probability") else v for k, v in lv.items()}
        if isinstance(out.get("m_probability"), float) and out["m_probability"] < M_FLOOR:
            out["m_probability"] = M_FLOOR
        return out

    out = {k: v for k, v in settings_.items() if k != "linker_uid"}
    out["probability_two_random_records_match"] = r(out["probability_two_random_records_match"])
    out["comparisons"] = [
        {**c, "comparison_levels": [level(lv) for lv in c["comparison_levels"]]} for c in settings_["comparisons"]
    ]
    return out


def _settings_dict(linker: Any) -> dict[str, Any]:
    out: dict[str, Any] = linker.misc.save_model_to_json()
    return out


def save(model: LinkageModel, path: Path) -> None:
    """Write the model envelope as JSON (owner-only, atomically)."""
    from segment import workdir

    workdir.write_json(path, model.envelope())


def load(path: Path) -> LinkageModel:
    """Read a pinned model; a clear error when it is missing, unreadable or incompatible."""
    import splink

    if not path.is_file():
        raise ConfigError("linkage model file not found", path=path, key="--linkage-model",
                          hint=f"give a {MODEL_KIND} JSON file written by `segment ingest` (identity-model.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"linkage model file is not readable JSON ({type(exc).__name__})", path=path,
                          key="--linkage-model") from exc
    if not isinstance(data, dict) or data.get("kind") != MODEL_KIND:
        raise ConfigError(f"not a linkage model: `kind` is {data.get('kind') if isinstance(data, dict) else None!r}, "
                          f"expected {MODEL_KIND!r}", path=path, key="kind")
    if data.get("format") != MODEL_FORMAT:
        raise ConfigError(f"linkage model format {data.get('format')!r} is not supported; this version reads "
                          f"format {MODEL_FORMAT}: retrain (run ingest without --linkage-model) and pin the new "
                          "identity-model.json", path=path, key="format")
    version = str(data.get("splink_version", ""))
    if version.split(".")[0] != str(SPLINK_MAJOR) or splink.__version__.split(".")[0] != str(SPLINK_MAJOR):
        raise ConfigError(f"linkage model was written by Splink {version or 'unknown'}; this version runs "
                          f"Splink {splink.__version__} (major {SPLINK_MAJOR} needed): retrain and pin the new model",
                          path=path, key="splink_version")
    settings_ = data.get("splink_settings")
    comparisons = settings_.get("comparisons") if isinstance(settings_, dict) else None
    names = [c.get("output_column_name") if isinstance(c, dict) else None
             for c in (comparisons if isinstance(comparisons, list) else [])]
    unknown = [n for n in names if n not in COMPARISONS]
    if not names or unknown:
        raise ConfigError(f"linkage model has comparisons {unknown or names}; valid: {', '.join(COMPARISONS)}",
                          path=path, key="splink_settings")
    assert isinstance(settings_, dict)
    trained_on = data.get("trained_on_records", 0)
    if not isinstance(trained_on, int) or isinstance(trained_on, bool) or trained_on < 0:
        raise ConfigError(f"linkage model `trained_on_records` is {trained_on!r}; expected a whole number "
                          "of records (0 or more)", path=path, key="trained_on_records")
    return LinkageModel(
        settings=settings_, trained_on=trained_on,
        m_from=str(data.get("m_from", "")), u_from=str(data.get("u_from", "")),
        created=str(data.get("created", "")), source=str(path),
    )


def parameters(model: LinkageModel) -> list[dict[str, Any]]:
    """One row per comparison level: m, u and the match weight (log2 m/u)."""
    rows = []
    for comp in model.settings["comparisons"]:
        for level in comp["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = math.log2(m / u) if m and u else None
            rows.append({
                "comparison": comp["output_column_name"], "level": level.get("label_for_charts", ""),
                "m": m, "u": u, "match_weight": None if weight is None else round(weight, 2),
            })
    return rows
