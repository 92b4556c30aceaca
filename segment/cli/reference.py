"""`segment reference build|pull|list|verify`: manage reference packs."""

from __future__ import annotations

from pathlib import Path

import click

from segment.cli import group
from segment.cli._vocabulary import MultiValueOption, SegmentCommand
from segment.cli.options import command, get_reporter, reference_option, settings
from segment.reference import build_pack, find_packs, verify_pack

reference_group = group(
    "reference",
    example="segment reference verify --reference packs/ma-2010",
    help="Manage reference packs: tract polygons, address ranges, ZIP centroids, indicators.",
)

_files = click.Path(exists=True, path_type=Path)


@command("build", example="segment reference build --out packs/ma-2010 "
                          "--tracts tl_2010_25_tract10.zip --indicators oeps/*.csv",
         cls=SegmentCommand)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Pack folder to write (created owner-only).")
@click.option("--name", default=None, help="Pack name (default: the folder name).")
@click.option("--tracts", cls=MultiValueOption, metavar="FILE...", required=True, type=_files,
              help="TIGER/Line tract zip, .shp or folder (several after one flag, or repeat the flag).")
@click.option("--block-groups", cls=MultiValueOption, metavar="FILE...", type=_files,
              help="TIGER/Line block-group zip, .shp or folder (several after one flag, or repeat the flag).")
@click.option("--address-ranges", cls=MultiValueOption, metavar="FILE...", type=_files,
              help="TIGER/Line ADDRFEAT zip, .shp or folder (several after one flag, or repeat the flag).")
@click.option("--zip-centroids", cls=MultiValueOption, metavar="FILE...", type=_files,
              help="ZCTA gazetteer files (tab-separated) or CSVs with zip5,lat,lon.")
@click.option("--indicators", cls=MultiValueOption, metavar="FILE...", type=_files,
              help="Tract indicator files (OEPS CSVs, an ACS pull): several after one flag, or repeat it.")
@click.option("--vintage", type=click.Choice(["2010", "2020"]), default=None,
              help="Tract vintage when file names and fields do not tell it.")
@click.option("--crosswalk", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Tract relationship file to re-key indicators of the other "
              "tract vintage.")
@click.option("--keep-columns", cls=MultiValueOption, metavar="RAW=NAME...",
              help="Pass raw indicator columns through under a declared name "
              "(E_NOINT=svi_no_internet_count); other unmapped columns are reported as ignored.")
@click.option("--source-year", "source_years", cls=MultiValueOption, metavar="FILE=YEAR...",
              help="Publication year of an indicator file whose name does not tell it "
              "(SVI.csv=2022).")
@click.option("--synthetic", is_flag=True, help="Mark the pack as synthetic in its manifest.")
def build_command(out: Path, name: str | None, tracts: tuple[Path, ...],
                  block_groups: tuple[Path, ...], address_ranges: tuple[Path, ...],
                  zip_centroids: tuple[Path, ...], indicators: tuple[Path, ...],
                  vintage: str | None, crosswalk: Path | None, keep_columns: tuple[str, ...],
                  source_years: tuple[str, ...], synthetic: bool) -> None:
    """Build a reference pack from local Census files (TIGER/Line, gazetteer, indicators).

    Indicator files are read as their publishers write them (CDC/ATSDR SVI, Neighborhood
    Atlas ADI, USDA Food Access Research Atlas, OEPS, an ACS pull); every column is mapped,
    kept (--keep-columns) or listed as ignored in the output and the manifest.
    """
    from segment.reference.loading import parse_pairs, parse_years

    manifest = build_pack(
        out, tracts=list(tracts), block_groups=list(block_groups) or None,
        address_ranges=list(address_ranges) or None, zip_centroids=list(zip_centroids) or None,
        indicators=list(indicators) or None, name=name or out.name, synthetic=synthetic,
        vintage=int(vintage) if vintage else None, crosswalk=crosswalk,
        keep_columns=parse_pairs(keep_columns, what="--keep-columns") or None,
        indicator_years=parse_years(source_years) or None,
    )
    reporter = get_reporter()
    inputs = manifest.extra.get("indicator_inputs") or []
    if inputs:
        reporter.table("indicator files (every column mapped, kept or ignored)", [
            {"file": r["file"], "reader": r["reader"], "level": r["level"], "rows": r["rows"],
             "mapped": len(r["mapped"]), "kept": ", ".join(f"{k}={v}" for k, v in r["kept"].items()),
             "ignored": f"{len(r['ignored'])}: {', '.join(r['ignored'])}" if r["ignored"] else "0"}
            for r in inputs
        ], ["file", "reader", "level", "rows", "mapped", "kept", "ignored"])
    reporter.table(f"pack {manifest.name} ({manifest.tract_vintage} tracts)", [
        {"file": f, "rows": e.rows, "vintage": e.vintage, "source": ", ".join(e.source)}
        for f, e in sorted(manifest.files.items())
    ], ["file", "rows", "vintage", "source"])


@command("pull", example="segment reference pull --state MA RI --year 2019 --out packs/ma-ri-2019",
         cls=SegmentCommand)
@click.option("--state", "states", cls=MultiValueOption, metavar="STATE...", required=True,
              help="States (USPS code or FIPS): several after one flag, or repeat it.")
@click.option("--year", type=int, default=None,
              help="TIGER/Line release and ACS 5-year end year (default: the latest ACS 5-year "
              "release the census package supports, on 2020 tracts).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Pack folder (default: the --reference folder).")
@reference_option
@click.option("--no-acs", is_flag=True, help="Skip the ACS indicators (no API key needed).")
@click.option("--no-address-ranges", is_flag=True, help="Skip the per-county ADDRFEAT files.")
def pull_command(states: tuple[str, ...], year: int | None, out: Path | None, reference: Path | None,
                 no_acs: bool, no_address_ranges: bool) -> None:
    """Download TIGER/Line files and ACS 5-year tract variables, then build a pack.

    Needs CENSUS_API_KEY for the ACS. Downloads resume after an interruption.
    """
    from segment.reference.pull import pull_pack

    s = settings(reference)
    result = pull_pack(list(states), year=year, reference_dir=out or s.reference_dir, settings=s,
                       acs=not no_acs, address_ranges=not no_address_ranges)
    reporter = get_reporter()
    reporter.table(f"downloaded ({len(result.downloads)} files)", [
        {"file": d.path.name, "bytes": d.bytes, "sha256": d.sha256[:16], "resumed": d.resumed}
        for d in result.downloads
    ], ["file", "bytes", "sha256", "resumed"])
    reporter.result("pack", {"folder": result.path, "tracts": result.manifest.files[
        "tracts.parquet"].rows, "tract vintage": result.manifest.tract_vintage})


@command("list", example="segment reference list --columns\nsegment reference list --hp2030")
@reference_option
@click.option("--columns", "show_columns", is_flag=True,
              help="Show the data dictionary: every column enrichment adds from the pack.")
@click.option("--hp2030", "show_hp2030", is_flag=True,
              help="Show the bundled Healthy People 2030 objectives and the indicators mapped to them.")
def list_command(reference: Path | None, show_columns: bool, show_hp2030: bool) -> None:
    """List reference packs (name, vintage, states, files), their data dictionary, or HP2030 objectives."""
    reporter = get_reporter()
    if show_hp2030:
        from segment.enrich import hp2030_mapping_rows, hp2030_objectives_rows

        reporter.table("Healthy People 2030 objectives (national targets; tract values compared "
                       "with them are approximations)", hp2030_objectives_rows(),
                       ["id", "title", "domain", "baseline", "target", "unit", "direction", "latest",
                        "progress", "indicators"])
        reporter.table("indicator to objective map", hp2030_mapping_rows(),
                       ["objective", "indicators", "transform", "target", "direction", "gap_column",
                        "flag_column"])
        return
    root = settings(reference).reference_dir
    packs = list(find_packs(root))
    if not packs:
        reporter.info("reference", f"no reference pack in {root}")
        return
    if show_columns:
        from segment.enrich import data_dictionary

        for pack in packs:
            reporter.table(f"columns of {pack.name}", data_dictionary(pack.manifest),
                           ["name", "meaning", "source", "vintage", "geography", "unit"])
        return
    reporter.table("reference packs", [
        {"name": p.name, "tract vintage": str(p.tract_vintage), "states": ",".join(p.manifest.states),
         "synthetic": "yes" if p.manifest.synthetic else "no",
         "files": ", ".join(sorted(p.manifest.files)), "path": str(p.path)}
        for p in packs
    ], ["name", "tract vintage", "states", "synthetic", "files", "path"])


@command("verify", example="segment reference verify --reference packs/ma-2010")
@reference_option
def verify_command(reference: Path | None) -> None:
    """Re-hash every file of the pack; exit 1 naming the first missing or changed file."""
    result = verify_pack(settings(reference).reference_dir)
    get_reporter().result("verified", {"pack": result.name, "files": result.files,
                                       "rows": result.rows})


for _cmd in (build_command, pull_command, list_command, verify_command):
    reference_group.add_command(_cmd)

COMMANDS = [reference_group]
