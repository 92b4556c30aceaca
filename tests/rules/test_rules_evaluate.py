"""``evaluate`` and ``explain`` over a working folder, and the CLI commands (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from segment.cli import cli
from segment.errors import InputDataError, StageInputError
from segment.rules import default_rules_dir, evaluate, load_rules
from segment.rules.explain import explain
from segment.rules.model import STATUS_DTYPE

from .helpers import MINI_RULE, D, events, mini_folder, patients

RULES = default_rules_dir()
AS_OF = "2026-11-23"


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    patients(
        {"patient_id": "p1", "birth_date": D(1960, 1, 1), "sex": "F", "email": "a@example.org"},
        {"patient_id": "p2", "birth_date": D(1990, 1, 1), "sex": "M"},
        {"patient_id": "p3", "birth_date": None, "sex": "F"},
        {"patient_id": "p4", "birth_date": D(1955, 5, 5), "sex": "F", "deceased_date": D(2026, 1, 1)},
    ).write_parquet(work / "patients.parquet")
    events(
        ("p1", "procedure", "SNOMED", "73761001", D(2019, 3, 2)),
        ("p1", "procedure", "CPT", "77067", D(2026, 2, 1)),
        ("p2", "encounter", "CPT", "99284", D(2026, 11, 20)),
    ).write_parquet(work / "events.parquet")
    return work


def _enrich(work: Path, **columns: list[object]) -> None:
    frame = pl.read_parquet(work / "patients.parquet").with_columns(
        need_index_quintile=pl.Series([5, 2, None, 5], dtype=pl.Int8),
        svi_overall_rank=pl.Series([0.1, 0.3, 0.9, None]),
        internet_no_access_pct=pl.Series([5.0, 30.0, None, 1.0]),
        tract_geoid=pl.Series(["25017350100"] * 4),
        **{k: pl.Series(v) for k, v in columns.items()},
    )
    frame.write_parquet(work / "enriched.parquet")


def test_evaluate_writes_eligibility_and_waterfall(workdir: Path) -> None:
    _enrich(workdir)
    result = evaluate(workdir, RULES, D(2026, 11, 23))
    elig = pl.read_parquet(workdir / "eligibility.parquet")
    assert elig.columns == ["patient_id", "rule_id", "rule_version", "status", "reason", "evidence_date"]
    assert elig.height == 4 * 9 == result.rows
    crc = elig.filter(pl.col("rule_id") == "colorectal-cancer-screening").sort("patient_id")
    expected = pl.DataFrame({
        "patient_id": ["p1", "p2", "p3", "p4"],
        "status": ["not_due", "not_in_population", "unknown", "excluded"],
        "evidence_date": [D(2019, 3, 2), None, None, D(2026, 1, 1)],
    }, schema_overrides={"status": STATUS_DTYPE})
    assert_frame_equal(crc.select("patient_id", "status", "evidence_date"), expected)
    # the status column is an Enum of exactly the statuses, sorted, so it sorts as text
    assert elig.schema["status"] == pl.Enum(["due", "excluded", "not_due", "not_in_population", "unknown"])
    assert elig.sort("status")["status"].cast(pl.String).to_list() == sorted(elig["status"].cast(pl.String))
    report = json.loads((workdir / "evaluate-report.json").read_text())
    assert report["as_of"] == AS_OF and report["patient_source"] == "enriched.parquet"
    (row,) = [r for r in report["rules"] if r["rule_id"] == "colorectal-cancer-screening"]
    assert {k: row[k] for k in ("patients", "in_population", "not_excluded", "due", "not_due",
                                "excluded", "unknown")} == {
        "patients": 4, "in_population": 2, "not_excluded": 1, "due": 0, "not_due": 1,
        "excluded": 1, "unknown": 1,
    }
    (need,) = [r for r in report["rules"] if r["rule_id"] == "high-area-need"]
    # p1 quintile 5 -> due; p2 quintile 2, SVI 0.3 -> not due; p3 no birth date; p4 deceased
    assert (need["due"], need["not_due"], need["unknown"], need["excluded"]) == (1, 1, 1, 1)


def test_risk_rules_need_enrichment(workdir: Path) -> None:
    with pytest.raises(StageInputError) as info:
        evaluate(workdir, RULES, D(2026, 11, 23))
    assert info.value.one_line() == (
        "rule digital-divide needs column `internet_no_access_pct`, which patients.parquet "
        "does not have; run `segment enrich` first"
    )


def test_a_column_missing_from_enriched_is_unknown_with_a_warning(workdir: Path) -> None:
    _enrich(workdir)
    frame = pl.read_parquet(workdir / "enriched.parquet").drop("svi_overall_rank")
    frame.write_parquet(workdir / "enriched.parquet")
    result = evaluate(workdir, RULES, D(2026, 11, 23))
    assert result.warnings == [
        "column `svi_overall_rank` is not in enriched.parquet; rule high-area-need treats it as missing"
    ]
    elig = pl.read_parquet(workdir / "eligibility.parquet").filter(pl.col("rule_id") == "high-area-need")
    assert dict(zip(elig["patient_id"], elig["status"], strict=True)) == {
        "p1": "due", "p2": "unknown", "p3": "unknown", "p4": "excluded",
    }


def test_explain_one_patient(workdir: Path) -> None:
    _enrich(workdir)
    result = explain(workdir, "p2", RULES, D(2026, 11, 23))
    by_rule = {r["rule_id"]: r for r in result.rules}
    assert by_rule["ed-follow-up"]["status"] == "due"
    assert by_rule["ed-follow-up"]["reason"] == (
        "no qualifying follow-up visit on record (outpatient visit, telehealth visit)"
    )
    assert by_rule["digital-divide"]["reason"] == (
        "tract households without internet (%) is 30.0 (> 20)"
    )
    assert result.sdoh == {"tract_geoid": "25017350100", "need_index_quintile": 2,
                           "svi_overall_rank": 0.3, "internet_no_access_pct": 30.0}


def test_explain_before_enrichment_marks_risk_rules_unknown(workdir: Path) -> None:
    result = explain(workdir, "p1", RULES, D(2026, 11, 23))
    by_rule = {r["rule_id"]: r for r in result.rules}
    assert by_rule["colorectal-cancer-screening"]["status"] == "not_due"
    assert by_rule["high-area-need"]["status"] == "unknown"
    assert by_rule["high-area-need"]["reason"] == "need-index quintile is missing"
    assert result.sdoh == {}
    assert "column `need_index_quintile` is not in patients.parquet; rule high-area-need treats it as missing" in result.warnings


def test_explain_unknown_patient(workdir: Path) -> None:
    with pytest.raises(InputDataError):
        explain(workdir, "nobody", RULES, D(2026, 11, 23))


# -- CLI -----------------------------------------------------------------------------
def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--log-format", "plain", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_rules_check_ok() -> None:
    code, out, _err = _invoke("rules", "check", str(RULES))
    assert code == 0
    assert out.splitlines()[:2] == ["rules check", "  rules       9"]


def test_cli_rules_check_lists_every_problem(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("kind: screening", "kind: screen"),
                other_yaml=MINI_RULE.replace("id: mini", "id: other").replace("10 years", "ten years"))
    code, out, err = _invoke("rules", "check", str(tmp_path))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"Error: {tmp_path}/mini.yaml:5: mini: key `kind`: found 'screen'; valid options are: "
        "'screening' or 'risk'",
        f"Error: {tmp_path}/other.yaml:12: other: key `due.unless[0].within`: found 'ten years'; "
        "valid options are: ever; <n> days|weeks|months|years; measurement year; season from "
        "MM-DD; since last <value set>; measurement year and <n> years before; from MM-DD <n> years "
        "before measurement year",
        f"Error: 2 problems in {tmp_path}",
    ]


def test_cli_rules_test_passes_on_shipped_rules() -> None:
    code, out, _err = _invoke("rules", "test", str(RULES))
    assert code == 0, out
    assert "FAIL" not in out
    n = sum(len(r.examples) for r in load_rules(RULES).rules)
    assert out.splitlines()[-3:] == ["rules test", f"  examples  {n}", "  failed    0"]


def test_cli_rules_test_lists_failures(tmp_path: Path) -> None:
    rule = MINI_RULE.replace("expect: due", "expect: not_due")
    mini_folder(tmp_path, rule)
    code, out, err = _invoke("rules", "test", str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        "FAIL  mini: due: expected not_due, got due (no qualifying screening on record "
        "(colonoscopy, FIT))",
        "FAIL  mini: no example with expect: due (every status the rule can give needs one)",
        "FAIL  mini: no example with expect: excluded (every status the rule can give needs one)",
        "FAIL  mini: no example with expect: not_in_population (every status the rule can give "
        "needs one)",
        "FAIL  mini: no example with expect: unknown (every status the rule can give needs one)",
    ]
    assert err == "Error: 5 of 5 example checks failed\n"


def test_cli_rules_list() -> None:
    code, out, _err = _invoke("rules", "list", str(RULES))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "rules"
    assert lines[1].split() == ["id", "version", "kind", "title", "source"]
    assert any(line.startswith("breast-cancer-screening ") and "USPSTF 2024" in line for line in lines)
    assert len(lines) == 2 + 9


def test_cli_evaluate(workdir: Path) -> None:
    _enrich(workdir)
    code, out, _err = _invoke("evaluate", str(workdir), "--rules", str(RULES), "--as-of", AS_OF)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"evaluate (as of {AS_OF})"
    assert lines[1].split() == ["rule_id", "patients", "in_population", "not_excluded", "due",
                                "not_due", "excluded", "unknown"]
    assert "colorectal-cancer-screening 4 2 1 0 1 1 1" in [" ".join(x.split()) for x in lines]


def test_cli_evaluate_without_enrichment_is_a_clear_error(workdir: Path) -> None:
    code, _out, err = _invoke("evaluate", str(workdir), "--rules", str(RULES), "--as-of", AS_OF)
    assert code == 1
    assert err == (
        "Error: rule digital-divide needs column `internet_no_access_pct`, which patients.parquet "
        "does not have; run `segment enrich` first\n"
    )


def test_cli_evaluate_bad_date_is_usage_error(workdir: Path) -> None:
    code, _out, _err = _invoke("evaluate", str(workdir), "--rules", str(RULES), "--as-of", "soon")
    assert code == 2


def test_cli_explain(workdir: Path) -> None:
    _enrich(workdir)
    code, out, _err = _invoke("explain", str(workdir), "p1", "--as-of", AS_OF)
    assert code == 0
    lines = [" ".join(x.split()) for x in out.splitlines()]
    assert lines[0] == f"patient p1 as of {AS_OF}"
    assert "colorectal-cancer-screening not_due 2019-03-02 colonoscopy on 2019-03-02 is within 10 years" in lines
    assert "SDOH (enriched.parquet)" in lines
    assert "need_index_quintile 5" in lines


def test_cli_explain_unknown_patient(workdir: Path) -> None:
    code, out, err = _invoke("explain", str(workdir), "nobody", "--as-of", AS_OF)
    assert code == 1
    assert out == ""
    assert err == f"Error: {workdir}: patient 'nobody' not found in patients.parquet\n"


def test_cli_explain_before_enrichment_warns(workdir: Path) -> None:
    code, out, err = _invoke("explain", str(workdir), "p1", "--as-of", AS_OF)
    assert code == 0
    assert err.splitlines()[0] == (
        "WARNING: evaluate: column `internet_no_access_pct` is not in patients.parquet; "
        "rule digital-divide treats it as missing"
    )
    assert "high-area-need unknown need-index quintile is missing" in [
        " ".join(x.split()) for x in out.splitlines()
    ]


def test_cli_rules_check_shows_yaml_context(tmp_path: Path) -> None:
    mini_folder(tmp_path, MINI_RULE.replace("title: Mini colorectal", "title: [Mini"))
    code, _out, err = _invoke("rules", "check", str(tmp_path))
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"Error: {tmp_path}/mini.yaml:4: YAML error: expected ',' or ']', but got ':'"
    assert "  3 | title: [Mini" in lines
    assert "> 4 | source: test 2026" in lines  # PyYAML notices the problem on the next line
