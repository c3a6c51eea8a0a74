"""The one way the project creates a work pool or brings its template up to date.

Used by the setup step for the local process pool (`deployments/apply.py`) and by the
Kubernetes setup Job for the kubernetes pool (`infra/k8s/base/work-pool/configure_work_pool.py`):
create it when absent, replace its base job template when it differs, and refuse a pool of
that name with another type instead of giving it a template it cannot run.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


class WorkPoolTypeMismatch(Exception):
    """The work pool of our name exists with another type; its message is one line for the user."""


def ensure_work_pool(
    client: SyncPrefectClient, name: str, pool_type: str, template: dict[str, Any]
) -> str:
    """"created", "updated" or "unchanged"; raises WorkPoolTypeMismatch (template untouched)."""
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
            return "created"
        except ObjectAlreadyExists:  # created in between (a worker, or another setup run)
            pool = client.read_work_pool(name)
    if pool.type != pool_type:
        raise WorkPoolTypeMismatch(
            f"work pool {pool.name!r} is a {pool.type!r} pool, not a {pool_type!r} pool: its base "
            f"job template was left as it is; set IVI_WORK_POOL to another name, or "
            f"IVI_WORK_POOL_TYPE={pool.type} if that pool is the one to use"
        )
    if pool.base_job_template == template:
        return "unchanged"
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return "updated"
