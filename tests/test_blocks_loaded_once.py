"""blocks/loaded_once.py: a group's run loads each block once; any other run loads it each time."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.loaded_once import blocks_loaded_once, load_block


class Counted:
    """Stands for a block class: counts its loads (the real `load` is an API call)."""

    loads: list[str] = []

    @classmethod
    def load(cls, name: str) -> Any:
        cls.loads.append(name)
        if name == "missing":
            raise ValueError("Unable to find block document named missing")
        return cls()


@pytest.fixture(autouse=True)
def no_loads_yet() -> None:
    Counted.loads = []


def test_outside_a_group_every_load_asks_the_server() -> None:
    first, second = load_block(Counted, "a"), load_block(Counted, "a")  # type: ignore[type-var]
    assert first is not second and Counted.loads == ["a", "a"]


def test_within_a_group_each_block_is_loaded_once_and_a_missing_one_is_asked_again() -> None:
    with blocks_loaded_once():
        first = load_block(Counted, "a")  # type: ignore[type-var]
        assert load_block(Counted, "a") is first  # type: ignore[type-var]
        load_block(Counted, "b")  # type: ignore[type-var]
        for _ in range(2):
            with pytest.raises(ValueError):
                load_block(Counted, "missing")  # type: ignore[type-var]
    assert Counted.loads == ["a", "b", "missing", "missing"]
    assert load_block(Counted, "a") is not first  # type: ignore[type-var]  # the group is over
