"""Spark settings (options, a campaign's ``spark:`` block, the environment) and the session.

Nothing here is hard-coded for a cluster: the master, the bucket count and any Spark
configuration come from, in order of precedence, the command line (``--master``,
``--buckets``), the campaign's ``spark:`` block, and the environment
(``SEGMENT_SPARK_MASTER``, ``SEGMENT_SPARK_BUCKETS``, ``SEGMENT_SPARK_CONF``); what none of
them sets is left to Spark itself (``spark-defaults.conf`` under ``SPARK_CONF_DIR``).
Before a JVM is started the checks that give a clear one-line error run: pyspark
installed, a Java runtime found, a ``spark://`` or ``k8s://`` master reachable within a
bounded timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from segment.errors import EngineError
from segment.log import get_logger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from segment.stage import SparkRun

log = get_logger("spark")

DEFAULT_MASTER = "local[*]"
#: how long a standalone or Kubernetes master may take to accept a connection
DEFAULT_CONNECT_TIMEOUT_S = 10.0
EXTRA_HINT = "install the extra: pip install 'segment[spark]'"
APP_NAME = "segment"


@dataclass(frozen=True)
class SparkSettings:
    """Where and how the spark engine runs."""

    master: str = DEFAULT_MASTER
    #: patient buckets, each evaluated by one call of the Polars plan (None: 2 per core)
    buckets: int | None = None
    conf: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    @classmethod
    def from_env(cls) -> SparkSettings:
        """Settings from ``SEGMENT_SPARK_*`` environment variables."""
        values: dict[str, Any] = {}
        if os.environ.get("SEGMENT_SPARK_MASTER", "").strip():
            values["master"] = os.environ["SEGMENT_SPARK_MASTER"].strip()
        if os.environ.get("SEGMENT_SPARK_BUCKETS", "").strip():
            values["buckets"] = _positive("SEGMENT_SPARK_BUCKETS", os.environ["SEGMENT_SPARK_BUCKETS"])
        if os.environ.get("SEGMENT_SPARK_CONNECT_TIMEOUT", "").strip():
            raw = os.environ["SEGMENT_SPARK_CONNECT_TIMEOUT"].strip()
            try:
                values["connect_timeout_s"] = float(raw)
            except ValueError:
                raise EngineError(f"SEGMENT_SPARK_CONNECT_TIMEOUT: expected seconds, found {raw!r}",
                                  key="SEGMENT_SPARK_CONNECT_TIMEOUT") from None
        values["conf"] = parse_conf(os.environ.get("SEGMENT_SPARK_CONF", ""), "SEGMENT_SPARK_CONF")
        return cls(**values)

    def merged(self, *, master: str | None = None, buckets: int | None = None,
               conf: Mapping[str, Any] | None = None) -> SparkSettings:
        """These settings overridden by a campaign block or options (None: keep)."""
        return replace(
            self,
            master=master or self.master,
            buckets=buckets if buckets is not None else self.buckets,
            conf={**self.conf, **{str(k): _conf_text(v) for k, v in (conf or {}).items()}},
        )

    def resolve(self, *, master: str | None = None, buckets: int | None = None,
                campaign: Any | None = None) -> SparkSettings:
        """Environment < campaign ``spark:`` block < command-line options."""
        out = self
        block = getattr(campaign, "spark", None)
        if block is not None:
            out = out.merged(master=block.master, buckets=block.buckets, conf=block.conf)
        return out.merged(master=master, buckets=buckets)


def _conf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _positive(key: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise EngineError(f"{key}: expected a whole number of 1 or more, found {raw.strip()!r}", key=key)
    return value


def parse_conf(text: str, source: str) -> dict[str, str]:
    """``key=value`` pairs separated by commas or whitespace (``spark.executor.memory=8g``)."""
    out: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark.") or not value:
            raise EngineError(
                f"{source}: expected spark.KEY=VALUE pairs separated by commas, found {item!r}",
                key=source)
        out[key] = value
    return out


def require_pyspark() -> None:
    """An :class:`EngineError` naming the extra when pyspark is not installed."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise EngineError(f"the spark engine needs pyspark, which is not installed; {EXTRA_HINT}") from None


def find_java() -> str:
    """The java executable Spark will start (``JAVA_HOME`` first, then ``PATH``)."""
    home = os.environ.get("JAVA_HOME", "").strip()
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file() and os.access(java, os.X_OK):
            return str(java)
        raise EngineError(f"JAVA_HOME is {home!r} but it has no bin/java; the spark engine needs a "
                          "Java 17 or 21 runtime (e.g. apt-get install openjdk-17-jre-headless)",
                          key="JAVA_HOME")
    found = shutil.which("java")
    if found is None:
        raise EngineError("the spark engine needs a Java 17 or 21 runtime and none was found on PATH "
                          "or in JAVA_HOME (e.g. apt-get install openjdk-17-jre-headless)")
    return found


def master_endpoints(master: str) -> list[tuple[str, int]]:
    """Host and port of each master a URL names (none for local, yarn and the like)."""
    if master.startswith("spark://"):
        out = []
        for part in master[len("spark://"):].split(","):
            host, _sep, port = part.strip().rpartition(":")
            if not host or not port.isdigit():
                raise EngineError(f"--master: expected spark://HOST:PORT, found {master!r}", key="master")
            out.append((host, int(port)))
        return out
    if master.startswith("k8s://"):
        url = urlsplit(master[len("k8s://"):] if "://" in master[len("k8s://"):]
                       else "https://" + master[len("k8s://"):])
        if not url.hostname:
            raise EngineError(f"--master: expected k8s://https://HOST:PORT, found {master!r}", key="master")
        return [(url.hostname, url.port or (443 if url.scheme == "https" else 80))]
    if master == "yarn" or master.startswith("local"):
        return []
    raise EngineError(f"--master: unsupported master URL {master!r}; valid forms are local, local[N], "
                      "local[*], spark://HOST:PORT, yarn, k8s://https://HOST:PORT", key="master")


def check_master(master: str, timeout_s: float) -> None:
    """Fail, after at most ``timeout_s`` per endpoint, when no master of the URL accepts a connection."""
    endpoints = master_endpoints(master)
    if not endpoints:
        return
    errors = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            errors.append(f"{host}:{port} ({exc.strerror or type(exc).__name__})")
    raise EngineError(f"Spark master {master} cannot be reached within {timeout_s:g} s: "
                      f"{'; '.join(errors)}", key="master")


def spark_session(settings: SparkSettings) -> SparkSession:
    """The Spark session for these settings, started once per process (errors are one line)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in settings.conf.items():
            if key.startswith("spark.sql."):
                active.conf.set(key, value)
        return active
    find_java()
    check_master(settings.master, settings.connect_timeout_s)
    # executors run this interpreter (where segment, Polars and Shapely are installed)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(APP_NAME).master(settings.master)
    # plain log lines under cron, not Spark's console progress bars (a setting can turn them on)
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    log.info("starting spark", master=settings.master, conf_keys=len(settings.conf))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start or the master refused us
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"Spark could not start with master {settings.master}: {first}") from exc
    session.sparkContext.setLogLevel(os.environ.get("SEGMENT_SPARK_LOG_LEVEL", "WARN"))
    return session


def start_session(options: SparkRun, campaign: Any = None) -> tuple[SparkSession, int]:
    """The session and bucket count for ``--engine spark`` options (options < campaign ``spark:`` < environment)."""
    settings = SparkSettings.from_env().resolve(master=options.master, buckets=options.buckets, campaign=campaign)
    spark = spark_session(settings)
    return spark, default_buckets(spark, settings)


def default_buckets(spark: SparkSession, settings: SparkSettings) -> int:
    """``settings.buckets``, else two per core Spark reports (at least 1)."""
    if settings.buckets is not None:
        return settings.buckets
    return max(1, 2 * int(spark.sparkContext.defaultParallelism))
