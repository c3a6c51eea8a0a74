"""The whole-file row and id memory (pure logic)."""

from __future__ import annotations

import numpy as np
import polars as pl

import pytest

from processing import dedup
from processing.dedup import SeenIds, SeenRows, SortedRuns


def test_sorted_runs_find_what_was_added_and_nothing_else() -> None:
    values = SortedRuns(np.int64)
    values.add(np.array([10, 30, 50]))
    values.add(np.array([20]))
    assert len(values) == 4
    assert values.contains(np.array([-1, 10, 20, 30, 31, 99])).tolist() == [False, True, True, True, False, False]


def test_sorted_runs_merge_like_a_binary_counter_and_stop_at_the_size_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedup, "MAX_RUN_KEYS", 64)
    values = SortedRuns(np.int64, payload_dtype=np.int64)
    rng = np.random.default_rng(7)
    keys = rng.permutation(np.arange(1_000, dtype=np.int64) * 3)
    for start in range(0, len(keys), 8):  # 125 chunks of 8 keys
        batch = np.sort(keys[start : start + 8])
        values.add(batch, batch * 10)
    sizes = [len(run) for run, _ in values.runs]
    assert sum(sizes) == 1_000 and max(sizes) == 64
    assert sizes == sorted(sizes, reverse=True)  # older runs are the larger ones
    assert all((np.diff(run) > 0).all() for run, _ in values.runs)
    probe = np.array([0, 1, 3, 2_997, 2_998, 3_000])
    found, payload = values.find(probe)
    assert found.tolist() == [True, False, True, True, False, False]
    assert payload[found].tolist() == [0, 30, 29_970]


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
    assert ids.reused(pl.Series([None, 7, 4, 7, 3], dtype=pl.Int64)).tolist() == [False, False, False, True, True]


def test_repeats_within_a_chunk_are_later_occurrences_whatever_their_sorted_place() -> None:
    seen = SeenRows()
    assert seen.duplicates(pl.DataFrame(schema={"a": pl.String}), ["a"]).tolist() == []
    rows = pl.DataFrame({"a": ["c", "a", "b", "a", "c", "c", "d"]})
    assert seen.duplicates(rows, ["a"]).tolist() == [False, False, False, True, True, True, False]
    assert seen.duplicates(rows.reverse(), ["a"]).tolist() == [True] * 7


def test_index_costs_twelve_bytes_a_row() -> None:
    seen = SeenRows()
    frame = pl.DataFrame({"a": [str(i) for i in range(100_000)]})
    seen.duplicates(frame, ["a"])
    assert seen.nbytes == 100_000 * 12
