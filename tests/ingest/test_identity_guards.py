"""Identity guards: clusters joined through a third record, identifiers, swapped names, units."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segment import workdir
from segment.addresses.parse import normalize_street
from segment.ingest.identity import (
    IDENTITY_LINKS,
    IDENTITY_REVIEW,
    IdentityOptions,
    Linkage,
    resolve,
)
from segment.ingest.identity.features import _home
from segment.ingest.identity.links import CUT_REASON, first_names_read, split_conflicts
from segment.ingest.identity.summary import identity_report

COLUMNS = ("_k_id", "first_name", "last_name", "birth_date", "sex", "address_line1", "zip5", "phone_e164", "email",
           "enterprise_id")
PROBABILISTIC = IdentityOptions(linkage=Linkage.PROBABILISTIC)
TWINS = "+16175550103"
KINGS = "+16175550107"
#: twins Olivia and Emma, and a record of one of them without a first name; a father and son
#: Robert King, and a record of one of them without a birth date
SHARED = [
    ("ehr:E1", "Olivia", "Brooks", "2001-06-15", "F", "40 Elm St", "02140", TWINS, None, None),
    ("ehr:E2", "Emma", "Brooks", "2001-06-15", "F", "40 Elm St", "02140", TWINS, None, None),
    ("crm:C1", None, "Brooks", "2001-06-15", "F", "40 Elm Street Apt 2", "02140", TWINS, None, None),
    ("ehr:E3", "Robert", "King", "1950-05-05", "M", "9 Maple Ave", "02143", KINGS, "rking@example.com", None),
    ("ehr:E4", "Robert", "King", "1978-08-21", "M", "9 Maple Ave", "02143", KINGS, "rking@example.com", None),
    ("crm:C2", "Robert", "King", None, "M", "9 Maple Ave", "02143", KINGS, "rking@example.com", None),
]


def records(rows: list[tuple[str | None, ...]]) -> pl.DataFrame:
    """Normalized source records as identity resolution receives them."""
    frame = pl.DataFrame([dict(zip(COLUMNS, r, strict=True)) for r in rows], schema=dict.fromkeys(COLUMNS, pl.String))
    source = pl.col("_k_id").str.extract(r"^(\w+):")
    return frame.with_columns(
        source.alias("_source"),
        source.replace_strict({"ehr": 0, "crm": 1}, return_dtype=pl.Int32).alias("_order"),
        pl.col("birth_date").str.to_date(),
    )


def together(clusters: pl.DataFrame, a: str, b: str) -> bool:
    """Whether records ``a`` and ``b`` are in one cluster."""
    label = dict(clusters.iter_rows())
    return bool(label[a] == label[b])


def test_a_record_shared_by_twins_or_father_and_son_joins_neither_to_the_other(tmp_path: Path) -> None:
    result = resolve(records(SHARED), PROBABILISTIC, tmp_path)
    clusters = result.clusters
    assert clusters is not None
    assert not together(clusters, "ehr:E1", "ehr:E2")
    assert together(clusters, "crm:C1", "ehr:E1") != together(clusters, "crm:C1", "ehr:E2")
    assert not together(clusters, "ehr:E3", "ehr:E4")
    assert together(clusters, "crm:C2", "ehr:E3") != together(clusters, "crm:C2", "ehr:E4")
    assert result.counts["transitive_conflicts"] == {"conflicting_record_pairs": 2, "clusters_split": 2,
                                                     "links_cut": 2}
    assert result.counts["held_back_to_review"][CUT_REASON] == 2
    review = pl.read_csv(tmp_path / IDENTITY_REVIEW)
    cut = review.filter(pl.col("held_back_because") == CUT_REASON)
    assert cut.height == 2
    assert set(cut["record_id_1"]) == {"crm:C1", "crm:C2"}
    # a cut pair is no longer a merge link (what `segment explain` shows)
    links = pl.read_parquet(tmp_path / IDENTITY_LINKS)
    assert links.join(cut.select("record_id_1", "record_id_2"), on=["record_id_1", "record_id_2"], how="semi").is_empty()
    assert links.height == 2
    # `segment identity report` shows the counts (it reads the report beside patients.parquet)
    workdir.write_parquet(pl.DataFrame({"patient_id": ["p"], "source_ids": [["ehr:E1"]]}), tmp_path / workdir.PATIENTS)
    summary = identity_report(tmp_path).summary
    assert summary["clusters split (joined through a third record)"] == 2
    assert summary["links cut (to review)"] == 2


def test_the_split_is_the_same_on_every_run(tmp_path: Path) -> None:
    first = resolve(records(SHARED), PROBABILISTIC, tmp_path / "a").clusters
    second = resolve(records(SHARED), PROBABILISTIC, tmp_path / "b").clusters
    assert first is not None and second is not None
    assert_frame_equal(first.sort("_k_id"), second.sort("_k_id"))


def _chain(weights: dict[tuple[str, str], float], conflicts: list[tuple[str, str]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = sorted({x for pair in weights for x in pair})
    clusters = pl.DataFrame({"_k_id": ids, "_cluster": pl.Series([0] * len(ids), dtype=pl.UInt32)})
    merge = pl.DataFrame([{"unique_id_l": a, "unique_id_r": b, "match_weight": w} for (a, b), w in weights.items()])
    return split_conflicts(clusters, merge, pl.DataFrame(conflicts, schema=["a", "b"], orient="row"))


def test_split_cuts_the_weakest_link_until_no_conflict_is_joined() -> None:
    # A - B - C - D with A and D two people: the weakest link (B - C) goes
    clusters, cut = _chain({("A", "B"): 30.0, ("B", "C"): 20.0, ("C", "D"): 25.0}, [("A", "D")])
    assert cut.rows() == [("B", "C")]
    assert together(clusters, "A", "B") and together(clusters, "C", "D") and not together(clusters, "B", "C")
    # the weakest link may not separate them: cutting goes on (X3 - Y, the next weakest)
    clusters, cut = _chain({("X1", "X2"): 20.0, ("X2", "X3"): 25.0, ("X3", "Y"): 22.0, ("X1", "X3"): 30.0},
                           [("X1", "Y")])
    assert cut.rows() == [("X1", "X2"), ("X3", "Y")]
    assert together(clusters, "X1", "X2") and together(clusters, "X2", "X3") and not together(clusters, "X3", "Y")


def test_split_leaves_clusters_without_conflicts_alone() -> None:
    clusters, cut = _chain({("A", "B"): 30.0, ("B", "C"): 20.0}, [])
    assert cut.is_empty()
    assert clusters["_cluster"].n_unique() == 1


def test_identifiers_consecutive_numbers_are_no_proof_a_mistyped_one_is(tmp_path: Path) -> None:
    rows = [
        # twins registered together: consecutive enterprise ids
        ("ehr:E1", "Olivia", "Brooks", "2001-06-15", "F", "40 Elm St", "02140", TWINS, None, "1000457"),
        ("crm:C1", "Emma", "Brooks", "2001-06-15", "F", "40 Elm St", "02140", TWINS, None, "1000458"),
        # one person whose first name a source got wrong, and two digits of the id swapped
        ("ehr:E2", "Madeline", "Boyes", "1976-05-22", "F", "4 Dowsley Pl", "05062", "+16175550111", None, "6564625"),
        ("crm:C2", "Naomi", "Boyes", "1976-05-22", "F", "4 Dowsley Pl", "05062", "+16175550111", None, "6564265"),
    ]
    result = resolve(records(rows), PROBABILISTIC, tmp_path)
    assert result.clusters is not None
    assert not together(result.clusters, "ehr:E1", "crm:C1")
    assert together(result.clusters, "ehr:E2", "crm:C2")
    review = pl.read_csv(tmp_path / IDENTITY_REVIEW)
    assert review.row(0, named=True)["held_back_because"] == "first names conflict"
    assert "identifier (consecutive numbers)" in review.row(0, named=True)["agreeing_fields"]


def test_first_and_last_name_swapped_with_a_typo_merge(tmp_path: Path) -> None:
    rows = [
        ("ehr:E3", "Danny", "Stephenson", "1983-10-19", "M", "16 O Shanassy St", "03130", None, None, None),
        ("crm:C3", "Stephenson", "Dany", "1983-10-19", "M", "16 O'Shanassy Street", "03133", None, None, None),
        ("ehr:E4", "Laura", "Hefford", "1962-01-02", "F", "3 Partridge St", "06530", None, None, None),
    ]
    result = resolve(records(rows), PROBABILISTIC, tmp_path)
    assert result.clusters is not None
    assert together(result.clusters, "ehr:E3", "crm:C3")
    links = pl.read_parquet(tmp_path / IDENTITY_LINKS)
    assert "first_name (names swapped)" in links["agreeing_fields"][0]


@pytest.mark.parametrize(("line", "home"), [
    ("835 Ctr St Apt 26", "835 CTR ST"),
    ("3363 Park Ct Apt 15B", "3363 PARK CT"),
    ("123 Main St #4", "123 MAIN ST"),
    ("12 Oak Ave Rear", "12 OAK AVE"),
    ("2306 Washington St 20", "2306 WASHINGTON ST"),  # a bare unit number after the street type
    ("5 N Main St Apt B", "5 N MAIN ST"),
    ("1605 State Route 9", "1605 STATE RTE 9"),  # the route's number stays
    ("7 Avenue B", "7 AVE B"),  # the street's letter stays
    ("22 B St", "22 B ST"),
    ("P O Box 961", "P O BOX 961"),
    ("16", "16"),
])
def test_the_home_compared_is_line_1_without_its_unit(line: str, home: str) -> None:
    got = pl.select(_home(normalize_street(pl.lit(line)))).item()
    assert got == home


def test_first_names_read_a_rare_typo_as_the_common_name_it_mistypes() -> None:
    names = ["andrea"] * 5 + ["sandra"] * 5 + ["anrdea"] + ["matthew"] * 100 + ["matthw"] * 3 + ["kira"] * 10 + [
        "kiera"] * 10
    frame = pl.DataFrame({"first_name": names})
    pairs = pl.DataFrame({"first_name_l": ["anrdea", "matthw", "kira"], "first_name_r": ["sandra", "matthew", "kiera"]})
    read = first_names_read(pairs, frame)
    assert read.select("_first_read_l", "_first_count_l", "_first_read_r", "_first_count_r", "_first_typo").rows() == [
        ("andrea", 5, "sandra", 5, False),  # Anrdea is Andrea: two names beside Sandra
        ("matthew", 100, "matthew", 100, True),  # one typo from a name 33 times as common: a typo of it
        ("kira", 10, "kiera", 10, False),  # two names, each common
    ]


def test_twins_one_with_a_typo_close_to_the_others_name_stay_apart(tmp_path: Path) -> None:
    phone = "+16175550192"
    # Andrea and Sandra are names of other people in the extract too
    others = [(f"ehr:A{i}", ("Andrea", "Sandra")[i % 2], f"Last{i}", f"19{50 + i}-01-0{i + 1}", "F", f"{i} Oak St",
               "01755", f"+1617555{1000 + i}", None, None) for i in range(6)]
    rows = [
        *others,
        ("ehr:E1", "Sandra", "Martin", "1973-11-22", "F", "5070 River St", "01755", phone, None, None),
        ("crm:C1", "Anrdea", "Martin", "1973-11-22", "F", "5070 River St", "01755", phone, None, None),
    ]
    result = resolve(records(rows), PROBABILISTIC, tmp_path)
    assert result.clusters is not None
    assert not together(result.clusters, "ehr:E1", "crm:C1")
    review = pl.read_csv(tmp_path / IDENTITY_REVIEW)
    assert review.filter(pl.col("record_id_1") == "crm:C1")["held_back_because"].to_list() == ["first names conflict"]


def test_a_married_name_with_the_email_built_from_it_merges(tmp_path: Path) -> None:
    phone = "+19785557431"
    rows = [
        ("ehr:E1", "Sarah", "Cote", "1953-02-15", "F", "926 Depot Ave", "01555", phone, "cote_s31@example.net", None),
        ("crm:C1", "Sarah", "Caruso", "1953-02-15", "F", "3428 Elm St", "01713", phone, "caruso_s31@example.net",
         None),
        # another Sarah born that day, whose address is built the same way: no match
        ("crm:C2", "Sarah", "Lee", "1953-02-15", "F", "12 Oak St", "01713", None, "lee_s52@example.net", None),
    ]
    result = resolve(records(rows), PROBABILISTIC, tmp_path)
    assert result.clusters is not None
    assert together(result.clusters, "ehr:E1", "crm:C1")
    assert not together(result.clusters, "ehr:E1", "crm:C2") and not together(result.clusters, "crm:C1", "crm:C2")
    links = pl.read_parquet(tmp_path / IDENTITY_LINKS)
    assert "email (the same but for the last name)" in links["agreeing_fields"][0]
    assert "last_name" in links["disagreeing_fields"][0]


def test_a_mistyped_zip_still_finds_the_home_and_a_neighbour_namesake_stays_apart(tmp_path: Path) -> None:
    rows = [
        # one woman: the second system mistyped her ZIP and street, and wrote her flat
        ("ehr:E1", "Joan", "Pereira", "1966-04-25", "F", "3240 Adams Rd", "01702", None, None, None),
        ("crm:C1", "Joan", "Pereira", "1966-04-25", "F", "3240 Adasm Road Apt 4", "01720", None, None, None),
        # two men of one name and birth date on one street, in other houses, with other phones
        ("ehr:E2", "John", "Smith", "1980-01-01", "M", "12 Main St", "02115", "+16175550104", None, None),
        ("crm:C2", "John", "Smith", "1980-01-01", "M", "48 Main St", "02115", "+16175550999", None, None),
    ]
    result = resolve(records(rows), PROBABILISTIC, tmp_path)
    assert result.clusters is not None
    assert together(result.clusters, "ehr:E1", "crm:C1")
    assert not together(result.clusters, "ehr:E2", "crm:C2")
    links = pl.read_parquet(tmp_path / IDENTITY_LINKS)
    assert "address (similar line 1, other ZIP)" in links["agreeing_fields"][0]
    # scored well above the merge threshold, but another house on the street is another home
    review = pl.read_csv(tmp_path / IDENTITY_REVIEW)
    assert review.select("record_id_1", "record_id_2", "held_back_because").rows() == [
        ("crm:C2", "ehr:E2", "address and phone both differ")]
    assert "address (same street, same ZIP)" in review["agreeing_fields"][0]
