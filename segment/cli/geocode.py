"""`segment geocode DIR`: addresses to points, tracts, block groups and counties."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli.engine import engine_choice, engine_options
from segment.cli.options import command, get_reporter, reference_option, settings, workdir_argument
from segment.errors import GeocodeError
from segment.geocode import (
    DEFAULT_PROVIDERS,
    PROVIDERS,
    CensusOptions,
    GeocodeStage,
    parse_providers,
)
from segment.stage import execute


def _providers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
               ) -> tuple[str, ...]:
    if not value:
        return ()
    try:
        return parse_providers(value)
    except GeocodeError as exc:
        raise click.BadParameter(exc.message) from None


@command("geocode", example="segment geocode work --provider offline,zip")
@workdir_argument
@reference_option
@click.option(
    "--provider",
    "providers",
    multiple=True,
    callback=_providers,
    metavar="NAME[,NAME...]",
    help=f"Providers to try, in order (repeat or comma-separate): {', '.join(PROVIDERS)}. "
    f"Default: {','.join(DEFAULT_PROVIDERS)}. `census` sends addresses to the Census "
    "Bureau and is used only when named.",
)
@click.option("--census-benchmark", default="Public_AR_Current", show_default=True,
              help="Census geocoder benchmark (with --provider census).")
@click.option("--census-vintage", default="Current_Current", show_default=True,
              help="Census geocoder vintage (with --provider census).")
@click.option("--no-cache", is_flag=True, help="Ignore and do not update geocode-cache.parquet.")
@engine_options()
def geocode_command(workdir: Path, reference: Path | None, providers: tuple[str, ...],
                    census_benchmark: str, census_vintage: str, no_cache: bool,
                    engine: str = "polars", master: str | None = None, buckets: int | None = None,
                    patients_uri: str | None = None, output: str | None = None) -> None:
    """Geocode patients offline: source points, TIGER address ranges, ZIP centroids.

    Reads patients.parquet and the reference pack; writes geocoded.parquet,
    geocode-report.json and geocode-cache.parquet. ZIP-centroid rows are flagged and get
    no tract or block group. With --engine spark, partitions of patients (by address) are
    geocoded on Apache Spark against the pack, without the cache (docs/spark.md).
    """
    choice = engine_choice(engine, master, buckets, patients_uri, output=output)
    stage = GeocodeStage(providers=providers or None,
                         census=CensusOptions(benchmark=census_benchmark, vintage=census_vintage),
                         use_cache=not no_cache)
    result = execute(choice.stage(stage), choice.context(workdir, settings=settings(reference)))
    reporter = get_reporter()
    reporter.result("geocode", {
        "patients": result.patients,
        "distinct addresses": result.addresses,
        "geocoded new": sum(result.geocoded_new.values()),
        "from cache": sum(result.from_cache.values()),
        "pack": f"{result.pack['name']} ({result.pack['tract_vintage']} tracts)",
    })
    total = max(result.patients, 1)
    reporter.table("by precision", [
        {"precision": k, "patients": v, "percent": round(100 * v / total, 1)}
        for k, v in result.by_precision.items()
    ], ["precision", "patients", "percent"])
    if result.by_reason:
        reporter.table("by reason", [
            {"reason": k, "patients": v} for k, v in result.by_reason.items()
        ], ["reason", "patients"])


COMMANDS = [geocode_command]
