"""Vendor delivery feedback into the contact ledger: delivered, failed, bounced, opted out, clicked.

``import_feedback`` reads a vendor's own export (Twilio message log; Braze, Mailchimp, SFMC
and SendGrid bounce, unsubscribe and activity exports), normalizes each row to
(vendor id, time, outcome, code, campaign), matches it to the latest contact the ledger
holds for that vendor id (and campaign, when the row or ``campaign_code`` names one)
sent no later than the event, and records it once: a row's key is a hash of its vendor,
file layout and cells, so importing the same file twice changes nothing. Rows that match
no contact go to a rejects file with the reason; duplicated rows are counted.

Hard bounces, invalid or unreachable numbers and STOP replies set ``suppress``: the next
run leaves that person out on that channel (a later START undoes a STOP).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl

from segment import workdir as wd
from segment.campaign.ledger import ContactLedger
from segment.campaign.suppression import normalize_emails
from segment.errors import InputDataError


class FeedbackVendor(StrEnum):
    """Vendors whose exports ``segment feedback import`` reads."""

    TWILIO = "twilio"
    BRAZE = "braze"
    MAILCHIMP = "mailchimp"
    SFMC = "sfmc"
    SENDGRID = "sendgrid"


#: Twilio error codes after which the number is not messaged again (invalid, unreachable, opted out)
TWILIO_SUPPRESS = {"21211": "invalid To number", "21614": "not a mobile number",
                   "30005": "unknown destination handset", "30006": "landline or unreachable carrier",
                   "21610": "recipient replied STOP", "30004": "message blocked"}
STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT")
START_WORDS = ("START", "UNSTOP", "YES")

#: the reject reason of an event no contact in the ledger explains
NO_CONTACT = "no contact in the ledger for this vendor id (and campaign) sent before the event"

NORMAL = {"vendor_key": pl.String, "event_at": pl.String, "outcome": pl.String, "code": pl.String,
          "suppress": pl.Boolean, "campaign": pl.String, "channel": pl.String}


@dataclass(frozen=True)
class Layout:
    """One documented export layout: the columns that identify it and how rows normalize."""

    name: str
    required: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class FeedbackResult:
    """What an import did."""

    vendor: str
    layout: str
    rows: int
    recorded: int
    already_imported: int
    duplicates: int
    rejected: int
    rejects_path: Path | None
    outcomes: dict[str, int]
    suppressed: int


LAYOUTS: dict[FeedbackVendor, list[Layout]] = {
    FeedbackVendor.TWILIO: [
        Layout("message log (Console CSV)", ("To", "Status", "ErrorCode"),
               "https://www.twilio.com/docs/messaging/api/message-resource"),
        Layout("message log (API / BulkExport names)", ("to", "status", "error_code"),
               "https://www.twilio.com/docs/usage/bulkexport/day"),
    ],
    FeedbackVendor.BRAZE: [
        Layout("Currents message engagement events", ("event_type", "external_user_id", "time"),
               "https://www.braze.com/docs/user_guide/data/braze_currents/event_glossary/"),
    ],
    FeedbackVendor.MAILCHIMP: [
        Layout("audience export: unsubscribed", ("Email Address", "UNSUB_TIME"),
               "https://mailchimp.com/help/view-export-contacts/"),
        Layout("audience export: cleaned", ("Email Address", "CLEAN_TIME"),
               "https://mailchimp.com/help/about-cleaned-contacts"),
    ],
    FeedbackVendor.SFMC: [
        Layout("tracking extract (Bounces, Unsubs, Clicks, Sent)", ("SubscriberKey", "EventDate", "EventType"),
               "https://help.salesforce.com/s/articleView?id=mktg.mc_as_bounces.htm"),
    ],
    FeedbackVendor.SENDGRID: [
        Layout("email activity export", ("email", "event", "timestamp"),
               "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event"),
        Layout("bounces export", ("email", "created", "reason", "status"),
               "https://www.twilio.com/docs/sendgrid/api-reference/bounces-api"),
        Layout("unsubscribes export", ("email", "created"),
               "https://www.twilio.com/docs/sendgrid/api-reference/suppressions-unsubscribe-groups"),
    ],
}


def read_export(path: Path) -> pl.DataFrame:
    """The export as strings; a clear error for a file that is not UTF-8 CSV."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputDataError(f"cannot read the feedback file ({exc.strerror})", path=path) from exc
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputDataError(
            "the feedback file is not UTF-8 text (vendors export UTF-8 CSV); re-export it, or convert it "
            "with `iconv -f <encoding> -t utf-8`", path=path, line=line,
        ) from exc
    try:
        return pl.read_csv(raw.removeprefix(b"\xef\xbb\xbf"), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise InputDataError(f"the feedback file is not a readable CSV ({type(exc).__name__})", path=path) from exc


def detect_layout(frame: pl.DataFrame, vendor: FeedbackVendor, path: Path) -> Layout:
    """The first layout of ``vendor`` whose columns the file has, or an error listing them."""
    for layout in LAYOUTS[vendor]:
        if all(c in frame.columns for c in layout.required):
            return layout
    valid = "; ".join(f"{lay.name}: {', '.join(lay.required)}" for lay in LAYOUTS[vendor])
    raise InputDataError(
        f"the file's columns ({', '.join(frame.columns[:12])}) match no {vendor} export layout; "
        f"valid options are: {valid}", path=path, line=1,
    )


def _ts(expr: pl.Expr) -> pl.Expr:
    """Vendor timestamps (ISO 8601, RFC 2822, ``M/D/YYYY h:mm:ss AM``, Unix seconds) as UTC text."""
    text = expr.str.strip_chars()
    parsed = pl.coalesce(
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_zone="UTC"),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_zone="UTC"),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%:z", strict=False).dt.convert_time_zone("UTC"),
        text.str.to_datetime("%Y-%m-%d %H:%M:%S%:z", strict=False).dt.convert_time_zone("UTC"),
        text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.replace_time_zone("UTC"),
        text.str.to_datetime("%a, %d %b %Y %H:%M:%S %z", strict=False).dt.convert_time_zone("UTC"),
        text.str.to_datetime("%m/%d/%Y %I:%M:%S %p", strict=False).dt.replace_time_zone("UTC"),
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.from_epoch(text.cast(pl.Int64, strict=False), time_unit="s").dt.replace_time_zone("UTC"),
    )
    return parsed.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _col(frame: pl.DataFrame, *names: str) -> pl.Expr:
    for name in names:
        if name in frame.columns:
            return pl.col(name)
    return pl.lit(None, pl.String)


def _twilio(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """Twilio message logs: delivery status and error code; inbound STOP/START replies."""
    lit = pl.lit
    status = _col(frame, "Status", "status").str.to_lowercase()
    code = _col(frame, "ErrorCode", "error_code").str.strip_chars().str.replace(r"\.0$", "")
    code = pl.when(code.is_in(["", "0"])).then(lit(None, pl.String)).otherwise(code)
    direction = _col(frame, "Direction", "direction").str.to_lowercase().fill_null("outbound-api")
    inbound = direction.str.starts_with("inbound")
    word = _col(frame, "Body", "body").str.strip_chars().str.to_uppercase()
    outcome = (
        pl.when(inbound & word.is_in(STOP_WORDS)).then(lit("opted_out"))
        .when(inbound & word.is_in(START_WORDS)).then(lit("opted_in"))
        .when(inbound).then(lit("reply"))
        .when(code == "21610").then(lit("opted_out"))
        .when(status == "delivered").then(lit("delivered"))
        .when(status.is_in(["sent", "queued", "sending", "accepted", "scheduled"])).then(lit("sent"))
        .when(status.is_in(["failed", "undelivered"])).then(lit("failed"))
        .when(status == "read").then(lit("delivered"))
        .otherwise(lit(None, pl.String))
    )
    return frame.select(
        pl.when(inbound).then(_col(frame, "From", "from")).otherwise(_col(frame, "To", "to")).alias("vendor_key"),
        _ts(_col(frame, "SentDate", "DateSent", "date_sent", "DateCreated", "date_created")).alias("event_at"),
        outcome.alias("outcome"), code.alias("code"),
        ((outcome == "opted_out") | (code.is_in(list(TWILIO_SUPPRESS)) & (outcome == "failed")))
        .fill_null(False).alias("suppress"),
        lit(None, pl.String).alias("campaign"), lit("sms").alias("channel"),
    )


def _braze(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """Braze Currents message engagement events (email and SMS)."""
    lit = pl.lit
    event = pl.col("event_type").str.to_lowercase()
    channel = pl.when(event.str.contains(r"\.sms\.")).then(lit("sms")).otherwise(lit("email"))
    outcome = (
        pl.when(event.str.ends_with(".delivery")).then(lit("delivered"))
        .when(event.str.ends_with(".send")).then(lit("sent"))
        .when(event.str.ends_with(".bounce")).then(lit("bounced"))
        .when(event.str.ends_with(".softbounce")).then(lit("failed"))
        .when(event.str.ends_with(".deliveryfailure") | event.str.ends_with(".rejection")).then(lit("failed"))
        .when(event.str.ends_with(".unsubscribe") | event.str.ends_with(".markasspam")).then(lit("opted_out"))
        .when(event.str.ends_with(".click")).then(lit("clicked"))
        .when(event.str.contains("inboundreceive")
              & _col(frame, "inbound_message_body", "message_body").str.strip_chars().str.to_uppercase()
              .is_in(STOP_WORDS)).then(lit("opted_out"))
        .otherwise(lit(None, pl.String))
    )
    return frame.select(
        pl.col("external_user_id").alias("vendor_key"), _ts(pl.col("time")).alias("event_at"),
        outcome.alias("outcome"), _col(frame, "error", "bounce_reason", "provider_error_code").alias("code"),
        outcome.is_in(["bounced", "opted_out"]).fill_null(False).alias("suppress"),
        _col(frame, "campaign_name", "canvas_name").alias("campaign"), channel.alias("channel"),
    )


def _mailchimp(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """Mailchimp audience exports: every unsubscribed or cleaned contact suppresses."""
    unsub = layout.name.endswith("unsubscribed")
    return frame.select(
        normalize_emails(pl.col("Email Address")).alias("vendor_key"),
        _ts(pl.col("UNSUB_TIME" if unsub else "CLEAN_TIME")).alias("event_at"),
        pl.lit("opted_out" if unsub else "bounced").alias("outcome"),
        _col(frame, "UNSUB_REASON" if unsub else "CLEAN_REASON").alias("code"),
        pl.lit(True).alias("suppress"),
        _col(frame, "UNSUB_CAMPAIGN_TITLE" if unsub else "CLEAN_CAMPAIGN_TITLE", "TAGS").alias("campaign"),
        pl.lit("email").alias("channel"),
    )


def _sfmc(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """SFMC tracking extracts: hard bounces and unsubscribes suppress."""
    lit = pl.lit
    event = pl.col("EventType").str.to_lowercase().str.replace_all(" ", "")
    category = _col(frame, "BounceCategory").str.to_lowercase()
    outcome = (
        pl.when(event.str.contains("bounce") & category.str.contains("hard")).then(lit("bounced"))
        .when(event.str.contains("bounce")).then(lit("failed"))
        .when(event.str.contains("unsub")).then(lit("opted_out"))
        .when(event.str.contains("click")).then(lit("clicked"))
        .when(event.str.contains("sent")).then(lit("sent"))
        .when(event.str.contains("open")).then(lit("delivered"))
        .otherwise(lit(None, pl.String))
    )
    return frame.select(
        pl.col("SubscriberKey").alias("vendor_key"), _ts(pl.col("EventDate")).alias("event_at"),
        outcome.alias("outcome"), _col(frame, "SMTPCode").alias("code"),
        outcome.is_in(["bounced", "opted_out"]).fill_null(False).alias("suppress"),
        _col(frame, "CampaignCode", "EmailName").alias("campaign"), lit("email").alias("channel"),
    )


def _sendgrid(frame: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """SendGrid email activity, bounces and unsubscribes exports."""
    lit = pl.lit
    if not layout.name.startswith("email activity"):
        bounces = layout.name.startswith("bounces")
        return frame.select(
            normalize_emails(pl.col("email")).alias("vendor_key"),
            _ts(pl.col("created")).alias("event_at"), lit("bounced" if bounces else "opted_out").alias("outcome"),
            (_col(frame, "status") if bounces else lit(None, pl.String)).alias("code"),
            lit(True).alias("suppress"), lit(None, pl.String).alias("campaign"), lit("email").alias("channel"),
        )
    event = pl.col("event").str.to_lowercase()
    outcome = (
        pl.when(event.is_in(["delivered", "open"])).then(lit("delivered"))
        .when(event == "processed").then(lit("sent"))
        .when((event == "bounce") & (_col(frame, "type").str.to_lowercase() != "blocked")).then(lit("bounced"))
        .when(event.is_in(["bounce", "dropped", "deferred"])).then(lit("failed"))
        .when(event.is_in(["unsubscribe", "group_unsubscribe", "spamreport"])).then(lit("opted_out"))
        .when(event == "group_resubscribe").then(lit("opted_in"))
        .when(event == "click").then(lit("clicked"))
        .otherwise(lit(None, pl.String))
    )
    return frame.select(
        normalize_emails(pl.col("email")).alias("vendor_key"),
        _ts(pl.col("timestamp")).alias("event_at"), outcome.alias("outcome"),
        _col(frame, "status", "reason").alias("code"),
        outcome.is_in(["bounced", "opted_out"]).fill_null(False).alias("suppress"),
        _col(frame, "campaign_code", "category").alias("campaign"), lit("email").alias("channel"),
    )


#: per vendor, how its export's rows become :data:`NORMAL` rows
NORMALIZERS: dict[FeedbackVendor, Callable[[pl.DataFrame, Layout], pl.DataFrame]] = {
    FeedbackVendor.TWILIO: _twilio,
    FeedbackVendor.BRAZE: _braze,
    FeedbackVendor.MAILCHIMP: _mailchimp,
    FeedbackVendor.SFMC: _sfmc,
    FeedbackVendor.SENDGRID: _sendgrid,
}


def normalize(frame: pl.DataFrame, vendor: FeedbackVendor, layout: Layout) -> pl.DataFrame:
    """Rows as :data:`NORMAL`: who (the vendor's id), when, outcome, code, suppress, campaign, channel."""
    return NORMALIZERS[vendor](frame, layout)


def import_feedback(
    path: str | Path,
    vendor: FeedbackVendor | str,
    ledger: ContactLedger,
    *,
    campaign_code: str | None = None,
    rejects: str | Path | None = None,
) -> FeedbackResult:
    """Read one vendor export into the ledger; rows that match no contact go to ``rejects``.

    Raises :class:`InputDataError` for a file that is not UTF-8 CSV or matches no layout.
    """
    src = Path(path)
    vendor = FeedbackVendor(vendor)
    frame = read_export(src)
    layout = detect_layout(frame, vendor, src)
    norm, duplicates = _normalized_rows(frame, vendor, layout)
    with ledger.immediate() as tx:
        contacts = _contacts(tx.conn, vendor, campaign_code)
        # a campaign column names one of ours only when it holds one of our campaign codes
        codes = contacts.get_column("campaign_code").unique().to_list()
        norm = norm.with_columns(pl.when(pl.col("campaign").is_in(codes)).then(pl.col("campaign"))
                                 .otherwise(pl.lit(None, pl.String)).alias("campaign"))
        matched = _match(norm.filter(pl.col("reason").is_null()), contacts)
        good = matched.filter(pl.col("patient_id").is_not_null())
        recorded = _record(tx.conn, good, vendor, src.name)
    bad = pl.concat([
        norm.filter(pl.col("reason").is_not_null()).select("line", "reason"),
        matched.filter(pl.col("patient_id").is_null()).select(
            "line", pl.lit(NO_CONTACT).alias("reason")),
    ]).sort("line")
    rejects_path = None
    if bad.height:
        rejects_path = Path(rejects) if rejects is not None else src.with_name(f"{src.stem}.rejects.csv")
        wd.write_csv(bad, rejects_path)
    outcomes = dict(good.group_by("outcome").len().sort("outcome").rows())
    return FeedbackResult(
        vendor=str(vendor), layout=layout.name, rows=frame.height, recorded=recorded,
        already_imported=good.height - recorded, duplicates=duplicates, rejected=bad.height,
        rejects_path=rejects_path, outcomes={str(k): int(v) for k, v in outcomes.items()},
        suppressed=int(good.get_column("suppress").sum()) if good.height else 0,
    )


def _normalized_rows(frame: pl.DataFrame, vendor: FeedbackVendor, layout: Layout) -> tuple[pl.DataFrame, int]:
    """Normalized rows with their file line, raw cells (the row's identity) and reject reason; duplicates dropped."""
    keyed = frame.with_row_index("line", offset=2).with_columns(
        pl.concat_str([pl.lit(f"{vendor}|{layout.name}|"),
                       pl.concat_str([pl.col(c).fill_null("") for c in frame.columns], separator="\x1f")])
        .alias("_raw")
    )
    norm = pl.concat([keyed.select("line", "_raw"), normalize(frame, vendor, layout)], how="horizontal_extend")
    unique = norm.unique("_raw", keep="first", maintain_order=True)
    reason = (
        pl.when(pl.col("vendor_key").is_null() | (pl.col("vendor_key") == "")).then(pl.lit("no vendor id"))
        .when(pl.col("event_at").is_null()).then(pl.lit("unreadable event time"))
        .when(pl.col("outcome").is_null()).then(pl.lit("status or event type not known"))
        .otherwise(pl.lit(None, pl.String))
    )
    return unique.with_columns(reason.alias("reason")), norm.height - unique.height


def _contacts(conn: sqlite3.Connection, vendor: FeedbackVendor, campaign_code: str | None) -> pl.DataFrame:
    """The ledger's contacts sent through ``vendor`` with a vendor id (of one campaign, when named)."""
    columns = ["patient_id", "campaign_code", "channel", "run_id", "sent_at", "vendor_key"]
    contacts = pl.DataFrame(
        conn.execute(f"SELECT {', '.join(columns)} FROM contacts WHERE vendor = ? AND vendor_key IS NOT NULL",
                     (str(vendor),)).fetchall(),
        schema=dict.fromkeys(columns, pl.String), orient="row",
    )
    if vendor in (FeedbackVendor.MAILCHIMP, FeedbackVendor.SENDGRID):
        contacts = contacts.with_columns(pl.col("vendor_key").str.to_lowercase())
    if campaign_code is not None:
        contacts = contacts.filter(pl.col("campaign_code") == campaign_code)
    return contacts


def _record(conn: sqlite3.Connection, good: pl.DataFrame, vendor: FeedbackVendor, source: str) -> int:
    """Insert matched events once each (keyed by their raw row); how many were new."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = good.select(
        pl.col("_raw").str.encode("hex"), "patient_id", "campaign_code", "channel", "run_id", "outcome", "code",
        "suppress", "event_at",
    )
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO feedback (event_key, vendor, patient_id, campaign_code, channel, run_id, "
        "outcome, code, suppress, event_at, imported_at, source_file) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((_key(h), str(vendor), p, cc, ch, r, o, code, int(sup), at, now, source)
         for h, p, cc, ch, r, o, code, sup, at in rows.iter_rows()),
    )
    return conn.total_changes - before


def _key(hex_raw: str) -> str:
    import hashlib

    return hashlib.sha256(bytes.fromhex(hex_raw)).hexdigest()


def _asof(left: pl.DataFrame, right: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return left.join_asof(right, on="_at", by=by, strategy="backward", check_sortedness=False)


def _match(events: pl.DataFrame, contacts: pl.DataFrame) -> pl.DataFrame:
    """Each event joined to the latest contact with its vendor id sent at or before it (campaign when named)."""
    ev = events.with_columns(pl.col("event_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
                             .alias("_at")).sort("_at")
    ct = contacts.with_columns(pl.col("sent_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
                               .alias("_at")).rename({"channel": "_channel"}).sort("_at")
    # a contact planned later on its day can still be the one an event that day is about
    ct = ct.with_columns((pl.col("_at") - pl.duration(days=1)).alias("_at")).sort("_at")
    named = ev.filter(pl.col("campaign").is_not_null())
    unnamed = ev.filter(pl.col("campaign").is_null())
    out = []
    if unnamed.height:
        out.append(_asof(unnamed, ct, ["vendor_key"]))
    if named.height:
        out.append(_asof(named, ct.with_columns(pl.col("campaign_code").alias("campaign")),
                         ["vendor_key", "campaign"]))
    if not out:
        return ev.with_columns(*[pl.lit(None, pl.String).alias(c)
                                 for c in ("patient_id", "campaign_code", "run_id")])
    merged = pl.concat(out, how="diagonal_relaxed")
    # a contact on another channel than the event's is no match
    return merged.with_columns(
        pl.when(pl.col("_channel") == pl.col("channel")).then(pl.col("patient_id"))
        .otherwise(pl.lit(None, pl.String)).alias("patient_id")
    ).sort("line")
