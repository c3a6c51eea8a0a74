"""prefect.yaml, loaded the way `prefect deploy` loads it, without a Prefect server.

`prefect deploy` (prefect/cli/deploy/_config.py and _core.py) reads the file through its
Pydantic model (a file that fails it is skipped with a warning, not refused), fills
`{{ $VAR }}` from the environment, imports each entrypoint's flow, builds the schedules with
the deployment schedule schemas and the triggers with `DeploymentTriggerTypes`. The same
functions are called here, with the environment `deployments/apply.py` gives the command,
so a prefect.yaml that `python -m deployments.apply` would fail on (or silently skip) fails
here. The trigger is also checked against what the relay sends: the event name, the resource
id and every label its parameters read.
"""

from __future__ import annotations

import asyncio
import copy
import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.cli.deploy._config import (
    _handle_deprecated_schedule_fields,
    _load_deploy_configs_and_actions,
    _merge_with_default_deploy_config,
)
from prefect.cli.deploy._schedules import _construct_schedules
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from prefect.client.schemas.schedules import CronSchedule
from prefect.events import DeploymentEventTrigger, Resource
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.server.events.actions import RunDeployment
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule
from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate
from prefect.utilities.templating import apply_values
from pydantic import ValidationError
from rich.console import Console

from deployments.apply import PREFECT_FILE, deploy_env
from relay.dispatch import ready_event
from relay.store_events import CreatedObject
from ivi.settings import Settings
from tests.paths import REPO_ROOT

RECONCILE_EVERY_SECONDS = 300  # the design: every 5 minutes
MAINTAIN_LAKE_EVERY_SECONDS = 86400  # issue 15: the Delta tables compacted and vacuumed nightly
PLACEHOLDER = re.compile(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
EVENT_LABEL = re.compile(r"event\.resource\[\s*['\"]([^'\"]+)['\"]\s*\]")
# Settings that are not the defaults, so that a value taken from the defaults shows.
SETTINGS = Settings(_env_file=None, work_pool="pool-under-test", raw_bucket="bucket-under-test")


def load(prefect_file: Path = PREFECT_FILE) -> tuple[list[dict[str, Any]], str]:
    """The deployments `prefect deploy --all` would deploy, and what it printed."""
    output = io.StringIO()
    configs, _actions = _load_deploy_configs_and_actions(
        prefect_file, console=Console(file=output, width=200)
    )
    return configs, output.getvalue()


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """`_run_single_deploy`'s first steps: defaults, then `{{ $VAR }}` from the environment
    (Prefect reads `os.environ` itself), which `deployments.apply.deploy_all` extends with
    `deploy_env(settings)` for the command."""
    config = _handle_deprecated_schedule_fields(_merge_with_default_deploy_config(config))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in deploy_env(SETTINGS).items():
            patch.setenv(name, value)
        return apply_values(config, os.environ, remove_notset=False)


def triggers(config: dict[str, Any]) -> list[DeploymentEventTrigger]:
    """The triggers as `_run_single_deploy` builds them: templating everything but the
    parameters (rendered by the server for each event), then `DeploymentTriggerTypes`."""
    specs = []
    for spec in config.get("triggers") or []:
        spec = dict(spec)
        parameters = spec.pop("parameters", None)
        spec = apply_values(spec, {}, warn_on_notset=False)
        if parameters is not None:
            spec["parameters"] = parameters
        specs.append(spec)
    built = _initialize_deployment_triggers(config["name"], specs)
    assert all(isinstance(trigger, DeploymentEventTrigger) for trigger in built)
    return built  # type: ignore[return-value]


def schedules(config: dict[str, Any]) -> list[dict[str, Any]]:
    return _construct_schedules(
        config, {}, console=Console(file=io.StringIO()), is_interactive=lambda: False
    ) or []


@pytest.fixture(scope="module")
def deployments() -> list[dict[str, Any]]:
    configs, output = load()
    assert configs, f"prefect deploy would deploy nothing:\n{output}"
    return [resolve(config) for config in configs]


@pytest.fixture(scope="module")
def flows(deployments: list[dict[str, Any]]) -> dict[str, Flow[Any, Any]]:
    """Each entrypoint's flow, imported from the repository root as `prefect deploy` does
    (it runs there: deployments/apply.py)."""
    cwd = Path.cwd()
    os.chdir(REPO_ROOT)
    try:
        return {c["entrypoint"]: load_flow_from_entrypoint(c["entrypoint"]) for c in deployments}
    finally:
        os.chdir(cwd)


def created_object(key: str, etag: str = "0123abcd-2") -> CreatedObject:
    return CreatedObject(
        source="minio", bucket=SETTINGS.raw_bucket, key=key, etag=etag, size="1234", sequencer="17A2B",
    )


def relay_event(key: str = "vendas/2026/nov 1+2.csv", dispatch: str = "run") -> dict[str, Any]:
    """An event exactly as the relay posts it for a new raw object (`dispatch`: relay/dispatch.py)."""
    return created_object(key).prefect_event(dispatch)


def broken_copy(tmp_path: Path, change: Any) -> Path:
    """prefect.yaml with `change(document)` applied, written to tmp_path."""
    document = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    change(document)
    target = tmp_path / "prefect.yaml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def deployment(document: dict[str, Any], predicate: Any) -> dict[str, Any]:
    return next(d for d in document["deployments"] if predicate(d))


def iter_strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_strings(item)


# --- the file as `prefect deploy` reads it -------------------------------------------------
def test_prefect_deploy_reads_every_deployment_of_the_file() -> None:
    configs, output = load()
    raw = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    assert [c["name"] for c in configs] == [d["name"] for d in raw["deployments"]]
    assert "Skipping" not in output, output


def test_a_file_prefect_deploy_would_skip_is_noticed(tmp_path: Path) -> None:
    def misspell_a_schedule_key(document: dict[str, Any]) -> None:
        scheduled = deployment(document, lambda d: d.get("schedules"))
        scheduled["schedules"][0]["cronn"] = scheduled["schedules"][0].pop("cron")

    configs, output = load(broken_copy(tmp_path, misspell_a_schedule_key))
    assert configs == [] and "Skipping" in output


def test_every_placeholder_is_filled_by_deployments_apply() -> None:
    document = yaml.safe_load(PREFECT_FILE.read_text(encoding="utf-8"))
    named = {name for text in iter_strings(document) for name in PLACEHOLDER.findall(text)}
    assert named, "prefect.yaml names the work pool as {{ $IVI_WORK_POOL }}"
    assert named <= set(deploy_env(SETTINGS)), f"not passed by deploy_env: {named - set(deploy_env(SETTINGS))}"


def test_nothing_is_left_untemplated(deployments: list[dict[str, Any]]) -> None:
    for config in deployments:
        left = [text for text in iter_strings(config) if PLACEHOLDER.search(text)]
        assert not left, f"{config['name']}: {left}"


def test_the_work_pool_is_the_one_in_the_settings(deployments: list[dict[str, Any]]) -> None:
    assert {config["work_pool"]["name"] for config in deployments} == {SETTINGS.work_pool}


# --- entrypoints and parameters -------------------------------------------------------------
def test_every_entrypoint_is_a_flow(deployments: list[dict[str, Any]], flows: dict[str, Any]) -> None:
    for config in deployments:
        assert isinstance(flows[config["entrypoint"]], Flow), config["entrypoint"]


def test_deployment_parameters_are_parameters_of_the_flow(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    for config in deployments:
        flow = flows[config["entrypoint"]]
        unknown = set(config["parameters"]) - set(flow.parameters.properties)
        assert not unknown, f"{config['name']}: {flow.name} has no parameter {unknown}"
        if set(flow.parameters.required or []) <= set(config["parameters"]):
            flow.validate_parameters(dict(config["parameters"]))


def test_the_reconcile_runs_over_the_raw_bucket_of_the_settings(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    scheduled = [config for config in deployments if schedules(config) and config["name"] == "reconcile"]
    assert scheduled, "the reconcile deployment has a schedule"
    for config in scheduled:
        # a scheduled run gets the deployment's parameters only: they must be complete
        flow = flows[config["entrypoint"]]
        assert set(flow.parameters.required or []) <= set(config["parameters"])
        assert flow.validate_parameters(dict(config["parameters"]))["bucket"] == SETTINGS.raw_bucket


def test_the_lake_is_maintained_every_night_with_complete_parameters(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    """Issue 15: every upload is one commit; a nightly run compacts and vacuums the tables."""
    [config] = [config for config in deployments if config["entrypoint"] == "flows/maintain_lake.py:maintain_lake"]
    [entry] = schedules(config)
    schedule = entry["schedule"]
    assert entry["active"] and isinstance(schedule, CronSchedule), entry
    flow = flows[config["entrypoint"]]
    retention = flow.validate_parameters(dict(config["parameters"]))["retention_hours"]
    assert retention >= 168, "Delta's default retention: a reader may still read a week-old version"


# --- the upload triggers --------------------------------------------------------------------
PROCESS_OBJECT = "flows/process_object.py:process_object"
PROCESS_OBJECTS = "flows/process_objects.py:process_objects"


def triggered(deployments: list[dict[str, Any]], entrypoint: str) -> list[tuple[dict[str, Any], DeploymentEventTrigger]]:
    found = [(config, trigger) for config in deployments if config["entrypoint"] == entrypoint
             for trigger in triggers(config)]
    assert found, f"{entrypoint} is started by a deployment trigger"
    return found


def rendered_parameters(trigger: DeploymentEventTrigger, event: dict[str, Any]) -> dict[str, Any]:
    """The parameters the server's run-deployment action makes of the trigger's templates for
    this event, the way it makes them (v1 templates upgraded, then hydrated with the event)."""
    parameters = copy.deepcopy(trigger.parameters or {})
    RunDeployment._upgrade_v1_templates(parameters)
    context = HydrationContext(raise_on_error=True, render_jinja=True,
                               jinja_context={"event": ReceivedEvent.model_validate(event)})
    return dict(hydrate(parameters, context))


def test_the_triggers_match_the_events_the_relay_posts(deployments: list[dict[str, Any]]) -> None:
    """An object that came alone starts process-object; one of a burst starts nothing by its
    own event, its group's event starts process-objects."""
    alone, grouped = relay_event(), relay_event(dispatch="batch")
    group = ready_event([created_object("vendas/a.csv"), created_object("vendas/b.csv")])
    for entrypoint, starts, ignores in (
        (PROCESS_OBJECT, [alone], [grouped, group]),
        (PROCESS_OBJECTS, [group], [alone, grouped]),
    ):
        for _config, trigger in triggered(deployments, entrypoint):
            assert trigger.enabled
            for event in starts:
                assert event["event"] in trigger.expect and trigger.match.matches(Resource(root=event["resource"]))
            for event in ignores:
                assert not (event["event"] in trigger.expect
                            and trigger.match.matches(Resource(root=event["resource"]))), (entrypoint, event)


def test_the_trigger_reads_only_labels_the_relay_always_sends(deployments: list[dict[str, Any]]) -> None:
    sent = set(relay_event()["resource"])
    for config, trigger in triggered(deployments, PROCESS_OBJECT):
        read = {label for text in iter_strings(trigger.parameters) for label in EVENT_LABEL.findall(text)}
        assert read, f"{config['name']}: the trigger's parameters come from the event"
        assert read <= sent, f"{config['name']} reads labels the relay never sends: {read - sent}"


def test_the_trigger_starts_the_flow_with_the_uploaded_object(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    event = relay_event("clientes/2026/nov ç+x.csv")
    for config, trigger in triggered(deployments, PROCESS_OBJECT):
        flow = flows[config["entrypoint"]]
        assert trigger.parameters is not None
        assert set(trigger.parameters) <= set(flow.parameters.properties)
        assert set(flow.parameters.required or []) <= set(trigger.parameters)
        parameters = flow.validate_parameters(rendered_parameters(trigger, event))
        assert (parameters["bucket"], parameters["key"]) == (SETTINGS.raw_bucket, "clientes/2026/nov ç+x.csv")
        assert parameters.get("etag") == event["resource"]["minio.etag"]


def test_the_group_trigger_starts_the_flow_with_every_object_of_the_group(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    """The list survives the template as a list (Prefect renders a lone expression as JSON)."""
    objects = [created_object("clientes/2026/nov ç+x.csv"), created_object("vendas/a.csv", etag="")]
    for config, trigger in triggered(deployments, PROCESS_OBJECTS):
        flow = flows[config["entrypoint"]]
        assert set(flow.parameters.required or []) <= set(trigger.parameters or {})
        parameters = flow.validate_parameters(rendered_parameters(trigger, ready_event(objects)))
        assert [(ref.bucket, ref.key, ref.etag) for ref in parameters["objects"]] == [
            (SETTINGS.raw_bucket, "clientes/2026/nov ç+x.csv", "0123abcd-2"),
            (SETTINGS.raw_bucket, "vendas/a.csv", None),
        ]


def test_a_broken_trigger_is_refused(tmp_path: Path) -> None:
    def break_the_posture(document: dict[str, Any]) -> None:
        deployment(document, lambda d: d.get("triggers"))["triggers"][0]["posture"] = "Sideways"

    configs, _output = load(broken_copy(tmp_path, break_the_posture))
    with pytest.raises(ValidationError):
        for config in configs:
            triggers(resolve(config))


# --- the reconcile schedule -----------------------------------------------------------------
def schedule_gaps(deployments: list[dict[str, Any]], name: str) -> set[float]:
    """The seconds between the next runs of deployment `name`'s schedules."""
    built = [item for config in deployments if config["name"] == name for item in schedules(config)]
    assert built, f"{name} has a schedule"
    start = datetime(2026, 3, 29, 0, 58, 30, tzinfo=UTC)  # a DST change day in Europe
    gaps: set[float] = set()
    for item in built:
        schedule = item["schedule"]
        assert isinstance(schedule, CronSchedule) and item.get("active", True)
        server_schedule = ServerCronSchedule(**schedule.model_dump())
        dates = asyncio.run(server_schedule.get_dates(n=6, start=start))
        gaps |= {(later - earlier).total_seconds() for earlier, later in zip(dates, dates[1:])}
    return gaps


def test_the_schedule_fires_every_five_minutes(deployments: list[dict[str, Any]]) -> None:
    assert schedule_gaps(deployments, "reconcile") == {RECONCILE_EVERY_SECONDS}


def test_the_powerbi_catch_up_fires_every_ten_minutes_over_due_deferrals_only(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    assert schedule_gaps(deployments, "powerbi-catch-up") == {600.0}
    [config] = [config for config in deployments if config["name"] == "powerbi-catch-up"]
    assert flows[config["entrypoint"]].validate_parameters(dict(config["parameters"])) == {"due_only": True}


def test_the_lake_maintenance_fires_every_night(deployments: list[dict[str, Any]]) -> None:
    assert schedule_gaps(deployments, "maintain-lake") == {MAINTAIN_LAKE_EVERY_SECONDS}


def test_the_lock_records_are_swept_every_night_past_any_lease(
    deployments: list[dict[str, Any]], flows: dict[str, Flow[Any, Any]]
) -> None:
    from flows.version_lock import LOCK_LEASE_SECONDS

    assert schedule_gaps(deployments, "sweep-locks") == {24 * 3600.0}
    [config] = [config for config in deployments if config["name"] == "sweep-locks"]
    older_than = flows[config["entrypoint"]].validate_parameters(dict(config["parameters"]))["older_than_hours"]
    assert older_than * 3600 >= 10 * LOCK_LEASE_SECONDS


def test_a_broken_schedule_is_refused(tmp_path: Path) -> None:
    def break_the_cron(document: dict[str, Any]) -> None:
        deployment(document, lambda d: d.get("schedules"))["schedules"][0]["cron"] = "*/5 * * 13 *"

    configs, _output = load(broken_copy(tmp_path, break_the_cron))
    with pytest.raises((ValueError, ValidationError)):
        for config in configs:
            schedules(resolve(config))
