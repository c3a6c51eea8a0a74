"""The clean CSV read back as Arrow record batches, with bounded memory.

pyarrow's streaming CSV reader parses one block at a time (`BLOCK_BYTES`), in the table's
types, and hands each on as it is parsed. Measured on the clean CSV of the 1M-row bench file
and twice that: its peak RSS stays at ~250 MB whatever the size, where polars'
`scan_csv(...).collect_batches()` grew from 305 to 376 MB (it parses ahead of its consumer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

BLOCK_BYTES = 8 << 20  # ~8 MB of CSV per batch: ~100,000 `vendas` rows


def csv_batches(path: Path, schema: pa.Schema, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.RecordBatch]:
    """The clean CSV's rows, a block at a time, its columns typed as `schema` says (an empty
    field is null: the clean CSV writes nulls so, and no clean value is an empty string)."""
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_bytes),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),  # a clean value may hold a line break
        convert_options=pacsv.ConvertOptions(
            column_types={field.name: field.type for field in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    yield from reader
