"""The delivery protocol: a write-ahead record in the ledger, then stage, commit, publish.

A delivery moves through states recorded in the ledger's ``deliveries`` table:

1. ``intent``: written together with the reserved contacts, in the transaction that
   checked the frequency caps. Nothing is at the destination yet.
2. ``staged``: every vendor file is at the destination under a temporary dot-name
   (``.<name>.part``, owner-only), its size checked. The vendor sees nothing.
3. ``committed``: the reservations became contact rows (one transaction).
4. ``published``: the files renamed to their final names, the manifest written, the
   ``.done`` trigger uploaded (temporary name, then renamed) last.

So a vendor file is under its final name only once its contacts are committed. A
failure in the process withdraws what it can (``withdrawing`` until everything is
gone, then ``withdrawn``) and says exactly what is left. A process killed on the way
leaves its state in the journal: every later run first calls :func:`reconcile`, which
completes a committed delivery (its contacts are recorded, so its files go out) and
withdraws anything earlier (its temporary files are removed, its reservations
dropped). A delivery in progress holds an exclusive lock file beside the ledger, so a
live one is never mistaken for a dead one.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segment import workdir as wd
from segment.campaign.destinations import parse_destination
from segment.campaign.ledger import UNFINISHED_STATES, ContactLedger, Delivery
from segment.campaign.model import Sftp
from segment.errors import DeliveryError, SegmentError
from segment.export.checkpoints import checkpoint
from segment.export.transfer import Transport, open_transport, temp_name
from segment.log import get_logger
from segment.runstate import ExclusiveLock

log = get_logger("export")


def delivery_id_for(campaign_code: str, run_id: str, destination: str) -> str:
    """The journal key of one run of one campaign to one destination."""
    digest = hashlib.sha256(f"{campaign_code}\0{run_id}\0{destination}".encode()).hexdigest()
    return f"d{digest[:16]}"


def delivery_lock(ledger: ContactLedger, delivery_id: str) -> ExclusiveLock:
    """The lock a process holds while it works on ``delivery_id`` (released by the kernel at death)."""
    return ExclusiveLock(ledger.locks_dir / f"{delivery_id}.lock", {"delivery_id": delivery_id})


@dataclass
class Progress:
    """What one attempt did at the destination (final names only)."""

    #: vendor files this attempt made visible under their final names
    published: list[str] = field(default_factory=list)
    #: published files no longer at the destination when completing (taken by the vendor?)
    vanished: list[str] = field(default_factory=list)
    trigger_published: bool = False


@dataclass
class Withdrawal:
    """What withdrawing a delivery left behind."""

    #: vendor files (or the trigger) still visible: their contacts stay recorded
    visible: list[str] = field(default_factory=list)
    #: vendor files removed by this withdrawal: their contacts were removed
    removed: list[str] = field(default_factory=list)
    #: published files already gone when we looked (taken by the vendor?): contacts kept
    vanished: list[str] = field(default_factory=list)
    #: temporary files that could not be removed (hidden from the vendor)
    temp_left: list[str] = field(default_factory=list)
    rows_removed: int = 0

    @property
    def is_finished(self) -> bool:
        """Nothing of the delivery is left at the destination."""
        return not self.visible and not self.temp_left


def _names(record: dict[str, Any]) -> list[str]:
    return [str(f["name"]) for f in record.get("files", [])]


def _rows(record: dict[str, Any]) -> dict[str, int]:
    return {str(f["name"]): int(f.get("rows", 0)) for f in record.get("files", [])}


def _remove(transport: Transport, name: str, *, staged: bool) -> str:
    """``removed``, ``absent`` or ``present`` (could not remove or could not reach)."""
    try:
        there = transport.is_staged(name) if staged else transport.exists(name)
        if not there:
            return "absent"
        return "removed" if transport.remove(name, staged=staged) else "present"
    except DeliveryError as exc:
        log.warning(f"could not remove {temp_name(name) if staged else name}: {exc.message}")
        return "present"


def withdraw(
    ledger: ContactLedger,
    delivery: Delivery,
    transport: Transport,
    *,
    published: list[str],
    kept: Sequence[str] = (),
    reconciling: bool = False,
) -> Withdrawal:
    """Remove a delivery's files and the contacts of every file confirmed removed.

    ``published`` lists the final names this delivery made visible (and may still be
    at the destination); other final names are never touched, since they are not
    ours. A published file that is no longer there may have been taken by the vendor:
    its contacts are kept, as are those of ``kept`` (found gone by an earlier attempt).
    """
    record = delivery.record
    trigger = str(record["trigger"])
    out = Withdrawal()
    for name in [*_names(record), trigger]:
        if _remove(transport, name, staged=True) == "present":
            out.temp_left.append(temp_name(name))
        if reconciling:
            checkpoint("reconciling")
    for name in published:
        status = _remove(transport, name, staged=False)
        if status == "removed":
            out.removed.append(name)
        elif status == "absent":
            out.vanished.append(name)
        else:
            out.visible.append(name)
        if reconciling:
            checkpoint("reconciling")
    keep = set(out.visible) | set(out.vanished) | set(kept)
    withdrawn = [n for n in _names(record) if n not in keep]
    if not keep:
        with contextlib.suppress(OSError):
            Path(str(record["manifest_path"])).unlink(missing_ok=True)
    left = {"visible": out.visible, "vanished": sorted(set(out.vanished) | set(kept)),
            "temp_left": out.temp_left}
    out.rows_removed = ledger.withdraw_delivery(
        delivery.delivery_id, withdrawn, finished=out.is_finished, left=left
    )
    return out


def publish(
    ledger: ContactLedger,
    delivery: Delivery,
    transport: Transport,
    progress: Progress,
    *,
    resume: bool = False,
) -> None:
    """Rename every staged file into place, write the manifest, put the trigger, mark published.

    With ``resume`` (completing a committed delivery after a crash), files already
    renamed are left as they are, and a file neither staged nor in place counts as
    delivered and taken by the vendor (its contacts are committed: never send twice).
    """
    record = delivery.record
    for name in _names(record):
        if resume and not transport.is_staged(name):
            if not transport.exists(name):
                progress.vanished.append(name)
            continue
        transport.publish(name)
        progress.published.append(name)
        checkpoint("reconciling" if resume else "publishing")
    checkpoint("published")
    wd.write_json(Path(str(record["manifest_path"])), record["manifest"])
    checkpoint("manifest")
    trigger = str(record["trigger"])
    if not (resume and transport.exists(trigger)):
        transport.stage(trigger, str(record["trigger_body"]).encode())
        checkpoint("trigger-staged")
        transport.publish(trigger)
    progress.trigger_published = True
    checkpoint("triggered")
    ledger.set_state(delivery.delivery_id, "published")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, SegmentError):
        return exc.message
    if isinstance(exc, OSError):
        return f"writing vendor files failed ({type(exc).__name__}: {exc.strerror or exc})"
    if isinstance(exc, sqlite3.Error):
        return f"the contact ledger failed ({exc})"
    return f"interrupted ({type(exc).__name__})"


def _list(names: list[str], rows: dict[str, int] | None = None) -> str:
    if rows is None:
        return ", ".join(names)
    return ", ".join(f"{n} ({rows.get(n, 0)} rows)" if n in rows else n for n in names)


def describe_withdrawal(out: Withdrawal, record: dict[str, Any]) -> str:
    """One line: what is still delivered and recorded, what was removed, what is left hidden."""
    rows = _rows(record)
    parts: list[str] = []
    if not out.visible and not out.vanished:
        parts.append("nothing was delivered and no contacts were recorded")
    else:
        if out.visible:
            parts.append(
                "still at the destination without a trigger and recorded in the ledger as sent: "
                + _list(out.visible, rows)
                + " (the next run removes them and their ledger rows)"
            )
        if out.vanished:
            parts.append(
                "no longer at the destination (taken by the vendor?) and kept in the ledger as sent: "
                + _list(out.vanished, rows)
            )
        if out.removed:
            parts.append("withdrawn with their ledger rows: " + _list(out.removed, rows))
    if out.temp_left:
        parts.append(
            "temporary files (hidden from the vendor) could not be removed: "
            + _list(out.temp_left) + " (the next run removes them)"
        )
    return "; ".join(parts)


def run_delivery(
    ledger: ContactLedger,
    delivery: Delivery,
    transport: Transport,
    payloads: dict[str, bytes],
) -> int:
    """Stage, commit, publish one delivery whose intent is recorded; contact rows written.

    On failure, withdraws what it can and raises :class:`DeliveryError` saying exactly
    what is still delivered (and recorded) and what is not.
    """
    record = delivery.record
    state = "intent"
    progress = Progress()
    try:
        for name in _names(record):
            transport.stage(name, payloads[name])
            checkpoint("staging")
        ledger.set_state(delivery.delivery_id, "staged")
        state = "staged"
        checkpoint("staged")
        written = ledger.commit_delivery(delivery.delivery_id)
        state = "committed"
        checkpoint("committed")
        publish(ledger, delivery, transport, progress)
        return written
    except BaseException as exc:
        cause = _cause(exc)
        if progress.trigger_published:
            message = (
                f"{cause}; every file and the trigger are delivered and recorded, but the journal "
                "could not be marked published (the next run does it)"
            )
        else:
            try:
                out = withdraw(ledger, delivery, transport, published=progress.published)
                message = f"{cause}; {describe_withdrawal(out, record)}"
            except BaseException as again:
                message = (
                    f"{cause}; withdrawing failed too ({_cause(again)}); the delivery stays "
                    f"{state} in the ledger's journal and the next run completes or withdraws it"
                )
        if isinstance(exc, SegmentError | OSError | sqlite3.Error):
            raise DeliveryError(message, path=getattr(exc, "path", None) if isinstance(exc, SegmentError) else None) from exc
        log.warning(message)
        raise
    finally:
        transport.close()


@dataclass(frozen=True)
class Reconciled:
    """What a run did about one unfinished delivery it found."""

    delivery_id: str
    campaign_code: str
    run_id: str
    destination: str
    found: str
    #: completed, withdrawn, partly withdrawn, in progress elsewhere, failed
    action: str
    detail: str

    @property
    def is_reconciled(self) -> bool:
        """False when the delivery could not be reconciled."""
        return self.action != "failed"

    def describe(self) -> str:
        """One PHI-free line for reports and the run log."""
        return (f"{self.campaign_code} run {self.run_id} to {self.destination}: found {self.found}; "
                f"{self.action}" + (f": {self.detail}" if self.detail else ""))


def _reconcile_one(ledger: ContactLedger, d: Delivery) -> Reconciled:
    record = d.record

    def result(action: str, detail: str) -> Reconciled:
        return Reconciled(d.delivery_id, d.campaign_code, d.run_id, d.destination, d.state, action, detail)

    try:
        transport = open_transport(parse_destination(str(record["destination"])),
                                   Sftp.model_validate(record.get("sftp") or {}))
    except SegmentError as exc:
        return result("failed", exc.message)
    try:
        if d.state == "committed":
            progress = Progress()
            publish(ledger, d, transport, progress, resume=True)
            rows = _rows(record)
            detail = f"{len(rows)} file(s) and the trigger delivered ({sum(rows.values())} contacts recorded)"
            if progress.vanished:
                detail += "; already taken from the destination: " + _list(progress.vanished)
            return result("completed", detail)
        left = record.get("withdrawal") if d.state == "withdrawing" else None
        left = left if isinstance(left, dict) else {}
        out = withdraw(ledger, d, transport, published=list(left.get("visible", [])),
                       kept=list(left.get("vanished", [])), reconciling=True)
        return result("withdrawn" if out.is_finished else "partly withdrawn", describe_withdrawal(out, record))
    except (SegmentError, OSError, sqlite3.Error) as exc:
        return result("failed", f"{_cause(exc)}; left {d.state} for the next run")
    finally:
        transport.close()


def reconcile(ledger: ContactLedger) -> list[Reconciled]:
    """Complete or withdraw every unfinished delivery in the ledger whose process is gone.

    Deliveries still held by a live process are reported as in progress and left alone.
    """
    if not ledger.path.exists():
        return []
    found: list[Reconciled] = []
    for d in ledger.deliveries(UNFINISHED_STATES):
        lock = delivery_lock(ledger, d.delivery_id)
        if not lock.try_acquire():
            pid = lock.busy_holder().get("pid", "?")
            found.append(Reconciled(d.delivery_id, d.campaign_code, d.run_id, d.destination, d.state,
                                    "in progress elsewhere", f"pid {pid}"))
            continue
        try:
            current = ledger.delivery(d.delivery_id)
            if current is None or current.state not in UNFINISHED_STATES:
                continue
            outcome = _reconcile_one(ledger, current)
            (log.info if outcome.is_reconciled else log.warning)(f"reconciled: {outcome.describe()}")
            found.append(outcome)
        finally:
            lock.release()
    return found
