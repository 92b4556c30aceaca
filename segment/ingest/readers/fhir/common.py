"""Expressions shared by the FHIR resource readers: codings, references, instants, rejects."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from segment.ingest.codesystems import SYSTEM_SPELLINGS
from segment.ingest.readers import REJECT_SCHEMA

e = pl.element()
_SYSTEM_KEYS = list(SYSTEM_SPELLINGS)


def canonical(system: pl.Expr) -> pl.Expr:
    """The canonical code-system name of a coding's system (null when not one we know)."""
    key = system.str.strip_chars().str.strip_chars_end("/").str.to_uppercase()
    return key.replace_strict(SYSTEM_SPELLINGS, default=None, return_dtype=pl.String)


def pick_coding(codings: pl.Expr, systems: Collection[str] | None = None, *, fallback: bool = True) -> pl.Expr:
    """The first coding in a known code system (or one of ``systems``), else the first coding.

    Only picks: the coding's ``system`` is passed on as the source spells it.
    """
    if systems is None:
        wanted = e.struct.field("system").str.strip_chars().str.strip_chars_end("/").str.to_uppercase().is_in(
            _SYSTEM_KEYS
        )
    else:
        wanted = canonical(e.struct.field("system")).is_in(list(systems))
    known = codings.list.eval(e.filter(wanted)).list.first()
    return pl.coalesce(known, codings.list.first()) if fallback else known


def concept_codings(concept: pl.Expr) -> pl.Expr:
    """The codings of a CodeableConcept."""
    return concept.struct.field("coding")


def first_code(concept: pl.Expr) -> pl.Expr:
    """The code of a CodeableConcept's first coding."""
    return concept.struct.field("coding").list.first().struct.field("code")


def reference_id(ref: pl.Expr, resource_type: str, urls: dict[str, str] | None = None) -> pl.Expr:
    """The id a reference points at: ``Patient/<id>``, an absolute URL, ``urn:uuid:<id>`` or a bare id.

    ``urls`` maps a Bundle's entry ``fullUrl`` to its resource id, for references that
    name the entry rather than the id. A reference to another type is null.
    """
    parsed = pl.coalesce(
        ref.str.extract(r"^urn:uuid:(.+)$", 1),
        ref.str.extract(rf"(?:^|/){resource_type}/([^/?#]+)(?:/_history/[^/]*)?$", 1),
        pl.when(~ref.str.contains(r"[/:?#|]")).then(ref),
    )
    if urls:
        return pl.coalesce(ref.replace_strict(urls, default=None, return_dtype=pl.String), parsed)
    return parsed


def instant(text: pl.Expr) -> pl.Expr:
    """A FHIR dateTime as a UTC instant, for ordering (a date alone is its midnight UTC)."""
    zoned = text.str.replace(r"Z$", "+00:00")
    return pl.coalesce(
        zoned.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC"),
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us", "UTC")),
    )


def rejects(
    frame: pl.DataFrame,
    file: str | pl.Expr,
    column: str,
    value: pl.Expr,
    reason: str | pl.Expr,
    record: pl.Expr | None = None,
) -> pl.DataFrame:
    """Rows of ``frame`` (with ``_row``) as reader rejects; ``record`` defaults to ``_record``.

    ``file`` is the file name, or an expression giving it per row.
    """
    rec = record if record is not None else (
        pl.col("_record") if "_record" in frame.columns else pl.lit(None, dtype=pl.String)
    )
    return frame.select(
        (pl.lit(file) if isinstance(file, str) else file).alias("file"),
        pl.col("_row").cast(pl.Int64).alias("row"),
        rec.cast(pl.String).alias("record_id"),
        pl.lit(column).alias("column"),
        value.cast(pl.String).alias("value"),
        (pl.lit(reason) if isinstance(reason, str) else reason).cast(pl.String).alias("reason"),
        pl.lit("row").alias("level"),
    ).cast(REJECT_SCHEMA)  # type: ignore[arg-type]
