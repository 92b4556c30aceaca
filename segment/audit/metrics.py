"""Equity arithmetic over patient-level flags: funnels, Wilson intervals, ratios, flags.

Everything here is a pure function over Polars frames. :func:`patient_flags` turns the
enriched patients and the campaign's per-patient contact plan into one row per patient
with boolean stage flags and string group columns; :func:`group_counts` counts every
stage for every (dimension, group) in one vectorized ``group_by`` over an unpivoted
frame; :func:`selection_ratios` adds selection rates with Wilson 95% intervals and the
ratio to each dimension's reference group with a Katz log interval and the four-fifths
flags (below 0.8 or above 1.25). Small-cell suppression is applied later, when figures
are published (:mod:`segment.audit.suppress`), and never changes these exact figures.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

import polars as pl

from segment.dates import age_band_expr
from segment.errors import ConfigError
from segment.schema import (
    NEED_INDEX_QUINTILE,
    PRECISE_GEO,
    RURALITY,
    SDOH_SOURCE,
    GeoPrecision,
)

#: smallest count published; counts 1-10 are shown as "<11" (CMS cell-size rule)
MIN_CELL = 11
#: the four-fifths band, applied in both directions (as Aequitas does)
BAND_LOW = 0.8
BAND_HIGH = 1.25
#: two-sided 95% normal quantile
Z95 = 1.959963984540054
#: label of a group whose value is missing in the data
MISSING = "(missing)"

#: the dimensions every audit reports, in order: name -> source column
DEFAULT_DIMENSIONS: dict[str, str] = {
    "race": "race",
    "ethnicity": "ethnicity",
    "sex": "sex",
    "age_band": "birth_date",
    "language": "language",
    "need_index_quintile": NEED_INDEX_QUINTILE,
    "rurality": RURALITY,
}

#: funnel stages, in order; every stage is counted among the eligible
FUNNEL_STAGES = ("eligible", "geocoded_precise", "enriched", "contactable", "selected")
#: reach-gap columns (among the eligible)
REACH_COLUMNS = ("no_digital", "mail_fallback", "phone_fallback", "any_fallback", "no_channel")
#: geocoding columns (among all patients in the working folder)
GEO_COLUMNS = ("patients", "geo_matched", "geo_precise")
#: one count column per geocoding precision, named geo_<precision>
PRECISION_COLUMNS = tuple(f"geo_{p.value}" for p in GeoPrecision)
#: every count column :func:`group_counts` returns
COUNT_COLUMNS = (*GEO_COLUMNS, *PRECISION_COLUMNS, *FUNNEL_STAGES, *REACH_COLUMNS)

#: columns :func:`patient_flags` needs from the contact plan (docs/contracts.md)
CONTACT_COLUMNS = (
    "patient_id",
    "in_audience",
    "reachable_sms",
    "reachable_email",
    "reachable_mail",
    "reachable_phone",
    "contact_status",
)
CHANNELS = ("sms", "email", "mail", "phone")


# -- Wilson score interval ------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes`` out of ``n`` (None when ``n`` is 0).

    >>> tuple(round(x, 4) for x in wilson_interval(5, 10))
    (0.2366, 0.7634)
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_exprs(successes: pl.Expr, n: pl.Expr, z: float = Z95) -> tuple[pl.Expr, pl.Expr]:
    """Vectorized :func:`wilson_interval`: (low, high) expressions, null where ``n`` is 0."""
    k = successes.cast(pl.Float64)
    nn = n.cast(pl.Float64)
    p = k / nn
    z2 = z * z
    denom = 1 + z2 / nn
    centre = (p + z2 / (2 * nn)) / denom
    half = z * ((p * (1 - p) / nn + z2 / (4 * nn * nn)).sqrt()) / denom
    valid = nn > 0
    low = pl.when(valid).then(pl.max_horizontal(centre - half, pl.lit(0.0)))
    high = pl.when(valid).then(pl.min_horizontal(centre + half, pl.lit(1.0)))
    return low, high


def ratio_interval(
    a: int, n1: int, c: int, n2: int, z: float = Z95
) -> tuple[float, float] | None:
    """Katz log interval for the ratio of proportions (a/n1) / (c/n2).

    When any cell of the 2x2 table is zero (nobody, or everybody, selected in either
    group), 0.5 is added to every cell (the Haldane-Anscombe correction), so a group
    with nobody selected still gets an upper limit and two groups with everybody
    selected do not get a zero-width interval. None when either total is zero or both
    counts are zero.
    """
    if n1 <= 0 or n2 <= 0 or (a == 0 and c == 0):
        return None
    if a == 0 or c == 0 or a == n1 or c == n2:
        a_, c_, n1_, n2_ = a + 0.5, c + 0.5, n1 + 1.0, n2 + 1.0
    else:
        a_, c_, n1_, n2_ = float(a), float(c), float(n1), float(n2)
    log_ratio = math.log((a_ / n1_) / (c_ / n2_))
    se = math.sqrt(1 / a_ - 1 / n1_ + 1 / c_ - 1 / n2_)
    return math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


def _ratio_interval_exprs(
    a: pl.Expr, n1: pl.Expr, c: pl.Expr, n2: pl.Expr, z: float = Z95
) -> tuple[pl.Expr, pl.Expr]:
    """Vectorized :func:`ratio_interval`."""
    zero = (a == 0) | (c == 0) | (a == n1) | (c == n2)
    a_ = pl.when(zero).then(a + 0.5).otherwise(a).cast(pl.Float64)
    c_ = pl.when(zero).then(c + 0.5).otherwise(c).cast(pl.Float64)
    n1_ = pl.when(zero).then(n1 + 1).otherwise(n1).cast(pl.Float64)
    n2_ = pl.when(zero).then(n2 + 1).otherwise(n2).cast(pl.Float64)
    log_ratio = ((a_ / n1_) / (c_ / n2_)).log()
    se = (1 / a_ - 1 / n1_ + 1 / c_ - 1 / n2_).sqrt()
    valid = (n1 > 0) & (n2 > 0) & ~((a == 0) & (c == 0))
    low = pl.when(valid).then((log_ratio - z * se).exp())
    high = pl.when(valid).then((log_ratio + z * se).exp())
    return low, high


# -- patient-level flags --------------------------------------------------------------
def dimension_columns(extra: Sequence[str] = ()) -> dict[str, str]:
    """The audit's dimensions (name -> source column): the defaults plus ``extra`` columns."""
    dims = dict(DEFAULT_DIMENSIONS)
    for column in extra:
        dims.setdefault(column, column)
    return dims


def available_dimensions(
    schema: Sequence[str], extra: Sequence[str] = ()
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The dimensions to audit, and the default ones skipped for a missing column.

    A default dimension whose column the enriched file lacks (``rurality`` when the
    reference pack has no rurality indicator) is skipped with a reason; a column the
    user or campaign named must exist (:func:`patient_flags` raises otherwise).
    """
    present = set(schema)
    dims: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for name, column in dimension_columns(extra).items():
        if column in present or name in extra:
            dims[name] = column
        else:
            skipped.append(
                {"name": name, "column": column, "reason": f"enriched.parquet has no `{column}`"}
            )
    return dims, skipped


def _check_flag_inputs(schema: pl.Schema, contact_schema: pl.Schema, dims: Mapping[str, str],
                       channels: Sequence[str]) -> None:
    """A :class:`ConfigError` naming what the enriched file or the contact plan lacks, or a bad channel."""
    missing = sorted({c for c in dims.values() if c not in schema} | (
        {"patient_id", "geo_precision", SDOH_SOURCE} - set(schema)
    ))
    if missing:
        raise ConfigError(
            "enriched.parquet lacks column(s) the audit needs: " + ", ".join(missing),
            hint="run `segment enrich` again, or check the campaign's audit groups",
        )
    lacking = [c for c in CONTACT_COLUMNS if c not in contact_schema]
    if lacking:
        raise ConfigError("contact plan lacks column(s): " + ", ".join(lacking))
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ConfigError(
            f"unknown channel(s): {', '.join(unknown)}; valid options are: {', '.join(CHANNELS)}"
        )


def _patient_groups(enriched: pl.LazyFrame, schema: pl.Schema, dims: Mapping[str, str],
                    as_of: dt.date) -> pl.LazyFrame:
    """Per patient: a ``g:<dimension>`` string per dimension, the precision, enriched, deceased."""
    group_exprs = [
        (age_band_expr(column, as_of) if name == "age_band" else pl.col(column).cast(pl.String))
        .fill_null(MISSING).alias(f"g:{name}")
        for name, column in dims.items()
    ]
    precision = pl.col("geo_precision").cast(pl.String).fill_null(GeoPrecision.UNMATCHED.value)
    deceased = pl.col("deceased_date").is_not_null() if "deceased_date" in schema else pl.lit(False)
    return enriched.select(
        "patient_id",
        *group_exprs,
        precision.alias("_precision"),
        (pl.col(SDOH_SOURCE).cast(pl.String) == "tract").fill_null(False).alias("_enriched"),
        deceased.alias("_deceased"),
    )


def _stage_flags(channels: Sequence[str]) -> list[pl.Expr]:
    """The geocoding, funnel and reach-gap flags over the joined patients and plan."""
    eligible = (
        pl.col("in_audience").fill_null(False)
        & (pl.col("contact_status").fill_null("") != "deceased")
        & ~pl.col("_deceased")
    )
    reach = {ch: pl.col(f"reachable_{ch}").fill_null(False) for ch in CHANNELS}
    contactable = pl.any_horizontal(pl.lit(False), *(reach[ch] for ch in channels))
    no_digital = eligible & ~reach["sms"] & ~reach["email"]
    precise = pl.col("_precision").is_in([p.value for p in PRECISE_GEO])
    return [
        pl.lit(True).alias("patients"),
        (pl.col("_precision") != GeoPrecision.UNMATCHED.value).alias("geo_matched"),
        precise.alias("geo_precise"),
        *((pl.col("_precision") == p.value).alias(f"geo_{p.value}") for p in GeoPrecision),
        eligible.alias("eligible"),
        (eligible & precise).alias("geocoded_precise"),
        (eligible & pl.col("_enriched")).alias("enriched"),
        (eligible & contactable & (pl.col("contact_status").fill_null("") != "do_not_contact")
         ).alias("contactable"),
        (eligible & (pl.col("contact_status") == "selected").fill_null(False)).alias("selected"),
        no_digital.alias("no_digital"),
        (no_digital & reach["mail"]).alias("mail_fallback"),
        (no_digital & reach["phone"]).alias("phone_fallback"),
        (no_digital & (reach["mail"] | reach["phone"])).alias("any_fallback"),
        (no_digital & ~reach["mail"] & ~reach["phone"]).alias("no_channel"),
    ]


def patient_flags(
    enriched: pl.LazyFrame,
    contacts: pl.LazyFrame,
    *,
    channels: Sequence[str],
    as_of: dt.date,
    extra_groups: Sequence[str] = (),
    dimensions: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """One row per patient: string group columns and boolean stage flags.

    ``contacts`` is the output of ``segment.campaign.plan_contacts`` (one row per
    patient). A patient is *eligible* when in the campaign's audience and not deceased
    (a ``deceased_date``, or the plan's ``deceased`` status, which a do-not-contact flag
    would otherwise mask); *contactable* when reachable on at least one of ``channels``
    and not marked do-not-contact; *selected* when the contact status is ``selected``.
    Reach gaps: *no_digital* means eligible but neither SMS- nor email-reachable; the
    fallbacks count who of those mail or phone would reach. ``dimensions`` (name ->
    column) replaces the defaults plus ``extra_groups``.
    """
    schema = enriched.collect_schema()
    dims = dict(dimensions) if dimensions is not None else dimension_columns(extra_groups)
    _check_flag_inputs(schema, contacts.collect_schema(), dims, channels)
    plan = contacts.select(
        "patient_id",
        pl.col("in_audience").fill_null(False),
        *(pl.col(f"reachable_{ch}").fill_null(False) for ch in CHANNELS),
        pl.col("contact_status").cast(pl.String),
    )
    joined = _with_plan(_patient_groups(enriched, schema, dims, as_of), plan)
    return joined.select("patient_id", pl.col("^g:.*$"), *_stage_flags(channels))


def _with_plan(groups: pl.LazyFrame, plan: pl.LazyFrame) -> pl.LazyFrame:
    """Each patient with their plan row: a left join on ``patient_id``.

    When both frames list the same ids, without nulls, in the same strictly increasing order
    (the plan is sorted by id, and so is a working folder's patient file) the rows already
    pair up and are put side by side, which gives the join's result without hashing a
    million ids.
    """
    left, right = pl.collect_all([groups, plan])
    ids, plan_ids = left.get_column("patient_id"), right.get_column("patient_id")
    aligned = (
        ids.dtype == plan_ids.dtype and ids.len() == plan_ids.len() and ids.null_count() == 0
        and ids.equals(plan_ids) and bool((ids.shift(-1) > ids).all())
    )
    if aligned:
        return left.hstack(right.drop("patient_id").get_columns()).lazy()
    return left.lazy().join(right.lazy(), on="patient_id", how="left")


# -- counts per group -----------------------------------------------------------------
def group_counts(flags: pl.LazyFrame, columns: Sequence[str] = COUNT_COLUMNS) -> pl.LazyFrame:
    """Count every stage per (dimension, group), plus an overall row per dimension.

    One ``group_by`` over the patient rows by every group column together (the cells), then
    one per dimension over the cells and one overall sum shared by every dimension: the result has ``dimension``,
    ``group`` and every column in ``columns`` (default :data:`COUNT_COLUMNS`; Int64). The
    overall row of each dimension has a null ``group``; no rows when ``flags`` has none.
    """
    schema = flags.collect_schema()
    group_cols = [c for c in schema.names() if c.startswith("g:")]
    if not group_cols:  # no dimension: no rows (and no pass over the patients)
        return pl.LazyFrame(schema={"dimension": pl.String, "group": pl.String, **dict.fromkeys(columns, pl.Int64)})
    # one pass over the patients: counts per combination of groups (a boolean flag summed as
    # it is), then each dimension and the overall row from those few thousand rows
    cells = flags.group_by(group_cols).agg(
        *[(pl.col(c) if schema.get(c) == pl.Boolean else pl.col(c).cast(pl.Int64)).sum().alias(c) for c in columns],
        pl.len().alias("_n"),
    )
    cells = cells.collect().lazy()  # read by every dimension: made once
    counts = [pl.col(c).cast(pl.Int64).sum().alias(c) for c in columns]
    overall = cells.select(*counts, pl.col("_n").sum()).filter(pl.col("_n") > 0).drop("_n")
    parts = []
    for order, column in enumerate(group_cols):
        tag = [pl.lit(column.removeprefix("g:")).alias("dimension"), pl.lit(order, pl.Int32).alias("_order")]
        parts.append(cells.group_by(pl.col(column).cast(pl.String).alias("group")).agg(counts).with_columns(tag))
        parts.append(overall.with_columns(pl.lit(None, pl.String).alias("group"), *tag))
    return (
        pl.concat(parts, how="diagonal")
        .sort("_order", pl.col("group").is_null(), pl.col("group") == MISSING, "group")
        .select("dimension", "group", *columns)
    )


#: delivery columns (among patients the campaign was sent to, when vendor feedback exists)
DELIVERY_COLUMNS = ("sent", "delivered", "failed", "unknown")


def delivery_flags(flags: pl.LazyFrame, outcomes: pl.LazyFrame) -> pl.LazyFrame:
    """Group columns of ``flags`` with per-patient delivery flags from the ledger.

    ``outcomes`` has ``patient_id``, ``delivered`` and ``failed`` for every patient the
    campaign was sent to (:meth:`segment.campaign.ledger.ContactLedger.delivery_outcomes`);
    *unknown* is sent with no delivery or failure reported. Patients no longer in the
    working folder are not counted (the groups come from it).
    """
    sent = outcomes.select(
        pl.col("patient_id").cast(pl.String),
        pl.lit(True).alias("sent"),
        pl.col("delivered").fill_null(False),
        pl.col("failed").fill_null(False),
    )
    joined = flags.select("patient_id", pl.col("^g:.*$")).join(sent, on="patient_id", how="inner")
    return joined.with_columns(
        (~pl.col("delivered") & ~pl.col("failed")).alias("unknown")
    )


def choose_references(
    counts: pl.DataFrame, named: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """The reference group of each dimension: the user-named one, or the largest.

    The default is the group with the most eligible people among groups with at least
    :data:`MIN_CELL` eligible and a known value (ties broken by name); None when no
    group qualifies. A named reference must exist and have at least :data:`MIN_CELL`
    eligible people, otherwise :class:`ConfigError`.
    """
    named = dict(named or {})
    groups = counts.filter(pl.col("group").is_not_null())
    dims = list(dict.fromkeys(groups["dimension"].to_list()))
    unknown = sorted(set(named) - set(dims))
    if unknown:
        raise ConfigError(
            f"key `reference_group`: found {unknown[0]!r}; valid options are: " + ", ".join(dims),
            key="reference_group",
        )
    candidates = (
        groups.filter((pl.col("eligible") >= MIN_CELL) & (pl.col("group") != MISSING))
        .sort(["dimension", "eligible", "group"], descending=[False, True, False])
        .group_by("dimension", maintain_order=True)
        .first()
    )
    largest = dict(zip(candidates["dimension"], candidates["group"], strict=True))
    chosen: dict[str, str | None] = {}
    for dim in dims:
        if dim in named:
            row = groups.filter((pl.col("dimension") == dim) & (pl.col("group") == named[dim]))
            if row.height == 0:
                raise ConfigError(
                    f"key `reference_group`: group {named[dim]!r} not found in {dim}",
                    key="reference_group",
                )
            if int(row["eligible"][0]) < MIN_CELL:
                raise ConfigError(
                    f"key `reference_group`: group {named[dim]!r} in {dim} has fewer than "
                    f"{MIN_CELL} eligible people; choose a larger reference group",
                    key="reference_group",
                )
            chosen[dim] = named[dim]
        else:
            chosen[dim] = largest.get(dim)
    return chosen


def selection_ratios(
    counts: pl.DataFrame, references: Mapping[str, str | None]
) -> pl.DataFrame:
    """Per group: selection rate, Wilson interval, ratio to the reference, and flag.

    Adds ``selection_rate`` (selected / eligible; null when nobody is eligible),
    ``rate_low``/``rate_high`` (Wilson 95%), ``reference_group``, ``reference_rate``,
    ``ratio`` (group rate / reference rate; null when either is undefined or the
    reference rate is 0), ``ratio_low``/``ratio_high`` (Katz log 95% interval),
    ``flag`` (``below`` when ratio < 0.8, ``above`` when > 1.25, else null; never for
    the reference itself or a group with fewer than :data:`MIN_CELL` eligible) and
    ``flag_clear`` (the whole ratio interval lies outside the band).
    """
    ref_frame = pl.DataFrame(
        {"dimension": list(references), "reference_group": list(references.values())},
        schema={"dimension": pl.String, "reference_group": pl.String},
    )
    groups = counts.filter(pl.col("group").is_not_null())
    ref_counts = groups.join(
        ref_frame, left_on=["dimension", "group"], right_on=["dimension", "reference_group"]
    ).select(
        "dimension",
        pl.col("selected").alias("_ref_selected"),
        pl.col("eligible").alias("_ref_eligible"),
    )
    rate_low, rate_high = wilson_exprs(pl.col("selected"), pl.col("eligible"))
    is_ref = pl.col("group") == pl.col("reference_group")
    out = (
        counts.join(ref_frame, on="dimension", how="left")
        .join(ref_counts, on="dimension", how="left")
        .with_columns(
            pl.when(pl.col("eligible") > 0)
            .then(pl.col("selected") / pl.col("eligible"))
            .alias("selection_rate"),
            rate_low.alias("rate_low"),
            rate_high.alias("rate_high"),
            pl.when(pl.col("_ref_eligible") > 0)
            .then(pl.col("_ref_selected") / pl.col("_ref_eligible"))
            .alias("reference_rate"),
        )
    )
    r_low, r_high = _ratio_interval_exprs(
        pl.col("selected"), pl.col("eligible"), pl.col("_ref_selected"), pl.col("_ref_eligible")
    )
    comparable = (
        pl.col("group").is_not_null()
        & (pl.col("eligible") > 0)
        & (pl.col("reference_rate") > 0)
    )
    out = out.with_columns(
        pl.when(comparable).then(pl.col("selection_rate") / pl.col("reference_rate")).alias("ratio"),
        pl.when(comparable & ~is_ref).then(r_low).alias("ratio_low"),
        pl.when(comparable & ~is_ref).then(r_high).alias("ratio_high"),
    )
    judged = comparable & ~is_ref & (pl.col("eligible") >= MIN_CELL)
    out = out.with_columns(
        pl.when(judged & (pl.col("ratio") < BAND_LOW))
        .then(pl.lit("below"))
        .when(judged & (pl.col("ratio") > BAND_HIGH))
        .then(pl.lit("above"))
        .alias("flag"),
    ).with_columns(
        pl.when(pl.col("flag").is_not_null())
        .then((pl.col("ratio_high") < BAND_LOW) | (pl.col("ratio_low") > BAND_HIGH))
        .alias("flag_clear"),
    )
    return out.drop("_ref_selected", "_ref_eligible")
