"""The lake core without a store: a contract's columns as Arrow types, which table changes are
refused (naming the column), the rows as the table gets them, the key's SQL predicate, the
data files' Delta statistics, and what delta-rs' commit does with hand-built actions (on a
local table)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake.transaction import AddAction

from flows.export_lake import lake_columns
from lake.schema import (
    INGESTED_AT,
    SOURCE_ETAG,
    SOURCE_KEY,
    LakeColumn,
    LakeSchemaError,
    check_compatible,
    table_schema,
)
from lake.table import SourceVersion, _RowCount, error_text, key_predicate, lineage_batches
from processing.contract import load_contract


def test_each_contract_type_has_its_arrow_type_and_the_lineage_columns_come_last() -> None:
    schema = table_schema([
        LakeColumn("n", "int"), LakeColumn("v", "decimal"), LakeColumn("d", "date"),
        LakeColumn("naive", "datetime"), LakeColumn("utc", "datetime", utc=True),
        LakeColumn("s", "string"), LakeColumn("b", "boolean"),
    ])
    assert [(f.name, f.type) for f in schema] == [
        ("n", pa.int64()), ("v", pa.float64()), ("d", pa.date32()), ("naive", pa.timestamp("us")),
        ("utc", pa.timestamp("us", tz="UTC")), ("s", pa.string()), ("b", pa.bool_()),
        (SOURCE_KEY, pa.string()), (SOURCE_ETAG, pa.string()), (INGESTED_AT, pa.timestamp("us", tz="UTC")),
    ]
    assert all(field.nullable for field in schema)


def test_the_vendas_contract_maps_its_date_and_decimals() -> None:
    schema = table_schema(lake_columns(load_contract("vendas")))
    assert schema.field("data_venda").type == pa.date32()
    assert schema.field("preco_unitario").type == pa.float64()
    assert schema.field("id_venda").type == pa.int64()
    assert schema.names[:9] == load_contract("vendas").column_names


def test_a_contract_column_named_like_a_lineage_column_is_refused() -> None:
    with pytest.raises(LakeSchemaError, match="`_source_key` is a lineage column"):
        table_schema([LakeColumn("_source_key", "string")])


def test_an_added_column_is_an_evolution_and_strings_of_any_width_are_one_type() -> None:
    table = pa.schema([("a", pa.int64()), ("s", pa.large_string())])
    wanted = pa.schema([("a", pa.int64()), ("s", pa.string()), ("new", pa.date32())])
    assert check_compatible(table, wanted, "s3://lake/t") == ["new"]


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        (pa.schema([("a", pa.int32()), ("s", pa.string())]), "column `a` is int64 in s3://lake/t but the contract makes it int32"),
        (pa.schema([("a", pa.float64()), ("s", pa.string())]), "column `a` is int64"),
        (pa.schema([("a", pa.int64())]), "column `s` is in s3://lake/t but no longer in the contract"),
        (pa.schema([("a", pa.int64()), ("t", pa.string())]), "column `s` .*removed or renamed"),
    ],
)
def test_an_incompatible_change_is_refused_naming_the_column(wanted: pa.Schema, message: str) -> None:
    with pytest.raises(LakeSchemaError, match=message):
        check_compatible(pa.schema([("a", pa.int64()), ("s", pa.string())]), wanted, "s3://lake/t")


def test_rows_get_the_table_types_nulls_for_absent_columns_and_their_lineage() -> None:
    schema = table_schema([LakeColumn("n", "int"), LakeColumn("d", "date"), LakeColumn("opt", "string")])
    count = _RowCount()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    chunks = [pa.table({"n": pa.array([1, 2], pa.int32()), "d": [date(2024, 1, 1), None]}),
              pa.table({"n": pa.array([3], pa.int64()), "d": [date(2024, 1, 3)]})]
    batches = list(lineage_batches(chunks, schema, SourceVersion("vendas/a'b.csv", "e1"), count, at))
    assert all(batch.schema == schema for batch in batches)
    rows = pa.Table.from_batches(batches).to_pylist()
    assert count.rows == 3 and [row["n"] for row in rows] == [1, 2, 3]
    assert rows[1] == {"n": 2, "d": None, "opt": None, SOURCE_KEY: "vendas/a'b.csv", SOURCE_ETAG: "e1",
                       INGESTED_AT: at}


def test_the_key_predicate_quotes_any_key() -> None:
    assert key_predicate("vendas/x.csv") == "_source_key = 'vendas/x.csv'"
    assert key_predicate("o'brien/a''b.csv") == "_source_key = 'o''brien/a''''b.csv'"


def test_delta_rs_errors_become_one_plain_line() -> None:
    error = OSError("Generic S3 error \x1b[31m↳\x1b[0m Error performing GET\n  \x1b[31m↳\x1b[0m Connection refused")
    assert error_text(error) == "OSError: Generic S3 error : Error performing GET : Connection refused"


def _local_file(root: Path, key: str) -> AddAction:
    """A one-row data file of `key` in a local table's directory, as an Add action."""
    from deltalake import DeltaTable

    from lake.data_files import DataFileWriter, table_filesystem

    writer = DataFileWriter(table_filesystem(DeltaTable(str(root)), {}), _LOCAL_SCHEMA)
    writer.write(pa.record_batch({"id": pa.array([1], pa.int64()), SOURCE_KEY: [key]}, schema=_LOCAL_SCHEMA))
    [written] = writer.close()
    return written.action


_LOCAL_SCHEMA = pa.schema([("id", pa.int64()), (SOURCE_KEY, pa.string())])


def test_delta_rs_rebases_a_commit_of_files_past_what_the_export_must_see(tmp_path: Path) -> None:
    """Why `replace_source` commits with `max_commit_retries=0` (delta-rs 1.6.6, on a local
    table; a canary should delta-rs change): rebased past a concurrent commit, a commit that
    only adds files passes one that added the same key, and a commit that removes a file
    passes a compaction that already removed it (the file's rows then count twice). Only two
    removes of one file conflict. Without rebasing, any concurrent commit fails the commit."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import RemoveAction

    root = tmp_path / "t"
    for key in ("a", "b"):
        write_deltalake(str(root), pa.table({"id": [1], SOURCE_KEY: [key]}, schema=_LOCAL_SCHEMA), mode="append")
    path_of = dict(zip(*pa.table(DeltaTable(str(root)).get_add_actions(flatten=True))
                       .select([f"min.{SOURCE_KEY}", "path"]).to_pydict().values(), strict=True))

    def commit(table: DeltaTable, actions: list[AddAction | RemoveAction], retries: int | None = None) -> None:
        table.create_write_transaction(actions, mode="append", schema=_LOCAL_SCHEMA,
                                       commit_properties=CommitProperties(max_commit_retries=retries))

    first, second = DeltaTable(str(root)), DeltaTable(str(root))
    commit(first, [_local_file(root, "new")])
    commit(second, [_local_file(root, "new")])  # rebased: the key's rows twice
    first, second = DeltaTable(str(root)), DeltaTable(str(root))
    commit(first, [RemoveAction(path_of["a"], True, 0)])
    with pytest.raises(CommitFailedError):
        commit(second, [RemoveAction(path_of["a"], True, 0)])
    planned = DeltaTable(str(root))
    DeltaTable(str(root)).optimize.compact()
    commit(planned, [_local_file(root, "b"), RemoveAction(path_of["b"], True, 0)])  # rebased past the compaction
    rows = DeltaTable(str(root)).to_pyarrow_table().column(SOURCE_KEY).to_pylist()
    assert sorted(rows) == ["b", "b", "new", "new"]

    stale = DeltaTable(str(root))
    commit(DeltaTable(str(root)), [_local_file(root, "c")])
    with pytest.raises(CommitFailedError):
        commit(stale, [_local_file(root, "c")], retries=0)


def test_statistics_fold_row_groups_and_leave_out_what_a_reader_could_misread(tmp_path: Path) -> None:
    """Min and max over all row groups, nulls summed; a column that is all null has a null
    count only; NaN is no bound; a long string's minimum is a prefix and it has no maximum;
    timestamps to the millisecond, rounded outwards."""
    import json

    import pyarrow.parquet as pq

    from lake.data_files import STATS_STRING_LIMIT, delta_stats

    schema = pa.schema([("n", pa.int64()), ("v", pa.float64()), ("gone", pa.string()), ("s", pa.string()),
                        ("naive", pa.timestamp("us"))])
    long = "x" * (STATS_STRING_LIMIT + 10)
    path = tmp_path / "f.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        writer.write_batch(pa.record_batch([pa.array([5, None]), pa.array([float("nan"), 2.5]), pa.nulls(2, pa.string()),
                                            pa.array(["b", long]), pa.array([datetime(2024, 1, 1, 0, 0, 0, 1), None])],
                                           schema=schema))
        writer.write_batch(pa.record_batch([pa.array([-3]), pa.array([7.0]), pa.nulls(1, pa.string()), pa.array(["a"]),
                                            pa.array([datetime(2023, 5, 6, 7, 8, 9, 999_999)])], schema=schema))
    stats = json.loads(delta_stats(pq.ParquetFile(path).metadata, schema))
    assert stats["numRecords"] == 3
    assert stats["nullCount"] == {"n": 1, "v": 0, "gone": 3, "s": 0, "naive": 1}
    assert stats["minValues"] == {"n": -3, "v": 2.5, "s": "a", "naive": "2023-05-06T07:08:09.999"}
    assert stats["maxValues"] == {"n": 5, "v": 7.0, "naive": "2024-01-01T00:00:00.001"}
