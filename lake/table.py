"""One raw object's rows in the contract's Delta table: replaced in one atomic commit.

The table holds exactly the latest processed version of each raw object:
- a version the table already holds (same `_source_key` and `_source_etag`) is not written
  again, whatever asks (a forced rerun, a duplicate delivery, a second worker): no commit;
- a new version of a key replaces that key's rows in one commit: the version's rows are
  streamed into new data files (`data_files.py`, bounded memory), then one commit adds them
  and removes the files that held the key's earlier rows (a compacted file that also holds
  other keys' rows is rewritten without the key's rows, and replaced), so a reader sees
  either the old version or the new one, never a mix;
- a writer killed before its commit leaves only data files no commit refers to (readers never
  see them; `maintenance.vacuum` deletes them), and the next run commits one copy.

The commit lands exactly on the table version it was planned against, or not at all
(`max_commit_retries=0`: delta-rs does not rebase it past a concurrent commit). A commit that
lost its version re-plans on the new version: it asks again whether the table already holds
this version and whether this version is still the raw object's current one (`still_current`;
a newer upload's run wins), finds the key's files again, and commits on top. So two writers
of one key never both add rows, and a compaction between planning and committing is seen.
Why not delta-rs' own conflict check: its rebase lets a commit that only adds files (a key's
first version) pass a concurrent one of the same key, and lets a commit remove a file that a
concurrent `optimize.compact()` already removed (its rows would then be in the table twice);
both measured on 1.6.6 (tests/test_lake_schema.py). Writers of different keys commit one
after another on the store's conditional PUT, each re-planning once when it lost the race.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import RemoveAction

from lake.data_files import ROW_GROUP_ROWS, DataFileWriter, WrittenFile, table_filesystem
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
    """`_source_key = '<key>'`, the key as a SQL string literal (quotes doubled): the predicate
    `DeltaTable.delete` takes to take a key out of the table (docs/lake.md)."""
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


def _rows_of(table: DeltaTable, equal: dict[str, str]) -> bool:
    """Whether any row has these column values. The files' statistics prune the others while
    the log is read (`file_pruning_predicate`: a table of 100 small files took 30 ms of CPU a
    lookup when every file became a dataset fragment first); the rest are read."""
    condition = None
    for name, value in equal.items():
        condition = pc.field(name) == value if condition is None else condition & (pc.field(name) == value)
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=[(name, "=", value) for name, value in equal.items()])
    return bool(dataset.head(1, columns=[SOURCE_KEY], filter=condition).num_rows)


def holds_version(table: DeltaTable, source: SourceVersion) -> bool:
    return _rows_of(table, {SOURCE_KEY: source.key, SOURCE_ETAG: source.etag})


def holds_key(table: DeltaTable, key: str) -> bool:
    return _rows_of(table, {SOURCE_KEY: key})


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
    columns no longer fit the table, and CommitFailedError when the table kept moving under
    it for COMMIT_ATTEMPTS plans in a row (retry: the next attempt starts over).
    """
    schema = table_schema(target.columns)
    table = _open_or_create(target.uri, target.storage_options, schema, target.name)
    added = check_compatible(arrow_schema(table), schema, target.uri)
    if skipped := _skip_reason(table, source, expected_rows, still_current):
        return LakeWrite(target.uri, table.version(), 0, skipped=skipped)
    if added:
        _add_columns(table, schema, added, source)
    filesystem = table_filesystem(table, target.storage_options)
    count = _RowCount()
    writer = DataFileWriter(filesystem, schema, target_file_size)
    writer.write_all(lineage_batches(chunks, schema, source, count, datetime.now(UTC)))
    new_files = writer.close()
    rewritten: dict[str, _Rewrite] = {}  # a file holding the key: what to do with it (kept across plans)
    for attempt in range(COMMIT_ATTEMPTS):
        if attempt and (skipped := _skip_reason(table, source, expected_rows, still_current)):
            return LakeWrite(target.uri, table.version(), 0, skipped=skipped)
        planned = table.version()
        removes, copies = _replaced_files(table, source.key, filesystem, rewritten, target_file_size)
        if not new_files and not removes:
            return LakeWrite(target.uri, planned, 0, skipped="no clean row, and no earlier row of this key")
        try:
            _commit(table, new_files + copies, removes, source, count.rows)
        except CommitFailedError:
            table.update_incremental()
            if table.version() == planned:
                raise  # not a lost race: the store refused the commit
            continue  # another commit took the version: plan again on top of it
        return LakeWrite(target.uri, planned + 1, count.rows)
    raise CommitFailedError(f"{target.uri} moved under {COMMIT_ATTEMPTS} plans of {source.key} in a row")


# A writer re-plans when another commit took its version; busy tables (many writers at once)
# make a few rounds, this many means something commits in a loop: the task retries later.
COMMIT_ATTEMPTS = 30


def _skip_reason(
    table: DeltaTable, source: SourceVersion, expected_rows: int | None, still_current: Callable[[], bool]
) -> str | None:
    """Why nothing is to be committed for `source` at the table's loaded version, if so."""
    if holds_version(table, source):
        return f"the table holds eTag {source.etag} already"
    if expected_rows == 0 and not holds_key(table, source.key):
        return "no clean row, and no earlier row of this key"
    if not still_current():  # asked after the table was read: a newer version's commit moves it
        return f"eTag {source.etag} is no longer the object's current version"
    return None


def _add_columns(table: DeltaTable, schema: pa.Schema, added: list[str], source: SourceVersion) -> None:
    """The contract's new columns into the table's schema, in a commit of their own before the
    rows' (an append of files cannot change the schema: delta-rs keeps the table's). A reader
    in between sees the new columns, null in every row. Another writer that added them first
    is fine."""
    fields = DeltaSchema.from_arrow(pa.schema([schema.field(name) for name in added])).fields
    try:
        table.alter.add_columns(fields, commit_properties=_commit_properties(source, {}))
    except DeltaError:
        table.update_incremental()
        if check_compatible(arrow_schema(table), schema, table.table_uri):
            raise
    table.update_incremental()


@dataclass
class _Rewrite:
    """A data file whose `_source_key` range covers a key: holds none of its rows (left
    alone), only its rows (removed), or its rows and others (removed, the others copied)."""

    holds_key: bool
    copies: list[WrittenFile] = field(default_factory=list)


def _replaced_files(
    table: DeltaTable, key: str, filesystem: pafs.FileSystem, rewritten: dict[str, _Rewrite],
    target_file_size: int | None,
) -> tuple[list[RemoveAction], list[WrittenFile]]:
    """The files holding `key`'s rows at the table's loaded version (by their `_source_key`
    statistics; a file without them is read), and the copies of their other rows."""
    files = pa.table(table.get_add_actions(flatten=True))
    names = set(files.column_names)
    low = files.column(f"min.{SOURCE_KEY}").to_pylist() if f"min.{SOURCE_KEY}" in names else [None] * files.num_rows
    high = files.column(f"max.{SOURCE_KEY}").to_pylist() if f"max.{SOURCE_KEY}" in names else [None] * files.num_rows
    removes: list[RemoveAction] = []
    copies: list[WrittenFile] = []
    now = int(datetime.now(UTC).timestamp() * 1000)
    for path, size, first, last in zip(files.column("path").to_pylist(), files.column("size_bytes").to_pylist(),
                                       low, high, strict=True):
        if first is not None and last is not None and not first <= key <= last:
            continue
        if first != key or last != key:  # other keys' rows may share the file (compacted)
            if path not in rewritten:
                rewritten[path] = _rewrite(filesystem, path, key, target_file_size)
            if not rewritten[path].holds_key:
                continue
            copies += rewritten[path].copies
        removes.append(RemoveAction(path, True, now, size))
    return removes, copies


def _rewrite(filesystem: pafs.FileSystem, path: str, key: str, target_file_size: int | None) -> _Rewrite:
    """Whether the file holds `key`'s rows, and its other rows copied into new files, in the
    file's own schema. Both passes stream the file a batch at a time: a compacted file may
    hold millions of rows."""
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        mine = sum(pc.sum(pc.equal(batch.column(0), key)).as_py() or 0
                   for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS, columns=[SOURCE_KEY]))
        if mine == 0:
            return _Rewrite(holds_key=False)
        if mine == parquet.metadata.num_rows:
            return _Rewrite(holds_key=True)
        writer = DataFileWriter(filesystem, parquet.schema_arrow, target_file_size)
        for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS):
            writer.write(batch.filter(pc.field(SOURCE_KEY).is_null() | (pc.field(SOURCE_KEY) != key)))
        return _Rewrite(holds_key=True, copies=writer.close())


def _commit_properties(source: SourceVersion, metrics: dict[str, int], retries: int | None = None) -> CommitProperties:
    """The commit's custom metadata: the raw object version (`ivi lake show` prints it) and
    the counts delta-rs' own writes record."""
    metadata: dict[str, Any] = {COMMIT_KEY: source.key, COMMIT_ETAG: source.etag}
    if metrics:
        metadata["operationMetrics"] = metrics
    return CommitProperties(custom_metadata=metadata, max_commit_retries=retries)


def _commit(table: DeltaTable, added: list[WrittenFile], removes: list[RemoveAction],
            source: SourceVersion, rows: int) -> None:
    """One commit of the files, on exactly the table's loaded version (CommitFailedError when
    another commit took it)."""
    added_rows = sum(file.rows for file in added)
    metrics = {"num_added_files": len(added), "num_removed_files": len(removes),
               "num_added_rows": added_rows, "num_copied_rows": added_rows - rows}
    table.create_write_transaction(
        [file.action for file in added] + removes, mode="append", schema=arrow_schema(table),
        commit_properties=_commit_properties(source, metrics, retries=0),
    )


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
