"""Suppression lists: files of emails, phones or patient ids, and vendor opt-out replies.

Values are matched normalized: emails stripped and lower-cased, phones parsed with
``phonenumbers`` (default region US) to E.164, once per distinct value. An opt-out
file is a vendor's reply/feedback export (e.g. Twilio's ``From,Body``): a row counts
when its whole reply, ignoring case and surrounding space, is an opt-out keyword.

Scope: an email list suppresses the email channel; a phone list suppresses SMS and
phone calls; an SMS opt-out reply suppresses SMS only (it revokes text consent, not
care calls), an email unsubscribe suppresses email; a patient id suppresses every
channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
import polars as pl

from segment.campaign.model import SuppressionFile, SuppressionKind
from segment.errors import CampaignError

OPT_OUT_KEYWORDS = frozenset({
    "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "OPT OUT", "OPT-OUT",
})

_DEFAULT_COLUMNS: dict[SuppressionKind, tuple[str, ...]] = {
    SuppressionKind.EMAIL: ("email", "emailaddress", "email_address", "address"),
    SuppressionKind.PHONE: ("phone", "phone_e164", "phonenumber", "phone_number", "mobile", "from", "to", "number"),
    SuppressionKind.PATIENT_ID: ("patient_id", "patientid", "id", "external_id", "subscriberkey"),
    SuppressionKind.OPT_OUT: ("from", "phone", "phone_number", "phonenumber", "email", "emailaddress", "address"),
}
_REPLY_COLUMNS = ("body", "message", "keyword", "reply", "text", "event")

E164 = r"^\+[1-9]\d{1,14}$"


@dataclass(frozen=True)
class Suppression:
    """Normalized suppressed values: one-column frames, plus per-file counts."""

    emails: pl.DataFrame
    sms_phones: pl.DataFrame
    phones: pl.DataFrame
    patient_ids: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Suppression:
        """No suppression at all."""
        e = pl.DataFrame(schema={"value": pl.String})
        return cls(e, e, e, e, {})


def _norm_key(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("-", "_")


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted in columns:
            return wanted
        raise CampaignError(
            f"suppression file has no column `{wanted}`; columns: {', '.join(columns)}", path=path
        )
    keyed = {_norm_key(c): c for c in columns}
    for cand in candidates:
        if _norm_key(cand) in keyed:
            return keyed[_norm_key(cand)]
    if len(columns) == 1:
        return columns[0]
    raise CampaignError(
        f"suppression file: cannot tell which column holds the {what}; set `column:` "
        f"(columns: {', '.join(columns)})",
        path=path,
    )


def _read(spec: SuppressionFile) -> pl.DataFrame:
    path = spec.path
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            frame = pl.read_csv(
                path, infer_schema=False, separator="\t" if path.suffix.lower() == ".tsv" else ",",
                encoding="utf8-lossy", truncate_ragged_lines=True,
            )
        else:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            values = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            frame = pl.DataFrame({"value": values}, schema={"value": pl.String})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CampaignError(f"cannot read suppression file ({type(exc).__name__})", path=path) from exc
    return frame


def normalize_phones(values: pl.Series) -> pl.Series:
    """E.164 for each value (null when not a valid number), parsing each distinct value once."""
    distinct = values.drop_nulls().unique()

    def one(raw: str) -> str | None:
        try:
            num = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(num):
            return None
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)

    lookup = pl.DataFrame({
        "raw": distinct,
        "e164": distinct.map_elements(one, return_dtype=pl.String),
    }, schema={"raw": pl.String, "e164": pl.String})
    return (
        values.rename("raw").to_frame().join(lookup, on="raw", how="left", maintain_order="left")
        .get_column("e164").rename(values.name)
    )


def normalize_emails(expr: pl.Expr) -> pl.Expr:
    """Emails as matched: stripped and lower-cased."""
    return expr.str.strip_chars().str.to_lowercase()


def _distinct(series: pl.Series) -> pl.DataFrame:
    return series.drop_nulls().unique().sort().rename("value").to_frame()


def load_suppression(files: list[SuppressionFile]) -> Suppression:
    """Read every suppression file into normalized value sets."""
    emails: list[pl.Series] = []
    phones: list[pl.Series] = []
    sms_phones: list[pl.Series] = []
    ids: list[pl.Series] = []
    counts: dict[str, int] = {}
    for spec in files:
        frame = _read(spec)
        cols = frame.columns
        col = _pick(cols, spec.column, _DEFAULT_COLUMNS[spec.kind], str(spec.kind), spec.path)
        values = frame.get_column(col).cast(pl.String).str.strip_chars()
        if spec.kind is SuppressionKind.OPT_OUT:
            reply = _pick(cols, spec.reply_column, _REPLY_COLUMNS, "reply text", spec.path)
            words = (
                frame.get_column(reply).cast(pl.String).str.strip_chars()
                .str.replace_all(r"\s+", " ").str.to_uppercase()
            )
            values = values.filter(words.is_in(list(OPT_OUT_KEYWORDS)).fill_null(False))
            is_email = values.str.contains("@")
            emails.append(values.filter(is_email).str.to_lowercase())
            sms_phones.append(normalize_phones(values.filter(~is_email)))
            counts[spec.path.name] = int(values.len())
        elif spec.kind is SuppressionKind.EMAIL:
            emails.append(values.str.to_lowercase())
            counts[spec.path.name] = int(values.drop_nulls().len())
        elif spec.kind is SuppressionKind.PHONE:
            phones.append(normalize_phones(values))
            counts[spec.path.name] = int(values.drop_nulls().len())
        else:
            ids.append(values)
            counts[spec.path.name] = int(values.drop_nulls().len())

    def combine(parts: list[pl.Series]) -> pl.DataFrame:
        if not parts:
            return pl.DataFrame(schema={"value": pl.String})
        return _distinct(pl.concat([p.cast(pl.String).rename("value") for p in parts]))

    return Suppression(
        emails=combine(emails),
        sms_phones=combine(sms_phones),
        phones=combine(phones),
        patient_ids=combine(ids),
        counts=counts,
    )
