"""The contracts a file can be sent under: the image's and the published ones.

A contract published with `ivi contract publish` goes live on every worker without a new
image (docs/contracts.md); the console, another process of that image, must offer it too, or
the people who upload could not pick it. It reads them in the runs' order (flows/contracts.py):
the store's copy first, then the image's, so the contracts page shows what runs use.
"""

from __future__ import annotations

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from console.settings import ConsoleSettings
from objectstore.contracts import published_contract_names, read_published_contract
from processing.contract import Contract, ContractError, available_contracts, load_contract, parse_contract_text


def contract_names(client: Minio, settings: ConsoleSettings) -> list[str]:
    """The image's contracts and the published ones; the image's alone while the store does
    not answer (the pages still show, and an upload then fails on the store, saying so)."""
    names = set(available_contracts(settings.contracts_directory))
    if settings.contracts_prefix:
        try:
            names.update(published_contract_names(client, settings.processed_bucket, settings.contracts_prefix))
        except (S3Error, HTTPError, OSError):
            pass
    return sorted(names)


def _contract(client: Minio, settings: ConsoleSettings, name: str) -> Contract:
    if settings.contracts_prefix:
        published = read_published_contract(client, settings.processed_bucket, settings.contracts_prefix, name)
        if published is not None:
            return parse_contract_text(published.data.decode("utf-8"), published.uri, default_name=name)
    return load_contract(name, settings.contracts_directory)


def known_contracts(client: Minio, settings: ConsoleSettings) -> list[Contract]:
    """Every contract that reads (one that does not is left out: runs reject its files)."""
    found = []
    for name in contract_names(client, settings):
        try:
            found.append(_contract(client, settings, name))
        except (ContractError, UnicodeDecodeError, S3Error, HTTPError, OSError):
            continue
    return found
