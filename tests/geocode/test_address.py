from __future__ import annotations

import polars as pl
import pytest
import usaddress
from hypothesis import given, settings
from hypothesis import strategies as st

from segment.addresses.parse import normalize_street, parse_addresses, street_components


def parse(lines: list[str | None]) -> dict[str | None, dict[str, object]]:
    out = parse_addresses(pl.LazyFrame({"line": lines}, schema={"line": pl.String})).collect()
    return {r["line"]: r for r in out.iter_rows(named=True)}


@pytest.mark.parametrize(
    "line,number,street,unit",
    [
        ("123 North Main Street Apt 4", 123, "N MAIN ST", "APT 4"),
        ("123 N. Main St., #5", 123, "N MAIN ST", "# 5"),
        ("45 First Street North", 45, "1ST ST N", None),
        ("12 1/2 Elm Avenue", 12, "ELM AVE", None),
        ("12A Oak Rd", 12, "OAK RD", None),
        ("7 State Route 9 Unit B", 7, "STATE RTE 9", "UNIT B"),
        ("300 Washington Boulevard Suite 210", 300, "WASHINGTON BLVD", "STE 210"),
        ("88 Southwest Parkway Rear", 88, "SW PKWY", "REAR"),
        # shapes the fast path leaves to usaddress
        ("Apt 4, 123 Main St", 123, "MAIN ST", "APT 4"),
        ("One Beacon Street", 1, "BEACON ST", None),
    ],
)
def test_street_addresses(line: str, number: int, street: str, unit: str | None) -> None:
    row = parse([line])[line]
    assert row["addr_kind"] == "street"
    assert row["house_number"] == number
    assert row["street_key"] == street
    assert row["unit"] == unit


@pytest.mark.parametrize(
    "line,kind",
    [
        ("PO Box 123", "po_box"),
        ("P.O. BOX 9", "po_box"),
        ("Post Office Box 77", "po_box"),
        ("RR 2 Box 45", "rural_route"),
        ("Rural Route 3", "rural_route"),
        ("HC 68 Box 12", "rural_route"),
        ("General Delivery", "general_delivery"),
        ("Homeless", "not_an_address"),
        ("unknown", "not_an_address"),
        ("12345", "not_an_address"),
        ("", "missing_address"),
        (None, "missing_address"),
        ("Main Street", "no_house_number"),
    ],
)
def test_non_street_addresses_are_flagged(line: str | None, kind: str) -> None:
    row = parse([line])[line]
    assert row["addr_kind"] == kind
    if kind != "no_house_number":
        assert row["street_key"] is None


def test_tiger_names_normalize_like_addresses() -> None:
    names = ["N Main St", "North Main Street", "Main St N", "Avenue C", "Ave C", "First St"]
    out = pl.select(normalize_street(pl.Series(names))).to_series().to_list()
    assert out == ["N MAIN ST", "N MAIN ST", "MAIN ST N", "AVE C", "AVE C", "1ST ST"]


def test_street_components() -> None:
    out = pl.select(street_components(pl.lit("N MAIN ST E")).alias("c")).unnest("c").row(0, named=True)
    assert out == {"pre_dir": "N", "name": "MAIN", "street_type": "ST", "post_dir": "E"}


_names = st.sampled_from(["MAIN", "ELM", "WASHINGTON", "OAK HILL", "MARTIN LUTHER KING"])
_types = st.sampled_from(["ST", "AVE", "RD", "BLVD", "LN", "DR", "CT"])
_dirs = st.sampled_from(["", "N ", "S ", "E ", "W "])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 99999), _dirs, _names, _types, st.sampled_from(["", " APT 3", " UNIT 2B"]))
def test_fast_path_agrees_with_usaddress(number: int, pre: str, name: str, kind: str,
                                         unit: str) -> None:
    line = f"{number} {pre}{name} {kind}{unit}"
    row = parse([line])[line]
    assert row["parse_method"] == "fast"
    tags, _ = usaddress.tag(line)
    assert row["house_number"] == int(tags["AddressNumber"])
    ref = " ".join(tags[p] for p in ("StreetNamePreDirectional", "StreetName",
                                     "StreetNamePostType") if p in tags)
    # every suffix word is abbreviated in the key (``OAK HILL ST`` -> ``OAK HL ST``), on both
    # the address and the TIGER side, so compare with the same normalization
    assert row["street_key"] == pl.select(normalize_street(pl.lit(ref))).item()
