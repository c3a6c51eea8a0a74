"""Create or update the Kubernetes work pool with the project's flow-run job template.

Run by the setup Job (infra/k8s/base/setup-job.yaml) before `python -m deployments.apply`:

    python configure_work_pool.py base-job-template.json

`base-job-template.json` is prefect-kubernetes' default template with what every flow run of
this project needs: the `ivi-config` ConfigMap as environment, a writable /tmp (an emptyDir of
the pod's own) on a read-only root filesystem, a service account without API access, resource
requests and a TTL for finished Jobs. No volume is shared between runs: the flows' lock and
results live in the object store (`_ivi/locks/`, `_ivi/results/` in the processed bucket). Two
defaults are only known in the cluster, so they come from the environment:

- FLOW_RUN_IMAGE: the image the flows run in (the overlays copy the worker's image here);
- FLOW_RUN_NAMESPACE: the namespace the Jobs are created in (the setup Job's own).

The pool named IVI_WORK_POOL is created when absent and its template replaced when it
differs, so the Job can run again after every upgrade. The worker never creates the pool
(`--no-create-pool-if-not-found`): a pool made with the stock template would run the flows
in Prefect's image, without the project's code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

KUBERNETES_POOL_TYPE = "kubernetes"


def flow_run_template(template: dict[str, Any], image: str, namespace: str) -> dict[str, Any]:
    """The template with the flow runs' image and namespace as its variables' defaults."""
    if not image:
        raise ValueError("FLOW_RUN_IMAGE is empty: the flow runs would have no image")
    if not namespace:
        raise ValueError("FLOW_RUN_NAMESPACE is empty: the flow runs would have no namespace")
    filled = json.loads(json.dumps(template))  # a deep copy; the input stays as read
    properties = filled["variables"]["properties"]
    properties["image"]["default"] = image
    properties["namespace"]["default"] = namespace
    return filled


def ensure_pool(name: str, template: dict[str, Any]) -> str:
    """Create the pool, or bring its template up to date; say which was done.

    The project's one pool creator (`deployments/work_pool.py`, in the image at /app), which
    refuses a pool of that name and another type.
    """
    from prefect.client.orchestration import get_client

    from deployments.work_pool import WorkPoolTypeMismatch, ensure_work_pool

    with get_client(sync_client=True) as client:
        try:
            return ensure_work_pool(client, name, KUBERNETES_POOL_TYPE, template)
        except WorkPoolTypeMismatch as error:
            raise SystemExit(f"configure_work_pool: {error}") from None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} BASE_JOB_TEMPLATE.json", file=sys.stderr)
        return 2
    pool_type = os.environ.get("IVI_WORK_POOL_TYPE", "")
    if pool_type != KUBERNETES_POOL_TYPE:
        print(f"IVI_WORK_POOL_TYPE is {pool_type!r}, expected {KUBERNETES_POOL_TYPE!r}", file=sys.stderr)
        return 2
    name = os.environ["IVI_WORK_POOL"]
    template = flow_run_template(
        json.loads(Path(argv[1]).read_text(encoding="utf-8")),
        image=os.environ.get("FLOW_RUN_IMAGE", ""),
        namespace=os.environ.get("FLOW_RUN_NAMESPACE", ""),
    )
    done = ensure_pool(name, template)
    print(f"work pool {name} ({KUBERNETES_POOL_TYPE}): {done}; flow runs use "
          f"{template['variables']['properties']['image']['default']} in namespace "
          f"{template['variables']['properties']['namespace']['default']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
