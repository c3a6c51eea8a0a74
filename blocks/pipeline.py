"""The pipeline's runtime configuration as a Prefect block: which buckets the flows use.

The flows get everything they need from blocks and parameters, never from the environment
of the process they run in: a Compose replica, a Kubernetes pod and `ivi up`'s worker then
run the same flow the same way, configured once by the setup step.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from blocks.loaded_once import load_block

PIPELINE_BLOCK = "ivi-pipeline"


class PipelineBuckets(Block):
    """Where uploads arrive, where each kind of output goes, where contracts are read."""

    _block_type_name = "IVI Pipeline Buckets"
    _description = "The buckets of Mini Pipeline IVI: uploads, clean outputs and reports, quarantine, the Delta Lake tables."

    raw_bucket: str = "raw"
    processed_bucket: str = "processed"
    quarantine_bucket: str = "quarantine"
    # issue 15: the Delta Lake tables, one per contract at s3://<lake_bucket>/<contract>
    lake_bucket: str = "lake"
    # Where the flows look a contract up, store first (docs/contracts.md): the contracts
    # `ivi contract publish` puts at `<processed_bucket>/<contracts_prefix><name>.toml`
    # ("" = the store is not read), then the directory `contracts_dir` of the worker's
    # file system ("" = the repository's `contracts/`, in the image at /app/contracts).
    contracts_prefix: str = "_ivi/contracts/"
    contracts_dir: str = ""


def load_buckets() -> PipelineBuckets:
    return load_block(PipelineBuckets, PIPELINE_BLOCK)
