"""Progress: drawn live on a terminal, absent from plain lines, JSON lines, pipes and cron."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from segment import progress
from segment.cli import cli
from segment.report import LogFormat, Reporter


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("extract")
    result = CliRunner().invoke(cli, ["synth", "--patients", "60", "--out", str(folder), "--no-world",
                                      "--sources", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    return sorted(folder.glob("*.csv"))


def _segment() -> str:
    return shutil.which("segment") or str(Path(sys.executable).parent / "segment")


def _run_on_terminal(args: list[str]) -> tuple[int, str]:
    """Run `segment ARGS` with stdout and stderr on a pseudo-terminal; all it drew, raw."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([_segment(), *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=120)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_terminal_shows_the_steps_of_ingest(extract: list[Path], tmp_path: Path) -> None:
    code, drawn = _run_on_terminal(["ingest", str(tmp_path / "w"), *map(str, extract)])
    assert code == 0, drawn
    assert "ingest: identities resolved" in drawn  # a step, drawn by the live display
    assert "\x1b[?25l" in drawn  # the cursor hidden while the display is live (Rich)


@pytest.mark.parametrize("log_format", ["json", "plain"])
def test_no_progress_on_a_terminal_with_plain_or_json_lines(extract: list[Path], tmp_path: Path,
                                                            log_format: str) -> None:
    code, drawn = _run_on_terminal(["--log-format", log_format, "ingest", str(tmp_path / "w"),
                                    *map(str, extract)])
    assert code == 0, drawn
    assert "ingest: identities resolved" not in drawn and "\x1b[?25l" not in drawn
    if log_format == "json":
        lines = [line for line in drawn.replace("\r\n", "\n").splitlines() if line.strip()]
        for line in lines:
            json.loads(line)  # every line is a JSON object: no bar, no control sequence


def test_no_progress_when_not_on_a_terminal_even_if_rich_is_asked(extract: list[Path], tmp_path: Path) -> None:
    # what cron sees: stderr is a file
    log = tmp_path / "cron.log"
    with log.open("wb") as fh:
        proc = subprocess.run([_segment(), "--log-format", "rich", "ingest", str(tmp_path / "w"),
                               *map(str, extract)], stdout=fh, stderr=fh, timeout=120)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "identities resolved" not in text and "\x1b[" not in text


def test_reporter_installs_a_display_only_for_rich_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for fmt, stream, expected in [(LogFormat.RICH, Tty(), True), (LogFormat.RICH, io.StringIO(), False),
                                  (LogFormat.JSON, Tty(), False), (LogFormat.PLAIN, Tty(), False)]:
        reporter = Reporter(fmt, stdout=io.StringIO(), stderr=stream)
        reporter.install()
        try:
            assert progress.active() is expected, (fmt, type(stream).__name__)
        finally:
            reporter.uninstall()
        assert not progress.active()


def test_nested_steps_and_bars_share_one_live_display() -> None:
    out = io.StringIO()
    display = progress.TerminalProgress(Console(file=out, force_terminal=True, width=100))
    progress.install(display)
    try:
        progress.step("ingest", "reading ehr-patients.csv")
        with progress.bar("census geocoder", total=3) as advance:  # no second Live: no LiveError
            advance(3)
        assert list(progress.track([1, 2, 3], "evaluate", "rules")) == [1, 2, 3]
        progress.step("ingest", "writing events")
        progress.done()
        progress.step("geocode", "provider offline")  # a new display after done()
    finally:
        progress.install(None)
    assert "ingest: reading ehr-patients.csv" in out.getvalue() or "ingest: writing events" in out.getvalue()


def test_hooks_are_no_ops_without_a_display() -> None:
    assert not progress.active()
    advance = progress.step("ingest", "anything", total=10)
    advance(5)
    assert list(progress.track(range(3), "evaluate", "rules")) == [0, 1, 2]
    with progress.bar("x", 2) as adv:
        adv(1)
    progress.done()


def test_a_download_step_counts_bytes() -> None:
    out = io.StringIO()
    display = progress.TerminalProgress(Console(file=out, force_terminal=True, width=120))
    progress.install(display)
    try:
        advance = progress.step("reference", "downloading tl_2019_25_tract.zip", 3_000_000, unit="bytes")
        advance(1_500_000)
        assert display._progress is not None
        display._progress.refresh()
    finally:
        progress.install(None)
    drawn = out.getvalue()
    assert "reference: downloading tl_2019_25_tract.zip" in drawn
    assert "1.5/3.0 MB" in drawn
