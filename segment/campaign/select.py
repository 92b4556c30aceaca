"""``plan_contacts``: audience, consent, suppression, caps and one channel per patient.

Everything is vectorized: the audience is a group-by over eligibility, suppression and
caps are joins, the channel is a ``when/then`` chain in the campaign's preference
order. The result has one row per patient with the reason they are, or are not, sent.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from segment.campaign.caps import capped_channels, longest_window
from segment.campaign.holdout import assign_arms, holdout_key, stratum_columns, stratum_exprs
from segment.campaign.journey import HISTORY_SCHEMA as JH
from segment.campaign.journey import (
    JOURNEY_STATE_DTYPE,
    STOP_STATES,
    JourneyState,
    decision_exprs,
    is_step_channel,
)
from segment.campaign.ledger import HISTORY_SCHEMA, ContactLedger
from segment.campaign.model import (
    ARM_DTYPE,
    CHANNEL_DTYPE,
    CONTACT_STATUS_DTYPE,
    Arm,
    Campaign,
    Channel,
    ContactStatus,
)
from segment.campaign.preferences import Preferences, apply_preferences, load_preferences
from segment.campaign.quiet_hours import SEND_KEYS, add_timezones, planned_send_utc, send_times
from segment.campaign.suppression import E164, Suppression, load_suppression, normalize_emails
from segment.campaign.variants import assign_variants
from segment.dates import age_in_years
from segment.errors import CampaignError
from segment.log import get_logger
from segment.memory import Batch, patient_batches

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
REQUIRED_PATIENT_COLUMNS = ("patient_id",)
ELIGIBILITY_COLUMNS = ("patient_id", "rule_id", "status")
CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.MAIL, Channel.PHONE)
#: patient columns the time-zone lookup reads (carried from the first read of the patients)
_PLACE_COLUMNS = ("lat", "lon", "state", "zip5")

#: the columns plan_contacts returns, in order
PLAN_COLUMNS = (
    "patient_id", "in_audience", "reachable_sms", "reachable_email", "reachable_mail",
    "reachable_phone", "suppressed", "frequency_capped", "channel", "contact_status",
    "already_sent", "timezone", "timezone_source", "send_after_utc", "arm",
    "preferred_channel", "on_preferred", "variant", "variant_reason", "journey_step", "journey_state",
    "journey_exit",
)

LedgerLike = ContactLedger | pl.DataFrame | pl.LazyFrame | None
log = get_logger("campaign")


def _col(schema: pl.Schema, name: str, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    """The column if present, else a typed null (so absent optional inputs mean 'unknown')."""
    return pl.col(name) if name in schema else pl.lit(None, dtype)


def _is_blank(expr: pl.Expr) -> pl.Expr:
    return expr.is_null() | (expr.cast(pl.String).str.strip_chars() == "")


def _audience(campaign: Campaign, eligibility: pl.LazyFrame) -> pl.LazyFrame:
    """``patient_id`` of patients whose rule statuses match ``all`` and ``any``."""
    aud = campaign.audience

    def statuses(sel: object) -> list[str]:
        return [str(s) for s in (sel if isinstance(sel, list) else [sel])]

    match = pl.lit(False)
    for rule, sel in [*aud.all.items(), *aud.any.items()]:
        match = match | ((pl.col("rule_id") == rule) & pl.col("status").is_in(statuses(sel)))
    hits = eligibility.filter(match)
    aggs = []
    if aud.all:
        # a rule listed under both keys must match the `all` statuses
        all_match = pl.lit(False)
        for rule, sel in aud.all.items():
            all_match = all_match | ((pl.col("rule_id") == rule) & pl.col("status").is_in(statuses(sel)))
        aggs.append(pl.col("rule_id").filter(all_match).n_unique().alias("_n_all"))
    if aud.any:
        aggs.append(pl.col("rule_id").is_in(list(aud.any)).any().alias("_any"))
    grouped = hits.group_by("patient_id").agg(aggs)
    cond = pl.lit(True)
    if aud.all:
        cond = cond & (pl.col("_n_all") == len(aud.all))
    if aud.any:
        cond = cond & pl.col("_any")
    return grouped.filter(cond).select("patient_id")


def _filters(campaign: Campaign, schema: pl.Schema, as_of: dt.date) -> pl.Expr:
    f = campaign.audience.filters
    where = pl.lit(True)
    path = campaign.path

    def need(column: str, key: str) -> None:
        if column not in schema:
            raise CampaignError(
                f"key `audience.filters.{key}` filters on column `{column}`, which the patient "
                "file does not have (run `segment enrich` or remove the filter)",
                path=path, key=f"audience.filters.{key}", column=column,
            )

    if f.age is not None:
        need("birth_date", "age")
        age = age_in_years(pl.col("birth_date"), as_of)
        if f.age.min is not None:
            where = where & (age >= f.age.min)
        if f.age.max is not None:
            where = where & (age <= f.age.max)
    for key in ("county_fips", "state", "language", "zip5"):
        values = getattr(f, key)
        if values is not None:
            need(key, key)
            where = where & pl.col(key).cast(pl.String).is_in([str(v) for v in values])
    for column, values in f.columns.items():
        need(column, f"columns.{column}")
        dtype = schema[column]
        where = where & pl.col(column).is_in(pl.Series(values).cast(dtype, strict=False).to_list())
    return where.fill_null(False)


def _history(ledger: LedgerLike, campaign: Campaign, planned: dt.datetime) -> pl.LazyFrame:
    if ledger is None:
        return pl.DataFrame(schema=HISTORY_SCHEMA).lazy()
    if isinstance(ledger, ContactLedger):
        days = longest_window(campaign.frequency_caps)
        since = planned - dt.timedelta(days=days) if days else None
        return ledger.history(since, campaign.code).lazy()
    frame = ledger.lazy() if isinstance(ledger, pl.DataFrame) else ledger
    return frame.select(list(HISTORY_SCHEMA)).cast(HISTORY_SCHEMA)  # type: ignore[arg-type]


def plan_contacts(
    campaign: Campaign,
    patients: pl.LazyFrame,
    eligibility: pl.LazyFrame,
    ledger: LedgerLike = None,
    as_of: dt.date | None = None,
    *,
    run_id: str | None = None,
    suppression: Suppression | None = None,
    send_from: dt.datetime | None = None,
    blocked: pl.DataFrame | None = None,
    arms: pl.DataFrame | None = None,
    preferences: Preferences | None = None,
    journey: pl.DataFrame | None = None,
    timing: bool = True,
) -> pl.LazyFrame:
    """One row per patient: audience, reachability per channel, the chosen channel, and why.

    ``ledger`` is a :class:`ContactLedger`, a frame with the ledger's columns, or None
    (no history). Contacts recorded under ``run_id`` are ignored (a rerun of the same
    run). ``suppression`` defaults to the campaign's suppression files.
    Columns: see :data:`PLAN_COLUMNS`; ``contact_status`` is a :class:`ContactStatus`
    value; ``channel`` is null unless selected; ``timezone``/``send_after_utc`` are set
    for SMS (and ``timezone`` for phone) rows. ``send_from``: SMS is not planned before
    this time (a past as-of date sends from now; caps still count from the as-of date).
    ``blocked``: ``patient_id``, ``channel`` pairs suppressed by vendor feedback (hard
    bounces, invalid numbers, opt-outs), from :meth:`ContactLedger.blocked`.
    ``arms``: ``patient_id``, ``arm`` already recorded for the campaign (from
    :meth:`ContactLedger.arms`; default: read from ``ledger`` when it is a ledger). With a
    campaign ``holdout:``, every eligible, contactable patient gets an ``arm`` (after
    contact policy, before caps); held-out patients get the status ``holdout`` and are
    never selected. ``arm`` is null without a holdout and for everyone else.

    ``preferences``: the analyst's preferences file, resolved (default: read from the
    campaign's ``preferences:``); its channel and language win over the extract's. The
    preferred channel, when usable, is tried first, then the campaign order;
    ``on_preferred`` says whether a selected patient got it (null: no preference).
    ``variant``/``variant_reason``: the message variant of each selected patient.
    ``journey``: for a campaign with ``journey:``, the ledger history per patient
    (:func:`segment.campaign.journey.journey_history`); ``journey_step``/``journey_state``
    say which step is due tonight (only its channels are used) and ``journey_exit`` marks
    a stop decided tonight. Without a history frame every patient starts at step 1.
    ``timing=False`` skips the time-zone and send-time look-ups (``timezone``,
    ``timezone_source`` and ``send_after_utc`` are null; nothing else changes): for callers
    that only count the plan, like the audit.
    """
    as_of = as_of or campaign.as_of or dt.date.today()
    if preferences is None and campaign.preferences is not None:
        preferences = load_preferences(campaign.preferences, patients)
    schema = apply_preferences(patients, preferences).collect_schema()
    _check_inputs(campaign, schema, eligibility)
    planned = planned_send_utc(as_of, campaign.schedule)
    ctx = _Planning(campaign, as_of, schema, suppression if suppression is not None else load_suppression(
        list(campaign.suppression)), planned, max(planned, send_from) if send_from is not None else planned,
        run_id, blocked, arms, preferences, journey, timing)
    batches = plan_batches(patients)
    if len(batches) == 1:
        return _plan(ctx, patients, eligibility, ledger)
    return _plan_batches(ctx, patients, eligibility, ledger, batches)


#: the contact plan's working set per patient (the patient columns it reads, the plan's own)
PLAN_BYTES_PER_PATIENT = 1200


def plan_batches(patients: pl.LazyFrame) -> list[Batch]:
    """The batches :func:`plan_contacts` plans ``patients`` in under the memory budget (one when all fit)."""
    return patient_batches(int(patients.select(pl.len()).collect().item()), PLAN_BYTES_PER_PATIENT)


@dataclass(frozen=True)
class _Planning:
    """What every batch of one plan shares (checked and loaded once)."""

    campaign: Campaign
    as_of: dt.date
    schema: pl.Schema
    sup: Suppression
    planned: dt.datetime
    start: dt.datetime
    run_id: str | None
    blocked: pl.DataFrame | None
    arms: pl.DataFrame | None
    preferences: Preferences | None
    journey: pl.DataFrame | None
    timing: bool


def _audience_base(ctx: _Planning, patients: pl.LazyFrame, eligibility: pl.LazyFrame
                   ) -> tuple[pl.LazyFrame, dict[Channel, pl.Expr]]:
    """Patients (preferences applied) with ``in_audience`` and their suppression flags."""
    audience = _audience(ctx.campaign, eligibility).collect().get_column("patient_id")
    base = _base(ctx.campaign, patients, ctx.schema, ctx.as_of).with_columns(
        (listed("patient_id", audience) & pl.col("_filters_ok")).alias("in_audience"))
    return _suppression(base, ctx.sup, ctx.blocked)


def _plan(ctx: _Planning, patients: pl.LazyFrame, eligibility: pl.LazyFrame, ledger: LedgerLike) -> pl.LazyFrame:
    """The plan of ``patients`` (all of them, or one batch) from the raw patient rows."""
    campaign = ctx.campaign
    patients = apply_preferences(patients, ctx.preferences)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the ledger is read while the patients are
        history = pool.submit(lambda: _history(ledger, campaign, ctx.planned).collect())
        base, suppressed = _audience_base(ctx, patients, eligibility)
        base = _caps(base.collect().lazy(), campaign, history.result().lazy(), ctx.planned, ctx.run_id)
    base = _arms(base, campaign, ledger, ctx.arms, suppressed)
    base, allow = _journey(base, campaign, ctx.journey, ctx.as_of, suppressed)
    decided = _decide(base, list(campaign.channels), suppressed, allow, waiting=campaign.journey is not None)
    out = _send_times(decided, campaign, ctx.start) if ctx.timing else _untimed(decided)
    plan = _variants(out, patients, campaign, ctx.as_of).select(PLAN_COLUMNS).with_columns(
        pl.col("channel").cast(CHANNEL_DTYPE),
        pl.col("contact_status").cast(CONTACT_STATUS_DTYPE),
        pl.col("arm").cast(ARM_DTYPE),
        pl.col("journey_state").cast(JOURNEY_STATE_DTYPE),
    )
    # patients usually come sorted by id, and the plan keeps their order: no copy when it is sorted already
    return (plan if plan.get_column("patient_id").is_sorted() else plan.sort("patient_id")).lazy()


def _plan_batches(ctx: _Planning, patients: pl.LazyFrame, eligibility: pl.LazyFrame, ledger: LedgerLike,
                  batches: list[Batch]) -> pl.LazyFrame:
    """The plan batch by batch of patients (each with its range of eligibility rows), concatenated.

    The ledger's history is read once; a holdout's arms are drawn once over every batch's
    candidates (the draw ranks patients within strata across the whole campaign), then each
    batch keeps them. Batches come in patient order, so the plan is sorted as the unbatched one.
    """
    log.info("planning contacts in batches", batches=len(batches))
    history = _history(ledger, ctx.campaign, ctx.planned).collect()
    arms = ctx.arms
    if ctx.campaign.holdout is not None:  # without a holdout no arm is read or drawn
        if arms is None and isinstance(ledger, ContactLedger) and ledger.path.exists():
            arms = ledger.arms(ctx.campaign.code)
        arms = _drawn_arms(ctx, patients, eligibility, batches, arms)
    ctx = replace(ctx, arms=arms)
    parts = [_plan(ctx, b.patients(patients), b.events(eligibility, patients), history).collect()
             for b in batches]
    plan = pl.concat(parts)
    return (plan if plan.get_column("patient_id").is_sorted() else plan.sort("patient_id")).lazy()


def _drawn_arms(ctx: _Planning, patients: pl.LazyFrame, eligibility: pl.LazyFrame, batches: list[Batch],
                prior: pl.DataFrame | None) -> pl.DataFrame:
    """``patient_id``, ``arm`` of every candidate (eligible and contactable) of all batches."""
    holdout = ctx.campaign.holdout
    if holdout is None:
        raise CampaignError("the campaign has no `holdout:`", path=ctx.campaign.path, key="holdout")
    channels = list(ctx.campaign.channels)
    candidates = []
    for b in batches:
        base, suppressed = _audience_base(ctx, apply_preferences(b.patients(patients), ctx.preferences),
                                          b.events(eligibility, patients))
        candidates.append(base.filter(
            pl.col("in_audience") & ~pl.col("_dnc") & ~pl.col("_deceased") & _policy_ok(channels, suppressed)
        ).select("patient_id", pl.col("^s:.*$")).collect())
    drawn = assign_arms(pl.concat(candidates), holdout, holdout_key(ctx.campaign), prior)
    return drawn.select("patient_id", "arm")


def _check_inputs(campaign: Campaign, schema: pl.Schema, eligibility: pl.LazyFrame) -> None:
    """The patient and eligibility columns plan_contacts reads, and every audience rule evaluated."""
    for name in REQUIRED_PATIENT_COLUMNS:
        if name not in schema:
            raise CampaignError(f"the patient file has no `{name}` column", column=name)
    eschema = eligibility.collect_schema()
    missing = [c for c in ELIGIBILITY_COLUMNS if c not in eschema]
    if missing:
        raise CampaignError(f"eligibility file lacks column(s): {', '.join(missing)}")
    wanted = campaign.audience.rule_ids()
    # only the audience's rules are looked for (row groups of other rules are skipped by their statistics)
    found = set(eligibility.filter(pl.col("rule_id").is_in(wanted)).select(pl.col("rule_id").unique())
                .collect().get_column("rule_id").to_list())
    absent = [r for r in campaign.audience.rule_ids() if r not in found]
    if absent:
        known_rules = set(
            eligibility.select(pl.col("rule_id").unique()).collect().get_column("rule_id").to_list()
        )
        raise CampaignError(
            f"audience rule(s) not in eligibility.parquet: {', '.join(absent)}; "
            f"evaluated rules: {', '.join(sorted(str(r) for r in known_rules)) or 'none'}",
            path=campaign.path, key="audience",
        )


def _reachable(campaign: Campaign, schema: pl.Schema) -> dict[Channel, pl.Expr]:
    """Per channel: consent and a usable contact (SMS: a mobile-capable number and some texting hours)."""
    phone_ok = _col(schema, "phone_e164", pl.String).str.contains(E164).fill_null(False)
    sms_types = [str(t) for t in campaign.consent.sms_phone_types]
    phone_type = _col(schema, "phone_type", pl.String).fill_null("unknown")
    qh = campaign.quiet_hours
    after = pl.max_horizontal(pl.col("text_after").fill_null(qh.start), pl.lit(qh.start))
    before = pl.min_horizontal(pl.col("text_before").fill_null(qh.end), pl.lit(qh.end))
    return {
        Channel.SMS: (
            _col(schema, "sms_consent", pl.Boolean).fill_null(False) & phone_ok
            & phone_type.is_in(sms_types) & (after < before).fill_null(True)  # personal texting hours
        ),
        Channel.EMAIL: (
            _col(schema, "email_consent", pl.Boolean).fill_null(False)
            & _email(schema).str.contains(EMAIL_PATTERN).fill_null(False)
        ),
        Channel.MAIL: (
            ~_is_blank(_col(schema, "address_line1", pl.String))
            & ~_is_blank(_col(schema, "city", pl.String))
            & _col(schema, "state", pl.String).str.contains(r"^[A-Z]{2}$").fill_null(False)
            & _col(schema, "zip5", pl.String).str.contains(r"^\d{5}$").fill_null(False)
        ),
        Channel.PHONE: phone_ok,
    }


def _email(schema: pl.Schema) -> pl.Expr:
    return normalize_emails(_col(schema, "email", pl.String))


def _base(campaign: Campaign, patients: pl.LazyFrame, schema: pl.Schema, as_of: dt.date) -> pl.LazyFrame:
    """One row per patient: filters, do-not-contact, deceased, reachability, normalized contacts, strata."""
    return patients.select(
        pl.col("patient_id").cast(pl.String),
        pl.col("preferred_channel").cast(pl.String),
        pl.col("text_after"), pl.col("text_before"),
        _filters(campaign, schema, as_of).alias("_filters_ok"),
        _col(schema, "do_not_contact", pl.Boolean).fill_null(False).alias("_dnc"),
        _col(schema, "deceased_date", pl.Date).is_not_null().alias("_deceased"),
        *[r.fill_null(False).alias(f"reachable_{ch}") for ch, r in _reachable(campaign, schema).items()],
        _col(schema, "phone_e164", pl.String).alias("_phone"),
        _email(schema).alias("_email"),
        *[pl.col(c) for c in _PLACE_COLUMNS if c in schema],
        *(stratum_exprs(stratum_columns(campaign.holdout), schema, as_of, campaign=campaign)
          if campaign.holdout is not None else []),
    )


def listed(column: str, values: pl.DataFrame | pl.Series) -> pl.Expr:
    """True where ``column`` is one of ``values`` (a one-column frame or a series; null never matches)."""
    series = values.to_series() if isinstance(values, pl.DataFrame) else values
    series = series.cast(pl.String).drop_nulls().unique()
    if series.is_empty():
        return pl.lit(False)
    return pl.col(column).is_in(series.implode()).fill_null(False)


def _suppression(base: pl.LazyFrame, sup: Suppression, blocked: pl.DataFrame | None
                 ) -> tuple[pl.LazyFrame, dict[Channel, pl.Expr]]:
    """Suppression files (normalized values) and vendor feedback: per channel, who is suppressed.

    Membership tests (``is_in``) rather than joins: the lists are small next to the patients.
    """
    fb = blocked if blocked is not None else pl.DataFrame(schema={"patient_id": pl.String, "channel": pl.String})
    base = base.with_columns(
        listed("_email", sup.emails).alias("_sup_email"),
        listed("_phone", sup.phones).alias("_sup_phone"),
        listed("_phone", sup.sms_phones).alias("_sup_sms"),
        listed("patient_id", sup.patient_ids).alias("_sup_id"),
        *(listed("patient_id", fb.filter(pl.col("channel") == str(ch)).get_column("patient_id")).alias(f"_fb_{ch}")
          for ch in CHANNELS),
    )

    def flagged(*names: str) -> pl.Expr:
        return pl.any_horizontal([pl.col(n).fill_null(False) for n in ("_sup_id", *names)])

    return base, {
        Channel.SMS: flagged("_sup_phone", "_sup_sms", f"_fb_{Channel.SMS}"),
        Channel.EMAIL: flagged("_sup_email", f"_fb_{Channel.EMAIL}"),
        Channel.MAIL: flagged(f"_fb_{Channel.MAIL}"),
        Channel.PHONE: flagged("_sup_phone", f"_fb_{Channel.PHONE}"),
    }


def _caps(base: pl.LazyFrame, campaign: Campaign, history: pl.LazyFrame, planned: dt.datetime,
          run_id: str | None) -> pl.LazyFrame:
    """``capped_<channel>`` from the ledger's history, and ``already_sent`` (an earlier run of this campaign).

    Membership tests on ``patient_id`` rather than joins (a join would copy every column of the plan).
    """
    hist = history.collect()
    capped = capped_channels(hist.lazy(), list(campaign.frequency_caps), list(campaign.channels), planned,
                             run_id=run_id).collect()
    own = hist.filter(pl.col("campaign_code") == campaign.code)
    if run_id is not None:
        own = own.filter(pl.col("run_id") != run_id)
    return base.with_columns(
        *(listed("patient_id", capped.filter(pl.col(f"capped_{ch}")).get_column("patient_id"))
          .alias(f"capped_{ch}") for ch in campaign.channels),
        listed("patient_id", own.get_column("patient_id")).alias("already_sent"),
    )


def _is_capped(ch: Channel) -> pl.Expr:
    return pl.col(f"capped_{ch}").fill_null(False)


def _policy_ok(channels: list[Channel], suppressed: dict[Channel, pl.Expr]) -> pl.Expr:
    """Reachable on some campaign channel where not suppressed."""
    return pl.any_horizontal([pl.col(f"reachable_{ch}") & ~suppressed[ch] for ch in channels])


def _arms(base: pl.LazyFrame, campaign: Campaign, ledger: LedgerLike, arms: pl.DataFrame | None,
          suppressed: dict[Channel, pl.Expr]) -> pl.LazyFrame:
    """``arm`` for every eligible, contactable patient of a campaign with a holdout (null otherwise)."""
    if campaign.holdout is None:
        return base.with_columns(pl.lit(None, pl.String).alias("arm"))
    candidates = base.filter(
        pl.col("in_audience") & ~pl.col("_dnc") & ~pl.col("_deceased")
        & _policy_ok(list(campaign.channels), suppressed)
    ).select("patient_id", pl.col("^s:.*$")).collect()
    if arms is None and isinstance(ledger, ContactLedger) and ledger.path.exists():
        arms = ledger.arms(campaign.code)
    assigned = assign_arms(candidates, campaign.holdout, holdout_key(campaign), arms)
    return base.join(assigned.lazy().select("patient_id", "arm"), on="patient_id", how="left")


def _journey(base: pl.LazyFrame, campaign: Campaign, journey: pl.DataFrame | None, as_of: dt.date,
             suppressed: dict[Channel, pl.Expr]) -> tuple[pl.LazyFrame, dict[Channel, pl.Expr]]:
    """The journey columns, and per channel whether tonight's step allows it (always, without a journey)."""
    if campaign.journey is None:
        base = base.with_columns(pl.lit(None, pl.Int32).alias("journey_step"),
                                 pl.lit(None, pl.String).alias("journey_state"),
                                 pl.lit(None, pl.Boolean).alias("journey_exit"))
        return base, {ch: pl.lit(True) for ch in CHANNELS}
    hist = journey if journey is not None else pl.DataFrame(schema=JH)
    base = base.join(hist.lazy().cast(JH), on="patient_id", how="left")  # type: ignore[arg-type]
    reachable_now = {ch: pl.col(f"reachable_{ch}") & ~suppressed[ch] for ch in CHANNELS}
    j_step, j_state = decision_exprs(campaign, as_of, reachable_now, pl.col("in_audience"), pl.col("_dnc"))
    base = base.with_columns(j_step.alias("journey_step"), j_state.alias("journey_state")).with_columns(
        (pl.col("journey_state").is_in([str(x) for x in STOP_STATES]) & pl.col("stopped").is_null())
        .alias("journey_exit"))
    return base, {ch: is_step_channel(campaign, ch) for ch in CHANNELS}


def _choice(channels: list[Channel], usable: dict[Channel, pl.Expr]) -> pl.Expr:
    """The patient's preferred channel when usable, else the first usable one in the campaign's order."""
    preferred = pl.col("preferred_channel")
    chain: Any = None
    for ch in channels:
        cond = (preferred == str(ch)).fill_null(False) & usable[ch]
        chain = (pl.when(cond) if chain is None else chain.when(cond)).then(pl.lit(str(ch)))
    for ch in channels:
        chain = chain.when(usable[ch]).then(pl.lit(str(ch)))
    return pl.lit(None, pl.String) if chain is None else chain.otherwise(pl.lit(None, pl.String))


def _decide(base: pl.LazyFrame, channels: list[Channel], suppressed: dict[Channel, pl.Expr],
            allow: dict[Channel, pl.Expr], *, waiting: bool) -> pl.LazyFrame:
    """``contact_status`` (checks in :class:`ContactStatus` order), the channel, suppressed and capped flags."""
    usable = {ch: pl.col(f"reachable_{ch}") & ~suppressed[ch] & ~_is_capped(ch) & allow[ch] for ch in channels}
    any_capped_only = pl.any_horizontal(
        [pl.col(f"reachable_{ch}") & ~suppressed[ch] & _is_capped(ch) & allow[ch] for ch in channels]
    )
    S = ContactStatus
    status = (
        pl.when(~pl.col("in_audience")).then(pl.lit(str(S.NOT_IN_AUDIENCE)))
        .when(pl.col("_dnc")).then(pl.lit(str(S.DO_NOT_CONTACT)))
        .when(pl.col("_deceased")).then(pl.lit(str(S.DECEASED)))
        .when(~pl.any_horizontal([pl.col(f"reachable_{ch}") for ch in channels]))
        .then(pl.lit(str(S.NO_CONSENT_OR_CONTACT)))
        .when(~_policy_ok(channels, suppressed)).then(pl.lit(str(S.SUPPRESSED)))
        .when((pl.col("arm") == str(Arm.HOLDOUT)).fill_null(False)).then(pl.lit(str(S.HOLDOUT)))
        .when(pl.col("journey_state") != str(JourneyState.DUE) if waiting else pl.lit(False))
        .then(pl.lit(str(S.JOURNEY_WAITING)))
        .when(pl.col("_choice").is_not_null()).then(pl.lit(str(S.SELECTED)))
        .when(any_capped_only).then(pl.lit(str(S.FREQUENCY_CAPPED)))
        .otherwise(pl.lit(str(S.SUPPRESSED)))
    )
    any_suppressed = pl.any_horizontal([pl.col(f"reachable_{ch}") & suppressed[ch] for ch in channels])
    return (
        base.with_columns(_choice(channels, usable).alias("_choice"))
        .with_columns(
            status.alias("contact_status"),
            any_suppressed.fill_null(False).alias("suppressed"),
            pl.any_horizontal([_is_capped(ch) for ch in channels]).alias("frequency_capped"),
            pl.col("already_sent").fill_null(False),
        )
        .with_columns(
            pl.when(pl.col("contact_status") == str(S.SELECTED)).then(pl.col("_choice"))
            .otherwise(pl.lit(None, pl.String)).alias("channel")
        )
    )


def _send_times(decided: pl.LazyFrame, campaign: Campaign, start: dt.datetime) -> pl.DataFrame:
    """Time zones for SMS and phone rows (over distinct points and numbers), SMS send times from ``start``."""
    collected = decided.with_columns(pl.col("_phone").alias("phone_e164")).collect()
    if "state" not in collected.columns:
        collected = collected.with_columns(pl.lit(None, pl.String).alias("state"))
    tz = add_timezones(
        collected.lazy(), pl.col("channel").is_in([str(Channel.SMS), str(Channel.PHONE)]),
        campaign.schedule.timezone,
    ).collect()
    tz = tz.with_columns([pl.col(c).dt.strftime("%H:%M:%S").alias(c) for c in ("text_after", "text_before")])
    keys = [*SEND_KEYS, "text_after", "text_before"]
    sms = tz.lazy().with_row_index("_row").filter(pl.col("channel") == str(Channel.SMS)).select("_row", *keys).collect()
    times = send_times(sms.select(keys), campaign.quiet_hours, start)
    sent = sms.join(times, on=keys, how="left", nulls_equal=True).select("_row", "send_after_utc")
    return tz.with_row_index("_row").join(sent, on="_row", how="left").drop("_row").with_columns(_on_preferred())


def _untimed(decided: pl.LazyFrame) -> pl.DataFrame:
    """The plan without time zones or send times (typed nulls), and ``on_preferred``."""
    none = pl.lit(None, pl.String)
    return decided.with_columns(
        none.alias("timezone"), none.alias("timezone_source"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("send_after_utc"), _on_preferred(),
    ).collect()


def _on_preferred() -> pl.Expr:
    """Whether a selected patient got their preferred channel (null: not selected, or no preference)."""
    return (
        pl.when(pl.col("channel").is_not_null() & pl.col("preferred_channel").is_not_null())
        .then(pl.col("channel") == pl.col("preferred_channel")).otherwise(pl.lit(None, pl.Boolean))
        .alias("on_preferred")
    )


def _variants(out: pl.DataFrame, patients: pl.LazyFrame, campaign: Campaign, as_of: dt.date) -> pl.DataFrame:
    """The message variant of each selected patient (and why); null columns without variants."""
    if not campaign.variants:
        return out.with_columns(pl.lit(None, pl.String).alias("variant"),
                                pl.lit(None, pl.String).alias("variant_reason"))
    chosen = out.filter(pl.col("channel").is_not_null()).select("patient_id", "journey_step")
    who = patients.with_columns(pl.col("patient_id").cast(pl.String)).join(chosen.lazy(), on="patient_id",
                                                                            how="inner")
    variants = assign_variants(campaign, who, as_of, "journey_step" if campaign.journey else None)
    return out.join(variants.select("patient_id", "variant", "variant_reason").collect(), on="patient_id",
                    how="left")
