"""Contracts are data: the engine reads any file in contracts/ the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from processing.contract import (
    ContractError,
    available_contracts,
    contract_for_key,
    load_contract,
    normalise_name,
)
from processing.run import process_file


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (" Preço Unitário ", "preco_unitario"),
        ("ID-Venda", "id_venda"),
        ("Número  de   Compras (mensal)", "numero_de_compras_mensal"),
        ("\ufeffidade", "idade"),
        ("UF", "uf"),
    ],
)
def test_header_names_are_normalised_as_the_design_says(header: str, name: str) -> None:
    assert normalise_name(header) == name


def test_both_shipped_datasets_have_a_contract() -> None:
    assert {"clientes", "vendas"} <= set(available_contracts())


def test_vendas_contract_matches_the_data_dictionary() -> None:
    vendas = load_contract("vendas")
    assert vendas.column_names == [
        "id_venda", "data_venda", "cliente", "produto", "categoria",
        "quantidade", "preco_unitario", "valor_total", "uf",
    ]
    assert vendas.required_columns == vendas.column_names
    assert len(vendas.column("uf").allowed) == 27
    assert [c.powerbi_type for c in vendas.columns] == [
        "Int64", "DateTime", "String", "String", "String", "Int64", "Double", "Double", "String",
    ]


def test_clientes_contract_requires_only_idade_genero_renda() -> None:
    assert load_contract("clientes").required_columns == ["idade", "genero", "renda_mensal"]


def test_unknown_contract_names_the_known_ones() -> None:
    with pytest.raises(ContractError, match="known: .*clientes.*vendas"):
        load_contract("nope")


def test_contract_name_comes_from_the_keys_first_segment() -> None:
    assert contract_for_key("clientes/2026/nov.csv") == "clientes"
    assert contract_for_key("/Vendas/x.csv") == "vendas"


def test_adding_a_dataset_is_adding_one_file(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "produtos.toml").write_text(
        'name = "produtos"\n'
        '[[columns]]\nname = "sku"\ntype = "string"\nrequired = true\nunique = true\n'
        '[[columns]]\nname = "ativo"\ntype = "boolean"\n'
        '[[columns]]\nname = "peso"\ntype = "decimal"\nmin = 0\n',
        encoding="utf-8",
    )
    contract = load_contract("produtos", contracts)
    source = tmp_path / "produtos.csv"
    source.write_text("SKU;Ativo;Peso\nA1;sim;1,5\nA2;false;-2\nA1;true;3\n", encoding="utf-8")
    report = process_file(source, contract, tmp_path / "out")
    assert (report.exported_rows, report.quarantined_rows) == (1, 2)
    assert report.failures == {"peso": {"min": 1}, "sku": {"unique": 1}}
    assert (tmp_path / "out" / "produtos.csv").read_text().splitlines() == ["sku,ativo,peso", "A1,true,1.5"]


def test_a_malformed_contract_is_reported_with_its_file_name(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[[columns]]\nname = "x"\ntype = "money"\n')
    with pytest.raises(ContractError, match="bad.toml.*'money'"):
        load_contract("bad", tmp_path)
