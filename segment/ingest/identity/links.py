"""Scored pairs into bands, guards, clusters and the review file.

**Bands** by match probability (thresholds in :class:`Thresholds`): ``merge`` at or above
``merge`` (default 0.99), ``review`` at or above ``review`` (default 0.80), else no match.
A pair in the merge band is held back to ``review`` (never merged) when:

- **first names conflict** and no shared identifier agrees exactly: the first names are
  neither equal, nickname-equal, swapped with the last name nor Jaro-Winkler >= 0.80, or
  they are two different names each common in the extract (held by at least
  :data:`COMMON_NAME_MIN` records and by at least :data:`COMMON_NAME_SHARE` of the records
  holding the other: Lisa and Linda, where a typo like Lnida is rare). Twins share a birth
  date, a last name, an address and a phone; only an identifier (SSN last four, an
  enterprise id) tells a first name recorded wrongly from a sibling;
- **sex and first name differ** (F against M, first names not equal or nickname-equal) and
  no identifier agrees exactly: twins Gary and Mary are only Jaro-Winkler 0.83 apart;
- **birth dates conflict** (not equal, transposed, one digit off or the same year) and no
  shared identifier agrees exactly: a father and son of the same name share an address, a phone
  and often an email;
- **contacts conflict**: the addresses differ (line 1 not alike) *and* the phones differ,
  with no agreeing email or shared identifier;
- **name and birth date alone**: nothing beyond name, sex and birth date agrees (no
  address line 1, phone, email or identifier, exact or one character off): two people with a common name and the same
  birth date are never made one on those alone;
- **same source, different record id**: the source already keeps them apart, so the pair
  needs ``same_source`` (default 0.9999).

Records are clustered as connected components of the merge pairs (plus the same source
record id, always one person), computed by vectorized min-label propagation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from segment.errors import ConfigError

#: levels too weak to count as agreement beyond name and birth date, or to outweigh a contact conflict
#: (john.smith at two providers can be two people)
WEAK_LEVELS = {
    ("birth_date", "same year"), ("address", "ZIP only"), ("address", "same street, same ZIP"),
    ("email", "same local part"), ("identifier", "consecutive numbers"), ("identifier", "one character off (short)"),
}
#: a first name held by at least this many records, and by at least this share of the
#: records holding the other name of a pair, is a name of its own rather than a typo
COMMON_NAME_MIN = 3
COMMON_NAME_SHARE = 0.01
#: the fields a reviewer sees beside the ids and the weight
REVIEW_COLUMNS = (
    "record_id_1", "record_id_2", "match_weight", "match_probability", "held_back_because",
    "agreeing_fields", "disagreeing_fields", "missing_fields",
)


@dataclass(frozen=True)
class Thresholds:
    """Match-probability thresholds of the bands."""

    merge: float = 0.99
    review: float = 0.80
    same_source: float = 0.9999

    def check(self) -> Thresholds:
        """Raise :class:`ConfigError` unless 0 < review <= merge <= same_source < 1."""
        values = {"--review-threshold": self.review, "--merge-threshold": self.merge,
                  "--same-source-threshold": self.same_source}
        for key, v in values.items():
            if not 0.0 < v < 1.0:
                raise ConfigError(f"{key} is {v}; a match probability strictly between 0 and 1 is needed", key=key)
        if not self.review <= self.merge <= self.same_source:
            raise ConfigError(
                f"thresholds out of order: review {self.review}, merge {self.merge}, same source "
                f"{self.same_source}; need review <= merge <= same source", key="--merge-threshold")
        return self


def level_labels(settings: dict[str, Any]) -> dict[str, dict[int, str]]:
    """Per comparison: gamma value -> level label (-1 missing, 0 the last level)."""
    out: dict[str, dict[int, str]] = {}
    for comp in settings["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        k = len(levels)
        labels = {k - 1 - i: str(lv.get("label_for_charts", i)) for i, lv in enumerate(levels)}
        labels[-1] = "missing"
        out[comp["output_column_name"]] = labels
    return out


def describe(pairs: pl.DataFrame, settings: dict[str, Any]) -> pl.DataFrame:
    """Add a ``_lv_<comparison>`` label per pair and the agreeing/disagreeing/missing field lists.

    Worked out once per distinct combination of levels (a few hundred), then joined back.
    """
    labels = level_labels(settings)
    gammas = [f"gamma_{c}" for c in labels]
    combos = _describe_levels(pairs.select(gammas).unique(), labels)
    return pairs.join(combos, on=gammas, how="left", maintain_order="left")


def _describe_levels(combos: pl.DataFrame, labels: dict[str, dict[int, str]]) -> pl.DataFrame:
    cols = [
        pl.col(f"gamma_{c}").replace_strict(lab, default="", return_dtype=pl.String).alias(f"_lv_{c}")
        for c, lab in labels.items()
    ]
    framed = combos.with_columns(cols)
    agree = [
        pl.when(~pl.col(f"_lv_{c}").is_in(["missing", "different"]))
        .then(pl.format(f"{c} ({{}})", pl.col(f"_lv_{c}")))
        for c in labels
    ]
    disagree = [pl.when(pl.col(f"_lv_{c}") == "different").then(pl.lit(c)) for c in labels]
    missing = [pl.when(pl.col(f"_lv_{c}") == "missing").then(pl.lit(c)) for c in labels]
    return framed.with_columns(
        pl.concat_list(agree).list.drop_nulls().list.join("; ").alias("agreeing_fields"),
        pl.concat_list(disagree).list.drop_nulls().list.join("; ").alias("disagreeing_fields"),
        pl.concat_list(missing).list.drop_nulls().list.join("; ").alias("missing_fields"),
    )


def _agrees(c: str, strong_only: bool = True) -> pl.Expr:
    col = f"_lv_{c}"
    if col == "_lv_":  # pragma: no cover
        return pl.lit(False)
    ok = ~pl.col(col).is_in(["missing", "different", ""])
    if strong_only:
        ok = ok & ~pl.col(col).is_in([lv for comp, lv in WEAK_LEVELS if comp == c])
    return ok


def bands(pairs: pl.DataFrame, settings: dict[str, Any], thresholds: Thresholds) -> pl.DataFrame:
    """``pairs`` (Splink's predictions) with ``band`` (merge, review) and ``held_back_because``."""
    framed = describe(pairs, settings)
    have = set(level_labels(settings))

    def agrees(c: str) -> pl.Expr:
        return _agrees(c) if c in have else pl.lit(False)

    def level(c: str) -> pl.Expr:
        return pl.col(f"_lv_{c}") if c in have else pl.lit("missing")

    p = pl.col("match_probability")
    # an identifier exactly the same, or a long one with one character mistyped; consecutive
    # numbers are no proof (twins get consecutive MRNs), nor is a 4-digit SSN tail one off
    by_identifier = level("identifier").is_in(["exact", "one character off"])
    first_conflict = (level("first_name") == "different") & ~by_identifier
    birth_conflict = (level("birth_date") == "different") & ~by_identifier
    # two different first names, each common in the extract, are two names (Lisa and Linda),
    # not a typo of one (Lnida): hold the pair back however alike they look
    if {"_first_count_l", "_first_count_r"} <= set(pairs.columns):
        lo = pl.min_horizontal("_first_count_l", "_first_count_r")
        hi = pl.max_horizontal("_first_count_l", "_first_count_r")
        distinct_names = (
            ~level("first_name").is_in(["exact", "nickname", "names swapped", "missing"])
            & (lo >= COMMON_NAME_MIN) & (lo >= COMMON_NAME_SHARE * hi)
        )
        first_conflict = first_conflict | (distinct_names & ~by_identifier)
    sex_conflict = (
        (level("sex") == "different") & ~level("first_name").is_in(["exact", "nickname", "names swapped"])
        & ~by_identifier
    )
    beyond = agrees("address") | agrees("phone") | agrees("email") | agrees("identifier")
    contact_conflict = (
        level("address").is_in(["different", "ZIP only", "same street, same ZIP"]) & (level("phone") == "different")
        & ~agrees("email") & ~by_identifier
    )
    same_source = pl.col("source_l") == pl.col("source_r")
    reason = (
        pl.when(p < thresholds.merge).then(None)
        .when(first_conflict).then(pl.lit("first names conflict"))
        .when(sex_conflict).then(pl.lit("sex and first name differ"))
        .when(birth_conflict).then(pl.lit("birth dates conflict"))
        .when(contact_conflict).then(pl.lit("address and phone both differ"))
        .when(~beyond).then(pl.lit("name and birth date alone"))
        .when(same_source & (p < thresholds.same_source)).then(pl.lit("same source, below the same-source threshold"))
        .otherwise(None)
    )
    return framed.with_columns(reason.alias("held_back_because")).with_columns(
        pl.when((p >= thresholds.merge) & pl.col("held_back_because").is_null()).then(pl.lit("merge"))
        .when(p >= thresholds.review).then(pl.lit("review"))
        .otherwise(None).alias("band")
    ).filter(pl.col("band").is_not_null())


def components(ids: pl.Series, edges: pl.DataFrame, max_passes: int = 100) -> pl.DataFrame:
    """Connected components: ``_k_id`` -> ``_cluster`` (the smallest index of its component).

    ``ids`` are the node names (sorted for determinism); ``edges`` has ``a``/``b`` names.
    """
    nodes = ids.sort().to_frame("_k_id").with_row_index("_i")
    idx = nodes.lazy()
    e = (
        edges.lazy().join(idx, left_on="a", right_on="_k_id").rename({"_i": "ia"})
        .join(idx, left_on="b", right_on="_k_id").rename({"_i": "ib"}).select("ia", "ib").collect()
    )
    both = pl.concat([e, e.select(pl.col("ib").alias("ia"), pl.col("ia").alias("ib"))])
    label = nodes["_i"]
    for _ in range(max_passes):
        nb = both.select(pl.col("ia"), label.gather(both["ib"]).alias("l")).group_by("ia").agg(pl.col("l").min())
        cand = pl.Series("c", [None] * label.len(), dtype=label.dtype).scatter(nb["ia"], nb["l"])
        new = label.zip_with(~(cand.is_not_null() & (cand < label)), cand)
        new = new.gather(new)  # pointer jump
        if (new == label).all():
            break
        label = new
    return nodes.select("_k_id", label.alias("_cluster"))
