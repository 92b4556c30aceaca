"""The memory budget setting (SEGMENT_MEMORY_GB) and batch sizing."""

from __future__ import annotations

import pytest

from segment.errors import ConfigError
from segment.memory import FLOOR_BYTES, GIB, batch_count, machine_memory_bytes, memory_budget_bytes


def test_budget_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_MEMORY_GB", "2.5")
    assert memory_budget_bytes() == int(2.5 * GIB)


def test_default_is_half_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENT_MEMORY_GB", raising=False)
    total = machine_memory_bytes()
    assert total is not None and total > 0
    assert memory_budget_bytes() == max(total // 2, GIB)


def test_tiny_budget_is_floored() -> None:
    assert memory_budget_bytes(0.001) == FLOOR_BYTES


@pytest.mark.parametrize("bad", ["lots", "0", "-1", "nan", "inf"])
def test_bad_budget_names_variable_value_and_valid(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("SEGMENT_MEMORY_GB", bad)
    with pytest.raises(ConfigError) as err:
        memory_budget_bytes()
    message = str(err.value)
    assert "SEGMENT_MEMORY_GB" in message and repr(bad) in message and "positive number" in message


def test_batch_count() -> None:
    assert batch_count(0, 100, GIB) == 1
    assert batch_count(1_000, 100, GIB) == 1
    # 1 GiB budget, half of it for the batch: 512 MiB / 1 KiB per row = 524,288 rows a batch
    assert batch_count(10_000_000, 1024, GIB) == 20
    assert batch_count(524_288, 1024, GIB) == 1
    assert batch_count(524_289, 1024, GIB) == 2
