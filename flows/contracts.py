"""Which contract a run uses: the one published to the store, else the image's file.

Looked up once per run, at its start, in the places block `ivi-pipeline` names:

1. `<processed_bucket>/<contracts_prefix><name>.toml`, put there by `ivi contract publish`:
   one GET of a few kilobytes, so a published contract (new or changed) is used by the next
   run on every worker, with no restart and no new image;
2. `<contracts_dir>/<name>.toml` on the worker (default: the repository's `contracts/`).

The store wins when both hold the contract: publishing is how a contract is changed without
a rebuild, and an image's copy must not silently undo it. The parsed contract is kept per
text (a published contract parses once per worker process and version); the run's report
records where the contract came from and the SHA-256 of its text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from minio import Minio

from blocks.pipeline import PipelineBuckets
from objectstore.contracts import published_contract_names, read_published_contract
from processing.contract import (
    CONTRACT_NAME,
    DEFAULT_CONTRACTS_DIR,
    Contract,
    ContractError,
    available_contracts,
    contract_file,
    is_contract_path,
    parse_contract_text,
)

PARSED_CONTRACTS_KEPT = 64


class UnknownContract(ContractError):
    """No contract of that name, neither published nor on the worker's disk."""


@dataclass(frozen=True)
class ResolvedContract:
    contract: Contract
    source: str  # s3://bucket/key of a published contract, or the file's path
    sha256: str  # of the contract's text: which version a report was made with

    def as_report(self) -> dict[str, str]:
        return {"contract_source": self.source, "contract_sha256": self.sha256}


@lru_cache(maxsize=PARSED_CONTRACTS_KEPT)
def _parse(text: str, source: str, default_name: str) -> Contract:
    return parse_contract_text(text, source, default_name=default_name)


def _resolved(data: bytes, source: str, default_name: str) -> ResolvedContract:
    """The contract in `data` (its bytes as stored: `sha256sum` of the file gives its version)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return ResolvedContract(
        contract=_parse(text, source, default_name),
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def contracts_directory(buckets: PipelineBuckets) -> Path:
    return Path(buckets.contracts_dir) if buckets.contracts_dir else DEFAULT_CONTRACTS_DIR


def resolve_contract(client: Minio, buckets: PipelineBuckets, name_or_path: str) -> ResolvedContract:
    """The contract `name_or_path` names (a path to a `.toml` is read from the worker's disk);
    ContractError, listing the known names, when there is none."""
    directory = contracts_directory(buckets)
    if not is_contract_path(name_or_path) and buckets.contracts_prefix:
        if not CONTRACT_NAME.fullmatch(name_or_path):
            raise UnknownContract(f"unknown contract {name_or_path!r}: a contract name is a-z, 0-9 and _")
        published = read_published_contract(
            client, buckets.processed_bucket, buckets.contracts_prefix, name_or_path
        )
        if published is not None:
            return _resolved(published.data, published.uri, name_or_path)
    try:
        path = contract_file(name_or_path, directory)
    except ContractError as error:
        if is_contract_path(name_or_path):
            raise UnknownContract(str(error)) from None
        raise UnknownContract(_unknown(client, buckets, name_or_path, directory)) from None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ContractError(f"{path.name}: {error}") from error
    return _resolved(data, str(path), path.stem)


def _unknown(client: Minio, buckets: PipelineBuckets, name: str, directory: Path) -> str:
    known = set(available_contracts(directory))
    where = [str(directory)]
    if buckets.contracts_prefix:
        known.update(published_contract_names(client, buckets.processed_bucket, buckets.contracts_prefix))
        where.insert(0, f"s3://{buckets.processed_bucket}/{buckets.contracts_prefix}")
    return (
        f"unknown contract {name!r}: not in {' nor '.join(where)} "
        f"(known: {', '.join(sorted(known)) or 'none'}; publish one with `ivi contract publish`)"
    )
