"""`ivi powerbi create-dataset` makes the contract's push dataset and the block that writes it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from blocks.powerbi import PowerBIPushDataset
from powerbi.push import RetryPolicy, post_batch, rows_to_json_batches
from ivi.powerbi_command import create_dataset, create_dataset_block, dataset_definition
from ivi.settings import Settings
from processing.contract import load_contract
from tests.powerbi_support import (
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_GROUP,
    TEST_TENANT,
    StandIn,
)

pytest_plugins = ["tests.powerbi_fixtures"]


def standin_settings(standin: StandIn, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        powerbi_api_url=standin.url,
        powerbi_authority_host=standin.url,
        powerbi_tenant_id=TEST_TENANT,
        powerbi_client_id=TEST_CLIENT_ID,
        powerbi_client_secret=SecretStr(TEST_CLIENT_SECRET),
        powerbi_workspace_id=TEST_GROUP,
    )


def test_the_definition_has_the_contracts_table_columns_and_power_bi_types() -> None:
    definition = dataset_definition(load_contract("vendas"))
    (table,) = definition["tables"]
    assert definition["defaultMode"] == "Push" and table["name"] == "vendas"
    types = {c["name"]: c["dataType"] for c in table["columns"]}
    assert types["id_venda"] == "Int64" and types["data_venda"] == "DateTime"
    assert types["preco_unitario"] == "Double" and types["uf"] == "String"


def test_create_dataset_makes_a_push_dataset_the_block_can_write_to(
    standin: StandIn, tmp_path: Path
) -> None:
    block = create_dataset_block("vendas", standin_settings(standin, tmp_path))
    created = standin.dataset(block.dataset_id)
    contract = load_contract("vendas")
    assert created["defaultMode"] == "Push" and created["group"] == TEST_GROUP
    assert created["tables"][0]["columns"] == [
        {"name": c.name, "dataType": c.powerbi_type} for c in contract.columns
    ]
    row = {
        "id_venda": 1,
        "data_venda": "2026-11-29",
        "cliente": "Ana",
        "produto": "Café",
        "categoria": "Bebidas",
        "quantidade": 2,
        "preco_unitario": 5.5,
        "valor_total": 11.0,
        "uf": "SP",
    }
    columns = {c.name: c.powerbi_type for c in contract.columns}
    with requests.Session() as session:
        for batch in rows_to_json_batches([row], columns):
            post_batch(block, batch, session, policy=RetryPolicy(max_attempts=1))
    assert standin.count(block.dataset_id) == 1


def test_create_dataset_prints_the_id_and_saves_block_powerbi_contract(
    standin: StandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved: list[tuple[str, Any]] = []

    def fake_save(self: PowerBIPushDataset, name: str, overwrite: bool = False) -> None:
        saved.append((name, self.dataset_id))

    deleted: list[tuple[str, str]] = []

    def fake_delete(block_class: type, name: str) -> bool:
        deleted.append((block_class.__name__, name))
        return True

    monkeypatch.setattr(PowerBIPushDataset, "save", fake_save)
    monkeypatch.setattr("blocks.powerbi_setup.delete_block_document", fake_delete)
    dataset_id = create_dataset("vendas", standin_settings(standin, tmp_path))
    assert saved == [("powerbi-vendas", dataset_id)]
    # a streaming block of the same name would be loaded first by the export: it goes
    assert deleted == [("PowerBIStreamingDataset", "powerbi-vendas")]
    out = capsys.readouterr().out
    assert dataset_id in out and TEST_CLIENT_SECRET not in out


def test_a_contract_without_a_power_bi_table_is_refused() -> None:
    contract = load_contract("vendas")
    with pytest.raises(ValueError, match="no Power BI table"):
        dataset_definition(replace(contract, powerbi_table=None))
