from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from segment.config import LineDict, Settings, load_yaml, load_yaml_text, validate
from segment.errors import ConfigError, invalid_value


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    days: int


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int
    items: list[Inner]


def test_line_numbers_are_kept() -> None:
    data = load_yaml_text("version: 1\nitems:\n  - kind: a\n    days: 3\n", "x.yaml")
    assert isinstance(data, LineDict)
    assert data.line_of("items") == 2
    assert data["items"].item_lines == [3]
    assert data["items"][0].line_of("days") == 4


def test_syntax_error_points_at_line_with_context() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    err = info.value
    assert err.line is not None and err.line >= 2
    assert err.one_line().startswith("bad.yaml:")
    assert err.context is not None and "| b: [1, 2" in err.context


def test_python_object_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="object tags are refused"):
        load_yaml_text("x: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate key `a`") as info:
        load_yaml_text("a: 1\na: 2\n", "dup.yaml")
    assert info.value.line == 2


def test_validation_error_names_line_key_value() -> None:
    raw = load_yaml_text("version: 1\nitems:\n  - kind: a\n    days: many\n", "r.yaml")
    with pytest.raises(ConfigError) as info:
        validate(Outer, raw, "r.yaml")
    msg = info.value.one_line()
    assert msg.startswith("r.yaml:4: key `items[0].days`: found 'many';")


def test_unknown_key_lists_valid_keys() -> None:
    raw = load_yaml_text("version: 1\nitems: []\nextra: 2\n", "r.yaml")
    with pytest.raises(ConfigError) as info:
        validate(Outer, raw, "r.yaml")
    assert info.value.one_line() == "r.yaml:3: unknown key `extra`; valid keys are: items, version"


def test_missing_key() -> None:
    raw = load_yaml_text("items: []\n", "r.yaml")
    with pytest.raises(ConfigError, match="key `version` is required"):
        validate(Outer, raw, "r.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_invalid_value_message_shape() -> None:
    err = invalid_value("kind", "screen", ["screening", "risk"], path="f.yaml", line=3, rule_id="r1")
    assert err.one_line() == (
        "f.yaml:3: r1: key `kind`: found 'screen'; valid options are: screening, risk"
    )


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGMENT_REFERENCE", str(tmp_path / "ref"))
    monkeypatch.setenv("SEGMENT_TIGER_URL", "http://127.0.0.1:9/tiger/")
    s = Settings.from_env()
    assert s.reference_dir == tmp_path / "ref"
    assert s.tiger_base_url == "http://127.0.0.1:9/tiger"
    assert Settings.from_env(reference_dir=tmp_path).reference_dir == tmp_path
