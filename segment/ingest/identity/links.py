"""Scored pairs into bands, guards, clusters and the review file.

**Bands** by match probability (thresholds in :class:`Thresholds`): ``merge`` at or above
``merge`` (default 0.99), ``review`` at or above ``review`` (default 0.80), else no match.
"An identifier agrees" below means exactly, or a long one (6 characters or more) with one
character mistyped; consecutive numbers (twins registered together) never do. A pair in
the merge band is held back to ``review`` (never merged) when:

- **first names conflict** and no identifier agrees: the first names are neither equal,
  nickname-equal, swapped with the last name, one in the other's place nor Jaro-Winkler
  >= 0.80, or they are two different names each common in the extract (held by at least
  :data:`COMMON_NAME_MIN` records and by at least :data:`COMMON_NAME_SHARE` of the records
  holding the other: Lisa and Linda). Names are read through their typos first
  (:func:`first_names_read`: Anrdea is Andrea, Matthw beside Matthew is a typo). Twins
  share a birth date, a last name, an address and a phone; only an identifier (SSN last
  four, an enterprise id) tells a first name recorded wrongly from a sibling;
- **sex and first name differ** (F against M, first names not equal, nickname-equal or
  swapped) and no identifier agrees: twins Gary and Mary are only Jaro-Winkler 0.83 apart;
- **birth dates conflict** (not equal, transposed, one digit off or the same year) and no
  identifier agrees: a father and son of the same name share an address, a phone and
  often an email;
- **contacts conflict**: the addresses differ (another street, or another house on the
  same one) *and* the phones differ, with no agreeing email or identifier;
- **name and birth date alone**: nothing beyond name, sex and birth date agrees (no
  address line 1, phone, email or identifier): two people with a common name and the same
  birth date are never made one on those alone;
- **same source, different record id**: the source already keeps them apart, so the pair
  needs ``same_source`` (default 0.9999).

Records are clustered as connected components of the merge pairs (plus the same source
record id, always one person), computed by vectorized min-label propagation; a cluster
whose records include two that conflict (first names, sex and first name, birth dates),
joined only through others, is split by cutting its weakest links
(:func:`conflicts_within`, :func:`split_conflicts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from segment.errors import ConfigError
from segment.ingest.dedupe import NICKNAMES

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
#: a name one typo from another held by 20 times as many records is read as a typo of it
TYPO_SHARE = 0.05
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
        pl.when(~pl.col(f"_lv_{c}").is_in(["missing", ""]) & ~pl.col(f"_lv_{c}").str.starts_with("different"))
        .then(pl.format(f"{c} ({{}})", pl.col(f"_lv_{c}")))
        for c in labels
    ]
    # "different, both women" (last name) is a disagreement too
    disagree = [pl.when(pl.col(f"_lv_{c}").str.starts_with("different")).then(pl.lit(c)) for c in labels]
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
    ok = ~pl.col(col).is_in(["missing", ""]) & ~pl.col(col).str.starts_with("different")
    if strong_only:
        ok = ok & ~pl.col(col).is_in([lv for comp, lv in WEAK_LEVELS if comp == c])
    return ok


def first_names_read(pairs: pl.DataFrame, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Add how each pair's first names read (``_first_read_l/_r``, ``_first_count_l/_r``, ``_first_typo``).

    ``_first_count``: how many records of ``frame`` hold the name as read. A name one typo
    (Damerau-Levenshtein 1) from a common one (held by :data:`COMMON_NAME_MIN` records or
    more) is read as that name (the most common, then the first alphabetically) when it is
    rare itself or held by fewer than :data:`TYPO_SHARE` as many records: ``Anrdea`` is
    Andrea, which is not Sandra, however alike Anrdea and Sandra look. ``_first_typo``:
    the two names are one typo apart and the rarer is rare, or held by fewer than
    :data:`TYPO_SHARE` as many records as the other (``Matthw`` beside ``Matthew``): one
    name mistyped, not two names.
    """
    import duckdb

    counts = (frame.lazy().group_by("first_name").len().drop_nulls().rename({"first_name": "name"})
              .collect(engine="streaming"))
    common = counts.filter(pl.col("len") >= COMMON_NAME_MIN)
    differ = pairs.select("first_name_l", "first_name_r").drop_nulls().filter(
        pl.col("first_name_l") != pl.col("first_name_r")).unique()
    names = pl.concat([pairs["first_name_l"], pairs["first_name_r"]]).drop_nulls().unique().to_frame("name")
    # the names that may be read as another: rare ones, and those 20 times rarer than a neighbour
    rare = pl.concat([differ["first_name_l"], differ["first_name_r"]]).unique().to_frame("name").join(
        counts, on="name", how="left").with_columns(pl.col("len").fill_null(0))
    con = duckdb.connect(":memory:")
    try:
        for name, table in (("rare", rare), ("common", common), ("differ", differ)):
            con.register(name, table.to_arrow())
        typos = con.sql(
            "SELECT r.name, arg_max(c.name, CAST(c.len AS BIGINT) * 1000000 - rank) AS read FROM rare r JOIN "
            "(SELECT name, len, row_number() OVER (ORDER BY name) AS rank FROM common) c "
            f"ON (r.len < {COMMON_NAME_MIN} OR r.len < {TYPO_SHARE} * c.len) "
            "AND abs(length(r.name) - length(c.name)) <= 1 AND damerau_levenshtein(r.name, c.name) <= 1 "
            "GROUP BY r.name"
        ).pl()
        one_off = con.sql("SELECT first_name_l, first_name_r FROM differ "
                          "WHERE damerau_levenshtein(first_name_l, first_name_r) <= 1").pl()
    finally:
        con.close()
    read = names.join(typos, on="name", how="left").join(counts, on="name", how="left").with_columns(
        pl.col("read").fill_null(pl.col("name")), pl.col("len").fill_null(0).alias("raw"),
    ).join(counts.rename({"name": "read", "len": "count"}), on="read", how="left")
    for side in ("l", "r"):
        pairs = pairs.join(read.rename({"name": f"first_name_{side}", "read": f"_first_read_{side}",
                                        "count": f"_first_count_{side}", "raw": f"_raw_{side}"}),
                           on=f"first_name_{side}", how="left", maintain_order="left")
    lo, hi = pl.min_horizontal("_raw_l", "_raw_r"), pl.max_horizontal("_raw_l", "_raw_r")
    return pairs.join(one_off.with_columns(_one_off=pl.lit(True)), on=["first_name_l", "first_name_r"],
                      how="left", maintain_order="left").with_columns(
        (pl.col("_one_off").fill_null(False) & ((lo < COMMON_NAME_MIN) | (lo < TYPO_SHARE * hi))).alias("_first_typo"),
    ).drop("_one_off", "_raw_l", "_raw_r")


#: held-back reasons that say two records are two people (not merely too little evidence):
#: two records of one cluster that disagree so are never left joined through a third
CONFLICTS = ("first names conflict", "sex and first name differ", "birth dates conflict")
#: the reason given to a merge pair cut by :func:`split_conflicts`
CUT_REASON = "joins records that conflict (through a third record)"


def _guards(pairs: pl.DataFrame, settings: dict[str, Any]) -> dict[str, pl.Expr]:
    """Why a pair may not merge, per reason (in the order they are tested), over ``_lv_*`` labels."""
    have = set(level_labels(settings))

    def agrees(c: str) -> pl.Expr:
        return _agrees(c) if c in have else pl.lit(False)

    def level(c: str) -> pl.Expr:
        return pl.col(f"_lv_{c}") if c in have else pl.lit("missing")

    # an identifier exactly the same, or a long one with one character mistyped; consecutive
    # numbers are no proof (twins get consecutive MRNs), nor is a 4-digit SSN tail one off
    by_identifier = level("identifier").is_in(["exact", "one character off"])
    alike_first = level("first_name").is_in(["exact", "nickname", "names swapped"])
    first_conflict = level("first_name") == "different"
    # two different first names, each common in the extract, are two names (Lisa and Linda),
    # not a typo of one (Lnida): hold the pair back however alike they look
    if {"_first_read_l", "_first_read_r", "_first_count_l", "_first_count_r", "_first_typo"} <= set(pairs.columns):
        lo = pl.min_horizontal("_first_count_l", "_first_count_r")
        hi = pl.max_horizontal("_first_count_l", "_first_count_r")
        read_l, read_r = pl.col("_first_read_l"), pl.col("_first_read_r")
        two_names = (read_l != read_r) & (read_l.replace(NICKNAMES) != read_r.replace(NICKNAMES)) & ~pl.col(
            "_first_typo")
        distinct_names = ~alike_first & (level("first_name") != "missing") & two_names & (lo >= COMMON_NAME_MIN) & (
            lo >= COMMON_NAME_SHARE * hi)
        first_conflict = first_conflict | distinct_names
    beyond = agrees("address") | agrees("phone") | agrees("email") | agrees("identifier")
    return {
        "first names conflict": first_conflict & ~by_identifier,
        "sex and first name differ": (level("sex") == "different") & ~alike_first & ~by_identifier,
        "birth dates conflict": (level("birth_date") == "different") & ~by_identifier,
        "address and phone both differ": (
            level("address").is_in(["different", "ZIP only", "same street, same ZIP"])
            & (level("phone") == "different") & ~agrees("email") & ~by_identifier
        ),
        "name and birth date alone": ~beyond,
    }


def bands(pairs: pl.DataFrame, settings: dict[str, Any], thresholds: Thresholds) -> pl.DataFrame:
    """``pairs`` (Splink's predictions) with ``band`` (merge, review) and ``held_back_because``."""
    framed = describe(pairs, settings)
    p = pl.col("match_probability")
    reason: Any = pl.when(p < thresholds.merge).then(None)
    for why, held in _guards(framed, settings).items():
        reason = reason.when(held).then(pl.lit(why))
    same_source = pl.col("source_l") == pl.col("source_r")
    reason = reason.when(same_source & (p < thresholds.same_source)).then(
        pl.lit("same source, below the same-source threshold")).otherwise(None)
    return framed.with_columns(reason.alias("held_back_because")).with_columns(
        pl.when((p >= thresholds.merge) & pl.col("held_back_because").is_null()).then(pl.lit("merge"))
        .when(p >= thresholds.review).then(pl.lit("review"))
        .otherwise(None).alias("band")
    ).filter(pl.col("band").is_not_null())


def _level_case(settings: dict[str, Any]) -> str:
    """SQL naming each pair's level per comparison (``_lv_<name>``), from the model's own conditions."""
    cases = []
    for comp in settings["comparisons"]:
        whens = []
        for lv in comp["comparison_levels"]:
            label = "missing" if lv.get("is_null_level") else str(lv.get("label_for_charts", ""))
            sql = str(lv.get("sql_condition", "ELSE"))
            if sql.strip().upper() == "ELSE":
                continue
            whens.append(f"WHEN {sql} THEN '{label.replace(chr(39), chr(39) * 2)}'")
        cases.append(f"CASE {' '.join(whens)} ELSE 'different' END AS \"_lv_{comp['output_column_name']}\"")
    return ", ".join(cases)


def conflicts_within(
    clusters: pl.DataFrame, merge: pl.DataFrame, frame: pl.DataFrame | pl.LazyFrame, settings: dict[str, Any],
) -> pl.DataFrame:
    """Pairs of records (``a`` < ``b``) placed in one cluster of 3 or more that conflict.

    Every pair inside such a cluster that shares a last name, a birth date or a first name
    (nickname-mapped) and is not itself a merge pair is compared with the model's own
    levels (in DuckDB) and tested against the :data:`CONFLICTS` guards: two records that
    are two people by those tests were joined only through other records. (Twins share a
    last name and a birth date, a father and son a name; pairing on those keys rather than
    on the cluster alone keeps the work small even for an odd cluster of thousands.)
    """
    import duckdb

    frame = frame.lazy()
    big = frame.select("unique_id", "last_name", "birth_date", "first_canon").join(
        clusters.filter(pl.len().over("_cluster") >= 3).rename({"_k_id": "unique_id"}).lazy(), on="unique_id",
    ).collect(engine="streaming")
    if big.height == 0:
        return pl.DataFrame(schema={"a": pl.String, "b": pl.String})
    direct = merge.select(pl.min_horizontal("unique_id_l", "unique_id_r").alias("a"),
                          pl.max_horizontal("unique_id_l", "unique_id_r").alias("b"))
    inside = pl.concat([
        big.drop_nulls(key).join(big.drop_nulls(key), on=["_cluster", key], suffix="_r")
        .filter(pl.col("unique_id") < pl.col("unique_id_r"))
        .select(pl.col("unique_id").alias("a"), pl.col("unique_id_r").alias("b"))
        for key in ("last_name", "birth_date", "first_canon")
    ]).unique().join(direct, on=["a", "b"], how="anti")
    columns = [c for c in frame.collect_schema().names() if c != "unique_id" and not c.startswith("_")]
    named = pl.concat([inside["a"], inside["b"]]).unique().to_frame("unique_id").lazy()
    side = frame.select("unique_id", *columns).join(named, on="unique_id", how="semi").collect(engine="streaming")
    both = first_names_read(inside.join(side.rename(lambda c: f"{c}_l" if c != "unique_id" else "a"), on="a").join(
        side.rename(lambda c: f"{c}_r" if c != "unique_id" else "b"), on="b"), frame)
    con = duckdb.connect(":memory:")
    try:
        con.register("pairs", both.to_arrow())
        framed = con.sql(f"SELECT *, {_level_case(settings)} FROM pairs").pl()
    finally:
        con.close()
    held = pl.any_horizontal([g for why, g in _guards(framed, settings).items() if why in CONFLICTS])
    return framed.filter(held).select("a", "b").sort("a", "b")


def split_conflicts(
    clusters: pl.DataFrame, merge: pl.DataFrame, conflicts: pl.DataFrame, max_rounds: int = 25,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cut the weakest merge link of each cluster holding a conflict pair until none does.

    Each round drops, in every cluster still holding a conflict pair, its merge pair of the
    lowest match weight (ties: the greatest record ids), and recomputes those clusters;
    after ``max_rounds`` every link of a cluster still in conflict is cut. Deterministic.
    Returns the new clusters and the merge pairs cut (``unique_id_l``, ``unique_id_r``).
    """
    cut_schema = {"unique_id_l": pl.String, "unique_id_r": pl.String}
    if conflicts.height == 0:
        return clusters, pl.DataFrame(schema=cut_schema)
    hit = conflicts.join(clusters.rename({"_k_id": "a"}), on="a").select("_cluster").unique()
    nodes = clusters.join(hit, on="_cluster", how="semi")
    edges = merge.join(nodes.rename({"_k_id": "unique_id_l"}), on="unique_id_l", how="semi").select(
        "unique_id_l", "unique_id_r", "match_weight")
    kept = edges
    for round_ in range(max_rounds + 1):
        sub = components(nodes["_k_id"], kept.select(a="unique_id_l", b="unique_id_r"))
        bad = (conflicts.join(sub.rename({"_k_id": "a"}), on="a")
               .join(sub.rename({"_k_id": "b", "_cluster": "_cluster_b"}), on="b")
               .filter(pl.col("_cluster") == pl.col("_cluster_b")).select("_cluster").unique())
        if bad.height == 0:
            break
        in_bad = kept.join(sub.rename({"_k_id": "unique_id_l"}), on="unique_id_l").join(bad, on="_cluster", how="semi")
        if round_ == max_rounds:
            drop = in_bad
        else:
            drop = in_bad.sort("match_weight", "unique_id_l", "unique_id_r", descending=[False, True, True]).group_by(
                "_cluster", maintain_order=True).first()
        kept = kept.join(drop.select("unique_id_l", "unique_id_r"), on=["unique_id_l", "unique_id_r"], how="anti")
    sub = components(nodes["_k_id"], kept.select(a="unique_id_l", b="unique_id_r"))
    # the split clusters are renumbered past the untouched ones (a cluster id is only a label)
    offset = int(clusters.select(pl.col("_cluster").max().fill_null(0)).item()) + 1
    resplit = sub.with_columns((pl.col("_cluster") + offset).cast(clusters["_cluster"].dtype))
    out = pl.concat([clusters.join(hit, on="_cluster", how="anti"), resplit]).sort("_k_id")
    cut = edges.join(kept, on=["unique_id_l", "unique_id_r"], how="anti").select("unique_id_l", "unique_id_r")
    return out, cut.sort("unique_id_l", "unique_id_r")


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
