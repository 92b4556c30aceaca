"""``segment audit`` through CliRunner: outputs, exit codes, suppression in every output."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from segment.cli import cli

from .conftest import FAIR, FLAGGED

Build = Callable[[Any], tuple[Path, Path]]


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["audit", *args])


def test_audit_writes_json_and_html_and_exits_0(make_workdir: Build) -> None:
    campaign, work = make_workdir(FLAGGED)
    result = _run(str(work), str(campaign))
    assert result.exit_code == 0, result.output
    html, js = work / "audit.html", work / "audit.json"
    assert html.exists() and js.exists()
    assert stat.S_IMODE(js.stat().st_mode) == 0o600
    assert stat.S_IMODE(html.stat().st_mode) == 0o600
    doc = json.loads(js.read_text())
    assert doc["campaign"] == {"channels": ["sms", "email"], "code": "AUDIT-TEST-01"}
    assert doc["as_of"] == "2025-06-01"
    race = next(d for d in doc["dimensions"] if d["name"] == "race")
    assert race["reference_group"] == "White" and race["reference_chosen"] == "largest"
    assert [f["group"] for f in doc["flags"]] == ["Black"]
    # terminal table: the published values, the small group as <11
    assert "Selection by group" in result.stdout
    asian = next(line for line in result.stdout.splitlines() if "Asian" in line)
    assert "<11" in asian and " 7 " not in asian
    assert "race = Black: selected at a rate below 0.8" in result.stderr


def test_fail_on_flag_exit_codes(make_workdir: Build, tmp_path: Path) -> None:
    campaign, work = make_workdir(FLAGGED)
    result = _run(str(work), str(campaign), "--fail-on-flag")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: 1 group(s) selected outside 0.8-1.25 times their reference group's rate "
        "(--fail-on-flag)"
    )
    assert (work / "audit.html").exists()  # the report is written before failing


def test_fail_on_flag_passes_when_nothing_is_flagged(make_workdir: Build) -> None:
    campaign, work = make_workdir(FAIR)
    result = _run(str(work), str(campaign), "--fail-on-flag")
    assert result.exit_code == 0, result.output
    assert json.loads((work / "audit.json").read_text())["flags"] == []


def test_out_and_reference_group(make_workdir: Build, tmp_path: Path) -> None:
    campaign, work = make_workdir(FLAGGED)
    out = tmp_path / "reports" / "spring.html"
    result = _run(
        str(work), str(campaign), "--html", str(out), "--reference-group", "race=Black"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "reports" / "spring.json").read_text())
    race = next(d for d in doc["dimensions"] if d["name"] == "race")
    assert race["reference_group"] == "Black" and race["reference_chosen"] == "named"
    white = next(g for g in race["groups"] if g["group"] == "White")
    assert white["selection"]["flag"] == "above"
    assert white["selection"]["ratio"] == pytest.approx(0.6 / 0.24)
    assert [f["group"] for f in doc["flags"]] == ["White", "(missing)"]


def test_usage_and_input_errors(make_workdir: Build, tmp_path: Path) -> None:
    campaign, work = make_workdir(FLAGGED)
    assert _run(str(work), str(campaign), "--reference-group", "race").exit_code == 2
    assert _run(str(campaign)).exit_code == 2
    bad = _run(str(work), str(campaign), "--reference-group", "race=Martian")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: key `reference_group`: group 'Martian' not found in race\n"
    refused = _run(str(work), str(campaign), "--group", "email")
    assert refused.exit_code == 1 and "identify people" in refused.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = _run(str(empty), str(campaign))
    assert missing.exit_code == 1
    assert "enriched.parquet not found; run `segment enrich` first" in missing.stderr


def test_extra_group_column(make_workdir: Build) -> None:
    campaign, work = make_workdir(FLAGGED)
    result = _run(str(work), str(campaign), "--group", "county_fips")
    assert result.exit_code == 0, result.output
    doc = json.loads((work / "audit.json").read_text())
    county = doc["dimensions"][-1]
    assert county["name"] == "county_fips" and county["column"] == "county_fips"
    assert [g["group"] for g in county["groups"]] == ["25025"]


def _published_ints(node: Any) -> list[int]:
    if isinstance(node, bool):
        return []
    if isinstance(node, int):
        return [node]
    if isinstance(node, dict):
        return [v for value in node.values() for v in _published_ints(value)]
    if isinstance(node, list):
        return [v for value in node for v in _published_ints(value)]
    return []


def test_no_small_count_in_any_output(make_workdir: Build) -> None:
    campaign, work = make_workdir(FLAGGED)
    result = _run(str(work), str(campaign))
    assert result.exit_code == 0
    doc = json.loads((work / "audit.json").read_text())
    counts = [v for v in _published_ints({k: doc[k] for k in ("overall", "dimensions")})]
    assert counts and all(v == 0 or v >= 11 for v in counts)
    assert "<11" in json.dumps(doc)
    html = (work / "audit.html").read_text()
    cells = re.findall(r'<td class="n">([^<]*)</td>', html)
    numbers = [int(c.replace(",", "")) for c in cells if re.fullmatch(r"[\d,]+", c)]
    assert numbers and all(n == 0 or n >= 11 for n in numbers)
    assert "&lt;11" in html
    # the Asian group (7 people) never appears as 7, in the table or the charts' text
    assert ">7<" not in html and "Asian: 7" not in html
    as_json = _run(str(work), str(campaign), "--log-format", "json")
    table = json.loads(as_json.stdout.splitlines()[0])
    assert table["table"] == "Selection by group"
    asian = next(r for r in table["rows"] if r["group"] == "Asian")
    assert asian["eligible"] == "<11" and asian["selected"] == "<11" and asian["rate"] is None
    for row in table["rows"]:
        for key in ("eligible", "contactable", "selected", "no_digital"):
            assert row[key] in ("<11", "suppressed") or row[key] == 0 or row[key] >= 11
