"""Client for the Census Bureau batch geocoder (``geographies/addressbatch``): opt-in, online.

The real protocol: POST ``multipart/form-data`` with ``addressFile`` (CSV without header,
``id,street,city,state,zip``), ``benchmark`` and ``vintage``; the answer is CSV, every
field quoted, rows in any order, ``No_Match``/``Tie`` rows short. At most 10,000 rows per
request; several requests run in parallel; transient failures (connection errors, 5xx,
an HTML error page instead of CSV) are retried with backoff; ``Tie`` rows are resubmitted
once in their own batch. Addresses leave the machine only through this module, and only
when the user asked for ``--provider census``.
"""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from segment.config import Settings
from segment.errors import NetworkError
from segment.log import get_logger, progress

if TYPE_CHECKING:
    import requests

MAX_BATCH = 10_000
RESPONSE_COLUMNS = (
    "id", "input", "match", "match_type", "matched_address", "coordinates", "tlid", "side",
    "state_fips", "county", "tract", "block",
)
RESULT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "id": pl.String,
    "match": pl.String,
    "match_type": pl.String,
    "lon": pl.Float64,
    "lat": pl.Float64,
    "tlid": pl.Int64,
    "side": pl.String,
    "tract_geoid": pl.String,
    "block_group_geoid": pl.String,
}
log = get_logger("geocode")


@dataclass(frozen=True)
class CensusOptions:
    """How to call the batch geocoder."""

    benchmark: str = "Public_AR_Current"
    vintage: str = "Current_Current"
    batch_size: int = MAX_BATCH
    workers: int = 4
    timeout_s: float = 1800.0  # the service takes minutes for 10,000 rows
    attempts: int = 4
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")


def _request_csv(rows: pl.DataFrame) -> bytes:
    """The ``addressFile`` body: no header, five fields, commas and quotes removed, Latin-1."""
    clean = [
        pl.col(c).cast(pl.String).fill_null("").str.replace_all(r'[,"\r\n]', " ")
        .str.replace_all(r"\s+", " ").str.strip_chars().alias(c)
        for c in ("id", "street", "city", "state", "zip")
    ]
    text = rows.select(clean).write_csv(include_header=False, quote_style="never")
    return text.encode("latin-1", errors="replace")


def parse_response(body: str) -> pl.DataFrame:
    """Parse the geographies batch CSV (12 columns, short No_Match/Tie rows) to RESULT_SCHEMA."""
    if not body.strip():
        return pl.DataFrame(schema=RESULT_SCHEMA)
    # rows are ragged (No_Match/Tie rows have 3 fields), so parse with a fixed field list
    width = len(RESPONSE_COLUMNS)
    records = [(r + [None] * width)[:width] for r in csv.reader(io.StringIO(body)) if r]
    raw = pl.DataFrame(records, schema=dict.fromkeys(RESPONSE_COLUMNS, pl.String), orient="row")
    coords = pl.col("coordinates").str.split(",")
    return raw.select(
        pl.col("id").str.strip_chars(),
        pl.col("match").str.strip_chars(),
        pl.col("match_type").str.strip_chars(),
        coords.list.get(0, null_on_oob=True).cast(pl.Float64, strict=False).alias("lon"),
        coords.list.get(1, null_on_oob=True).cast(pl.Float64, strict=False).alias("lat"),
        pl.col("tlid").cast(pl.Int64, strict=False),
        pl.col("side"),
        pl.when(pl.col("tract").is_not_null()).then(
            pl.concat_str(["state_fips", "county", "tract"])).alias("tract_geoid"),
        pl.when(pl.col("block").is_not_null()).then(
            pl.concat_str(["state_fips", "county", "tract", pl.col("block").str.slice(0, 1)])
        ).alias("block_group_geoid"),
    ).cast(pl.Schema(RESULT_SCHEMA))


def _post_batch(session: requests.Session, url: str, rows: pl.DataFrame, opts: CensusOptions,
                batch_no: int) -> pl.DataFrame:
    import requests

    payload = _request_csv(rows)
    last = ""
    for attempt in range(opts.attempts):
        try:
            resp = session.post(
                url,
                files={"addressFile": ("batch.csv", payload, "text/plain")},
                data={"benchmark": opts.benchmark, "vintage": opts.vintage},
                timeout=opts.timeout_s,
            )
            body = resp.content.decode("latin-1")
            if resp.status_code == 200 and (not body.strip() or body.lstrip().startswith('"')):
                return parse_response(body)
            last = f"HTTP {resp.status_code}" + ("" if resp.status_code != 200 else ", not CSV")
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            last = type(exc).__name__
        log.warning("census batch failed; retrying", batch=batch_no, attempt=attempt + 1)
        time.sleep(opts.backoff_s * (2**attempt))
    raise NetworkError(
        f"the Census geocoder failed batch {batch_no} ({len(rows)} addresses) after "
        f"{opts.attempts} attempts: {last}"
    )


def census_geocode(rows: pl.DataFrame, settings: Settings, opts: CensusOptions | None = None
                   ) -> pl.DataFrame:
    """Geocode ``rows`` (``id, street, city, state, zip``; ids unique) with the batch service.

    Returns one row per input id (:data:`RESULT_SCHEMA`); ``match`` is ``Match``,
    ``No_Match`` or ``Tie`` (ties left after one resubmission keep no point).
    """
    opts = opts or CensusOptions()
    if rows.height == 0:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    from segment.reference.http import make_session  # requests, loaded only when asked

    url = f"{settings.census_geocoder_url.rstrip('/')}/geographies/addressbatch"
    session = make_session(settings, backoff=opts.backoff_s, allow_post=False)
    results = _run(session, url, rows, opts)
    ties = results.filter(pl.col("match") == "Tie")["id"]
    if len(ties):
        log.info("resubmitting tied addresses", addresses=len(ties))
        again = _run(session, url, rows.filter(pl.col("id").is_in(ties.implode())), opts)
        results = pl.concat([results.filter(pl.col("match") != "Tie"), again])
    returned = rows.select("id").join(results, on="id", how="left").with_columns(
        pl.col("match").fill_null("No_Match"))
    return returned.unique("id", keep="first", maintain_order=True)


def _run(session: requests.Session, url: str, rows: pl.DataFrame, opts: CensusOptions
         ) -> pl.DataFrame:
    batches = [rows.slice(i, opts.batch_size) for i in range(0, rows.height, opts.batch_size)]
    log.info("sending addresses to the Census geocoder", addresses=rows.height,
             batches=len(batches))
    out: list[pl.DataFrame] = []
    with progress("census geocoder", total=rows.height) as advance, ThreadPoolExecutor(
        max_workers=max(1, min(opts.workers, len(batches)))
    ) as pool:
        futures = [pool.submit(_post_batch, session, url, b, opts, i + 1)
                   for i, b in enumerate(batches)]
        for fut, batch in zip(futures, batches, strict=True):
            out.append(fut.result())
            advance(batch.height)
    return pl.concat(out) if out else pl.DataFrame(schema=RESULT_SCHEMA)
