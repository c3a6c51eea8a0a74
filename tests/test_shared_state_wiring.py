"""What the workers share lives in the object store, not on a disk: checked at import level.

The deployment manifests (tests/test_compose.py, tests/test_k8s.py, tests/test_terraform.py)
check that no worker mounts a volume shared with another one, and that the setup step saves
the store's blocks for the store every worker reaches. That is only enough if the flows
really keep their shared state there:

- both flows persist their results (and so the Power BI batch cache of `push_batch`) in the
  S3Bucket block `ivi-results`, which the setup step saves in the processed bucket;
- the per-object-version lock is an `ObjectStoreLease` in the processed bucket.

No server is needed: `Block.save` and `MinIOCredentials.load` are replaced by fakes.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect_aws import MinIOCredentials, S3Bucket

import blocks.register
import flows.version_lock
from blocks.objectstore import (
    MINIO_CREDENTIALS_BLOCK,
    RESULT_STORAGE,
    RESULTS_BLOCK,
    RESULTS_FOLDER,
    minio_credentials,
)
from blocks.pipeline import PIPELINE_BLOCK, PipelineBuckets
from flows.backfill import backfill
from flows.export_powerbi import push_batch
from flows.process_object import process_object
from flows.process_objects import process_objects
from flows.version_lock import version_lock
from objectstore.store import ObjectVersion
from ivi.settings import Settings
from objectstore.lease import LOCKS_PREFIX, ObjectStoreLease, lock_object_key


def store_settings() -> Settings:
    """Settings of a worker whose store is not the default one (so that a default cannot pass)."""
    return Settings(
        _env_file=None, s3_host="store.example", s3_port=9123, s3_secure=True,
        s3_access_key="pipeline", s3_secret_key="s3-secret-for-tests",
        processed_bucket="shared-processed", raw_bucket="shared-raw", lake_bucket="shared-lake",
    )


def test_both_flows_persist_their_results_in_the_shared_block() -> None:
    assert RESULT_STORAGE == f"s3-bucket/{RESULTS_BLOCK}"
    assert process_object.result_storage == RESULT_STORAGE
    assert process_objects.result_storage == RESULT_STORAGE  # a burst's group; its subflows get
    assert backfill.result_storage == RESULT_STORAGE  # block RESULTS_BLOCK loaded once (below)
    # The Power BI batch cache is a persisted task result: it must inherit the flow's storage,
    # not name a storage (a local one would be one worker's disk) of its own.
    assert push_batch.persist_result is True
    assert push_batch.result_storage is None


def test_register_blocks_saves_the_credentials_and_the_results_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    saved: dict[str, Block] = {}

    def fake_save(self: Block, name: str | None = None, overwrite: bool = False, **_: Any) -> None:
        assert overwrite, f"block {name} must be saved again on every setup run"
        assert name is not None
        saved[name] = self

    monkeypatch.setattr(Block, "save", fake_save)
    monkeypatch.setattr(blocks.register, "register_powerbi_blocks", lambda _settings: [])
    settings = store_settings()
    names = blocks.register.register_blocks(settings)

    assert set(names) == {MINIO_CREDENTIALS_BLOCK, RESULTS_BLOCK, PIPELINE_BLOCK} == set(saved)
    buckets = saved[PIPELINE_BLOCK]
    assert isinstance(buckets, PipelineBuckets)
    assert (buckets.raw_bucket, buckets.processed_bucket) == ("shared-raw", "shared-processed")
    credentials, results = saved[MINIO_CREDENTIALS_BLOCK], saved[RESULTS_BLOCK]
    assert isinstance(credentials, MinIOCredentials) and isinstance(results, S3Bucket)
    # the Delta tables (issue 15): the lake bucket, reached with the very same store and keys
    from flows.export_lake import lake_storage_options

    assert buckets.lake_bucket == "shared-lake"
    lake = lake_storage_options(credentials)
    assert lake["AWS_ENDPOINT_URL"] == "https://store.example:9123" and lake["AWS_ALLOW_HTTP"] == "false"
    assert (lake["AWS_ACCESS_KEY_ID"], lake["AWS_SECRET_ACCESS_KEY"]) == ("pipeline", "s3-secret-for-tests")
    assert lake["conditional_put"] == "etag"
    assert credentials.aws_client_parameters.endpoint_url == "https://store.example:9123"
    assert credentials.minio_root_user == "pipeline"
    assert credentials.minio_root_password.get_secret_value() == "s3-secret-for-tests"
    # the results go to the processed bucket, through the same store and keys
    assert results.bucket_name == "shared-processed"
    assert results.bucket_folder == RESULTS_FOLDER
    assert RESULTS_FOLDER.startswith("_ivi/") and LOCKS_PREFIX.startswith("_ivi/")
    assert results.credentials == credentials


def test_the_version_lock_is_a_lease_in_the_processed_bucket() -> None:
    settings = store_settings()
    buckets = PipelineBuckets(processed_bucket=settings.processed_bucket)
    lease = version_lock(
        buckets, ObjectVersion(bucket="raw", key="k.csv", etag="etag", size=1), minio_credentials(settings)
    )

    assert isinstance(lease, ObjectStoreLease)
    assert lease.bucket == "shared-processed"
    assert lease.resource == "raw/k.csv@etag"
    assert lease.key == lock_object_key("raw/k.csv@etag") and lease.key.startswith(LOCKS_PREFIX)
    # the lease talks to the store the block names (boto3 client, never a local file)
    assert lease.s3.meta.endpoint_url == "https://store.example:9123"
    assert flows.version_lock.LOCK_LEASE_SECONDS == lease.lease_seconds


def test_every_topology_gives_prefect_clients_the_one_certificate_ca_file_only_for_http(tmp_path: Any) -> None:
    """The CPU a flow run saves on its API clients (deployments/api_tls.py) is saved in the
    image's topologies too, and never where the API is https."""
    import re

    import yaml

    from deployments.api_tls import ca_file_setting
    from tests.paths import REPO_ROOT

    dockerfile = (REPO_ROOT / "infra/docker/Dockerfile").read_text()
    written = re.search(r"python -m deployments\.api_tls (\S+)", dockerfile)
    assert written is not None, "the image writes the CA file at build"
    compose_env = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["worker"]["environment"]
    assert compose_env["PREFECT_API_URL"].startswith("http://")
    assert compose_env["PREFECT_API_SSL_CERT_FILE"] == written.group(1)
    k8s = dict(
        line.split("=", 1) for line in (REPO_ROOT / "infra/k8s/base/config.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert k8s["PREFECT_API_URL"].startswith("http://")
    assert k8s["PREFECT_API_SSL_CERT_FILE"] == written.group(1)

    setting = ca_file_setting("http://127.0.0.1:4200/api", tmp_path / "ca.pem")
    text = (tmp_path / "ca.pem").read_text()
    assert setting == {"PREFECT_API_SSL_CERT_FILE": str(tmp_path / "ca.pem")}
    assert text.count("BEGIN CERTIFICATE") == 1 and text.rstrip().endswith("END CERTIFICATE-----")
    import ssl

    ssl.create_default_context(cafile=setting["PREFECT_API_SSL_CERT_FILE"])  # a usable CA file
    assert ca_file_setting("https://prefect.example/api", tmp_path / "other.pem") == {}
    assert not (tmp_path / "other.pem").exists()


def test_a_groups_subflows_persist_their_results_in_the_shared_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """process_objects hands its subflows the results block it loaded once, by its name."""
    import flows.process_objects as group_flow

    shared = S3Bucket(bucket_name="shared-processed", bucket_folder=RESULTS_FOLDER)
    loaded: list[tuple[type, str]] = []
    used: list[Any] = []

    def load_block(block_class: type, name: str) -> Any:
        loaded.append((block_class, name))
        return shared

    class Subflow:
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from prefect.states import Completed

            return Completed()

    def with_options(**options: Any) -> Subflow:
        used.append(options.get("result_storage"))
        return Subflow()

    monkeypatch.setattr(group_flow, "load_block", load_block)
    monkeypatch.setattr(group_flow, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(group_flow.process_object, "with_options", with_options)
    state = group_flow.process_objects.fn([group_flow.ObjectRef(bucket="shared-raw", key="a.csv")])
    assert state.is_completed()
    assert loaded == [(S3Bucket, RESULTS_BLOCK)] and used == [shared]
