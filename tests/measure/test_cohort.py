"""The cohort: identity changes follow the linkage model, lost patients are named, windows are exact."""

from __future__ import annotations

import datetime as dt

import polars as pl

from segment.measure.cohort import assignments, cohort, completion_rows

SENT = dt.datetime(2025, 3, 10, 14, 0, tzinfo=dt.UTC)
D0 = SENT.date()


def _arms(rows: list[tuple[str, str, dt.datetime]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"patient_id": pl.String, "arm": pl.String,
                                      "assigned_at": pl.Datetime("us", "UTC")}, orient="row")


def test_merges_duplicates_deaths_and_departures() -> None:
    later = SENT + dt.timedelta(days=30)
    arms = _arms([("A", "contact", SENT), ("B", "contact", later), ("C", "holdout", SENT),
                  ("D", "holdout", SENT), ("E", "contact", SENT), ("F", "contact", SENT)])
    contacts = pl.DataFrame({"patient_id": ["A", "B", "E", "F"], "channel": ["sms"] * 4, "run_id": ["r"] * 4,
                             "sent_at": [SENT, later, SENT, SENT]})
    patients = pl.DataFrame({
        "patient_id": ["A", "X", "E", "F"],
        # B was merged into A (same person, assigned twice); C was merged into a new record X
        "source_ids": [["A", "B"], ["X", "C"], ["E"], ["F"]],
        "deceased_date": [None, None, D0 + dt.timedelta(days=20), D0 + dt.timedelta(days=20)],
        "race": ["White", "Black", None, "White"],
    }).lazy()
    elig = pl.DataFrame({"patient_id": ["A", "X", "E", "F"], "rule_id": "crc", "status": ["not_due", "not_due", "due", "not_due"],
                         "evidence_date": [D0 + dt.timedelta(days=40), D0 + dt.timedelta(days=3), None,
                                           D0 + dt.timedelta(days=10)]}).lazy()
    as_of = dt.date(2025, 9, 1)
    assigned = assignments(arms, contacts, patients, window_days=90, as_of=as_of)
    out = cohort(assigned, patients, completion_rows(elig, ["crc"]), window_days=90, as_of=as_of,
                 dimensions={"race": "race"}).collect().sort("assigned_id")
    rows = {r["assigned_id"]: r for r in out.to_dicts()}
    assert rows["A"]["patient_id"] == "A" and rows["A"]["completed"] and rows["A"]["days"] == 40
    assert rows["B"]["patient_id"] == "A" and rows["B"]["lost"] == "merged_duplicate" and rows["B"]["merged"]
    assert rows["C"]["patient_id"] == "X" and rows["C"]["lost"] is None and rows["C"]["completed"]
    assert rows["C"]["g:race"] == "Black"
    assert rows["D"]["patient_id"] is None and rows["D"]["lost"] == "not_in_extract"
    assert rows["E"]["lost"] == "died" and rows["E"]["g:race"] == "(missing)"
    assert rows["F"]["lost"] is None and rows["F"]["completed"]  # died after completing: counted
    assert rows["D"]["start"] == D0 and rows["B"]["start"] == later.date()
