"""Which destination `ivi up` saves as `powerbi-<contract>`, from the settings alone.

No Prefect server: the "a push block is already saved" lookup is replaced; the stand-in runs
in a thread (tests/powerbi_fixtures.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from blocks import powerbi_setup
from blocks.powerbi import PowerBIPushDataset, PowerBIStreamingDataset
from powerbi.push import RetryPolicy, post_batch, rows_to_json_batches
from ivi.settings import Settings
from processing.contract import load_contract
from tests.powerbi_support import TEST_ADMIN_TOKEN, StandIn
from tests.stack_support import isolated_settings

pytest_plugins = ["tests.powerbi_fixtures"]


@pytest.fixture
def no_saved_push_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(powerbi_setup, "_existing_push_block", lambda contract: None)


def _settings(tmp_path: Path, standin: StandIn | None = None, **values: object) -> Settings:
    settings = isolated_settings(tmp_path, **values)
    if standin is not None:
        settings = settings.model_copy(
            update={
                "powerbi_port": standin.server.port,
                "powerbi_standin_admin_token": SecretStr(TEST_ADMIN_TOKEN),
            }
        )
    return settings


def test_every_contract_with_a_power_bi_table_gets_a_block() -> None:
    assert [c.name for c in powerbi_setup.powerbi_contracts()] == ["clientes", "vendas"]


def test_a_push_url_in_the_settings_makes_a_streaming_block(tmp_path: Path) -> None:
    url = "https://api.powerbi.com/beta/t/datasets/d/rows?key=secret-key"
    settings = _settings(tmp_path, powerbi_contract_settings={"IVI_POWERBI_VENDAS_PUSH_URL": url})
    block, where = powerbi_setup.choose_destination(load_contract("vendas"), settings)
    assert isinstance(block, PowerBIStreamingDataset)
    assert block.push_url.get_secret_value() == url
    assert "secret-key" not in where


def test_a_dataset_id_in_the_settings_makes_a_push_dataset_block(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        powerbi_contract_settings={"IVI_POWERBI_CLIENTES_DATASET_ID": "ds-42"},
        powerbi_client_secret=SecretStr("client-secret"),
        powerbi_api_url="https://api.powerbi.com",
        powerbi_authority_host="https://login.microsoftonline.com",
    )
    block, where = powerbi_setup.choose_destination(load_contract("clientes"), settings)
    assert isinstance(block, PowerBIPushDataset)
    assert (block.dataset_id, block.table, block.api_base_url) == (
        "ds-42", "clientes", "https://api.powerbi.com"
    )
    assert block.client_secret.get_secret_value() == "client-secret"
    assert "client-secret" not in where


def test_a_saved_push_dataset_block_is_kept_when_nothing_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(powerbi_setup, "_existing_push_block", lambda contract: object())
    block, where = powerbi_setup.choose_destination(load_contract("vendas"), _settings(tmp_path))
    assert block is None and "kept" in where


def test_without_settings_rows_go_to_a_standin_dataset_that_survives_a_second_up(
    tmp_path: Path, standin: StandIn, no_saved_push_block: None
) -> None:
    settings = _settings(tmp_path, standin)
    contract = load_contract("vendas")
    block, where = powerbi_setup.choose_destination(contract, settings)
    assert isinstance(block, PowerBIStreamingDataset) and "stand-in" in where
    dataset_id = powerbi_setup.standin_dataset_id("vendas")
    created = standin.dataset(dataset_id)
    assert created["tables"][0]["columns"] == [
        {"name": c.name, "dataType": c.powerbi_type} for c in contract.columns
    ]
    standin.http.delete(f"{standin.url}/_standin/datasets/{dataset_id}/rows").raise_for_status()
    rows = [{"id_venda": 1, "data_venda": None, "cliente": "a", "produto": "b", "categoria": "c",
             "quantidade": 1, "preco_unitario": 1.0, "valor_total": 1.0, "uf": "SP"}]
    [batch] = rows_to_json_batches(rows, [(c.name, c.powerbi_type) for c in contract.columns])
    with requests.Session() as session:
        post_batch(block, batch, session, policy=RetryPolicy(max_attempts=1))

    again, _ = powerbi_setup.choose_destination(contract, settings)  # `ivi up` once more
    assert isinstance(again, PowerBIStreamingDataset)
    assert again.push_url.get_secret_value() == block.push_url.get_secret_value()
    assert standin.count(dataset_id) == 1  # same dataset, rows kept
    other_stack = _settings(tmp_path / "other", standin)  # another webhook token, another key
    assert powerbi_setup.standin_push_key("vendas", other_stack) != powerbi_setup.standin_push_key(
        "vendas", settings
    )
