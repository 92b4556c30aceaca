"""The contact ledger: an SQLite database of every contact an export delivered.

Tables:

- ``contacts``: one row per patient, campaign, channel and run, with the planned send
  time in UTC, the delivery that recorded it and the vendor file it is in. A row exists
  exactly while its vendor file is delivered (see :mod:`segment.export.delivery`).
- ``reservations``: the contacts a delivery in progress is about to make. They are
  written in the same ``BEGIN IMMEDIATE`` transaction that checked the frequency caps,
  and count against the caps of every other run until the delivery commits (they move
  to ``contacts``) or is withdrawn (they are deleted).
- ``feedback``: what vendors reported back (delivered, sent, failed with the vendor's code,
  bounced, opted out or in, clicked), one row per distinct vendor event, tied to the contact
  it is about (:mod:`segment.campaign.feedback`). Failed and bounced contacts do not count
  against frequency caps; hard bounces, invalid numbers and opt-outs suppress later runs.
- ``arms``: for a campaign with a holdout, each assigned patient's arm (``contact`` or
  ``holdout``), stratum, and the run and planned send time of the first assignment. The
  first assignment is kept: a patient never changes arm within a campaign.
- ``unsubscribes``: who was sent to a vendor in an unsubscribe file, and by which delivery.
- ``deliveries``: the write-ahead record of each delivery: its state (``intent`` ->
  ``staged`` -> ``committed`` -> ``published``, or ``withdrawing`` -> ``withdrawn``) and
  what it consists of (file names, sizes and hashes, the trigger, the manifest; no PHI).

Frequency caps and ``--delta`` read contacts and reservations. The file is owner-only
(PHI); WAL mode, ``synchronous=FULL``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segment.errors import DeliveryError
from segment.workdir import FILE_MODE, ensure_private_dir

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: how long a run waits for another run's ledger transaction (planning under the lock)
BUSY_TIMEOUT_S = 600.0
#: how long opening the ledger retries when SQLite reports it busy at once: two runs setting up
#: a new ledger together (switching it to WAL) get SQLITE_BUSY without the busy timeout
SETUP_RETRY_S = 60.0


def _set_up(conn: sqlite3.Connection) -> None:
    """WAL mode, the schema and any missing columns; retried while another process holds the
    file during its own set-up (SQLite answers "locked" at once there, not after the timeout)."""
    deadline = time.monotonic() + SETUP_RETRY_S
    pause = 0.02
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            for table, columns in (("contacts", _CONTACT_COLUMNS), ("reservations", _RESERVATION_COLUMNS)):
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in have:
                        with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def ledger_files(path: Path) -> list[Path]:
    """The files that hold a ledger's content, with its write-ahead log folded in first.

    A WAL left beside the ledger (by a connection still open, or a process that died) holds
    committed rows the main file does not; its bytes depend on when it was last
    checkpointed, not only on the content. ``PRAGMA wal_checkpoint(TRUNCATE)`` moves them
    into the main file, so the main file's bytes stand for the content (what a stage key
    hashes). A WAL that could not be emptied (another process is reading) is listed too.
    A ledger that does not exist is not created.
    """
    if not path.is_file():
        return []
    wal = Path(f"{path}-wal")
    if wal.exists():
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path, timeout=5.0)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return [path, *([wal] if wal.exists() and wal.stat().st_size else [])]

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
CREATE TABLE IF NOT EXISTS reservations (
    delivery_id   TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    campaign_code TEXT NOT NULL,
    channel       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    sent_at       TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    PRIMARY KEY (delivery_id, patient_id, channel)
);
CREATE TABLE IF NOT EXISTS feedback (
    event_key     TEXT PRIMARY KEY,
    vendor        TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    campaign_code TEXT NOT NULL,
    channel       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    code          TEXT,
    suppress      INTEGER NOT NULL,
    event_at      TEXT NOT NULL,
    imported_at   TEXT NOT NULL,
    source_file   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_contact ON feedback (patient_id, campaign_code, channel, run_id);
CREATE TABLE IF NOT EXISTS arms (
    campaign_code TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    arm           TEXT NOT NULL,
    stratum       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    delivery_id   TEXT,
    assigned_at   TEXT NOT NULL,
    PRIMARY KEY (campaign_code, patient_id)
);
CREATE TABLE IF NOT EXISTS unsubscribes (
    vendor        TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    channel       TEXT NOT NULL,
    delivery_id   TEXT NOT NULL,
    sent_at       TEXT NOT NULL,
    PRIMARY KEY (vendor, patient_id, channel, delivery_id)
);
CREATE TABLE IF NOT EXISTS journey_exits (
    campaign_code TEXT NOT NULL,
    patient_id    TEXT NOT NULL,
    reason        TEXT NOT NULL,
    step          INTEGER,
    run_id        TEXT NOT NULL,
    exited_at     TEXT NOT NULL,
    PRIMARY KEY (campaign_code, patient_id, run_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id   TEXT PRIMARY KEY,
    campaign_code TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    content_key   TEXT NOT NULL,
    destination   TEXT NOT NULL,
    state         TEXT NOT NULL,
    record        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
"""
#: columns added to ``contacts`` after its first version (older ledgers are migrated)
_CONTACT_COLUMNS = {"delivery_id": "TEXT", "file_name": "TEXT", "vendor": "TEXT", "vendor_key": "TEXT",
                    "step": "INTEGER", "variant": "TEXT"}
#: columns added to ``reservations`` after its first version
_RESERVATION_COLUMNS = {"vendor": "TEXT", "vendor_key": "TEXT", "step": "INTEGER", "variant": "TEXT"}
#: feedback outcomes after which a contact does not count against frequency caps
FAILED_OUTCOMES = ("failed", "bounced")
#: feedback outcomes that show a message arrived
DELIVERED_OUTCOMES = ("delivered", "clicked")

HISTORY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "patient_id": pl.String,
    "campaign_code": pl.String,
    "channel": pl.String,
    "run_id": pl.String,
    "sent_at": pl.Datetime("us", "UTC"),
}

#: delivery states that a later run must reconcile (complete or withdraw)
UNFINISHED_STATES = ("intent", "staged", "committed", "withdrawing")


def _fmt(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime(TIME_FORMAT)


def _now() -> str:
    return _fmt(dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery journal."""

    delivery_id: str
    campaign_code: str
    run_id: str
    content_key: str
    destination: str
    state: str
    record: dict[str, Any]
    created_at: str
    updated_at: str


def _history_sql(since: dt.datetime | None, campaign_code: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("sent_at >= ?")
        params.append(_fmt(since))
    if campaign_code is not None:
        clauses.append("campaign_code = ?")
        params.append(campaign_code)
    where = " OR ".join(clauses) if clauses else "0"
    cols = "patient_id, campaign_code, channel, run_id, sent_at"
    failed = ", ".join(f"'{o}'" for o in FAILED_OUTCOMES)
    # delivered or sent-and-unknown count; a contact the vendor reported failed or bounced does not
    not_failed = (
        "NOT EXISTS (SELECT 1 FROM feedback f WHERE f.patient_id = c.patient_id AND "
        "f.campaign_code = c.campaign_code AND f.channel = c.channel AND f.run_id = c.run_id AND "
        f"f.outcome IN ({failed}))"
    )
    sql = (f"SELECT {cols} FROM contacts c WHERE ({where}) AND {not_failed} "
           f"UNION ALL SELECT {cols} FROM reservations WHERE {where}")
    return sql, params + params


def _history_frame(conn: sqlite3.Connection, since: dt.datetime | None, campaign_code: str | None
                   ) -> pl.DataFrame:
    """The history rows (:func:`_history_sql`) as a frame in :data:`HISTORY_SCHEMA`, read in bulk."""
    sql, params = _history_sql(since, campaign_code)
    frame = _bulk_query(conn, sql, ("patient_id", "campaign_code", "channel", "run_id", "sent_at"), params)
    return frame.with_columns(
        pl.col("sent_at").str.to_datetime(TIME_FORMAT, time_zone="UTC", time_unit="us")
    )


def _delivery(row: tuple[Any, ...] | None) -> Delivery | None:
    if row is None:
        return None
    return Delivery(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7], row[8])


_DELIVERY_COLUMNS = (
    "delivery_id, campaign_code, run_id, content_key, destination, state, record, created_at, updated_at"
)


class LedgerTransaction:
    """Reads and writes inside one ``BEGIN IMMEDIATE`` transaction (see :meth:`ContactLedger.immediate`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def history(self, since: dt.datetime | None, campaign_code: str | None = None) -> pl.DataFrame:
        """Contacts and reservations sent at or after ``since``, plus all of ``campaign_code``."""
        return _history_frame(self.conn, since, campaign_code)

    def latest_contact(self, *, exclude_run_id: str | None = None) -> tuple[dt.datetime, str, str] | None:
        """The latest contact or reservation: (sent_at, campaign code, run id), or None."""
        return _latest(self.conn, exclude_run_id)

    def begin_delivery(
        self,
        delivery: Delivery,
        contacts: pl.DataFrame,
        *,
        sent_at: dt.datetime,
    ) -> None:
        """Write the delivery's intent and reserve its contacts (``patient_id``, ``channel``, ``file_name``)."""
        sent = _fmt(sent_at)
        self.conn.execute("DELETE FROM reservations WHERE delivery_id = ?", (delivery.delivery_id,))
        self.conn.execute(
            f"INSERT OR REPLACE INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (delivery.delivery_id, delivery.campaign_code, delivery.run_id, delivery.content_key,
             delivery.destination, delivery.state, json.dumps(delivery.record, sort_keys=True),
             delivery.created_at, delivery.updated_at),
        )
        full = contacts
        for name, kind in (("vendor", pl.String), ("vendor_key", pl.String), ("step", pl.Int32),
                           ("variant", pl.String)):
            if name not in full.columns:
                full = full.with_columns(pl.lit(None, kind).alias(name))
        self.conn.executemany(
            "INSERT OR IGNORE INTO reservations (delivery_id, patient_id, campaign_code, channel, run_id, "
            "sent_at, file_name, vendor, vendor_key, step, variant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (delivery.delivery_id, pid, delivery.campaign_code, ch, delivery.run_id, sent, name, vendor, key,
                 step, variant)
                for pid, ch, name, vendor, key, step, variant in full.select(
                    "patient_id", "channel", "file_name", "vendor", "vendor_key", "step", "variant").iter_rows()
            ),
        )

    def record_journey_exits(self, exits: pl.DataFrame, *, campaign_code: str, run_id: str,
                             exited_at: dt.datetime) -> int:
        """Record journeys stopped tonight (``patient_id``, ``reason``, ``step``); rows written."""
        before = self.conn.total_changes
        at = _fmt(exited_at)
        self.conn.executemany(
            "INSERT OR IGNORE INTO journey_exits (campaign_code, patient_id, reason, step, run_id, exited_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((campaign_code, pid, reason, step, run_id, at)
             for pid, reason, step in exits.select("patient_id", "reason", "step").iter_rows()),
        )
        return self.conn.total_changes - before

    def journey_inputs(self, campaign_code: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """See :meth:`ContactLedger.journey_inputs`."""
        return _journey_inputs(self.conn, campaign_code)

    def record_unsubscribes(self, delivery_id: str, unsubscribes: pl.DataFrame, *, sent_at: dt.datetime) -> None:
        """Remember who a delivery's unsubscribe files name (``vendor``, ``patient_id``, ``channel``)."""
        self.conn.execute("DELETE FROM unsubscribes WHERE delivery_id = ?", (delivery_id,))
        self.conn.executemany(
            "INSERT OR IGNORE INTO unsubscribes (vendor, patient_id, channel, delivery_id, sent_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((v, p, c, delivery_id, _fmt(sent_at))
             for v, p, c in unsubscribes.select("vendor", "patient_id", "channel").iter_rows()),
        )

    def record_arms(self, arms: pl.DataFrame, *, campaign_code: str, run_id: str, delivery_id: str | None,
                    assigned_at: dt.datetime) -> int:
        """Record ``patient_id``, ``arm``, ``stratum`` of a campaign's holdout draw; new rows written.

        A patient already assigned for the campaign keeps the first assignment.
        """
        before = self.conn.total_changes
        at = _fmt(assigned_at)
        self.conn.executemany(
            "INSERT OR IGNORE INTO arms (campaign_code, patient_id, arm, stratum, run_id, delivery_id, "
            "assigned_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((campaign_code, pid, arm, stratum, run_id, delivery_id, at)
             for pid, arm, stratum in arms.select("patient_id", "arm", "stratum").iter_rows()),
        )
        return self.conn.total_changes - before

    def arms(self, campaign_code: str) -> pl.DataFrame:
        """See :meth:`ContactLedger.arms`."""
        return _arms(self.conn, campaign_code)

    def blocked(self) -> pl.DataFrame:
        """``patient_id``, ``channel`` suppressed by vendor feedback, see :func:`blocked_sql`."""
        return _frame(self.conn.execute(BLOCKED_SQL).fetchall(), ("patient_id", "channel"))

    def vendor_audience(self) -> pl.DataFrame:
        """Per vendor and channel, who it has received and when last, and when last unsubscribed.

        Columns ``vendor``, ``patient_id``, ``channel``, ``last_sent`` and ``last_unsubscribed``
        (null when never): a person is named in a new unsubscribe file only when the vendor
        received them after the last unsubscribe file that named them.
        """
        rows = self.conn.execute(
            "SELECT c.vendor, c.patient_id, c.channel, MAX(c.sent_at), "
            "(SELECT MAX(u.sent_at) FROM unsubscribes u WHERE u.vendor = c.vendor AND "
            "u.patient_id = c.patient_id AND u.channel = c.channel) "
            "FROM contacts c WHERE c.vendor IS NOT NULL GROUP BY c.vendor, c.patient_id, c.channel"
        ).fetchall()
        return _frame(rows, ("vendor", "patient_id", "channel", "last_sent", "last_unsubscribed"))


#: the latest suppressing feedback event (hard bounce, invalid number, opt-out) per patient and
#: channel, unless a later opt-in (START after STOP) undid it
BLOCKED_SQL = """
SELECT s.patient_id, s.channel FROM
  (SELECT patient_id, channel, MAX(event_at) AS at FROM feedback WHERE suppress = 1
   GROUP BY patient_id, channel) s
LEFT JOIN
  (SELECT patient_id, channel, MAX(event_at) AS at FROM feedback WHERE outcome = 'opted_in'
   GROUP BY patient_id, channel) o
ON o.patient_id = s.patient_id AND o.channel = s.channel
WHERE o.at IS NULL OR o.at < s.at
"""


ARMS_COLUMNS = ("patient_id", "arm", "stratum", "run_id", "assigned_at")


def _bulk(conn: sqlite3.Connection, table: str, names: tuple[str, ...], where: str,
          params: tuple[Any, ...]) -> pl.DataFrame:
    """A large read of NOT NULL text columns as one frame, without a Python object per cell.

    SQLite joins the rows into one text (unit separator between cells, record separator
    between rows) that Polars' CSV reader splits: a million rows in well under a second,
    where ``fetchall`` and a row-wise frame take seconds. Ids never hold control characters.
    """
    return _bulk_query(conn, f"SELECT * FROM {table} WHERE {where}", names, params)


def _bulk_query(conn: sqlite3.Connection, query: str, names: tuple[str, ...], params: Sequence[Any]
                ) -> pl.DataFrame:
    """:func:`_bulk` over any query whose result has the NOT NULL text columns ``names``."""
    cells = " || char(31) || ".join(names)
    text = conn.execute(f"SELECT group_concat({cells}, char(30)) FROM ({query})", tuple(params)).fetchone()[0]
    if not text:
        return _frame([], names)
    return pl.read_csv(io.BytesIO(text.encode("utf-8")), has_header=False, new_columns=list(names),
                       separator="\x1f", eol_char="\x1e", quote_char=None,
                       schema=dict.fromkeys(names, pl.String))


def _arms(conn: sqlite3.Connection, campaign_code: str) -> pl.DataFrame:
    frame = _bulk(conn, "arms", ARMS_COLUMNS, "campaign_code = ?", (campaign_code,))
    return frame.sort("patient_id").with_columns(
        pl.col("assigned_at").str.to_datetime(TIME_FORMAT, time_zone="UTC", time_unit="us")
    )


def _frame(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(names, pl.String), orient="row")


def _latest(conn: sqlite3.Connection, exclude_run_id: str | None) -> tuple[dt.datetime, str, str] | None:
    best: tuple[str, str, str] | None = None
    for table in ("contacts", "reservations"):
        row = conn.execute(
            f"SELECT sent_at, campaign_code, run_id FROM {table} WHERE run_id != ? "
            "ORDER BY sent_at DESC LIMIT 1",
            (exclude_run_id or "",),
        ).fetchone()
        if row is not None and (best is None or row[0] > best[0]):
            best = (row[0], row[1], row[2])
    if best is None:
        return None
    when = dt.datetime.strptime(best[0], TIME_FORMAT).replace(tzinfo=dt.UTC)
    return when, best[1], best[2]


def _journey_frames(contacts: pl.DataFrame | list[Any], exits: list[Any], feedback: list[Any]
                    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    def times(frame: pl.DataFrame, column: str) -> pl.DataFrame:
        return frame.with_columns(pl.col(column).str.to_datetime(TIME_FORMAT, time_zone="UTC", time_unit="us"))

    c = (contacts if isinstance(contacts, pl.DataFrame) else _frame(contacts, ("patient_id", "channel", "step",
                                                                              "sent_at"))).with_columns(
        pl.col("step").cast(pl.Int32))
    e = pl.DataFrame(exits, schema={"patient_id": pl.String, "reason": pl.String, "step": pl.Int32,
                                    "exited_at": pl.String}, orient="row")
    f = pl.DataFrame(feedback, schema={"patient_id": pl.String, "channel": pl.String, "outcome": pl.String,
                                       "event_at": pl.String}, orient="row")
    return times(c, "sent_at"), times(e, "exited_at"), times(f, "event_at")


def _journey_inputs(conn: sqlite3.Connection, code: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    names = ("patient_id", "channel", "step", "sent_at")
    where = "campaign_code = ? AND step IS NOT NULL"
    contacts = pl.concat([_bulk(conn, table, names, where, (code,)) for table in ("contacts", "reservations")])
    exits = conn.execute("SELECT patient_id, reason, step, exited_at FROM journey_exits WHERE campaign_code = ?",
                         (code,)).fetchall()
    failed = ", ".join(f"'{o}'" for o in FAILED_OUTCOMES)
    feedback = conn.execute(
        "SELECT patient_id, channel, outcome, event_at FROM feedback WHERE outcome = 'opted_out' OR "
        f"(campaign_code = ? AND outcome IN ({failed}))", (code,)).fetchall()
    return _journey_frames(contacts, exits, feedback)


class ContactLedger:
    """The SQLite contact ledger at ``path`` (created owner-only, WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def locks_dir(self) -> Path:
        """The folder of per-delivery lock files beside the ledger."""
        return self.path.with_name(f".{self.path.name}.locks")

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An open connection with the schema in place; closed afterwards."""
        ensure_private_dir(self.path.parent)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
            os.close(fd)
        os.chmod(self.path, FILE_MODE)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise DeliveryError(f"cannot open the contact ledger ({exc})", path=self.path) from exc
        try:
            try:
                _set_up(conn)
            except sqlite3.Error as exc:
                text = str(exc).lower()
                what = (
                    "is locked by another process; try again when it has finished"
                    if "locked" in text or "busy" in text else
                    "is corrupt or not an SQLite database; restore it from a backup (nothing was sent)"
                )
                raise DeliveryError(f"the contact ledger {what}", path=self.path) from exc
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def immediate(self) -> Iterator[LedgerTransaction]:
        """One ``BEGIN IMMEDIATE`` transaction: the ledger's write lock from the first read.

        Every run that checks caps and reserves contacts does both inside one of these,
        so two campaigns sharing the ledger see each other's contacts, whatever their
        working folders. Committed on success, rolled back on any exception.
        """
        with self.connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise DeliveryError(f"cannot lock the contact ledger ({exc})", path=self.path) from exc
            try:
                yield LedgerTransaction(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise DeliveryError(f"cannot write the contact ledger ({exc})", path=self.path) from exc
                raise

    def history(
        self, since: dt.datetime | None, campaign_code: str | None = None
    ) -> pl.DataFrame:
        """Rows sent at or after ``since``, plus every row of ``campaign_code`` (for --delta).

        Reservations of deliveries in progress are included: they count as contacts.
        """
        with self.connect() as conn:
            return _history_frame(conn, since, campaign_code)

    def latest_contact(self, *, exclude_run_id: str | None = None) -> tuple[dt.datetime, str, str] | None:
        """The latest recorded or reserved contact: (sent_at, campaign code, run id), or None."""
        with self.connect() as conn:
            return _latest(conn, exclude_run_id)

    def blocked(self) -> pl.DataFrame:
        """``patient_id``, ``channel`` suppressed by vendor feedback (see :data:`BLOCKED_SQL`)."""
        with self.connect() as conn:
            return LedgerTransaction(conn).blocked()

    def arms(self, campaign_code: str) -> pl.DataFrame:
        """The recorded arms of a campaign: ``patient_id``, ``arm``, ``stratum``, ``run_id``, ``assigned_at``."""
        if not self.path.exists():
            return _frame([], ARMS_COLUMNS).with_columns(pl.col("assigned_at").cast(pl.Datetime("us", "UTC")))
        with self.connect() as conn:
            return _arms(conn, campaign_code)

    def journey_inputs(self, campaign_code: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """A journey's ledger inputs: its step contacts (and reservations), recorded stops, and feedback.

        Frames in the schemas of :mod:`segment.campaign.journey` (``CONTACTS_SCHEMA``,
        ``EXITS_SCHEMA``, ``FEEDBACK_SCHEMA``); feedback holds opt-outs of any campaign and
        failures of this one. Empty frames when the ledger does not exist yet.
        """
        if not self.path.exists():
            return _journey_frames([], [], [])
        with self.connect() as conn:
            return _journey_inputs(conn, campaign_code)

    def contacts(self, campaign_code: str) -> pl.DataFrame:
        """Every recorded contact of a campaign: ``patient_id``, ``channel``, ``run_id``, ``sent_at``."""
        with self.connect() as conn:
            frame = _bulk(conn, "contacts", ("patient_id", "channel", "run_id", "sent_at"), "campaign_code = ?",
                          (campaign_code,))
        return frame.with_columns(
            pl.col("sent_at").str.to_datetime(TIME_FORMAT, time_zone="UTC", time_unit="us")
        )

    def delivery_outcomes(self, campaign_code: str) -> pl.DataFrame | None:
        """Per patient sent a contact of ``campaign_code``: was any delivered, did all fail?

        Columns ``patient_id``, ``delivered`` (a vendor reported a delivery or a click for
        one of the patient's contacts) and ``failed`` (a vendor reported every contact of
        the patient that it reported on failed or bounced, and none delivered). None when
        no vendor feedback exists for the campaign: then only "sent" is known.
        """
        failed = ", ".join(f"'{o}'" for o in FAILED_OUTCOMES)
        delivered = ", ".join(f"'{o}'" for o in DELIVERED_OUTCOMES)
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM feedback WHERE campaign_code = ? LIMIT 1",
                            (campaign_code,)).fetchone() is None:
                return None
            rows = conn.execute(
                "SELECT c.patient_id, "
                f"MAX(CASE WHEN f.outcome IN ({delivered}) THEN 1 ELSE 0 END), "
                f"MAX(CASE WHEN f.outcome IN ({failed}) THEN 1 ELSE 0 END) "
                "FROM contacts c LEFT JOIN feedback f ON f.patient_id = c.patient_id AND "
                "f.campaign_code = c.campaign_code AND f.channel = c.channel AND f.run_id = c.run_id "
                "WHERE c.campaign_code = ? GROUP BY c.patient_id",
                (campaign_code,),
            ).fetchall()
        frame = pl.DataFrame(rows, schema={"patient_id": pl.String, "_d": pl.Int64, "_f": pl.Int64},
                             orient="row")
        return frame.select(
            "patient_id",
            (pl.col("_d") == 1).alias("delivered"),
            ((pl.col("_f") == 1) & (pl.col("_d") == 0)).alias("failed"),
        )

    def vendor_audience(self) -> pl.DataFrame:
        """See :meth:`LedgerTransaction.vendor_audience`."""
        with self.connect() as conn:
            return LedgerTransaction(conn).vendor_audience()

    def record(
        self,
        contacts: pl.DataFrame,
        *,
        campaign_code: str,
        run_id: str,
        sent_at: dt.datetime,
    ) -> int:
        """Append ``contacts`` (``patient_id``, ``channel``) in one transaction; rows written.

        Re-recording the same run is a no-op (the key includes the run id). Exports do
        not call this: they reserve and commit through the delivery journal.
        """
        now = _now()
        sent = _fmt(sent_at)
        rows = [
            (pid, campaign_code, ch, run_id, sent, now)
            for pid, ch in contacts.select("patient_id", "channel").iter_rows()
        ]
        try:
            with self.immediate() as tx:
                before = tx.conn.total_changes
                tx.conn.executemany(
                    "INSERT OR IGNORE INTO contacts "
                    "(patient_id, campaign_code, channel, run_id, sent_at, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                written = tx.conn.total_changes - before
        except DeliveryError as exc:
            raise DeliveryError(f"{exc.message}; no contacts were recorded", path=self.path) from exc
        return written

    def count(self, campaign_code: str | None = None) -> int:
        """Number of contact rows (for one campaign, or all); reservations are not counted."""
        with self.connect() as conn:
            if campaign_code is None:
                return int(conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0])
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM contacts WHERE campaign_code = ?", (campaign_code,)
                ).fetchone()[0]
            )

    # -- the delivery journal ------------------------------------------------------------
    def delivery(self, delivery_id: str) -> Delivery | None:
        """The journal row of ``delivery_id``, or None."""
        with self.connect() as conn:
            return _delivery(conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = ?", (delivery_id,)
            ).fetchone())

    def deliveries(self, states: Iterable[str] = UNFINISHED_STATES) -> list[Delivery]:
        """Journal rows in ``states``, oldest first."""
        wanted = list(states)
        marks = ", ".join("?" for _ in wanted)
        with self.connect() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE state IN ({marks}) "
                "ORDER BY created_at, delivery_id",
                wanted,
            ).fetchall()
        return [d for d in map(_delivery, rows) if d is not None]

    def set_state(self, delivery_id: str, state: str, *, note: str | None = None) -> None:
        """Move a delivery to ``state`` (and remember why, when given)."""
        with self.immediate() as tx:
            if note is not None:
                row = tx.conn.execute("SELECT record FROM deliveries WHERE delivery_id = ?",
                                      (delivery_id,)).fetchone()
                record = json.loads(row[0]) if row else {}
                record["note"] = note
                tx.conn.execute("UPDATE deliveries SET record = ? WHERE delivery_id = ?",
                                (json.dumps(record, sort_keys=True), delivery_id))
            tx.conn.execute("UPDATE deliveries SET state = ?, updated_at = ? WHERE delivery_id = ?",
                            (state, _now(), delivery_id))

    def commit_delivery(self, delivery_id: str) -> int:
        """Turn a delivery's reservations into contacts and mark it ``committed``: one transaction.

        Returns the contact rows written (rows of the same run already recorded by another
        delivery are kept as they are).
        """
        with self.immediate() as tx:
            before = tx.conn.total_changes
            tx.conn.execute(
                "INSERT OR IGNORE INTO contacts (patient_id, campaign_code, channel, run_id, sent_at, "
                "recorded_at, delivery_id, file_name, vendor, vendor_key, step, variant) SELECT patient_id, "
                "campaign_code, channel, run_id, sent_at, ?, delivery_id, file_name, vendor, vendor_key, step, "
                "variant FROM reservations "
                "WHERE delivery_id = ?",
                (_now(), delivery_id),
            )
            written = tx.conn.total_changes - before
            tx.conn.execute("DELETE FROM reservations WHERE delivery_id = ?", (delivery_id,))
            tx.conn.execute("UPDATE deliveries SET state = 'committed', updated_at = ? WHERE delivery_id = ?",
                            (_now(), delivery_id))
        return written

    def withdraw_delivery(self, delivery_id: str, withdrawn_files: Iterable[str], *, finished: bool,
                          left: dict[str, Any] | None = None) -> int:
        """Drop a delivery's reservations and its contacts in ``withdrawn_files``: one transaction.

        ``finished``: nothing of the delivery is left at the destination (state
        ``withdrawn``); otherwise it stays ``withdrawing`` for the next run, with ``left``
        (what is still there) in its record. Returns the contact rows removed.
        """
        names = sorted(set(withdrawn_files))
        with self.immediate() as tx:
            tx.conn.execute("DELETE FROM reservations WHERE delivery_id = ?", (delivery_id,))
            before = tx.conn.total_changes
            tx.conn.executemany(
                "DELETE FROM contacts WHERE delivery_id = ? AND file_name = ?",
                ((delivery_id, name) for name in names),
            )
            removed = tx.conn.total_changes - before
            if finished:  # its unsubscribe files are gone too: name those people again next time
                tx.conn.execute("DELETE FROM unsubscribes WHERE delivery_id = ?", (delivery_id,))
            row = tx.conn.execute("SELECT record FROM deliveries WHERE delivery_id = ?", (delivery_id,)).fetchone()
            record = json.loads(row[0]) if row else {}
            if left is not None:
                record["withdrawal"] = left
            tx.conn.execute(
                "UPDATE deliveries SET state = ?, record = ?, updated_at = ? WHERE delivery_id = ?",
                ("withdrawn" if finished else "withdrawing", json.dumps(record, sort_keys=True), _now(),
                 delivery_id),
            )
        return removed
