"""The clean rows handed to the Delta export as Arrow (`processing/write.py` `ArrowStream`,
`lake/source.py`): a local Delta table gets exactly the rows, values and types, that the
clean CSV holds; an empty clean output works; `ivi process` writes no Arrow and loads no
pyarrow. No store: `replace_source` on a table in a local directory."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from deltalake import DeltaTable

from flows.export_lake import lake_columns
from lake.schema import INGESTED_AT, SOURCE_ETAG, SOURCE_KEY, check_compatible, table_schema
from lake.source import arrow_batches
from lake.table import LakeTarget, LakeWrite, SourceVersion, arrow_schema, replace_source
from processing.contract import Contract, parse_contract
from processing.run import process_file

REPO = Path(__file__).resolve().parents[1]

CONTRACT = """name = "eventos"
[[columns]]
name = "id"
type = "int"
required = true
unique = true
[[columns]]
name = "dia"
type = "date"
[[columns]]
name = "quando"
type = "datetime"
[[columns]]
name = "utc"
type = "datetime"
timezone = "America/Sao_Paulo"
[[columns]]
name = "valor"
type = "decimal"
[[columns]]
name = "ativo"
type = "boolean"
[[columns]]
name = "nome"
type = "string"
[[columns]]
name = "obs"
type = "string"
[[columns]]
name = "nota"
type = "string"
"""
HEADER = "id;dia;quando;utc;valor;ativo;nome;obs\n"  # `nota` is absent; `obs` is present, always empty


def eventos(tmp_path: Path) -> Contract:
    path = tmp_path / "eventos.toml"
    path.write_text(CONTRACT, encoding="utf-8")
    return parse_contract(path)


def raw_rows(count: int) -> str:
    """Every kind of value, nulls in every column but `id` (in every row of the first 300:
    whole chunks with no value in those columns), and rows the contract rejects."""
    rows = []
    for i in range(count):
        if i < 300 or i % 3 == 0:
            rows.append(f"{i};;;;;;;\n")
        else:
            rows.append(f'{i};05/01/2024;2024-01-05T10:00:{i % 60:02d}.{i % 7}25;2024-01-05 10:00;'
                        f'R$ 1.234,5{i % 10};{"sim" if i % 2 else "false"};"Caderno\r\n""{i}"", azul";\n')
        if i % 50 == 0:
            rows.append(f"x{i};31/02/2024;;;;;;\n")  # rejected: not an int
    return HEADER + "".join(rows)


def local_target(tmp_path: Path, contract: Contract) -> LakeTarget:
    return LakeTarget(str(tmp_path / "table"), contract.name, lake_columns(contract), {})


def export(target: LakeTarget, clean_rows: Path, etag: str, expected_rows: int | None = None) -> LakeWrite:
    return replace_source(target, arrow_batches(clean_rows), SourceVersion("eventos/a.csv", etag),
                          expected_rows=expected_rows)


def clean_csv_rows(path: Path, schema: pa.Schema) -> list[dict[str, object]]:
    """The clean CSV as a reader of it types it: an empty field is null (the writer's nulls)."""
    contract_columns = [name for name in schema.names if not name.startswith("_")]
    table = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={field.name: field.type for field in schema}, strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    return [{name: row.get(name) for name in contract_columns} for row in table.to_pylist()]


def test_the_table_gets_exactly_the_clean_csv_rows_in_the_table_types(tmp_path: Path) -> None:
    contract = eventos(tmp_path)
    report = process_file(_write(tmp_path / "a.csv", raw_rows(600)), contract, tmp_path / "out",
                          chunk_bytes=1024, arrow=True)  # ~20 chunks, the first ones all null but `id`
    assert report.quarantined_rows == 12 and report.exported_rows == 600
    target = local_target(tmp_path, contract)

    written = export(target, Path(report.outputs["arrow"]), "e1", report.exported_rows)

    table = DeltaTable(target.uri)
    schema = table_schema(target.columns)
    assert written.rows == 600 and check_compatible(arrow_schema(table), schema, target.uri) == []
    rows = sorted(table.to_pyarrow_table().cast(schema).to_pylist(), key=lambda row: row["id"])
    assert [{name: row[name] for name in schema.names if not name.startswith("_")} for row in rows] == sorted(
        clean_csv_rows(Path(report.outputs["csv"]), schema), key=lambda row: row["id"])
    assert rows[0] == {
        "id": 0, "dia": None, "quando": None, "utc": None, "valor": None, "ativo": None, "nome": None,
        "obs": None, "nota": None, SOURCE_KEY: "eventos/a.csv", SOURCE_ETAG: "e1", INGESTED_AT: rows[0][INGESTED_AT],
    }
    assert {name: rows[301][name] for name in ("dia", "quando", "utc", "valor", "ativo", "nome", "obs")} == {
        "dia": date(2024, 1, 5), "quando": datetime(2024, 1, 5, 10, 0, 1, 25000),
        "utc": datetime(2024, 1, 5, 13, 0, tzinfo=UTC), "valor": 1234.51, "ativo": True,
        "nome": 'Caderno\r\n"301", azul', "obs": None,
    }
    assert rows[304]["ativo"] is False and rows[599]["valor"] == 1234.59


@pytest.mark.parametrize("body", ["", "x1;;;;;;;\nx2;;;;;;;\n"], ids=["header only", "every row rejected"])
def test_an_empty_clean_output_is_a_stream_of_no_row_and_takes_the_keys_rows_out(tmp_path: Path, body: str) -> None:
    contract = eventos(tmp_path)
    target = local_target(tmp_path, contract)
    first = process_file(_write(tmp_path / "a.csv", raw_rows(10)), contract, tmp_path / "first", arrow=True)
    assert export(target, Path(first.outputs["arrow"]), "e1").rows == 10

    empty = process_file(_write(tmp_path / "b.csv", HEADER + body), contract, tmp_path / "empty", arrow=True)

    assert empty.exported_rows == 0
    assert sum(batch.num_rows for batch in arrow_batches(Path(empty.outputs["arrow"]))) == 0
    written = export(target, Path(empty.outputs["arrow"]), "e2", expected_rows=0)
    assert (written.rows, written.skipped, written.version) == (0, None, 2)  # the key's 10 rows went
    assert DeltaTable(target.uri).to_pyarrow_table().num_rows == 0


def test_ivi_process_writes_no_arrow_and_loads_no_pyarrow(tmp_path: Path) -> None:
    """The Arrow output exists for the Delta export only: `ivi process` must not pay for it."""
    contract = tmp_path / "eventos.toml"
    contract.write_text(CONTRACT, encoding="utf-8")
    source = _write(tmp_path / "a.csv", raw_rows(20))
    code = ("import sys; from pathlib import Path; from processing.contract import parse_contract; "
            "from processing.run import process_file; "
            f"process_file(Path({str(source)!r}), parse_contract(Path({str(contract)!r})), Path({str(tmp_path / 'out')!r})); "
            "print('pyarrow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "a.csv", "a.json", "a.rejected.csv", "a.report.json"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
