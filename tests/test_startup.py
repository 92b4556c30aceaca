"""Start-up stays light: `segment --help`, `--version` and completion import no heavy library.

Structural tests (which modules were loaded), not timings: a subprocess runs the command and
reports the heavy modules present in ``sys.modules`` when it exits.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import segment.cli as cli_package
from segment.cli import LAZY_COMMANDS, cli
from segment.cli.options import LOG_FORMATS

HEAVY = ("geopandas", "pandas", "pyogrio", "matplotlib", "shapely", "pyarrow", "polars", "pyproj")

# Runs `segment ARGS` in this interpreter (as the console script does) and, at exit, prints
# the heavy modules that were imported as the last line of stderr.
_PROBE = """
import atexit, json, sys
HEAVY = {heavy!r}
def report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    sys.stderr.write("\\nLOADED " + json.dumps(loaded) + "\\n")
atexit.register(report)
sys.argv = ["segment", *{args!r}]
from segment.cli import main
main()
"""


def _probe(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    code = _PROBE.format(heavy=HEAVY, args=args)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED ")][-1]
    return proc, json.loads(line.removeprefix("LOADED "))


def test_import_segment_cli_loads_no_heavy_library() -> None:
    code = ("import sys, json; import segment.cli; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-h"]])
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    proc, loaded = _probe(args)
    assert proc.returncode == 0, proc.stderr
    assert loaded == []
    assert proc.stdout.startswith("Usage: segment" if args != ["--version"] else "segment, version")


def test_help_lists_every_command_with_its_summary() -> None:
    proc, _ = _probe(["--help"])
    listing = proc.stdout.split("Commands:")[1]
    for name, (_, summary) in LAZY_COMMANDS.items():
        assert f"  {name} " in listing
        assert summary in listing, name


def test_completion_of_command_names_loads_no_heavy_library() -> None:
    env = {"_SEGMENT_COMPLETE": "zsh_complete", "COMP_WORDS": "segment e", "COMP_CWORD": "1"}
    proc, loaded = _probe([], env)
    assert proc.returncode == 0, proc.stderr
    assert loaded == []
    # zsh_complete prints type, value, help for each item
    lines = proc.stdout.splitlines()
    values = [lines[i + 1] for i in range(0, len(lines), 3) if lines[i] == "plain"]
    assert values == ["enrich", "evaluate", "explain", "export"]
    # the same shortened summaries Click gives once the commands are loaded
    ctx = click.Context(cli)
    helps = [lines[i + 2] for i in range(0, len(lines), 3) if lines[i] == "plain"]
    assert helps == [cli.get_command(ctx, v).get_short_help_str() for v in values]  # type: ignore[union-attr]


def test_completion_of_root_options_and_subcommand_options() -> None:
    env = {"_SEGMENT_COMPLETE": "bash_complete", "COMP_WORDS": "segment --ver", "COMP_CWORD": "1"}
    proc, _ = _probe([], env)
    assert "plain,--version" in proc.stdout.splitlines()
    assert "plain,--verbose" in proc.stdout.splitlines()
    env = {"_SEGMENT_COMPLETE": "bash_complete", "COMP_WORDS": "segment rules ch", "COMP_CWORD": "2"}
    proc, _ = _probe([], env)
    assert proc.stdout.splitlines() == ["plain,check"]


def _discovered() -> dict[str, tuple[str, click.Command]]:
    """Every command declared in a COMMANDS list of a module of segment.cli (by importing them)."""
    import importlib

    found: dict[str, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(cli_package.__path__):
        if info.name.startswith("_") or info.name == "options":
            continue
        module = importlib.import_module(f"segment.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            assert command.name not in found, f"{command.name} declared twice"
            found[command.name] = (module.__name__, command)
    return found


def test_lazy_table_matches_the_real_commands() -> None:
    found = _discovered()
    assert set(LAZY_COMMANDS) == set(found), (
        "segment/cli/__init__.py LAZY_COMMANDS must list every command of segment/cli/*.py COMMANDS")
    for name, (module, summary) in LAZY_COMMANDS.items():
        real_module, command = found[name]
        assert module == real_module, name
        assert summary == command.get_short_help_str(10_000), f"{name}: update its summary in LAZY_COMMANDS"


def test_get_command_imports_the_command_on_demand() -> None:
    ctx = click.Context(cli)
    for name in LAZY_COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_log_formats_match_the_reporter() -> None:
    from segment.report import LogFormat

    assert tuple(f.value for f in LogFormat) == LOG_FORMATS


def test_console_script_is_the_lazy_entry_point() -> None:
    root = Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()
    assert 'segment = "segment.cli:main"' in text


def test_stage_modules_load_no_geospatial_library() -> None:
    """Opening a pack, geocoding from the cache and enriching need no GeoPandas at import:
    only building a pack and placing new points in polygons load it, when they run."""
    modules = "segment.reference, segment.reference.pack, segment.geocode.run, segment.enrich.run"
    code = (f"import sys, json; import {modules}; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('geopandas', 'pandas', 'pyogrio', 'shapely', 'pyproj', 'matplotlib'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []


def test_reference_build_pack_is_imported_on_first_use() -> None:
    import segment.reference as reference
    from segment.reference.build import build_pack

    assert reference.build_pack is build_pack
    with pytest.raises(AttributeError):
        _ = reference.no_such_name
