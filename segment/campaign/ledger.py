"""The contact ledger: an SQLite database of every contact an export included.

One row per patient, campaign, channel and run, with the planned send time in UTC.
Frequency caps and ``--delta`` read it; an export appends its rows in one
transaction, only after every vendor file is in place. The file is owner-only (PHI).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from segment.errors import DeliveryError
from segment.workdir import FILE_MODE, ensure_private_dir

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    patient_id    TEXT NOT NULL,
    campaign_code TEXT NOT NULL,
    channel       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    sent_at       TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (patient_id, campaign_code, channel, run_id)
);
CREATE INDEX IF NOT EXISTS contacts_by_time ON contacts (sent_at);
CREATE INDEX IF NOT EXISTS contacts_by_campaign ON contacts (campaign_code);
"""

HISTORY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String,
    "campaign_code": pl.String,
    "channel": pl.String,
    "run_id": pl.String,
    "sent_at": pl.Datetime("us", "UTC"),
}


def _fmt(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime(TIME_FORMAT)


class ContactLedger:
    """The SQLite contact ledger at ``path`` (created owner-only, WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An open connection with the schema in place; closed afterwards."""
        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
            os.close(fd)
        os.chmod(self.path, FILE_MODE)
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise DeliveryError(f"cannot open the contact ledger ({exc})", path=self.path) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            yield conn
        finally:
            conn.close()

    def history(
        self, since: dt.datetime | None, campaign_code: str | None = None
    ) -> pl.DataFrame:
        """Rows sent at or after ``since``, plus every row of ``campaign_code`` (for --delta)."""
        clauses, params = [], []
        if since is not None:
            clauses.append("sent_at >= ?")
            params.append(_fmt(since))
        if campaign_code is not None:
            clauses.append("campaign_code = ?")
            params.append(campaign_code)
        where = " OR ".join(clauses) if clauses else "0"
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT patient_id, campaign_code, channel, run_id, sent_at FROM contacts "
                f"WHERE {where}",
                params,
            ).fetchall()
        frame = pl.DataFrame(
            rows, schema=dict.fromkeys(["patient_id", "campaign_code", "channel", "run_id", "sent_at"], pl.String),
            orient="row",
        )
        return frame.with_columns(
            pl.col("sent_at").str.to_datetime(TIME_FORMAT, time_zone="UTC", time_unit="us")
        )

    def record(
        self,
        contacts: pl.DataFrame,
        *,
        campaign_code: str,
        run_id: str,
        sent_at: dt.datetime,
    ) -> int:
        """Append ``contacts`` (``patient_id``, ``channel``) in one transaction; rows written.

        Re-recording the same run is a no-op (the key includes the run id).
        """
        now = _fmt(dt.datetime.now(dt.UTC))
        sent = _fmt(sent_at)
        rows = [
            (pid, campaign_code, ch, run_id, sent, now)
            for pid, ch in contacts.select("patient_id", "channel").iter_rows()
        ]
        with self.connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO contacts "
                    "(patient_id, campaign_code, channel, run_id, sent_at, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                written = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise DeliveryError(
                        f"cannot write the contact ledger ({exc}); no contacts were recorded",
                        path=self.path,
                    ) from exc
                raise
        return written

    def has_run(self, run_id: str) -> bool:
        """True when the ledger already holds rows of ``run_id`` (an earlier identical run)."""
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM contacts WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None

    def forget_run(self, run_id: str) -> int:
        """Remove a run's rows (used only to undo a run whose delivery then failed)."""
        with self.connect() as conn:
            cur = conn.execute("DELETE FROM contacts WHERE run_id = ?", (run_id,))
            return cur.rowcount

    def count(self, campaign_code: str | None = None) -> int:
        """Number of rows (for one campaign, or all)."""
        with self.connect() as conn:
            if campaign_code is None:
                return int(conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM contacts WHERE campaign_code = ?", (campaign_code,)
                ).fetchone()[0]
            )
