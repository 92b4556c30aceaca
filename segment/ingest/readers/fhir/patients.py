"""FHIR Patient -> raw canonical patient columns (text), one row per resource.

Choices, in the order of the columns:

- **name**: the ``official`` name, else the first; ``given[0]`` and ``family``.
- **birth date**: as written, except partial dates, which take the NAACCR mid-point
  convention: a year alone (``1950``) becomes July 1 of that year (``1950-07-01``), a
  year and month (``1950-03``) the 15th (``1950-03-15``). The error is at most half a
  year either way, so an age computed from it is never off by more than one.
- **address**: among addresses not ``use=old`` and with no ``period.end``, the ``home``
  one, else the first. ``line[0]``/``line[1]`` are the two street lines. Its
  ``http://hl7.org/fhir/StructureDefinition/geolocation`` extension, when present, gives
  ``source_lat``/``source_lon`` (the ``latitude``/``longitude`` sub-extensions' decimals).
- **phone**: the first ``phone``/``sms`` telecom that is not ``use=old``, preferring
  ``use=mobile`` or ``system=sms`` (which set ``phone_type`` to mobile); **email**: the
  first ``email`` telecom not ``use=old``.
- **language**: the ``preferred`` communication, else the first; its BCP-47 coding's code
  (else the first coding's code, else the text).
- **race / ethnicity**: the US Core extension (also the 2017 draft URL without
  ``/us/core/``): the first ``ombCategory`` code (CDC, e.g. ``2106-3``), else the
  ``text``; the normalizer reads both.
- **deceased**: ``deceasedDateTime``; ``deceasedBoolean: true`` without a date is dated
  the ingest day (an upper bound, so campaigns leave the person out).
- **updated_at**: ``meta.lastUpdated``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from segment.ingest.readers.fhir.common import e, reference_id

GEOLOCATION_URL = "http://hl7.org/fhir/StructureDefinition/geolocation"
RACE_URLS = ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
             "http://hl7.org/fhir/StructureDefinition/us-core-race")
ETHNICITY_URLS = ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                  "http://hl7.org/fhir/StructureDefinition/us-core-ethnicity")
BCP47 = "urn:ietf:bcp:47"
#: the identifier system of a US Social Security number
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


def _pick(items: pl.Expr, prefer: pl.Expr, exclude: pl.Expr | None = None) -> pl.Expr:
    """The first list element matching ``prefer``, else the first; ``exclude`` drops elements first."""
    pool = items.list.eval(e.filter(~exclude)) if exclude is not None else items
    return pl.coalesce(pool.list.eval(e.filter(prefer)).list.first(), pool.list.first())


def _field(name: str) -> pl.Expr:
    return e.struct.field(name)


def birth_date(text: pl.Expr) -> pl.Expr:
    """The birth date with the mid-point policy for partial dates (year -> July 1, year-month -> the 15th)."""
    trimmed = text.str.strip_chars()
    return (
        pl.when(trimmed.str.contains(r"^\d{4}$")).then(trimmed + "-07-01")
        .when(trimmed.str.contains(r"^\d{4}-\d{2}$")).then(trimmed + "-15")
        .otherwise(text)
    )


def _sub_extension(extensions: pl.Expr, url: str, value: str) -> pl.Expr:
    return extensions.list.eval(e.filter(_field("url") == url)).list.first().struct.field(value)


def _race(urls: tuple[str, ...]) -> pl.Expr:
    ext = pl.col("extension").list.eval(e.filter(_field("url").is_in(urls))).list.first()
    subs = ext.struct.field("extension")
    omb = _sub_extension(subs, "ombCategory", "valueCoding").struct.field("code")
    return pl.coalesce(omb, _sub_extension(subs, "text", "valueString"))


def patient_frame(frame: pl.LazyFrame, as_of: dt.date, keep: Sequence[str] = ()) -> pl.LazyFrame:
    """``_row``, ``_record``, the ``keep`` columns and the raw canonical patient columns of Patient resources."""
    ended = _field("period").struct.field("end").is_not_null()
    not_old = _field("use").fill_null("") != "old"
    phones = pl.col("telecom").list.eval(e.filter(_field("system").is_in(["phone", "sms"]) & not_old))
    has_url = "_full_url" in frame.collect_schema()
    full_url = pl.col("_full_url") if has_url else pl.lit(None, dtype=pl.String)
    # each choice is made once, in a first pass; the columns read its fields
    chosen = frame.select(
        "_row", "_record", *keep, "id", "birthDate", "gender", "deceasedBoolean", "deceasedDateTime", "meta", "extension",
        *([] if "_full_url" in keep else [full_url.alias("_full_url")]),
        _pick(pl.col("name"), _field("use") == "official").alias("_name"),
        _pick(pl.col("address"), _field("use") == "home", ~not_old | ended).alias("_addr"),
        _pick(phones, (_field("use") == "mobile") | (_field("system") == "sms")).alias("_phone"),
        pl.col("telecom").list.eval(e.filter((_field("system") == "email") & not_old)).list.first().alias("_email"),
        _pick(pl.col("communication"), _field("preferred") == "true").struct.field("language").alias("_lang"),
        pl.col("identifier").list.eval(e.filter(_field("system") == SSN_SYSTEM)).list.first()
        .struct.field("value").alias("_ssn"),
    ).with_columns(
        pl.col("_addr").struct.field("extension").list.eval(e.filter(_field("url") == GEOLOCATION_URL))
        .list.first().struct.field("extension").alias("_geo"),
        pl.col("_addr").struct.field("line").alias("_lines"),
        pl.col("_lang").struct.field("coding").alias("_lang_codings"),
    )
    phone = pl.col("_phone")
    addr = pl.col("_addr")
    lines = pl.col("_lines")
    return chosen.select(
        "_row",
        "_record",
        *keep,
        pl.coalesce(pl.col("id"), reference_id(pl.col("_full_url"), "Patient")).alias("patient_id"),
        pl.col("_name").struct.field("given").list.first().alias("first_name"),
        pl.col("_name").struct.field("family").alias("last_name"),
        birth_date(pl.col("birthDate")).alias("birth_date"),
        pl.col("gender").alias("sex"),
        lines.list.get(0, null_on_oob=True).alias("address_line1"),
        lines.list.get(1, null_on_oob=True).alias("address_line2"),
        addr.struct.field("city").alias("city"),
        addr.struct.field("state").alias("state"),
        addr.struct.field("postalCode").alias("zip5"),
        pl.col("_email").struct.field("value").alias("email"),
        phone.struct.field("value").alias("phone_e164"),
        pl.when(phone.struct.field("use").eq("mobile") | phone.struct.field("system").eq("sms"))
        .then(pl.lit("mobile")).alias("phone_type"),
        pl.coalesce(
            pl.col("_lang_codings").list.eval(e.filter(_field("system") == BCP47)).list.first().struct.field("code"),
            pl.col("_lang_codings").list.first().struct.field("code"),
            pl.col("_lang").struct.field("text"),
        ).alias("language"),
        _race(RACE_URLS).alias("race"),
        _race(ETHNICITY_URLS).alias("ethnicity"),
        pl.coalesce(
            pl.col("deceasedDateTime"),
            pl.when(pl.col("deceasedBoolean") == "true").then(pl.lit(as_of.isoformat())),
        ).alias("deceased_date"),
        pl.col("meta").struct.field("lastUpdated").alias("updated_at"),
        # the US SSN identifier (only its last four digits are kept, for identity resolution)
        pl.col("_ssn").alias("ssn_last4"),
        _sub_extension(pl.col("_geo"), "latitude", "valueDecimal").alias("source_lat"),
        _sub_extension(pl.col("_geo"), "longitude", "valueDecimal").alias("source_lon"),
    )
