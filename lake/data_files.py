"""A version's rows as Parquet data files in the table's location, streamed a batch at a time.

Why not `write_deltalake`: delta-rs 1.6.6's writer keeps part of the stream it is given, so
its peak memory grows with the file (+70 to +120 MB per million rows, whatever its row group
or target file size; delta-rs#3578, #2255). Here pyarrow's `ParquetWriter` writes the batches
as row groups of ROW_GROUP_ROWS straight into a multipart upload (delta-rs' own object store, through
`DeltaStorageHandler`: the same storage options, a 5 MB part buffer), and rolls over to a new
file at `target_file_size`. Memory: one row group and one part, whatever the file's size.

Each file becomes an `AddAction` whose Delta statistics (`numRecords`, `minValues`,
`maxValues`, `nullCount`) come from the Parquet footer the writer just wrote: no second pass
over the rows. Readers skip files with them (delta-rs' pyarrow dataset attaches them to its
fragments), and the export finds a key's files by them.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction

DEFAULT_TARGET_FILE_SIZE = 100 << 20  # delta-rs' default: 100 MiB of Parquet per file
ROW_GROUP_ROWS = 128 * 1024  # ~10 MB of Arrow for `vendas`; readers skip and decode by row group
STATS_STRING_LIMIT = 256  # longer strings: a prefix as the minimum, no maximum (see _encoded)
# The Parquet writer writes each page and page header on its own (1,336 writes for 1M `vendas`
# rows, most under 64 KB), and each reaches the store's stream through Python, so each takes
# the GIL: beside export-csv's upload in the same process, each may wait for it. Gathered into
# 1 MB writes, they are ~20.
SINK_BUFFER_BYTES = 1 << 20


def table_filesystem(table: DeltaTable, storage_options: dict[str, str]) -> pafs.FileSystem:
    """The table's location as a pyarrow filesystem, paths relative to the table root.

    Built on the table's own object store client (`DeltaStorageHandler.from_table`, as
    delta-rs' `to_pyarrow_dataset` does; it takes the table's inner `RawDeltaTable`): a new
    S3 client would cost ~5 ms of CPU, a fifth of a small file's export."""
    return pafs.PyFileSystem(DeltaStorageHandler.from_table(table._table, storage_options))


def data_file_name() -> str:
    """A new data file's name, as delta-rs names its own."""
    return f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"


@dataclass(frozen=True)
class WrittenFile:
    """One data file in the store: its Add action, and the rows it holds."""

    action: AddAction
    rows: int


class DataFileWriter:
    """Writes batches of `schema` into new data files at the table root; `close` hands back
    one WrittenFile per file. A file is complete in the store only once it is closed (its
    multipart upload is completed then): a writer killed before leaves no readable object,
    or complete files that no commit refers to (vacuum's `full=True` deletes them)."""

    def __init__(self, filesystem: pafs.FileSystem, schema: pa.Schema,
                 target_file_size: int | None = None) -> None:
        self.filesystem = filesystem
        self.schema = schema
        self.target_file_size = target_file_size or DEFAULT_TARGET_FILE_SIZE
        self.files: list[WrittenFile] = []
        self._pending: list[pa.RecordBatch] = []  # the next row group's rows
        self._pending_rows = 0
        self._name: str | None = None
        self._sink: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._write_row_group()
            if self._sink.tell() >= self.target_file_size:
                self._finish()

    def _write_row_group(self) -> None:
        """The pending rows as one row group, encoded and on their way to the store now."""
        if not self._pending:
            return
        if self._writer is None:
            self._name = data_file_name()
            self._sink = self.filesystem.open_output_stream(self._name, buffer_size=SINK_BUFFER_BYTES)
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="snappy",
                                            use_dictionary=dictionary_columns(self.schema))
        self._writer.write_table(pa.Table.from_batches(self._pending, self.schema), row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        for batch in batches:
            self.write(batch)

    def close(self) -> list[WrittenFile]:
        self._finish()
        return self.files

    def _finish(self) -> None:
        self._write_row_group()
        if self._writer is None or self._name is None:
            return
        self._writer.close()
        metadata = self._writer.writer.metadata
        size = self._sink.tell()
        self._sink.close()
        self.files.append(WrittenFile(
            AddAction(self._name, size, {}, int(time.time() * 1000), True, delta_stats(metadata, self.schema)),
            metadata.num_rows,
        ))
        self._writer = self._sink = self._name = None


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary-encoding: strings, dates, booleans (few distinct values).
    Not numbers and timestamps: mostly distinct, pyarrow would build a dictionary and drop it
    for each row group. Measured on the 1M-row clean `vendas` file: 0.56 CPU-s to write
    instead of 0.81 with every column tried, and 21 MB of Parquet instead of 28."""
    return [field.name for field in schema
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
            or pa.types.is_string_view(field.type) or pa.types.is_date(field.type) or pa.types.is_boolean(field.type)]


def delta_stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """The file's Delta statistics JSON, folded from its row groups' Parquet statistics.

    A column gets a minimum and maximum only when every row group that has a non-null value
    has them (a writer may leave them out, e.g. for a long string), and a null count only
    when every row group has one. Encoded as Delta writes them: dates `YYYY-MM-DD`,
    timestamps ISO 8601 to the millisecond (UTC ones with `Z`), the minimum rounded down and
    the maximum up, so that a reader comparing at millisecond precision never skips a file
    that holds a value."""
    minimums: dict[str, Any] = {}
    maximums: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for index, field in enumerate(schema):
        low: Any = None
        high: Any = None
        bounded = True
        null_count: int | None = 0
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            statistics = row_group.column(index).statistics
            if statistics is None or not statistics.has_null_count:
                null_count = None
                bounded = False
                continue
            if null_count is not None:
                null_count += statistics.null_count
            if statistics.has_min_max:
                low = statistics.min if low is None else min(low, statistics.min)
                high = statistics.max if high is None else max(high, statistics.max)
            elif statistics.null_count < row_group.num_rows:
                bounded = False  # values without bounds (NaN only, or left out)
        if null_count is not None:
            nulls[field.name] = null_count
        if bounded and low is not None:
            if (encoded := _encoded(low, field.type, upper=False)) is not None:
                minimums[field.name] = encoded
            if (encoded := _encoded(high, field.type, upper=True)) is not None:
                maximums[field.name] = encoded
    return json.dumps({"numRecords": metadata.num_rows, "minValues": minimums, "maxValues": maximums,
                       "nullCount": nulls}, separators=(",", ":"), allow_nan=False)


def _encoded(value: Any, kind: pa.DataType, *, upper: bool) -> Any:
    """One statistic as Delta's JSON holds it; None to leave it out."""
    if isinstance(value, datetime):
        milliseconds = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if upper and milliseconds != value:
            milliseconds += timedelta(milliseconds=1)
        text = milliseconds.replace(tzinfo=None).isoformat(timespec="milliseconds")
        return f"{text}Z" if pa.types.is_timestamp(kind) and kind.tz is not None else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity
    if isinstance(value, bytes):
        return None
    if isinstance(value, str) and len(value) > STATS_STRING_LIMIT:
        return None if upper else value[:STATS_STRING_LIMIT]  # a prefix is never above the value
    return value
