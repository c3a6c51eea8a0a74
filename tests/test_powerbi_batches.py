"""Rows become JSON the service accepts, in deterministic batches within its limits."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powerbi.push import (
    MAX_STRING_CHARS,
    Batch,
    RowTooLarge,
    rows_to_json_batches,
)

COLUMNS = {"id": "Int64", "price": "Double", "paid": "Boolean", "day": "DateTime", "who": "String"}


def decoded(batches: list[Batch]) -> list[dict[str, Any]]:
    return [row for batch in batches for row in json.loads(batch.body)]


def sample_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "price": i / 4,
            "paid": i % 2 == 0,
            "day": date(2026, 1, 1 + i % 28),
            "who": f"cliente {i}",
        }
        for i in range(count)
    ]


def test_batches_hold_at_most_10000_rows_and_keep_every_row_in_order() -> None:
    batches = list(rows_to_json_batches(sample_rows(25_001), COLUMNS))
    assert [b.row_count for b in batches] == [10_000, 10_000, 5_001]
    assert [b.number for b in batches] == [0, 1, 2]
    assert [b.first_row for b in batches] == [0, 10_000, 20_000]
    assert [row["id"] for row in decoded(batches)] == list(range(25_001))


def test_batches_never_exceed_the_byte_limit() -> None:
    rows = [{"id": i, "who": "x" * (i % 300)} for i in range(2_000)]
    batches = list(
        rows_to_json_batches(rows, {"id": "Int64", "who": "String"}, max_bytes=15 * 1024)
    )
    assert len(batches) > 1
    assert all(len(b.body) <= 15 * 1024 for b in batches)
    assert all(len(b.body) + 400 > 15 * 1024 for b in batches[:-1])  # and are filled up
    assert [row["id"] for row in decoded(batches)] == list(range(2_000))


def test_nan_and_infinity_become_null_and_infinities_are_counted() -> None:
    rows = [
        {"id": 1, "price": math.nan},
        {"id": 2, "price": math.inf},
        {"id": 3, "price": -math.inf},
        {"id": math.nan, "price": 1.5},
    ]
    (batch,) = rows_to_json_batches(rows, COLUMNS)
    assert b"NaN" not in batch.body and b"Infinity" not in batch.body
    assert [(r["id"], r["price"]) for r in json.loads(batch.body)] == [
        (1, None),
        (2, None),
        (3, None),
        (None, 1.5),
    ]
    assert batch.infinite_nulled == 2  # NaN is how frames spell "missing"; infinity is data lost


def test_dates_and_timestamps_become_iso_8601() -> None:
    rows = [
        {"day": date(2026, 2, 28)},
        {"day": datetime(2026, 2, 28, 13, 45, 7)},
        {"day": datetime(2026, 2, 28, 13, 45, tzinfo=UTC)},
        {"day": "2026-03-01"},
        {"day": None},
    ]
    (batch,) = rows_to_json_batches(rows, {"day": "DateTime"})
    assert [r["day"] for r in json.loads(batch.body)] == [
        "2026-02-28T00:00:00",
        "2026-02-28T13:45:07",
        "2026-02-28T13:45:00+00:00",
        "2026-03-01T00:00:00",
        None,
    ]


def test_int64_columns_carry_json_integers() -> None:
    rows = [{"id": 3.0}, {"id": "42"}, {"id": True}, {"id": 2**62}]
    (batch,) = rows_to_json_batches(rows, {"id": "Int64"})
    assert batch.body == b'[{"id":3},{"id":42},{"id":1},{"id":4611686018427387904}]'


def test_strings_are_cut_at_4000_characters_and_the_cuts_counted() -> None:
    rows = [{"who": "ç" * 4_001}, {"who": "a" * 4_000}, {"who": "b" * 10_000}]
    (batch,) = rows_to_json_batches(rows, {"who": "String"})
    assert [len(r["who"]) for r in json.loads(batch.body)] == [MAX_STRING_CHARS] * 3
    assert batch.strings_cut == 2


def test_the_same_rows_give_the_same_batches_and_numbers() -> None:
    first = list(rows_to_json_batches(sample_rows(12_345), COLUMNS))
    second = list(rows_to_json_batches(sample_rows(12_345), COLUMNS))
    assert first == second
    assert [b.digest for b in first] == [b.digest for b in second]


def test_a_polars_frame_and_the_same_rows_as_dicts_give_the_same_batches() -> None:
    rows = sample_rows(3_000)
    rows[5]["price"] = math.nan
    rows[6]["who"] = None
    frame = pl.DataFrame(rows).with_columns(pl.lit("ignored").alias("not_in_table"))
    assert list(rows_to_json_batches(frame, COLUMNS)) == list(rows_to_json_batches(rows, COLUMNS))


def test_a_polars_frame_gets_the_same_conversions_as_dicts() -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": 1,
            "price": math.inf,
            "paid": None,
            "day": datetime(2026, 1, 2, 3, 4, 5, 6),
            "who": "ç" * 4_500,
        },
        {"id": None, "price": -math.inf, "paid": True, "day": datetime(2026, 1, 2), "who": "a"},
        {"id": 3, "price": math.nan, "paid": False, "day": None, "who": None},
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "id": pl.Int32,
            "price": pl.Float32,
            "paid": pl.Boolean,
            "day": pl.Datetime("us", "UTC"),
            "who": pl.String,
        },
    )
    from_frame = list(rows_to_json_batches(frame, COLUMNS))
    from_dicts = list(rows_to_json_batches(frame.to_dicts(), COLUMNS))
    assert decoded(from_frame) == decoded(from_dicts)
    assert decoded(from_frame)[0]["day"] == "2026-01-02T03:04:05.000006+00:00"
    assert [(b.strings_cut, b.infinite_nulled) for b in from_frame] == [(1, 2)]
    assert [(b.strings_cut, b.infinite_nulled) for b in from_dicts] == [(1, 2)]


def test_chunks_of_a_frame_give_the_same_batches_as_the_whole_frame() -> None:
    frame = pl.DataFrame(sample_rows(23_456))
    whole = list(rows_to_json_batches(frame, COLUMNS))
    chunks = [frame.slice(offset, 3_001) for offset in range(0, frame.height, 3_001)]
    assert list(rows_to_json_batches(iter(chunks), COLUMNS)) == whole
    assert [b.row_count for b in whole] == [10_000, 10_000, 3_456]


def test_a_frame_column_of_an_unexpected_type_still_converts_or_names_the_row() -> None:
    frame = pl.DataFrame({"id": [1.0, 2.0], "who": [1, 2]})  # floats for Int64, ints for String
    (batch,) = rows_to_json_batches(frame, {"id": "Int64", "who": "String"})
    assert batch.body == b'[{"id":1,"who":"1"},{"id":2,"who":"2"}]'
    with pytest.raises(ValueError, match=r"row 1, column 'id'"):
        list(rows_to_json_batches(pl.DataFrame({"id": [1.0, 2.5]}), {"id": "Int64"}))


def test_missing_columns_are_null_and_other_keys_are_left_out() -> None:
    (batch,) = rows_to_json_batches(
        [{"id": 1, "secret_internal": "x"}], {"id": "Int64", "who": "String"}
    )
    assert batch.body == b'[{"id":1,"who":null}]'


def test_a_value_that_is_not_its_type_names_the_row_and_column() -> None:
    with pytest.raises(ValueError, match=r"row 1, column 'id'"):
        list(rows_to_json_batches([{"id": 1}, {"id": "abc"}], {"id": "Int64"}))


def test_a_row_bigger_than_a_whole_request_raises() -> None:
    with pytest.raises(RowTooLarge):
        list(rows_to_json_batches([{"who": "x" * 3_999}] * 5, {"who": "String"}, max_bytes=2_000))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=200), min_size=0, max_size=120),
    max_rows=st.integers(min_value=1, max_value=50),
    max_bytes=st.integers(min_value=450, max_value=3_000),  # a 200-é row is 424 bytes,
)
def test_batches_always_respect_both_limits_and_lose_nothing(
    sizes: list[int], max_rows: int, max_bytes: int
) -> None:
    rows = [{"id": i, "who": "é" * size} for i, size in enumerate(sizes)]
    batches = list(
        rows_to_json_batches(rows, {"id": "Int64", "who": "String"}, max_rows, max_bytes)
    )
    assert all(1 <= b.row_count <= max_rows and len(b.body) <= max_bytes for b in batches)
    assert [b.number for b in batches] == list(range(len(batches)))
    assert decoded(batches) == rows
