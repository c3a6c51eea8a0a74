"""Which Power BI destination each contract's rows go to, saved as block `powerbi-<contract>`.

For every contract with a `[powerbi] table`, in this order:

1. `IVI_POWERBI_<CONTRACT>_PUSH_URL` set: a `PowerBIStreamingDataset` with that URL;
2. `IVI_POWERBI_<CONTRACT>_DATASET_ID` set: a `PowerBIPushDataset` (REST API, with the
   tenant, client id, client secret and workspace settings);
3. neither, and a `PowerBIPushDataset` block already saved (by `ivi powerbi create-dataset`):
   left as it is, so that `ivi up` does not undo what the user created on purpose;
4. otherwise: a dataset of the LOCAL STAND-IN, registered with the contract's columns and
   Power BI types under a fixed id (`ivi-<contract>`) and a key derived from the stack's
   webhook token, so that running `ivi up` again keeps the same dataset, rows and key.

Blocks of the two classes are different block types, so one name can exist once per class;
the export loads the streaming one first. Saving one class therefore deletes the other's
document of the same name, or an old streaming block would shadow a new push dataset.
Secrets come from the settings only and are never printed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import requests
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from blocks.powerbi import LOOPBACK_HOSTS, PowerBIPushDataset, PowerBIStreamingDataset, block_name
from blocks.settings import SetupSettings
from processing.contract import DEFAULT_CONTRACTS_DIR, Contract, available_contracts, load_contract

STANDIN_TENANT = "ivi-standin"
REGISTER_TIMEOUT = (5.0, 30.0)
DestinationBlock = PowerBIStreamingDataset | PowerBIPushDataset


def powerbi_contracts(directory: Path = DEFAULT_CONTRACTS_DIR) -> list[Contract]:
    """The contracts of `directory` whose rows go to Power BI (those with a `[powerbi] table`).

    Published contracts get theirs from `ivi contract publish`.
    """
    return [
        c for name in available_contracts(directory)
        if (c := load_contract(name, directory)).powerbi_table
    ]


def standin_dataset_id(contract: str) -> str:
    return f"ivi-{contract}"


def standin_push_key(contract: str, settings: SetupSettings) -> str:
    """A push key that is secret (derived from the webhook token) yet the same on every `up`."""
    secret = settings.webhook_token.get_secret_value().encode()
    return hmac.new(secret, f"powerbi-standin/{contract}".encode(), hashlib.sha256).hexdigest()[:40]


def standin_push_url(contract: str, settings: SetupSettings) -> str:
    return (
        f"{settings.powerbi_standin_url}/beta/{STANDIN_TENANT}/datasets/"
        f"{standin_dataset_id(contract)}/rows?key={standin_push_key(contract, settings)}"
    )


def register_standin_dataset(
    contract: Contract, settings: SetupSettings, session: requests.Session | None = None
) -> str:
    """Create (or re-declare, rows kept) the contract's stand-in dataset; its push URL."""
    body = {
        "id": standin_dataset_id(contract.name),
        "key": standin_push_key(contract.name, settings),
        "name": contract.name,
        "group": STANDIN_TENANT,
        "defaultMode": "Push",
        "table": contract.powerbi_table,
        "columns": [{"name": c.name, "dataType": c.powerbi_type} for c in contract.columns],
    }
    with session or requests.Session() as http:
        answer = http.post(
            f"{settings.powerbi_standin_url}/_standin/datasets", json=body,
            headers=settings.powerbi_standin_admin_headers, timeout=REGISTER_TIMEOUT,
        )
    if answer.status_code == 401:
        raise RuntimeError(
            f"the Power BI stand-in refused dataset {body['id']}: HTTP 401, "
            "IVI_POWERBI_STANDIN_ADMIN_TOKEN is missing or not the stand-in's admin token"
        )
    if answer.status_code != 201:
        raise RuntimeError(
            f"the Power BI stand-in refused dataset {body['id']}: HTTP {answer.status_code} "
            f"{answer.text[:300]}"
        )
    return standin_push_url(contract.name, settings)


def _existing_push_block(contract: str) -> PowerBIPushDataset | None:
    try:
        return PowerBIPushDataset.load(block_name(contract))  # type: ignore[no-any-return]
    except ValueError:
        return None


def choose_destination(contract: Contract, settings: SetupSettings) -> tuple[DestinationBlock | None, str]:
    """(block to save or None to keep the saved one, where the rows go, without secrets)."""
    push_url = settings.powerbi_push_url(contract.name)
    if push_url is not None:
        return PowerBIStreamingDataset(push_url=push_url), "push URL from the settings"
    dataset_id = settings.powerbi_dataset_id(contract.name)
    if dataset_id is not None:
        block = push_dataset_block(contract, settings, dataset_id)
        return block, f"push dataset {dataset_id} from the settings"
    if _existing_push_block(contract.name) is not None:
        return None, "push dataset saved by `ivi powerbi create-dataset` (kept)"
    url = register_standin_dataset(contract, settings)
    block = PowerBIStreamingDataset(push_url=SecretStr(url))
    return block, f"local stand-in dataset {standin_dataset_id(contract.name)} (not Power BI)"


def delete_block_document(block_class: type[Block], name: str) -> bool:
    """Delete the `block_class` block called `name`; False when there was none."""
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(
                name, block_class.get_block_type_slug(), include_secrets=False
            )
        except ObjectNotFound:
            return False
        client.delete_block_document(document.id)
    return True


def save_destination(block: DestinationBlock | None, contract: str) -> None:
    """Save `block` as `powerbi-<contract>` and delete the other class' block of that name.

    With `block` None, only the streaming block is removed (a kept push block must win).
    """
    name = block_name(contract)
    if block is not None:
        block.save(name, overwrite=True)
    other: type[Block] = (
        PowerBIPushDataset if isinstance(block, PowerBIStreamingDataset) else PowerBIStreamingDataset
    )
    delete_block_document(other, name)


def register_powerbi_blocks(settings: SetupSettings) -> list[tuple[str, str]]:
    """Save every contract's Power BI block; (block name, where its rows go) for each."""
    return [
        register_powerbi_block(contract, settings)
        for contract in powerbi_contracts(settings.contracts_directory)
    ]


def register_powerbi_block(contract: Contract, settings: SetupSettings) -> tuple[str, str]:
    """Save one contract's Power BI block (the setup step's rules above); (its name, where
    its rows go). `ivi contract publish` calls it for the contract it publishes."""
    block, where = choose_destination(contract, settings)
    save_destination(block, contract.name)
    return block_name(contract.name), where


def _client_secret(settings: SetupSettings) -> str:
    """The configured secret; for the local stand-in with none configured, a fresh one.

    The stand-in started by `ivi up` issues tokens to any client, so a made-up secret (saved
    in the block, never printed) keeps a default secret out of the code.
    """
    configured = settings.powerbi_client_secret.get_secret_value()
    if configured:
        return configured
    if urlsplit(settings.powerbi_authority).hostname in LOOPBACK_HOSTS:
        return secrets.token_urlsafe(24)
    raise ValueError("IVI_POWERBI_CLIENT_SECRET is required for a non-local authority")


def push_dataset_block(
    contract: Contract, settings: SetupSettings, dataset_id: str = ""
) -> PowerBIPushDataset:
    """The block for a contract's push dataset, from the settings (dataset id filled later)."""
    return PowerBIPushDataset(
        tenant_id=settings.powerbi_tenant_id,
        client_id=settings.powerbi_client_id,
        client_secret=SecretStr(_client_secret(settings)),
        workspace_id=settings.powerbi_workspace_id,
        dataset_id=dataset_id,
        table=contract.powerbi_table or "",
        authority_host=settings.powerbi_authority,
        api_base_url=settings.powerbi_api_base,
    )
