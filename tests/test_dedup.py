"""The whole-file row and id memory (pure logic)."""

from __future__ import annotations

import numpy as np
import polars as pl

from processing.dedup import SeenIds, SeenRows, SortedSet


def test_sorted_set_finds_what_was_added_and_nothing_else() -> None:
    values = SortedSet(np.int64)
    values.add(np.array([50, 10, 30]))
    values.add(np.array([20]))
    assert values.values.tolist() == [10, 20, 30, 50]
    assert values.contains(np.array([30, 31, 10, 99, -1])).tolist() == [True, False, True, False, False]


def test_identical_rows_are_duplicates_across_chunks_but_not_near_identical_ones() -> None:
    seen = SeenRows()
    first = pl.DataFrame({"a": ["1", "2", "1"], "b": ["x", "y", "x"]})
    second = pl.DataFrame({"a": ["2", "2", "1"], "b": ["y", "y ", "X"]})
    assert seen.duplicates(first, ["a", "b"]).tolist() == [False, False, True]
    assert seen.duplicates(second, ["a", "b"]).tolist() == [True, False, False]


def test_an_id_reused_later_is_flagged_the_first_use_is_not() -> None:
    ids = SeenIds()
    assert ids.reused(pl.Series([1, 2, None, 1, None])).tolist() == [False, False, False, True, False]
    assert ids.reused(pl.Series([2, 3, 3])).tolist() == [True, False, True]


def test_index_costs_about_sixteen_bytes_a_row() -> None:
    seen = SeenRows()
    frame = pl.DataFrame({"a": [str(i) for i in range(100_000)]})
    seen.duplicates(frame, ["a"])
    assert 100_000 * 16 <= seen.nbytes <= 100_000 * 17
