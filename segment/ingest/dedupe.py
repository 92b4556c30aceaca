"""One view of each patient: deterministic matching and documented survivorship.

**Matching.** Two source records are the same person when any of these keys agree
(keys with a missing part never match):

1. the same source record id in the same source (exact duplicates collapse);
2. the same last name, first name and birth date, names compared by letters only, case
   ignored (``O'Brien`` = ``OBRIEN``), common nicknames mapped to their formal name for
   matching only (Bill = William, Peggy = Margaret; see :data:`NICKNAMES`);
3. the same birth date, email and first-name initial;
4. the same birth date, phone and first-name initial.

The initial in rules 3 and 4 keeps twins who share a family email or a home phone apart.
Matching is transitive: records are merged as connected components of the key graph,
computed by vectorized min-label propagation (each pass, every record takes the smallest
label among all records sharing one of its keys, then labels jump to their label's
label), so no Python loop over rows. The merged ``patient_id`` is the first source id of
the cluster by source order (the order of the paths given), e.g. ``ehr:E0000001``: the
same input gives the same ids; a cluster that holds a patient id of the last ingest into
the same working folder keeps that id, so an id does not change when a record joins.

This is the ``--linkage deterministic`` matcher; the probabilistic one
(:mod:`segment.ingest.identity`) hands :func:`survivorship` its clusters instead.

**Survivorship** (records ordered newest first by ``updated_at``, records without it
last, ties broken by source order then row):

- names, birth date, sex (a known sex beats U), language, preferred channel, race, ethnicity, email: the
  newest non-empty value; ``race_source``/``ethnicity_source`` (the source's own words)
  come from the record whose category was taken;
- address (line 1, line 2, city, state, ZIP and source coordinates) travels as one block
  from the newest record with an address; phone number and phone type likewise;
- ``email_consent`` and ``sms_consent``: the most restrictive wins: any False -> False,
  else any True -> True, else null (unknown, never consent);
- ``do_not_contact``: any True -> True, otherwise False (not flagged);
- ``deceased_date``: the earliest recorded date when any record has one.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segment.ingest.frames import by_distinct
from segment.ingest.normalize import name_key

NICKNAMES: dict[str, str] = {
    "bill": "william", "billy": "william", "will": "william", "liam": "william",
    "bob": "robert", "bobby": "robert", "rob": "robert", "robbie": "robert",
    "dick": "richard", "rick": "richard", "rich": "richard", "jim": "james", "jimmy": "james",
    "jack": "john", "johnny": "john", "mike": "michael", "mikey": "michael", "tom": "thomas",
    "tommy": "thomas", "joe": "joseph", "joey": "joseph", "dave": "david", "chuck": "charles",
    "charlie": "charles", "ted": "edward", "ed": "edward", "eddie": "edward", "tony": "anthony",
    "steve": "steven", "stephen": "steven", "dan": "daniel", "danny": "daniel", "matt": "matthew",
    "chris": "christopher", "nick": "nicholas", "sam": "samuel", "ben": "benjamin",
    "alex": "alexander", "andy": "andrew", "greg": "gregory", "larry": "lawrence",
    "jerry": "gerald", "pat": "patricia", "patty": "patricia", "peggy": "margaret",
    "maggie": "margaret", "meg": "margaret", "liz": "elizabeth", "beth": "elizabeth",
    "betty": "elizabeth", "lizzie": "elizabeth", "kate": "katherine", "katie": "katherine",
    "kathy": "katherine", "cathy": "katherine", "sue": "susan", "suzy": "susan",
    "jen": "jennifer", "jenny": "jennifer", "becky": "rebecca", "debbie": "deborah",
    "deb": "deborah", "barb": "barbara", "cindy": "cynthia", "sandy": "sandra", "vicky": "victoria",
    "jess": "jessica", "mandy": "amanda", "abby": "abigail", "nancy": "ann", "annie": "ann",
    "anne": "ann", "dot": "dorothy", "dottie": "dorothy", "peg": "margaret",
    "ken": "kenneth", "kenny": "kenneth", "tim": "timothy", "timmy": "timothy", "kim": "kimberly",
    "ron": "ronald", "ronnie": "ronald", "don": "donald", "donnie": "donald", "jeff": "jeffrey",
    "fred": "frederick", "freddie": "frederick", "ray": "raymond", "walt": "walter", "hank": "henry",
    "josh": "joshua", "zach": "zachary", "stan": "stanley", "phil": "phillip", "doug": "douglas",
    "pete": "peter", "russ": "russell", "vince": "vincent", "gene": "eugene", "trish": "patricia",
    "tricia": "patricia", "angie": "angela", "steph": "stephanie", "val": "valerie", "sally": "sarah",
    "molly": "mary", "polly": "mary", "jon": "john", "gerry": "gerald",
}

ADDRESS_BLOCK = ("address_line1", "address_line2", "city", "state", "zip5", "source_lat", "source_lon")
PHONE_BLOCK = ("phone_e164", "phone_type")
NEWEST = ("first_name", "last_name", "birth_date", "language", "preferred_channel", "race", "ethnicity", "email")
#: the columns of a normalized record that :func:`survivorship` reads (plus ``_k_id``)
MERGE_INPUT = (
    "patient_id", "_source", "_order", "_row", "_updated", *NEWEST, "race_source", "ethnicity_source", "sex", *ADDRESS_BLOCK, *PHONE_BLOCK,
    "email_consent", "sms_consent", "do_not_contact", "deceased_date",
)


def match_keys(records: pl.LazyFrame) -> pl.LazyFrame:
    """The matching keys ``_k_id`` (the record's own, ``source:id``), ``_k_name``, ``_k_email``,
    ``_k_phone`` of every record."""
    records = records.select("_k_id", "first_name", "last_name", "birth_date", "email", "phone_e164")
    # the name keys once per distinct name (a few thousand), then joined back
    names = by_distinct(records, [
        (["first_name"], {"_first": name_key(pl.col("first_name")).replace(NICKNAMES)}),
        (["last_name"], {"_last": name_key(pl.col("last_name"))}),
    ])
    first, last = pl.col("_first"), pl.col("_last")
    birth = pl.col("birth_date").cast(pl.String)
    initial = first.str.slice(0, 1)
    return names.with_columns(
        pl.concat_str([last, first, birth], separator="|").alias("_k_name"),
        pl.concat_str([birth, pl.col("email"), initial], separator="|").alias("_k_email"),
        pl.concat_str([birth, pl.col("phone_e164"), initial], separator="|").alias("_k_phone"),
    ).with_columns(
        # an empty name part is missing, not a match
        pl.when((last == "") | (first == "")).then(None).otherwise(pl.col("_k_name")).alias("_k_name"),
        pl.when(initial == "").then(None).otherwise(pl.col("_k_email")).alias("_k_email"),
        pl.when(initial == "").then(None).otherwise(pl.col("_k_phone")).alias("_k_phone"),
    ).drop("_first", "_last")


KEYS = ("_k_id", "_k_name", "_k_email", "_k_phone")


def cluster_labels(keys: pl.DataFrame, max_passes: int = 64) -> pl.Series:
    """Connected components over shared keys: one label (smallest row index) per record.

    ``keys`` has the key columns in :data:`KEYS`; row ``i`` starts with label ``i``. The
    string keys are hashed once: each becomes the integer id of its group (the smallest
    row index holding that key, which is also the first pass). Every further pass is a
    group minimum over those integers (a scatter-minimum into an array indexed by group
    id: no hashing), then a pointer jump (labels take their label's label), until no
    label changes.
    """
    n = keys.height
    if n == 0:
        return pl.Series("_label", [], dtype=pl.UInt32)
    index = pl.col("_i")
    frame = keys.select(*KEYS, pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i")).select(
        # a key with a missing part never matches: a group of one
        [pl.when(pl.col(k).is_null()).then(index).otherwise(index.min().over(k)).alias(k) for k in KEYS]
    )
    groups = [frame[k].to_numpy() for k in KEYS]  # group ids are row indices: below n
    label = np.minimum.reduce(groups)
    smallest = np.empty(n, dtype=label.dtype)
    for _ in range(max_passes):
        step = label.copy()
        for group in groups:
            smallest.fill(n)
            np.minimum.at(smallest, group, label)
            np.minimum(step, smallest[group], out=step)
        step = step[step]
        if np.array_equal(step, label):
            break
        label = step
    return pl.Series("_label", label, dtype=pl.UInt32)


def survivorship(
    records: pl.DataFrame, clusters: pl.DataFrame | None = None, keep_ids: pl.Series | None = None
) -> tuple[pl.DataFrame, pl.Series]:
    """Merge matched records; returns (patients, each record's ``_cluster``).

    The patients carry their ``_cluster`` (an integer label) beside the canonical columns;
    the second value gives every record's label, row for row.

    ``clusters`` (``_k_id`` -> ``_cluster``) comes from probabilistic linkage; without it
    the deterministic keys above decide. The surviving ``patient_id`` is the earliest
    source id of the cluster (first by source order, then by record id), except that a
    cluster holding an id in ``keep_ids`` (the patient ids of the working folder's last
    ingest) keeps that id, so a patient's id does not change when a new record joins.
    """
    labels = record_labels(records, clusters)
    return merge_labelled(records.with_columns(labels.alias("_cluster")), keep_ids), labels


def record_labels(records: pl.DataFrame, clusters: pl.DataFrame | None) -> pl.Series:
    """Each record's cluster label, row for row: from ``clusters`` (``_k_id`` -> ``_cluster``),
    else from the deterministic keys (``records`` needs ``_k_id``, the names, the birth
    date, the email and the phone only)."""
    if clusters is None:
        return cluster_labels(match_keys(records.lazy()).collect())
    return records.select("_k_id").join(clusters.select("_k_id", pl.col("_cluster").cast(pl.UInt32)),
                                        on="_k_id", how="left", maintain_order="left")["_cluster"]


def merge_labelled(labelled: pl.DataFrame, keep_ids: pl.Series | None) -> pl.DataFrame:
    """The patients of records carrying their ``_cluster``: every record of a cluster must be
    there (a cluster's records may come in any order; the patients come in cluster order of
    first appearance, then the clusters of one record)."""
    # a cluster of one record is that record: only clusters of several go through the merge
    several = labelled.select(pl.col("_cluster").is_duplicated()).to_series()  # (a window count: 2.6x the time)
    single = labelled.filter(~several).select("_cluster", *_single_record())
    ordered = _ranked(labelled.filter(several), keep_ids).sort(
        ["_cluster", "_updated", "_order", "_row", "_rank"],
        descending=[False, True, False, False, False],
        nulls_last=True,
    ).with_columns(
        _has_address().alias("_has_addr"), pl.col("phone_e164").is_not_null().alias("_has_phone"),
    )
    return pl.concat([ordered.group_by("_cluster", maintain_order=True).agg(*_merged_record()), single])


def _ranked(records: pl.DataFrame, keep_ids: pl.Series | None) -> pl.DataFrame:
    """Add ``_rank`` (each record's rank by source, id and row) and ``_pidx`` (which record's
    id the patient takes: the smallest; ids kept from the last run first)."""
    # a struct's rank compares its fields in turn, as a sort by the three does; ties (one id at one
    # row of two files of a source) by position. A third of arg_sort_by(...).arg_sort()'s time
    rank = pl.struct("_order", "_k_id", "_row").rank("ordinal").cast(pl.UInt32) - 1
    records = records.with_columns(rank.alias("_rank")).with_columns(pl.col("_rank").alias("_pidx"))
    if keep_ids is not None and keep_ids.len():
        kept = pl.col("_k_id").is_in(keep_ids.implode())
        records = records.with_columns(
            (pl.when(kept).then(0).otherwise(1).cast(pl.UInt64) * pl.len().cast(pl.UInt64) + pl.col("_pidx"))
            .alias("_pidx")
        )
    return records


def _has_address() -> pl.Expr:
    """A record has an address when it has a first line, a city or a ZIP."""
    return pl.any_horizontal([pl.col(c).is_not_null() for c in ("address_line1", "city", "zip5")])


def _merged_record() -> list[pl.Expr]:
    """One patient from the records of a cluster, newest first (a group_by aggregation)."""
    return [
        pl.col("_k_id").get(pl.col("_pidx").arg_min()).alias("patient_id"),
        pl.col("_k_id").unique().sort().alias("source_ids"),
        *[pl.col(c).drop_nulls().first().alias(c) for c in NEWEST],
        # the source's own words travel with the category taken (else the newest words given)
        *[
            pl.coalesce(
                pl.col(f"{c}_source").filter(pl.col(c).is_not_null()).first(),
                pl.col(f"{c}_source").drop_nulls().first(),
            ).alias(f"{c}_source")
            for c in ("race", "ethnicity")
        ],
        pl.col("sex").filter(pl.col("sex") != "U").first().fill_null("U").alias("sex"),
        *[pl.col(c).filter(pl.col("_has_addr")).first().alias(c) for c in ADDRESS_BLOCK],
        *[pl.col(c).filter(pl.col("_has_phone")).first().alias(c) for c in PHONE_BLOCK],
        *[
            pl.when((pl.col(c) == False).any())  # noqa: E712 - three-valued logic on purpose
            .then(False)
            .when((pl.col(c) == True).any())  # noqa: E712
            .then(True)
            .otherwise(None)
            .alias(c)
            for c in ("email_consent", "sms_consent")
        ],
        pl.col("do_not_contact").fill_null(False).any().alias("do_not_contact"),
        pl.col("deceased_date").min().alias("deceased_date"),
    ]


def _single_record() -> list[pl.Expr]:
    """:func:`_merged_record` for a cluster of one record, as plain column expressions."""
    has_addr, has_phone = _has_address(), pl.col("phone_e164").is_not_null()
    return [
        pl.col("_k_id").alias("patient_id"),
        pl.concat_list(pl.col("_k_id")).alias("source_ids"),
        *[pl.col(c) for c in NEWEST],
        *[pl.col(f"{c}_source") for c in ("race", "ethnicity")],
        pl.col("sex").fill_null("U").alias("sex"),
        *[pl.when(has_addr).then(pl.col(c)).alias(c) for c in ADDRESS_BLOCK],
        *[pl.when(has_phone).then(pl.col(c)).alias(c) for c in PHONE_BLOCK],
        pl.col("email_consent"), pl.col("sms_consent"),
        pl.col("do_not_contact").fill_null(False).alias("do_not_contact"),
        pl.col("deceased_date"),
    ]
