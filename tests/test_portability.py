"""segment starts without Unix-only modules: `fcntl` and `resource` hidden, as on Windows.

A subprocess installs a meta-path finder that refuses to import them, then imports the
CLI, prints `segment --help`, loads every command (each one's `--help`) and asks for the
memory figure, which is then absent (None), not made up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_HIDE = """
import importlib.abc, sys
HIDDEN = {"fcntl", "resource"}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None
for name in HIDDEN:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Hide())
"""


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = _HIDE + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


def test_the_finder_really_hides_them(tmp_path: Path) -> None:
    proc = _run("import fcntl\n", tmp_path)
    assert proc.returncode != 0 and "hidden by the test" in proc.stderr
    proc = _run("import resource\n", tmp_path)
    assert proc.returncode != 0 and "hidden by the test" in proc.stderr


def test_cli_imports_and_helps_without_fcntl_and_resource(tmp_path: Path) -> None:
    proc = _run(
        "import segment.cli\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(segment.cli.cli, ['--help'], prog_name='segment')\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: segment [OPTIONS]" in proc.stdout and "Commands:" in proc.stdout


def test_every_command_loads_without_fcntl_and_resource(tmp_path: Path) -> None:
    proc = _run(
        "import json, click\n"
        "from click.testing import CliRunner\n"
        "from segment.cli import cli\n"
        "def walk(cmd, path):\n"
        "    yield path\n"
        "    if isinstance(cmd, click.Group):\n"
        "        ctx = click.Context(cmd)\n"
        "        for name in cmd.list_commands(ctx):\n"
        "            yield from walk(cmd.get_command(ctx, name), [*path, name])\n"
        "codes = {' '.join(p): CliRunner().invoke(cli, [*p, '--help']).exit_code\n"
        "         for p in walk(cli, [])}\n"
        "print(json.dumps(codes))\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(codes) > 10
    assert {path: code for path, code in codes.items() if code != 0} == {}


def test_memory_figures_are_absent_not_invented(tmp_path: Path) -> None:
    proc = _run(
        "import json, sys\n"
        "sys.platform = 'linux'  # not win32: the resource module is the only source\n"
        "from segment.log import peak_rss_bytes, peak_rss_gib\n"
        "from segment.pipeline import StageOutcome\n"
        "from segment.runstate import append_run_record\n"
        "outcome = StageOutcome('ingest', 'ran', 1.0)\n"
        "append_run_record('.', {'stages': [outcome.to_dict()]})\n"
        "print(json.dumps([peak_rss_bytes(), peak_rss_gib(), outcome.to_dict()['peak_rss_mib']]))\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [None, 0.0, None]


def test_memory_figure_where_the_platform_gives_one() -> None:
    from segment.log import peak_rss_bytes

    peak = peak_rss_bytes()
    if sys.platform == "win32" or sys.platform.startswith(("linux", "darwin")):
        assert peak is not None and 10 * 2**20 < peak < 2**40  # at least this interpreter
    else:  # pragma: no cover
        pytest.skip(f"no memory figure expected on {sys.platform}")


def test_no_module_imports_unix_only_modules_at_top_level() -> None:
    root = Path(__file__).resolve().parents[1] / "segment"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith(("import fcntl", "import resource", "from fcntl", "from resource",
                                "import msvcrt", "import pwd", "import grp", "import termios")):
                offenders.append(f"{path.relative_to(root.parent)}:{number}: {line}")
    assert offenders == []
