"""The Prefect server writes events and task runs in batches in every topology, as `ivi up`
runs it (ivi/prefect_stack.py SERVER_TUNING): Compose, the Helm values of Kubernetes, and the
server environments of Terraform's AWS and Azure modules set the same values."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from ivi import prefect_stack
from ivi.settings import Settings
from tests.paths import REPO_ROOT

TERRAFORM_SERVER_ENVIRONMENTS = ("infra/terraform/modules/aws/locals.tf", "infra/terraform/modules/azure/apps.tf")


def _compose_server_environment() -> dict[str, Any]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"]["prefect-server"]["environment"])


def _helm_server_environment() -> dict[str, Any]:
    values = yaml.safe_load((REPO_ROOT / "infra/k8s/helm/prefect-server-values.yaml").read_text())
    return {item["name"]: item["value"] for item in values["server"]["env"]}


def _terraform_server_environment(path: str) -> dict[str, str]:
    text = (REPO_ROOT / path).read_text()
    block = re.search(r"prefect_server_environment = \{(.*?)\n  \}", text, re.S)
    assert block, f"{path}: no prefect_server_environment map"
    return dict(re.findall(r'^\s*(PREFECT_\w+)\s*=\s*"([^"]*)"\s*$', block.group(1), re.M))


@pytest.mark.parametrize(
    "where, environment",
    [
        ("docker-compose.yml", _compose_server_environment),
        ("the Helm values", _helm_server_environment),
        *[(path, lambda path=path: _terraform_server_environment(path)) for path in TERRAFORM_SERVER_ENVIRONMENTS],
    ],
)
def test_every_topology_runs_the_server_with_the_same_write_batching(where: str, environment: Any) -> None:
    found = environment()
    differing = {
        name: (found.get(name), value)
        for name, value in prefect_stack.SERVER_TUNING.items()
        if str(found.get(name)) != value
    }
    assert not differing, f"{where} (found, wanted): {differing}"


def test_the_embedded_server_gets_the_tuning_and_no_other_process_needs_it(tmp_path: Any) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    server = prefect_stack.server_env(settings)
    assert {name: server[name] for name in prefect_stack.SERVER_TUNING} == prefect_stack.SERVER_TUNING
    assert not set(prefect_stack.SERVER_TUNING) & set(prefect_stack.env(settings))


def test_the_task_run_recorder_flushes_at_least_every_whole_second() -> None:
    """Prefect 3.9's recorder truncates its flush interval to whole seconds (`int(...)`): below
    1 it would sleep 0 s between flushes, a busy loop on the server's event loop."""
    interval = float(prefect_stack.SERVER_TUNING["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"])
    assert interval >= 1 and interval.is_integer()
