"""Unsubscribe files: the opt-outs each vendor imports, for people that vendor has received before.

A person is named when the vendor received them (contact ledger) after the last unsubscribe
file that named them, and they now opted out: marked do-not-contact or deceased, consent
for the channel no longer given, on a suppression file, or suppressed by vendor feedback
(STOP, hard bounce, invalid number) with no later START. Each vendor gets its own documented
layout; Twilio keeps its own STOP list (no import), and internal lists get none.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from segment.campaign.model import Campaign, Channel, ProfileColumn
from segment.campaign.profiles import ResolvedProfile, resolve_profile
from segment.campaign.suppression import Suppression


def _c(header: str, field: str, value: str | None = None) -> ProfileColumn:
    return ProfileColumn(header=header, field=field, required=True, value=value)


#: (vendor, channel) -> the columns of its unsubscribe import
UNSUBSCRIBE_COLUMNS: dict[tuple[str, str], list[ProfileColumn]] = {
    # Braze user CSV: subscription_state=unsubscribed for the SMS group; email_subscribe for email
    ("braze", "sms"): [_c("external_id", "contact_id"), _c("subscription_group_id", "option:subscription_group_id"),
                       _c("subscription_state", "const", "unsubscribed")],
    ("braze", "email"): [_c("external_id", "contact_id"), _c("email_subscribe", "const", "unsubscribed")],
    # SFMC MobileConnect: _Status=Unsubscribe; email list import: Status=Unsubscribed
    ("sfmc", "sms"): [_c("_ContactKey", "contact_key"), _c("_MobileNumber", "phone_e164"),
                      _c("_Locale", "country"), _c("_Status", "const", "Unsubscribe")],
    ("sfmc", "email"): [_c("SubscriberKey", "contact_key"), _c("EmailAddress", "email"),
                        _c("Status", "const", "Unsubscribed")],
    # Mailchimp: import these with the status "Unsubscribed"
    ("mailchimp", "email"): [_c("Email Address", "email")],
    ("mailchimp", "sms"): [_c("SMS Phone Number", "phone_e164")],
    # SendGrid: the CSV upload of a suppression (unsubscribe) group takes one email column
    ("sendgrid", "email"): [_c("email", "email")],
    # Klaviyo: a list upload with the consent column set to Unsubscribed
    ("klaviyo", "email"): [_c("Email", "email"), _c("Email Marketing Consent", "const", "Unsubscribed")],
    ("klaviyo", "sms"): [_c("Phone Number", "phone_e164"), _c("SMS Marketing Consent", "const", "Unsubscribed")],
}

UNSUBSCRIBE_SCHEMA = {"vendor": pl.String, "patient_id": pl.String, "channel": pl.String}


def unsubscribe_profile(prof: ResolvedProfile) -> ResolvedProfile | None:
    """``prof`` with the columns of its vendor's unsubscribe import, or None (no such import)."""
    if prof.spec is None:
        return None
    columns = UNSUBSCRIBE_COLUMNS.get((prof.spec.vendor, str(prof.channel)))
    if columns is None:
        return None
    return dataclasses.replace(prof, columns=tuple(columns), omit_blank_columns=False, extra_fields=False)


def opted_out(
    patients: pl.LazyFrame, suppression: Suppression, blocked: pl.DataFrame, channel: Channel
) -> pl.LazyFrame:
    """``patient_id`` of everyone who may no longer be messaged on ``channel``."""
    schema = patients.collect_schema()

    def col(name: str, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
        return pl.col(name) if name in schema else pl.lit(None, dtype)

    consent = {Channel.SMS: "sms_consent", Channel.EMAIL: "email_consent"}.get(channel)
    out = (col("do_not_contact", pl.Boolean).fill_null(False) | col("deceased_date", pl.Date).is_not_null())
    if consent is not None:
        out = out | ~col(consent, pl.Boolean).fill_null(False)
    base = patients.select(
        pl.col("patient_id").cast(pl.String), out.alias("_out"),
        col("email", pl.String).str.strip_chars().str.to_lowercase().alias("_email"),
        col("phone_e164", pl.String).alias("_phone"),
    )
    listed = [suppression.patient_ids.lazy().select(pl.col("value").alias("patient_id"))]
    if channel is Channel.EMAIL:
        listed.append(base.join(suppression.emails.lazy(), left_on="_email", right_on="value").select("patient_id"))
    if channel is Channel.SMS:
        for frame in (suppression.phones, suppression.sms_phones):
            listed.append(base.join(frame.lazy(), left_on="_phone", right_on="value").select("patient_id"))
    listed.append(blocked.lazy().filter(pl.col("channel") == str(channel)).select("patient_id"))
    return pl.concat([base.filter(pl.col("_out")).select("patient_id"),
                      *[f.select(pl.col("patient_id").cast(pl.String)) for f in listed]]).unique()


def unsubscribe_rows(
    campaign: Campaign,
    patients: pl.LazyFrame,
    suppression: Suppression,
    audience: pl.DataFrame,
    blocked: pl.DataFrame,
) -> dict[Channel, pl.DataFrame]:
    """Per channel of the campaign, the patients its vendor should unsubscribe (``patient_id``)."""
    out: dict[Channel, pl.DataFrame] = {}
    for ch in campaign.channels:
        prof = resolve_profile(campaign.vendors[ch].profile, ch, campaign.profiles)
        if unsubscribe_profile(prof) is None or prof.spec is None:
            continue
        received = audience.lazy().filter(
            (pl.col("vendor") == prof.spec.vendor) & (pl.col("channel") == str(ch))
            & (pl.col("last_unsubscribed").is_null() | (pl.col("last_sent") > pl.col("last_unsubscribed")))
        ).select("patient_id")
        who = received.join(opted_out(patients, suppression, blocked, ch), on="patient_id", how="semi")
        out[ch] = who.collect().sort("patient_id")
    return out
