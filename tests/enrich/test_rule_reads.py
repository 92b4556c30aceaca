"""`segment rules check --reference PACK`: the shipped risk rules against a pack's vintages."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from segment.cli import cli
from segment.rules import load_rules
from segment.rules.loader import default_rules_dir
from tests.enrich.conftest import write_pack

SVI = pl.DataFrame({"tract_geoid": ["25017352500"], "svi_overall_rank": [0.8],
                    "internet_no_access_pct": [12.0]})


def _entry(name: str, vintage: str, source: str) -> dict[str, str]:
    return {"name": name, "meaning": name, "source": source, "vintage": vintage,
            "geography": "census tract (2020 boundaries)", "unit": "rank 0-1"}


def _rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name in ("high-area-need.yaml", "digital-divide.yaml"):
        shutil.copy(default_rules_dir() / name, folder / name)
    return folder


def _check(rules: Path, pack: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["rules", "check", str(rules), "--reference", str(pack)])
    return res.exit_code, res.stderr


def test_shipped_risk_rules_name_what_they_read() -> None:
    ruleset = load_rules(default_rules_dir())
    reads = {r.id: [(x.column, tuple(x.vintages)) for x in r.reads] for r in ruleset.rules
             if r.reads}
    assert reads == {
        "high-area-need": [("svi_overall_rank", ("SVI 2022 (ACS 2018-2022)",
                                                 "SVI 2020 (ACS 2016-2020)"))],
        "digital-divide": [("internet_no_access_pct", ("ACS 2018-2022 5-year",
                                                       "ACS 2019-2023 5-year",
                                                       "ACS 2020-2024 5-year"))],
    }
    for rule in ruleset.rules:
        if rule.reads:
            assert "2022" in rule.source  # the source text names the vintage too


def test_pack_with_the_declared_vintages_passes(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", SVI, [
        _entry("svi_overall_rank", "SVI 2022 (ACS 2018-2022)", "CDC/ATSDR SVI 2022"),
        _entry("internet_no_access_pct", "ACS 2020-2024 5-year", "ACS B28002"),
    ], tract_vintage=2020)
    assert _check(_rules(tmp_path), pack) == (0, "")


@pytest.mark.parametrize(("svi", "acs"), [("SVI 2018 (ACS 2014-2018)", "ACS 2015-2019 5-year")])
def test_older_vintages_fail_naming_rule_key_and_both_vintages(tmp_path: Path, svi: str,
                                                               acs: str) -> None:
    pack = write_pack(tmp_path / "pack", SVI, [
        _entry("svi_overall_rank", svi, "CDC/ATSDR SVI 2018 via OEPS"),
        _entry("internet_no_access_pct", acs, "ACS B28002"),
    ], tract_vintage=2020)
    code, err = _check(_rules(tmp_path), pack)
    assert code == 1
    lines = err.strip().splitlines()
    svi_line = next(line for line in lines if "high-area-need" in line)
    assert "high-area-need.yaml: high-area-need: key `reads[0].vintages`" in svi_line
    assert "SVI 2022 (ACS 2018-2022) or SVI 2020 (ACS 2016-2020)" in svi_line
    assert f"holds {svi} (CDC/ATSDR SVI 2018 via OEPS)" in svi_line
    acs_line = next(line for line in lines if "digital-divide" in line)
    assert f"holds {acs}" in acs_line
    assert lines[-1].endswith("2 problems in " + str(tmp_path / "rules"))


def test_pack_without_the_column_fails(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", SVI.select("tract_geoid", "internet_no_access_pct"), [
        _entry("internet_no_access_pct", "ACS 2019-2023 5-year", "ACS B28002"),
    ], tract_vintage=2020)
    code, err = _check(_rules(tmp_path), pack)
    assert code == 1
    assert ("key `reads[0].column`: the rule reads svi_overall_rank (CDC/ATSDR SVI "
            "(RPL_THEMES, tract)) but reference pack 'test-pack' has no such column") in err
    assert "digital-divide" not in err


def test_without_reference_the_vintages_are_not_checked(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pack = write_pack(tmp_path / "pack", SVI, [], tract_vintage=2020)
    monkeypatch.setenv("SEGMENT_REFERENCE", str(pack))  # not used by rules check
    res = CliRunner().invoke(cli, ["rules", "check", str(_rules(tmp_path))])
    assert res.exit_code == 0, res.stderr
