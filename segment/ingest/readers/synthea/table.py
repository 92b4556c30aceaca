"""One Synthea CSV file, opened once: upper-cased header, all-text LazyFrame, ``_row``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from segment.errors import InputDataError
from segment.ingest.readers import REJECT_SCHEMA
from segment.ingest.readers.files import csv_header, scan_csv_text


@dataclass(frozen=True)
class Table:
    """A Synthea CSV file: its columns upper-cased (``Id``/``ID`` both read ``ID``)."""

    path: Path
    columns: tuple[str, ...]
    frame: pl.LazyFrame

    @property
    def file(self) -> str:
        """The file as parts, rejects and skip counts name it."""
        return str(self.path)

    def has(self, name: str) -> bool:
        """True when the file has column ``name`` (upper case)."""
        return name in self.columns

    def first(self, *names: str) -> str | None:
        """The first of ``names`` the file has (``START`` or the older ``DATE``)."""
        return next((n for n in names if n in self.columns), None)

    def require(self, *names: str | tuple[str, ...]) -> None:
        """Raise InputDataError naming the first required column (or alternatives) missing."""
        for name in names:
            options = (name,) if isinstance(name, str) else name
            if self.first(*options) is None:
                shown = " or ".join(f"`{o}`" for o in options)
                raise InputDataError(f"Synthea file is missing required column {shown}", path=self.path,
                                     column=options[0])


def header_of(path: Path) -> list[str]:
    """The upper-cased header of a CSV file, or [] when it cannot be read (for detection)."""
    try:
        header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
    except (pl.exceptions.PolarsError, OSError):
        return []
    return [h.strip().lstrip("\ufeff").upper() for h in header]


def open_table(path: Path) -> Table:
    """Open ``path`` (UTF-8 checked by :func:`csv_header`) with its columns upper-cased."""
    header = csv_header(path)
    upper = [h.upper() for h in header]
    seen: set[str] = set()
    for name in upper:
        if name in seen:
            raise InputDataError(f"two columns named `{name}` (Synthea headers are matched ignoring case)",
                                 path=path, column=name)
        seen.add(name)
    frame = scan_csv_text(path, header)
    if upper != header:
        frame = frame.rename(dict(zip(header, upper, strict=True)))
    return Table(path, tuple(upper), frame)


def reject_rows(
    rows: pl.DataFrame, file: str, column: str, value: str, reason: str, *, level: str = "row",
    record: str | None = "_record",
) -> pl.DataFrame:
    """Rows of ``rows`` (``_row``, ``record``, ``value``) as REJECT_SCHEMA rows."""
    return rows.select(
        pl.lit(file).alias("file"),
        pl.col("_row").cast(pl.Int64).alias("row"),
        (pl.col(record) if record is not None else pl.lit(None)).cast(pl.String).alias("record_id"),
        pl.lit(column).alias("column"),
        pl.col(value).cast(pl.String).alias("value"),
        pl.lit(reason).alias("reason"),
        pl.lit(level).alias("level"),
    ).cast(REJECT_SCHEMA)  # type: ignore[arg-type]
