"""One raw object's rows in the contract's Delta table: replaced in one atomic commit.

The table holds exactly the latest processed version of each raw object:
- a version the table already holds (same `_source_key` and `_source_etag`) is not written
  again, whatever asks (a forced rerun, a duplicate delivery, a second worker): no commit;
- a new version of a key replaces that key's rows with one `overwrite` whose predicate is
  `_source_key = '<key>'`: the old rows' files are removed and the new ones added in the same
  commit, so a reader sees either the old version or the new one, never a mix;
- a writer killed before its commit leaves only data files no commit refers to (readers never
  see them; `maintenance.vacuum` deletes them), and the next run commits one copy.

Two writers of one key at once: the later commit finds the earlier one's files under its
predicate and fails with `CommitFailedError` (delta-rs' conflict check); the caller retries,
and on the retry `still_current` says whether this version is still the raw object's current
one (a newer upload's run wins). Writers of different keys commit side by side: delta-rs
rebases a commit whose version number was taken by another onto the new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lake.schema import INGESTED_AT, SOURCE_ETAG, SOURCE_KEY, LakeColumn, check_compatible, table_schema

COMMIT_KEY = "ivi.source_key"  # the commit's custom metadata, shown by `ivi lake show`
COMMIT_ETAG = "ivi.source_etag"


@dataclass(frozen=True)
class SourceVersion:
    """The raw object version whose rows are written."""

    key: str
    etag: str


@dataclass(frozen=True)
class LakeWrite:
    """What one export did to the table: its version afterwards, and the rows written
    (0, with a reason, when nothing was committed)."""

    table: str
    version: int
    rows: int
    skipped: str | None = None

    def as_report(self) -> dict[str, object]:
        report: dict[str, object] = {"lake_table": self.table, "lake_version": self.version, "lake_rows": self.rows}
        if self.skipped:
            report["lake_skipped"] = self.skipped
        return report


@dataclass
class _RowCount:
    rows: int = 0


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_text(error: BaseException) -> str:
    """delta-rs' error as one plain line (it colours its cause chain and splits it with `↳`)."""
    text = _ANSI.sub("", str(error)).replace("↳", ":")
    return f"{type(error).__name__}: {' '.join(text.split())}"


def key_predicate(key: str) -> str:
    """`_source_key = '<key>'`, the key as a SQL string literal (quotes doubled)."""
    return f"{SOURCE_KEY} = '{key.replace(chr(39), chr(39) * 2)}'"


def open_table(uri: str, storage_options: dict[str, str]) -> DeltaTable | None:
    """The table at `uri`, or None when there is none yet."""
    try:
        return DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        return None


def arrow_schema(table: DeltaTable) -> pa.Schema:
    """The table's schema as a pyarrow schema (delta-rs hands out an arro3 one)."""
    return pa.schema(table.schema().to_arrow())


# Every upload is a commit, and every commit's writer first replays the log: a checkpoint
# every 10 commits (Spark's default) instead of delta-rs' 100 keeps that replay to at most
# nine JSON files, each one GET from the store.
TABLE_PROPERTIES = {"delta.checkpointInterval": "10"}


def _open_or_create(uri: str, storage_options: dict[str, str], schema: pa.Schema, name: str) -> DeltaTable:
    table = open_table(uri, storage_options)
    if table is not None:
        return table
    try:
        DeltaTable.create(uri, schema=schema, mode="ignore", name=name, storage_options=storage_options,
                          description=f"Mini Pipeline IVI: the latest processed version of each `{name}` object",
                          configuration=TABLE_PROPERTIES)
    except DeltaError:
        pass  # another writer created it between our look and our create: use theirs
    return DeltaTable(uri, storage_options=storage_options)


def _rows_of(table: DeltaTable, condition: pc.Expression) -> bool:
    """Whether any row matches (file statistics on `_source_key` skip the other files)."""
    return bool(table.to_pyarrow_dataset().head(1, columns=[SOURCE_KEY], filter=condition).num_rows)


def holds_version(table: DeltaTable, source: SourceVersion) -> bool:
    return _rows_of(table, (pc.field(SOURCE_KEY) == source.key) & (pc.field(SOURCE_ETAG) == source.etag))


def holds_key(table: DeltaTable, key: str) -> bool:
    return _rows_of(table, pc.field(SOURCE_KEY) == key)


def lineage_batches(
    chunks: Iterable[pa.Table | pa.RecordBatch],
    schema: pa.Schema,
    source: SourceVersion,
    count: _RowCount,
    ingested_at: datetime,
) -> Iterator[pa.RecordBatch]:
    """Each chunk of clean rows in the table's schema: cast to its types, absent optional
    columns as nulls, the lineage columns filled in. One chunk in memory at a time."""
    for chunk in chunks:
        rows = chunk.num_rows
        present = set(chunk.schema.names)
        lineage: dict[str, Any] = {SOURCE_KEY: source.key, SOURCE_ETAG: source.etag, INGESTED_AT: ingested_at}
        arrays = []
        for column in schema:
            if column.name in lineage:
                arrays.append(pc.fill_null(pa.nulls(rows, column.type), pa.scalar(lineage[column.name], column.type)))
            elif column.name in present:
                arrays.append(chunk.column(column.name).cast(column.type))
            else:
                arrays.append(pa.nulls(rows, column.type))
        count.rows += rows
        yield from pa.Table.from_arrays(arrays, schema=schema).to_batches()


@dataclass
class LakeTarget:
    """A contract's table: where it is, how to reach it, and the contract's columns."""

    uri: str
    name: str
    columns: list[LakeColumn]
    storage_options: dict[str, str] = field(repr=False)


def replace_source(
    target: LakeTarget,
    chunks: Iterable[pa.Table | pa.RecordBatch],
    source: SourceVersion,
    *,
    expected_rows: int | None = None,
    still_current: Callable[[], bool] = lambda: True,
    target_file_size: int | None = None,
) -> LakeWrite:
    """Make the table hold `source`'s rows (the clean rows in `chunks`) and no other rows of
    its key, in one commit; nothing when it holds them already or `source` is superseded.

    Raises LakeSchemaError (naming the column) before writing anything when the contract's
    columns no longer fit the table, and CommitFailedError when a concurrent commit touched
    this key (retry: the next attempt sees that commit).
    """
    schema = table_schema(target.columns)
    table = _open_or_create(target.uri, target.storage_options, schema, target.name)
    check_compatible(arrow_schema(table), schema, target.uri)
    if holds_version(table, source):
        return LakeWrite(target.uri, table.version(), 0, skipped=f"the table holds eTag {source.etag} already")
    if expected_rows == 0 and not holds_key(table, source.key):
        return LakeWrite(target.uri, table.version(), 0, skipped="no clean row, and no earlier row of this key")
    if not still_current():  # checked after the table was read: a newer version's commit conflicts
        return LakeWrite(target.uri, table.version(), 0, skipped=f"eTag {source.etag} is no longer the object's current version")
    count = _RowCount()
    reader = pa.RecordBatchReader.from_batches(
        schema, lineage_batches(chunks, schema, source, count, datetime.now(UTC))
    )
    write_deltalake(
        table,
        reader,
        mode="overwrite",
        predicate=key_predicate(source.key),
        schema_mode="merge",
        storage_options=target.storage_options,
        target_file_size=target_file_size,
        commit_properties=CommitProperties(custom_metadata={COMMIT_KEY: source.key, COMMIT_ETAG: source.etag}),
    )
    return LakeWrite(target.uri, table.version(), count.rows)


@dataclass(frozen=True)
class TableDescription:
    """What `ivi lake show` prints."""

    uri: str
    version: int
    rows: int
    columns: list[tuple[str, str]]
    commits: list[dict[str, Any]]


def describe(uri: str, storage_options: dict[str, str], commits: int = 10) -> TableDescription | None:
    """The table's version, row count, columns and latest commits; None when there is none."""
    table = open_table(uri, storage_options)
    if table is None:
        return None
    columns = [(column.name, str(column.type)) for column in arrow_schema(table)]
    return TableDescription(uri, table.version(), table.count(), columns, table.history(commits))
