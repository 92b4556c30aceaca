"""Documentation that is tested (the sqlite-utils `test_docs.py` habit).

* Every fenced block opened with ```` ```bash runnable ```` (or ```` ```python runnable ````, run
  with this interpreter: docs/python-api.md) in README.md and docs/*.md runs, in
  the order written, one sandbox per file: a temporary folder holding ``demo-work/`` (the demo
  world at its default size, built once per session with the README's own command) and links
  to the repository's ``rules/`` and ``examples/``; ``segment`` is on the ``PATH``. A block
  opened with ``bash runnable needs-network`` (or ``needs-secrets``) is skipped with that
  reason. Unmarked blocks are not run.
* Every command and every rule operation (and its aliases) is documented.
* ``.ci/run`` runs exactly the README's two commands, and handles pytest's exit code 5.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from segment.rules.registry import OPERATIONS
from tests.test_cli import ALL_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
SKIP_REASONS = {
    "needs-network": "needs the network (Census Bureau or a vendor), which tests do not reach",
    "needs-secrets": "needs secrets (an API key or a password) that tests do not hold",
}
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a document."""

    path: Path
    line: int
    info: list[str]
    body: str
    language: str = "bash"

    @property
    def command(self) -> list[str]:
        """How the block runs: bash with errexit and pipefail, or this Python."""
        if self.language == "python":
            return [sys.executable, "-c", self.body]
        return ["bash", "-euo", "pipefail", "-c", self.body]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        return next((SKIP_REASONS[w] for w in self.info if w in SKIP_REASONS), None)


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` whose info string is ``bash runnable ...`` or ``python runnable ...``."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        info = m.group("info").split()
        if info[:2] not in (["bash", "runnable"], ["python", "runnable"]):
            continue
        unknown = [w for w in info[2:] if w not in SKIP_REASONS]
        line = text.count("\n", 0, m.start()) + 1
        assert not unknown, f"{path.name}:{line}: unknown marker(s) {unknown}; known: {sorted(SKIP_REASONS)}"
        indent = m.group("indent")
        body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln
                         for ln in m.group("body").splitlines())
        found.append(Block(path, line, info[2:], body, info[0]))
    return found


RUNNABLE = {p: blocks(p) for p in DOCS}
DOCUMENTS_WITH_EXAMPLES = [p for p, b in RUNNABLE.items() if any(x.skip_reason is None for x in b)]
SKIPPED = [b for bs in RUNNABLE.values() for b in bs if b.skip_reason is not None]


def _segment_bin() -> Path:
    exe = shutil.which("segment") or str(Path(sys.executable).parent / "segment")
    return Path(exe).parent


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demo-work`` made by the README's first command (its `segment demo` part), once."""
    root = tmp_path_factory.mktemp("docs-demo")
    proc = subprocess.run([str(_segment_bin() / "segment"), "demo", "--out", "demo-work"], cwd=root,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root / "demo-work"


def _sandbox(tmp_path: Path, demo: Path) -> tuple[Path, dict[str, str]]:
    shutil.copytree(demo, tmp_path / "demo-work", symlinks=True)
    for name in ("rules", "examples"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    home = tmp_path / ".home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SEGMENT_") and k not in {"CENSUS_API_KEY", "SFTP_PASSWORD"}}
    env.update(PATH=f"{_segment_bin()}{os.pathsep}{env.get('PATH', '')}", HOME=str(home),
               XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_CONFIG_HOME=str(home / "config"))
    return tmp_path, env


@pytest.mark.parametrize("doc", DOCUMENTS_WITH_EXAMPLES, ids=[p.name for p in DOCUMENTS_WITH_EXAMPLES])
def test_runnable_examples_run(doc: Path, demo_world: Path, tmp_path: Path) -> None:
    cwd, env = _sandbox(tmp_path, demo_world)
    for block in RUNNABLE[doc]:
        if block.skip_reason is not None:
            continue
        proc = subprocess.run(block.command, cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        assert proc.returncode == 0, (
            f"{block.where}: exit {proc.returncode}\n{block.body}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )


@pytest.mark.parametrize("block", SKIPPED, ids=[b.where for b in SKIPPED])
def test_examples_needing_network_or_secrets_are_skipped(block: Block) -> None:
    assert block.body.strip().startswith("segment") or "segment " in block.body
    pytest.skip(f"{block.where}: {block.skip_reason}")


def test_the_readme_has_runnable_examples() -> None:
    readme = [b for b in RUNNABLE[ROOT / "README.md"] if b.skip_reason is None]
    assert len(readme) >= 5
    assert any("--indicators demo-work/world/source/oeps/*.csv" in b.body for b in readme)


def test_fence_parser_reads_markers_indents_and_ignores_other_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\nnot run\n```\n"
        "1. step\n   ```bash runnable\n   segment rules list\n   ```\n"
        "```bash runnable needs-network\nsegment reference pull --state MA\n```\n"
        "```text\n```bash runnable\n```\n", encoding="utf-8")
    found = blocks(doc)
    assert [(b.line, b.body, b.skip_reason is not None) for b in found] == [
        (5, "segment rules list", False), (8, "segment reference pull --state MA", True)]
    bad = tmp_path / "y.md"
    bad.write_text("```bash runnable needs-coffee\nsegment\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="unknown marker"):
        blocks(bad)


def test_python_blocks_run_with_this_interpreter(tmp_path: Path) -> None:
    doc = tmp_path / "api.md"
    doc.write_text("```python runnable\nimport sys\nprint(sys.version_info[0])\n```\n"
                   "```python\nnot run\n```\n", encoding="utf-8")
    [block] = blocks(doc)
    assert block.language == "python" and block.command[:2] == [sys.executable, "-c"]
    proc = subprocess.run(block.command, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "3"


# -- everything is documented ---------------------------------------------------------
def _all_docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS)


@pytest.mark.parametrize("path", [p for p, _ in ALL_COMMANDS if p], ids=[" ".join(p) for p, _ in ALL_COMMANDS if p])
def test_every_command_is_documented(path: tuple[str, ...]) -> None:
    text = _all_docs_text()
    name = "segment " + " ".join(path)
    # `segment rules check|test|list` documents each of the three
    prefix = re.escape(" ".join(("segment", *path[:-1])))
    spelled = re.compile(prefix + r"\s+(?:[\w-]+\\?\|)*" + re.escape(path[-1]) + r"\b")
    assert name in text or spelled.search(text), f"`{name}` is not in README.md or docs/*.md"


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_rule_operation_is_documented(name: str) -> None:
    rules_doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    op = OPERATIONS[name]
    for spelling in (name, *op.aliases):
        assert re.search(r"`" + re.escape(spelling) + r"[`:(\s]", rules_doc), (
            f"rule operation `{spelling}` ({name}) is not documented in docs/rules.md")


# -- .ci/run ----------------------------------------------------------------------------
def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^```bash[ \t]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert m, "README.md has no ```bash block"
    return [line for line in m.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_commands() -> None:
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-commands"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = _readme_commands()
    assert proc.stdout.splitlines() == commands
    assert len(commands) == 2
    for command in commands:  # pip is upgraded before the project is installed (see README)
        assert command.index("pip install -q --upgrade pip") < command.index("pip install -q -e ")
    assert commands[0].endswith("segment demo --out demo-work")
    assert commands[1].endswith(".venv/bin/python -m pytest -q")


def _fake_ci(tmp_path: Path, first: str, second: str, lint_rc: int = 0) -> subprocess.CompletedProcess[str]:
    """`.ci/run` in a copy of the repository's layout whose README holds two given commands."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text(f"# x\n\n```bash\n{first}\n{second}\n```\n", encoding="utf-8")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("ruff", "mypy"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} ran >> \"$(dirname \"$0\")/../../tools.log\"\n"
                                    f"exit {lint_rc}\n", encoding="utf-8")
        (bin_dir / tool).chmod(stat.S_IRWXU)
    for tool in ("pip", "python"):  # the spark extra and the spark tests, after the README's commands
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> \"$(dirname \"$0\")/../../spark.log\"\n",
                                    encoding="utf-8")
        (bin_dir / tool).chmod(stat.S_IRWXU)
    # no apt-get on PATH: only the commands from the README, lint and types run
    fake_path = tmp_path / "path"
    fake_path.mkdir()
    for exe in ("bash", "awk", "rm", "id", "echo", "dirname", "cat"):
        found = shutil.which(exe)
        if found:
            (fake_path / exe).symlink_to(found)
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                          env={"PATH": str(fake_path), "HOME": str(tmp_path)})


@pytest.mark.parametrize("second,lint_rc,expected", [
    ("true", 0, 0),     # tests pass, lint and types pass
    ("exit 5", 0, 1),   # pytest collected nothing: CI fails
    ("exit 3", 0, 3),   # tests failed: their exit code
    ("true", 1, 1),     # lint or types failed
])
def test_ci_exit_codes(tmp_path: Path, second: str, lint_rc: int, expected: int) -> None:
    proc = _fake_ci(tmp_path, "echo first > first.txt", second, lint_rc)
    assert proc.returncode == expected, proc.stderr
    assert (tmp_path / "first.txt").read_text() == "first\n"
    if second == "exit 5":
        assert "collected no tests" in proc.stderr
        assert not (tmp_path / "tools.log").exists()
    else:
        assert (tmp_path / "tools.log").read_text().split("\n")[:2] == ["ruff ran", "mypy ran"]
        assert (tmp_path / "spark.log").read_text().splitlines() == [
            "pip install -q -e .[test,spark]", "python -m pytest -q -p no:cacheprovider -m spark tests/spark"]


def test_ci_stops_when_the_first_command_fails(tmp_path: Path) -> None:
    proc = _fake_ci(tmp_path, "exit 7", "echo second > second.txt")
    assert proc.returncode == 7
    assert not (tmp_path / "second.txt").exists()


def test_documented_shell_completion_works() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shells = re.findall(r"_SEGMENT_COMPLETE=(\w+)_source segment", readme)
    assert {"bash", "zsh", "fish"} <= set(shells)
    exe = str(_segment_bin() / "segment")
    for shell in sorted(set(shells)):
        script = subprocess.run([exe], env={**os.environ, "_SEGMENT_COMPLETE": f"{shell}_source"},
                                capture_output=True, text=True, timeout=60)
        assert script.returncode == 0 and "_SEGMENT_COMPLETE" in script.stdout, shell
    # and the completion itself answers: commands, then a command's options
    env = {**os.environ, "_SEGMENT_COMPLETE": "bash_complete", "COMP_WORDS": "segment in", "COMP_CWORD": "1"}
    words = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60).stdout.split()
    assert "plain,init" in words and "plain,ingest" in words
    env.update(COMP_WORDS="segment evaluate work --r", COMP_CWORD="3")
    words = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60).stdout.split()
    assert "plain,--rules" in words and "plain,--reference" not in words
