"""Crafted YAML is refused before objects are built: alias bombs, deep nesting, huge files.

The fault: a 1 KB "billion laughs" campaign file cost 82 s and 819 MiB before it was
refused, and 3,000 nested brackets crashed the loader with a RecursionError.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from segment import config
from segment.cli import cli
from segment.config import load_yaml, load_yaml_text
from segment.errors import ConfigError


def _bomb(levels: int = 9, width: int = 9) -> str:
    items = ", ".join(["lol"] * width)
    lines = ["version: 1", f"l0: &l0 [{items}]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * width)
        lines.append(f"l{i}: &l{i} [{refs}]")
    lines.append(f"code: *l{levels}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast_and_small() -> None:
    text = _bomb()
    assert len(text) < 1024
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as info:
            load_yaml_text(text, "bomb.yaml")
        elapsed = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 20 * 1024 * 1024
    err = info.value
    assert "aliases expand this document" in err.message
    assert err.path == Path("bomb.yaml") and err.line is not None


def test_alias_bomb_campaign_is_one_error_line(tmp_path: Path) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(_bomb())
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "work"), str(campaign),
                                      "--to", str(tmp_path / "out")])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"Error: {campaign}:") and "aliases expand this document" in first
    assert "unexpected internal error" not in result.stderr


def test_many_aliases_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MAX_YAML_ALIASES", 5)
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 6) + "]\n"
    with pytest.raises(ConfigError, match="more than 5 aliases"):
        load_yaml_text(text, "x.yaml")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    text = "version: 1\nx: " + "[" * 3000 + "]" * 3000 + "\n"
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "deep.yaml")
    assert f"nested more than {config.MAX_YAML_DEPTH} levels deep" in info.value.message
    assert info.value.line == 2
    deep_map = "version: 1\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n"
    with pytest.raises(ConfigError, match="levels deep"):
        load_yaml_text(deep_map, "deep.yaml")


def test_oversized_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MAX_YAML_BYTES", 1024)
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\nitems:\n" + "".join(f"  - value-{i}\n" for i in range(200)))
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml(big)
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_text(big.read_text(), big)


def test_ordinary_anchors_and_nesting_still_load() -> None:
    text = (
        "defaults: &fields [first_name, last_name]\n"
        "vendors:\n"
        "  sms: {profile: twilio, fields: *fields}\n"
        "  email: {profile: mailchimp, fields: *fields}\n"
        "base: &base {a: 1}\n"
        "merged: {<<: *base, b: 2}\n"
        "deep: " + "[" * 20 + "1" + "]" * 20 + "\n"
    )
    data = load_yaml_text(text, "ok.yaml")
    assert data["vendors"]["email"]["fields"] == ["first_name", "last_name"]
    assert data["merged"] == {"a": 1, "b": 2}
    assert data.key_lines["merged"] == 6
