"""`python -m deployments.apply` touches only what is this project's: its own orphan
automations, and a work pool of its own type."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.apply import (
    PREFECT_FILE,
    WorkPoolTypeMismatch,
    delete_orphan_automations,
    ensure_work_pool,
    pool_job_template,
    project_automations,
)
from ivi import prefect_stack
from ivi.settings import Settings
from tests.paths import REPO_ROOT


# --- which automations are ours ---------------------------------------------------------------
def test_every_trigger_of_prefect_yaml_is_marked_as_this_projects() -> None:
    config = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    ours = project_automations()
    assert len(ours) == sum(len(d.get("triggers") or []) for d in config["deployments"]) >= 1
    for name, description in ours:
        assert name and description.startswith(f"{config['name']}:"), (name, description)


def test_an_unnamed_trigger_is_known_by_the_name_prefect_gives_it(tmp_path: Path) -> None:
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(
        yaml.safe_dump(
            {
                "deployments": [
                    {
                        "name": "dep",
                        "triggers": [
                            {"type": "event", "expect": ["x"], "description": "proj: one"},
                            {"name": "named", "type": "event", "expect": ["y"]},
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    assert project_automations(prefect_file) == {("dep__automation_1", "proj: one"), ("named", "")}


# --- against the real Prefect server -----------------------------------------------------------
@pytest.fixture
def client(stack: Settings) -> Iterator[SyncPrefectClient]:
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        with get_client(sync_client=True) as prefect:
            yield prefect


def _automation(name: str, description: str, deployment_id: uuid.UUID) -> AutomationCore:
    return AutomationCore(
        name=name,
        description=description,
        enabled=False,  # never fires during the test
        trigger=EventTrigger(expect={f"ivi.test.{uuid.uuid4().hex}"}),
        actions=[RunDeployment(source="selected", deployment_id=deployment_id)],
    )


def _deployment(client: SyncPrefectClient) -> uuid.UUID:
    flow_id = client.create_flow_from_name(f"other-project-{uuid.uuid4().hex[:8]}")
    return client.create_deployment(flow_id=flow_id, name=f"dep-{uuid.uuid4().hex[:8]}")


@pytest.mark.services
def test_only_this_projects_automations_of_a_deleted_deployment_are_deleted(
    client: SyncPrefectClient,
) -> None:
    our_name = "process-object-on-upload"  # one of the project's (prefect.yaml has two)
    [our_description] = [description for name, description in project_automations() if name == our_name]
    gone, kept = _deployment(client), _deployment(client)
    created = {
        "ours, orphan": client.create_automation(_automation(our_name, our_description, gone)),
        "ours, deployment kept": client.create_automation(
            _automation(our_name, our_description, kept)
        ),
        # another project's automations on a deployment that is gone as well
        "same name, other project": client.create_automation(
            _automation(our_name, "other-project: its own trigger", gone)
        ),
        "other name": client.create_automation(
            _automation("other-project-on-upload", our_description, gone)
        ),
    }
    client.delete_deployment(gone)
    try:
        deleted = delete_orphan_automations(client)
        remaining = {automation.id for automation in client.read_automations()}
        assert created["ours, orphan"] not in remaining
        assert deleted.count(our_name) == 1
        for label in ("ours, deployment kept", "same name, other project", "other name"):
            assert created[label] in remaining, label
    finally:
        left = {automation.id for automation in client.read_automations()}
        for automation_id in set(created.values()) & left:
            client.delete_automation(automation_id)
        client.delete_deployment(kept)


@pytest.mark.services
def test_a_pool_of_another_type_with_our_name_is_refused_and_left_as_it_is(
    client: SyncPrefectClient,
) -> None:
    name = f"ivi-k8s-{uuid.uuid4().hex[:8]}"
    template = {"job_configuration": {"namespace": "{{ namespace }}"}, "variables": {
        "type": "object", "properties": {"namespace": {"type": "string", "default": "ivi"}}}}
    client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template=template))
    try:
        with pytest.raises(WorkPoolTypeMismatch, match=rf"{name}.*'kubernetes' pool, not a 'process'"):
            ensure_work_pool(client, name)
        pool = client.read_work_pool(name)
        assert pool.type == "kubernetes" and pool.base_job_template == template
    finally:
        client.delete_work_pool(name)


@pytest.mark.services
def test_a_process_pool_is_created_then_its_template_kept_up_to_date(
    client: SyncPrefectClient,
) -> None:
    name = f"ivi-process-{uuid.uuid4().hex[:8]}"
    try:
        assert ensure_work_pool(client, name) is True
        assert ensure_work_pool(client, name) is False
        assert client.read_work_pool(name).base_job_template == pool_job_template()
    finally:
        client.delete_work_pool(name)


@pytest.mark.services
def test_the_setup_step_exits_non_zero_with_one_line_on_a_pool_of_another_type(
    stack: Settings, client: SyncPrefectClient
) -> None:
    name = f"ivi-k8s-{uuid.uuid4().hex[:8]}"
    client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template={}))
    settings = stack.model_copy(update={"work_pool": name})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "deployments.apply"],
            cwd=REPO_ROOT, env=prefect_stack.env(settings),
            capture_output=True, text=True, timeout=180,
        )
    finally:
        client.delete_work_pool(name)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'kubernetes' pool, not a 'process' pool" in lines[0], done.stderr
