"""The object-store blocks: its credentials, and the bucket folder every worker keeps Prefect's
results in.

Prefect persists results (and so task caches, such as the Power BI batches already accepted)
under each process' `PREFECT_HOME/storage` unless told otherwise. A Compose worker container
or a Kubernetes run pod has a home of its own, so a cache written by one worker was invisible
to the next, and a forced rerun on another worker pushed its rows again. The flows therefore
name the S3Bucket block below as their result storage: one folder of the processed bucket,
shared by every worker that shares the store.

The flows themselves pass `persist_result=False`: nothing reads a flow's return value, and
persisting it cost every run a PUT and a boto3 client of its own (a fifth of an empty run's
CPU); the tasks that need a result kept (the Power BI batches) say `persist_result=True`.
"""

from __future__ import annotations

from minio import Minio
from prefect_aws import AwsClientParameters, MinIOCredentials, S3Bucket

from blocks.settings import SetupSettings
from objectstore.store import minio_client

MINIO_CREDENTIALS_BLOCK = "minio-credentials"
RESULTS_BLOCK = "ivi-results"
RESULT_STORAGE = f"s3-bucket/{RESULTS_BLOCK}"  # what the flows pass as `result_storage`
RESULTS_FOLDER = "_ivi/results"  # in the processed bucket, beside `_ivi/locks/`


def minio_credentials(settings: SetupSettings) -> MinIOCredentials:
    """The object store's credentials and endpoint as a prefect-aws block."""
    return MinIOCredentials(
        minio_root_user=settings.s3_access_key,
        minio_root_password=settings.s3_secret_key,
        region_name=settings.s3_region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=settings.s3_endpoint, use_ssl=settings.s3_secure
        ),
    )


def store_client(credentials: MinIOCredentials) -> Minio:
    """A `minio` client for the store the credentials block describes."""
    endpoint = credentials.aws_client_parameters.endpoint_url or "http://127.0.0.1:9000"
    return minio_client(
        str(endpoint),
        credentials.minio_root_user,
        credentials.minio_root_password.get_secret_value(),
        credentials.region_name,
    )


def results_bucket(credentials: MinIOCredentials, settings: SetupSettings) -> S3Bucket:
    """Where every worker persists results and task caches (see the module's docstring)."""
    return S3Bucket(
        bucket_name=settings.processed_bucket, bucket_folder=RESULTS_FOLDER, credentials=credentials
    )


def save_objectstore_blocks(settings: SetupSettings) -> list[str]:
    """Save the credentials, then the results bucket that refers to them; their names."""
    credentials = minio_credentials(settings)
    credentials.save(MINIO_CREDENTIALS_BLOCK, overwrite=True)
    results_bucket(credentials, settings).save(RESULTS_BLOCK, overwrite=True)
    return [MINIO_CREDENTIALS_BLOCK, RESULTS_BLOCK]


def warm_results_client() -> None:
    """Make the results block's S3 client now, in a process that forks flow runs.

    prefect-aws caches clients by credentials (`_get_client_cached`), but each forked run
    starts with an empty cache and builds a boto3 client on its first cached task (botocore
    parsing the S3 model: a tenth of a small run's CPU). Made here, the client is inherited:
    a run that loads the same block finds it. It holds no connection yet. Loading the block
    emits an event, so the events worker is drained before the caller forks.
    """
    from prefect.events.worker import EventsWorker
    from prefect.results import resolve_result_storage

    storage = resolve_result_storage(RESULT_STORAGE, _sync=True)
    if isinstance(storage, S3Bucket):
        storage.credentials.get_client("s3")
    EventsWorker.drain_all(timeout=10)
