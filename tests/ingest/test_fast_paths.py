"""The shortcuts taken for speed give the same answers as the plain expressions they replace."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from segment.ingest import normalize as nz
from segment.ingest.dedupe import KEYS, cluster_labels
from segment.ingest.events import _patients_by_run, kept_unique_ids, unique_ids
from segment.ingest.frames import (
    by_distinct,
    date_builder,
    distinct_columns,
    drop_ragged,
    part_dates,
)
from segment.ingest.packing import _distinct_keys, category_texts
from segment.ingest.patients import _updated_at, _with_updated_at
from segment.ingest.readers.canonical import read_canonical
from segment.ingest.readers.files import _scan_text, cleanup_temporary
from segment.textnorm import collapse_spaces

TODAY = dt.date(2025, 6, 1)

STAMPS = [
    "2024-01-02T03:04:05", "2024-01-02T03:04:05.250", "2024-01-02 03:04:05", " 2024-01-02T03:04:05 ",
    "2024-01-02T03:04:05Z", "2024-01-02T03:04:05+01:00", "2024-13-02T03:04:05", "2024-02-30T03:04:05",
    "01/02/2024 03:04", "01/02/2024 03:04:05", "2024-01-02", "1/2/24", "null", "", "soon", None,
    "2024-01-02T25:04:05", "2024-01-02T03:04:60",
]


DATES = [
    "2024-01-02", "2024-02-30", "2024-13-01", "2024-1-2", " 2024-01-02", "2024-01-02T05:07:38Z",
    "2024-01-02 05:07", "2024-01-02Tnonsense", "2024/01/02", "01/02/2024", "1/2/24", "20240102",
    "0000-01-01", "9999-12-31", "2024-01-02x", "", "null", "n/a", None, "soon", "2024-02-29", "2023-02-29",
    "1/2/2024", "02/29/2023", "2/29/2024", "13/01/2024", "00/10/2024", "1/0/2024", "12/31/0000", " 1/2/2024",
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(DATES), st.text(max_size=12),
                          st.from_regex(r"\d{4}-\d{2}-\d{2}(T.{0,5})?", fullmatch=True),
                          st.from_regex(r"\d{1,2}/\d{1,2}/\d{4}", fullmatch=True)),
                min_size=1, max_size=40))
def test_date_builder_matches_the_general_parser(texts: list[str | None]) -> None:
    table = pl.DataFrame({"d": texts}, schema={"d": pl.String}).unique()
    full = part_dates("d", [], TODAY)
    want = table.with_columns(full.value.alias("v"), full.problem.alias("p")).sort("d", nulls_last=True)
    got = date_builder("d", [], TODAY, "v", "p")(table.lazy()).collect().sort("d", nulls_last=True)
    assert_frame_equal(got.select("d", "v", "p"), want)


@pytest.mark.parametrize("stamps", [STAMPS * 3, ["2024-01-02T03:04:05", None, "2023-12-31T23:59:59"] * 2],
                         ids=["mixed", "every stamp per row"])
def test_updated_at_fast_path_matches_full_expression(stamps: list[str | None]) -> None:
    raw = pl.DataFrame({"updated_at": stamps}, schema={"updated_at": pl.String})
    full = _updated_at([], TODAY)
    want = raw.select(full.value.alias("_v_updated_at"), full.problem.alias("_p_updated_at"))
    got = _with_updated_at(raw.lazy(), raw.lazy(), [], TODAY).collect()
    assert_frame_equal(got.select("_v_updated_at", "_p_updated_at"), want)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["2020-02-29", "02/29/2020", "2/3/05", "13/01/2020", "", "x", "1850-01-01"])
                | st.none(), min_size=1, max_size=30))
def test_by_distinct_matches_per_row(values: list[str | None]) -> None:
    frame = pl.DataFrame({"d": values, "other": list(range(len(values)))}, schema={"d": pl.String, "other": pl.Int64})
    parsed = nz.parse_date(pl.col("d"), as_of=TODAY)
    birth = nz.check_birth_date(nz.Normalized(pl.col("_v"), pl.col("_p")), as_of=TODAY)
    got = by_distinct(frame.lazy(), [(["d"], [
        {"_v": parsed.value, "_p": parsed.problem}, {"v": birth.value, "p": birth.problem},
    ])]).collect()
    whole = nz.check_birth_date(parsed, as_of=TODAY)
    want = frame.with_columns(whole.value.alias("v"), whole.problem.alias("p"))
    assert_frame_equal(got, want)  # same rows, same order, same answers


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["02/29/2020", "2020-02-29", " ma ", "MA", "", "x"]) | st.none() | st.text(max_size=4),
                          st.sampled_from(["01234", "2115", "02115-1234", ""]) | st.none(), st.integers(0, 2)),
                min_size=1, max_size=40))
def test_distinct_columns_matches_by_distinct(rows: list[tuple[str | None, str | None, int]]) -> None:
    frame = pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "_part": pl.Int32}, orient="row")
    parsed = nz.parse_date(pl.col("a"), as_of=TODAY)
    zip5 = nz.normalize_zip(pl.col("b"), nz.normalize_state(pl.col("a")).value)
    lookups = [
        (["a"], [{"_v": parsed.value, "_p": parsed.problem}, {"v": pl.col("_v"), "p": pl.col("_p")}]),
        (["b", "a"], {"z": zip5.value, "zp": zip5.problem}),
        (["a", "_part"], {"n": pl.col("a").str.len_chars() + pl.col("_part")}),
    ]
    want = by_distinct(frame.lazy(), lookups).collect().drop("a", "b", "_part")
    assert_frame_equal(distinct_columns(frame, lookups), want)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 2), st.integers(0, 4),
                          st.integers(0, 6), st.integers(0, 40)), min_size=1, max_size=60))
def test_packed_event_dedupe_matches_plain_unique(rows: list[tuple[int, int, int, int, int, int]]) -> None:
    ids = pl.DataFrame(
        [(p, c, u, v, x, dt.date(1969, 12, 10) + dt.timedelta(days=d)) for p, c, u, v, x, d in rows],  # across 1970
        schema={"_p": pl.UInt32, "_cid": pl.UInt32, "_uid": pl.UInt32, "_vid": pl.UInt32, "_xid": pl.UInt32,
                "_date": pl.Date},
        orient="row",
    )
    want = ids.unique().sort(pl.all())
    packed = unique_ids(ids)
    assert_frame_equal(packed, want)  # sorted as it comes
    # ids too large to pack: the plain six-column unique
    huge = pl.concat([ids, pl.DataFrame([(2**32 - 1, 2**32 - 1, 0, 0, 0, dt.date(1970, 1, 1))],
                                        schema=ids.schema, orient="row")])
    assert_frame_equal(unique_ids(huge), huge.unique().sort(pl.all()))
    # the in-memory path: the kept rows (``_bad`` false) counted and de-duplicated in one go
    joined = ids.with_columns((pl.col("_cid") == 3).alias("_bad"), pl.lit("raw text").alias("code"))
    kept = ids.filter(pl.col("_cid") != 3)
    n, unique = kept_unique_ids(joined)
    assert n == kept.height
    assert_frame_equal(unique, kept.unique().sort(pl.all()))


def test_cluster_labels_transitive_and_missing_keys() -> None:
    keys = pl.DataFrame(
        {
            "_k_id": ["a:1", "a:2", "b:1", "b:2", "c:1", "a:1"],
            "_k_name": ["n1", None, "n1", "n2", None, None],
            "_k_email": [None, "e1", None, "e1", None, None],
            "_k_phone": [None, None, None, "p", None, None],
        },
        schema=dict.fromkeys(KEYS, pl.String),
    )
    # 0-2 share a name, 0-5 an id, 1-3 an email; 3-2? no: 3 has name n2. 4 is alone.
    assert cluster_labels(keys).to_list() == [0, 1, 0, 1, 4, 0]
    chain = pl.DataFrame(
        {"_k_id": [f"x:{i}" for i in range(6)], "_k_name": ["a", "a", None, None, "c", "c"],
         "_k_email": [None, "b", "b", "d", "d", None], "_k_phone": [None, None, "p", "p", None, None]},
        schema=dict.fromkeys(KEYS, pl.String),
    )
    assert cluster_labels(chain).to_list() == [0] * 6  # a chain through three kinds of key


def _components(keys: pl.DataFrame) -> list[int]:
    """Connected components the slow way (union-find over the rows): the reference."""
    parent = list(range(keys.height))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for k in KEYS:
        first: dict[str, int] = {}
        for i, value in enumerate(keys[k].to_list()):
            if value is None:
                continue
            j = first.setdefault(value, i)
            a, b = root(i), root(j)
            parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(keys.height)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.one_of(st.none(), st.sampled_from("abcdefg")) for _ in KEYS]), max_size=40))
def test_cluster_labels_match_union_find(rows: list[tuple[str | None, ...]]) -> None:
    keys = pl.DataFrame(rows, schema=dict.fromkeys(KEYS, pl.String), orient="row")
    labels = cluster_labels(keys)
    assert labels.dtype == pl.UInt32
    assert labels.to_list() == _components(keys)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), max_size=80))
def test_distinct_packed_keys_dense_and_hashed(values: list[int]) -> None:
    packed = pl.Series("_key", values, dtype=pl.UInt64)
    want = packed.unique().sort()
    assert _distinct_keys(packed, 501).to_list() == want.to_list()  # flags in an array
    assert _distinct_keys(packed, 2**40).to_list() == want.to_list()  # too many keys: unique + sort


_FIELD = st.one_of(st.sampled_from(["", " ", "E1", "e1 ", "2024-01-02", "1.5", "ICD10CM", "x,y", 'a "q"', "é"]),
                   st.text(alphabet='ab ,"é1', max_size=4))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(*[_FIELD for _ in range(7)]), min_size=1, max_size=30), st.booleans())
def test_events_read_as_categorical_equal_text(rows: list[tuple[str, ...]], ragged: bool) -> None:
    """A canonical events file read with Categorical columns gives the texts (and rows) a text read gives."""
    header = ["patient_id", "event_type", "code_system", "code", "event_date", "value", "unit"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue() + ("E9,condition,ICD10CM\n" if ragged else "")  # a cut-off row
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x-events.csv"
        path.write_text(text, encoding="utf-8")
        try:
            read = read_canonical(path)
            # a file without quotes keeps its ragged rows in the frame: ingest drops them after the
            # read (RawPart.ragged), as here
            frame = drop_ragged(read.parts[0].frame.collect().with_columns(_part=pl.lit(0)), read.parts)
            frame = frame.drop("_part")
            plain = _scan_text(path, header, truncate=True).collect()
        finally:
            cleanup_temporary()
    assert all(isinstance(frame.schema[c], pl.Categorical) for c in header[1:])
    if ragged:
        plain = plain.filter(pl.col("_row") != len(rows) + 1)
    assert_frame_equal(frame.with_columns(pl.col(header).cast(pl.String)), plain.select(frame.columns))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.one_of(st.none(), st.sampled_from(["a", "b", " c", "d", ""]))),
                max_size=40))
def test_patient_lookup_by_run_matches_per_row(rows: list[tuple[int, str | None]]) -> None:
    """Looking ids up once per run of equal (source, id) gives every row its own id's answer."""
    raw = pl.DataFrame(rows, schema={"_order": pl.Int32, "patient_id": pl.String}, orient="row")

    def build(keys: pl.LazyFrame) -> pl.DataFrame:
        return keys.with_columns(
            pl.concat_str([pl.col("_order").cast(pl.String), pl.col("patient_id").cast(pl.String)],
                          separator="/").alias("_answer")
        ).collect()

    got = _patients_by_run(raw, build)
    want = raw.select(
        pl.concat_str([pl.col("_order").cast(pl.String), pl.col("patient_id")], separator="/").alias("_answer")
    )
    assert_frame_equal(got.select("_answer"), want)


_SPACES = st.text(alphabet=st.sampled_from(list("ab N/lLuUoOeE\\\t\n\r\u00a0\u2003\u3000.")), max_size=12)


@given(st.lists(st.one_of(st.none(), _SPACES), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_collapse_spaces_and_null_markers_match_the_plain_expressions(texts: list[str | None]) -> None:
    """``collapse_spaces`` is ``replace_all(r"\\s+", " ")`` (Unicode whitespace included), and
    ``blank_to_null``'s membership test over every case spelling is lower-casing then testing."""
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    plain = pl.col("t").str.strip_chars()
    expected = frame.select(
        pl.col("t").str.replace_all(r"\s+", " ").alias("spaces"),
        pl.when(plain.str.to_lowercase().is_in(list(nz.NULL_MARKERS))).then(None).otherwise(plain).alias("blank"),
    )
    got = frame.select(collapse_spaces(pl.col("t")).alias("spaces"), nz.blank_to_null(pl.col("t")).alias("blank"))
    assert_frame_equal(got, expected)


def test_null_markers_in_any_case_are_blank() -> None:
    frame = pl.DataFrame({"t": ["NULL", "Null", "n/A", "\\N", " na ", "NaN", "None", "nul", "nana", "0"]})
    assert frame.select(nz.blank_to_null(pl.col("t"))).to_series().to_list() == [
        None, None, None, None, None, None, None, "nul", "nana", "0",
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=40))
def test_category_texts_are_the_categories_in_physical_id_order(values: list[str | None]) -> None:
    """The fast route (physical ids cast back) gives what ``Categories.to_series`` gives, and
    the public route is taken when Polars lacks the private count."""
    dtype = pl.Categorical(pl.Categories.random())
    ids = pl.Series(values, dtype=pl.String).cast(dtype)
    want = dtype.categories.to_series().cast(pl.String)
    assert_series_equal(category_texts(dtype), want, check_names=False)
    assert_series_equal(ids.to_physical().drop_nulls().map_elements(lambda i: want[i], return_dtype=pl.String),
                        ids.drop_nulls().cast(pl.String), check_names=False)


def test_category_texts_without_the_private_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Polars lacks the private count, the texts come from ``Categories.to_series``."""
    import segment.ingest.packing as packing

    dtype = pl.Categorical(pl.Categories.random())
    kept = pl.Series(["b", "a", "b", "c"]).cast(dtype)  # the categories live while a column uses them
    assert packing._category_count(dtype) == 3
    monkeypatch.setattr(packing, "_category_count", lambda dtype: None)
    assert category_texts(dtype).to_list() == ["b", "a", "c"]
    assert kept.len() == 4
