"""`ivi powerbi create-dataset --contract NAME`: a push dataset made from a contract.

The contract already says what the Power BI table is (its `[powerbi] table` and the columns'
types), so the dataset is created from it through the REST API rather than by hand in the
Power BI portal, and the block the export loads (`powerbi-<contract>`) is saved with the new
dataset's id. By default the API and the authority are the local stand-in; set
`IVI_POWERBI_API_URL`, `IVI_POWERBI_AUTHORITY_HOST`, `IVI_POWERBI_TENANT_ID`,
`IVI_POWERBI_CLIENT_ID`, `IVI_POWERBI_CLIENT_SECRET` and `IVI_POWERBI_WORKSPACE_ID` for a real
tenant.

`--retention` is the API's `defaultRetentionPolicy`: `basicFIFO` (the default here) keeps a
table's latest 200,000 rows and never fills; `none` keeps every row up to 5,000,000 per table,
after which Power BI refuses more (docs/powerbi.md, "Which retention policy").
"""

from __future__ import annotations

from typing import Any

import requests

from blocks.powerbi import PowerBIPushDataset, block_name
from blocks.powerbi_setup import push_dataset_block
from powerbi.push import PowerBIRejected, redact, service_message
from ivi.settings import Settings
from processing.contract import Contract, load_contract

CREATE_TIMEOUT = (10.0, 60.0)
#: `--retention` choices -> the REST API's `defaultRetentionPolicy` values.
RETENTION_POLICIES = {"basicFIFO": "basicFIFO", "none": "None"}
DEFAULT_RETENTION = "basicFIFO"


def retention_policy(choice: str) -> str:
    """The API's spelling of a `--retention` choice (`basicFIFO` or `none`, any case)."""
    for name, policy in RETENTION_POLICIES.items():
        if choice.lower() == name.lower():
            return policy
    raise ValueError(f"--retention {choice!r} is not one of {', '.join(RETENTION_POLICIES)}")


def dataset_definition(contract: Contract) -> dict[str, Any]:
    """The create-dataset body for a contract: one table, every column with its Power BI type."""
    if not contract.powerbi_table:
        raise ValueError(f"contract {contract.name!r} has no Power BI table ([powerbi] table)")
    return {
        "name": contract.name,
        "defaultMode": "Push",
        "tables": [
            {
                "name": contract.powerbi_table,
                "columns": [
                    {"name": column.name, "dataType": column.powerbi_type}
                    for column in contract.columns
                ],
            }
        ],
    }


def create_push_dataset(
    block: PowerBIPushDataset,
    definition: dict[str, Any],
    session: requests.Session,
    retention: str = DEFAULT_RETENTION,
) -> str:
    """POST the definition to the block's workspace with `?defaultRetentionPolicy=`; the new
    dataset's id."""
    response = session.post(
        block.datasets_url(),
        params={"defaultRetentionPolicy": retention_policy(retention)},
        json=definition,
        headers={"Authorization": f"Bearer {block.get_token()}"},
        timeout=CREATE_TIMEOUT,
    )
    if response.status_code not in (200, 201):
        code, message = service_message(response)
        raise PowerBIRejected(
            f"creating dataset {definition.get('name')!r} at {block.datasets_url()} failed with "
            f"HTTP {response.status_code} {code or ''}: {redact(message, block.secret_values())}",
            status=response.status_code,
            code=code,
        )
    dataset_id = response.json().get("id")
    if not isinstance(dataset_id, str) or not dataset_id:
        raise PowerBIRejected("the service created a dataset but answered no id")
    return dataset_id


def create_dataset_block(
    contract_name: str,
    settings: Settings,
    session: requests.Session | None = None,
    retention: str = DEFAULT_RETENTION,
) -> PowerBIPushDataset:
    """Create the contract's push dataset and return its block, not yet saved."""
    contract = load_contract(contract_name)
    definition = dataset_definition(contract)
    block = push_dataset_block(contract, settings)
    with session or requests.Session() as http:
        block.dataset_id = create_push_dataset(block, definition, http, retention)
    return block


def create_dataset(
    contract_name: str, settings: Settings, retention: str = DEFAULT_RETENTION
) -> str:
    """Create the push dataset, print its id, save block `powerbi-<contract>`; the id.

    The block is saved on the Prefect server the settings name (so run it after `ivi up`).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.powerbi_setup import save_destination

    contract = load_contract(contract_name).name  # a name, or the path of a published contract's file
    block = create_dataset_block(contract_name, settings, retention=retention)
    name = block_name(contract)
    with temporary_settings({PREFECT_API_URL: settings.prefect_api_url}):
        # also removes a streaming block of the same name, which the export would load first
        save_destination(block, contract)
    print(
        f"created Power BI dataset {block.dataset_id} for contract {contract} "
        f"(retention {retention_policy(retention)}); saved block {name}"
    )
    return block.dataset_id
