"""FHIR Consent -> a patient's ``email_consent`` / ``sms_consent`` (``'true'`` / ``'false'``).

The rule, applied to each Consent:

1. Only ``status = active`` counts. ``entered-in-error`` is a reject (``status
   entered-in-error``); ``draft``, ``proposed``, ``rejected`` and ``inactive`` consents are
   skipped by name.
2. A Consent is about a **channel** when one of its words says so: the codes, displays
   and texts of ``category``, ``scope`` and the provision's ``action``, ``purpose``,
   ``code`` and ``class``. ``email``/``e-mail`` names email; ``SMS``, ``text message``,
   ``texting`` or ``texts`` names SMS (case-insensitive, whole words).
3. The provision's ``type`` decides: ``permit`` -> ``'true'``, ``deny`` -> ``'false'``. A
   nested provision (``provision.provision[]``, one level) that names a channel decides
   that channel with its own type, so "permit contact, but deny SMS" reads as email
   unset, SMS ``'false'`` unless the top level also names email.
4. A Consent that decides neither channel is skipped by name.
5. Per patient and channel, the Consent with the latest ``dateTime`` wins (a Consent
   without one counts as oldest; ties go to the one read last).
6. ``Consent.patient`` resolves like any reference; a Consent for a patient no Patient
   of the same read has is a reject (``consent for unknown patient``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from segment.ingest.readers.fhir.common import e, instant

EMAIL_WORDS = r"\be-?mails?\b"
SMS_WORDS = r"\bsms\b|\btext[- ]?messag\w*|\btexting\b|\btexts\b"


def _coding_words(codings: pl.Expr) -> pl.Expr:
    """A list of Codings as one lower-case string of codes and displays."""
    words = codings.list.eval(
        pl.concat_str([e.struct.field("code"), e.struct.field("display")], separator=" ", ignore_nulls=True)
    )
    return words.list.join(" ")


def _concept_words(concept: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        [_coding_words(concept.struct.field("coding")), concept.struct.field("text")],
        separator=" ", ignore_nulls=True,
    )


def _concepts_words(concepts: pl.Expr) -> pl.Expr:
    return concepts.list.eval(_concept_words(e)).list.join(" ")


def _provision_words(provision: pl.Expr) -> list[pl.Expr]:
    return [
        _concepts_words(provision.struct.field("action")),
        _coding_words(provision.struct.field("purpose")),
        _concepts_words(provision.struct.field("code")),
        _coding_words(provision.struct.field("class")),
    ]


def _decision(kind: pl.Expr) -> pl.Expr:
    return pl.when(kind == "permit").then(pl.lit("true")).when(kind == "deny").then(pl.lit("false"))


def consent_frame(frame: pl.LazyFrame, keep: Sequence[str] = ()) -> pl.LazyFrame:
    """``_row``, ``_record``, the ``keep`` columns, ``_ref``, ``_when`` (instant) and the two consent columns."""
    provision = pl.col("provision")
    words = frame.select(
        "_row",
        "_record",
        *keep,
        pl.col("patient").struct.field("reference").alias("_ref"),
        instant(pl.col("dateTime")).alias("_when"),
        provision.struct.field("type").alias("_type"),
        pl.concat_str(
            [_concepts_words(pl.col("category")), _concept_words(pl.col("scope")), *_provision_words(provision)],
            separator=" ", ignore_nulls=True,
        ).str.to_lowercase().alias("_words"),
        provision.struct.field("provision").list.eval(
            pl.struct(
                e.struct.field("type").alias("type"),
                pl.concat_str(_provision_words(e), separator=" ", ignore_nulls=True).str.to_lowercase().alias("words"),
            )
        ).alias("_nested"),
    )

    def channel(pattern: str) -> pl.Expr:
        inner = pl.col("_nested").list.eval(
            e.filter(e.struct.field("words").str.contains(pattern)).struct.field("type")
        ).list.first()
        outer = pl.when(pl.col("_words").str.contains(pattern)).then(pl.col("_type"))
        return _decision(pl.coalesce(inner, outer))

    return words.select(
        "_row", "_record", *keep, "_ref", "_when",
        channel(EMAIL_WORDS).alias("email_consent"),
        channel(SMS_WORDS).alias("sms_consent"),
    )


def latest_consents(consents: pl.DataFrame) -> pl.DataFrame:
    """Per ``patient_id``: the latest decided value of each channel (``_seq`` orders ties)."""
    ordered = consents.sort(["_when", "_seq"], nulls_last=False, maintain_order=True)
    return ordered.group_by("patient_id", maintain_order=True).agg(
        pl.col("email_consent").drop_nulls().last(),
        pl.col("sms_consent").drop_nulls().last(),
    )
