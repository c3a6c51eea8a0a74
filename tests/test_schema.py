"""The contract's Pandera schema reports failures as (row, column, check), named by the contract."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl
import pytest

from processing.contract import load_contract
from processing.schema import build_schema


def typed_vendas(**changes: list[object]) -> pl.DataFrame:
    """Three valid typed `vendas` rows, with some columns replaced."""
    columns: dict[str, list[object]] = {
        "id_venda": [1, 2, 3],
        "data_venda": [dt.date(2024, 1, 5)] * 3,
        "cliente": ["Ana", "Bia", "Caio"],
        "produto": ["Caneta"] * 3,
        "categoria": ["Papelaria"] * 3,
        "quantidade": [2, 1, 3],
        "preco_unitario": [1.5, 10.0, 2.0],
        "valor_total": [3.0, 10.0, 6.0],
        "uf": ["SP", "RJ", "MG"],
    }
    columns.update(changes)
    return pl.DataFrame(
        columns,
        schema_overrides={"quantidade": pl.Int64, "id_venda": pl.Int64, "valor_total": pl.Float64},
    )


def test_valid_rows_pass_the_schema() -> None:
    vendas = load_contract("vendas")
    frame = typed_vendas()
    assert build_schema(vendas, vendas.column_names).validate(frame, lazy=True).equals(frame)


def test_every_failing_check_of_every_row_is_reported_on_its_column() -> None:
    vendas = load_contract("vendas")
    frame = typed_vendas(
        quantidade=[0, 1, 3],  # row 0: below the minimum 1 (and so 0 x 1.5 != 3.0)
        uf=["SP", "XX", "MG"],  # row 1: not a state
        cliente=["Ana", "Bia", None],  # row 2: required value missing
        preco_unitario=[1.5, 10.0, -2.0],  # row 2: below the minimum 0, and -6 != 6
    )
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        build_schema(vendas, vendas.column_names).validate(frame, lazy=True)
    assert sorted(caught.value.failure_cases.iter_rows()) == [
        (0, "quantidade", "min"),
        (0, "valor_total", "valor_total_matches"),  # a row check, reported on its owner
        (1, "uf", "allowed"),
        (2, "cliente", "required"),
        (2, "preco_unitario", "min"),
        (2, "valor_total", "valor_total_matches"),
    ]


def test_missing_values_are_reported_as_pandera_reads_them_nan_included() -> None:
    """A required decimal that is NaN is missing to Pandera, as null is (`check_nullable`,
    which the schema's columns compute their own way)."""
    vendas = load_contract("vendas")
    frame = typed_vendas(
        valor_total=[3.0, float("nan"), None], id_venda=[1, None, 3], produto=[None, None, "x"]
    )
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        build_schema(vendas, vendas.column_names).validate(frame, lazy=True)
    assert sorted(
        row for row in caught.value.failure_cases.iter_rows() if row[2] == "required"
    ) == [
        (0, "produto", "required"),
        (1, "id_venda", "required"),
        (1, "produto", "required"),
        (1, "valor_total", "required"),
        (2, "valor_total", "required"),
    ]
