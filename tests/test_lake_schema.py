"""The lake core without a store: a contract's columns as Arrow types, which table changes are
refused (naming the column), the rows as delta-rs gets them, and the key's SQL predicate."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

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


def test_the_clean_csv_is_read_back_in_the_table_types(tmp_path: Path) -> None:
    """As processing/write.py writes it: ISO datetimes (`Z` for UTC, a fraction only when
    there is one), empty fields for nulls; the optional column `nota` absent from the file."""
    from lake.source import csv_batches

    clean = tmp_path / "clean.csv"
    clean.write_text(
        "id,dia,quando,utc,valor,ativo,nome\n"
        "1,2024-01-05,2024-01-05T10:00:00,2024-01-05T13:00:00Z,10.5,true,Ana\n"
        "2,,2024-01-05T10:00:00.250000,,,false,\n"
        '3,,,,,,"Caderno\r\n100 folhas, azul"\n',
        encoding="utf-8",
    )
    schema = table_schema([
        LakeColumn("id", "int"), LakeColumn("dia", "date"), LakeColumn("quando", "datetime"),
        LakeColumn("utc", "datetime", utc=True), LakeColumn("valor", "decimal"), LakeColumn("ativo", "boolean"),
        LakeColumn("nome", "string"), LakeColumn("nota", "string"),
    ])
    count = _RowCount()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = pa.Table.from_batches(
        list(lineage_batches(csv_batches(clean, schema), schema, SourceVersion("k", "e"), count, at))
    ).to_pylist()
    assert rows[0] == {
        "id": 1, "dia": date(2024, 1, 5), "quando": datetime(2024, 1, 5, 10), "utc": datetime(2024, 1, 5, 13, tzinfo=UTC),
        "valor": 10.5, "ativo": True, "nome": "Ana", "nota": None, SOURCE_KEY: "k", SOURCE_ETAG: "e", INGESTED_AT: at,
    }
    assert rows[1]["quando"] == datetime(2024, 1, 5, 10, 0, 0, 250000)
    assert (rows[1]["dia"], rows[1]["utc"], rows[1]["valor"], rows[1]["nome"]) == (None, None, None, None)
    assert rows[2]["nome"] == "Caderno\r\n100 folhas, azul" and count.rows == 3
