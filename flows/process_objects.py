"""process_objects: the objects of a burst of uploads, one `process_object` subflow each.

A deployment run has a fixed cost that a small file's work does not come near: the trigger's
automation, the worker's poll and hand-over, the run's process, its Scheduled and Pending
states (about 0.5 CPU-s of the 1.5 a small file cost, measured in docs/shared-state.md). When
uploads arrive faster than one every `IVI_RELAY_BATCH_WINDOW_SECONDS`, the relay groups them
(`relay/dispatch.py`) and one run of this flow takes the group, so a burst pays that cost once
per group instead of once per file.

Each object still gets its own `process_object` flow run, as a subflow: its own lock, report,
artifacts, logs and state in the UI, found by its `key` parameter like any other. One object
that fails does not stop the others; the run fails at the end, naming them. A group whose
process dies half way leaves its remaining objects to the reconcile (`flows/backfill.py`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State
from prefect_aws import S3Bucket
from pydantic import BaseModel

from blocks.loaded_once import blocks_loaded_once, load_block
from blocks.objectstore import RESULT_STORAGE, RESULTS_BLOCK
from flows.process_object import process_object


class ObjectRef(BaseModel):
    """One object version of a group, as the relay's `ivi.objects.ready` event names it."""

    bucket: str
    key: str
    etag: str | None = None


@flow(name="process_objects", log_prints=False, result_storage=RESULT_STORAGE, persist_result=False)
def process_objects(objects: list[ObjectRef]) -> State:
    """Process each object in turn, each in its own `process_object` subflow run."""
    logger = get_run_logger()
    not_completed: list[str] = []
    with blocks_loaded_once():  # blocks/loaded_once.py: one load per block for the group
        subflow = process_object.with_options(result_storage=load_block(S3Bucket, RESULTS_BLOCK))
        for ref in objects:
            state = subflow(ref.bucket, ref.key, ref.etag, return_state=True)
            if not state.is_completed():
                not_completed.append(f"s3://{ref.bucket}/{ref.key} ({state.type.value})")
    logger.info("%d of %d object(s) completed", len(objects) - len(not_completed), len(objects))
    if not_completed:
        return Failed(message=f"{len(not_completed)} of {len(objects)} object(s) did not complete: "
                      + ", ".join(not_completed[:10]))
    return Completed(message=f"{len(objects)} object(s) processed")
