"""Blocks a group's run loads once for all of its objects.

Each `Block.load` is an API call, and an event the server stores and evaluates; a small file's
run loads three or four (the store's credentials, the pipeline's buckets, the results block,
its contract's Power BI dataset). A process-objects run (flows/process_objects.py) runs its
objects one after the other within seconds: inside `blocks_loaded_once()`, each block is
loaded on first use and handed out again after that. Outside it, `load_block` is `load`, so
a single object's run reads its blocks fresh, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)

_loaded: ContextVar[dict[tuple[type[Block], str], Block] | None] = ContextVar("ivi_blocks_loaded_once", default=None)


@contextmanager
def blocks_loaded_once() -> Iterator[None]:
    """Within this, each block is loaded once (a block that does not exist is asked again)."""
    token = _loaded.set({})
    try:
        yield
    finally:
        _loaded.reset(token)


def load_block(block_class: type[B], name: str) -> B:
    """`block_class.load(name)`, or the block already loaded within `blocks_loaded_once()`."""
    loaded = _loaded.get()
    if loaded is None:
        return block_class.load(name)  # type: ignore[no-any-return]
    key = (block_class, name)
    if key not in loaded:
        loaded[key] = block_class.load(name)
    return loaded[key]  # type: ignore[return-value]
