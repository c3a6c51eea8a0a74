"""Apply the project's Prefect configuration to a running server, idempotently.

Run as `python -m deployments.apply` in a process whose Prefect settings point at the server
(`ivi up` starts it with the right environment). In order:

1. the work pool `IVI_WORK_POOL` when it is a process pool (created once, with the process
   worker's template); other pool types (kubernetes) belong to their worker or the infra code,
   and a pool of another type that holds our name is refused (`WorkPoolTypeMismatch`), never
   given a process template;
2. the blocks (`blocks/register.py`: secrets from the settings, never from prefect.yaml),
   among them `powerbi-<contract>` for each contract with a Power BI table, and the global
   concurrency limit `powerbi-<contract>` that paces its POSTs;
3. `prefect deploy --all` of `prefect.yaml` (deployments, triggers, schedules; a second run
   changes nothing but the trigger automations' ids, which Prefect recreates), with the
   settings prefect.yaml names as `{{ $IVI_... }}` in its environment;
4. orphan automations removed: `prefect deployment delete` leaves a deleted deployment's
   trigger automation behind, and its action would fail on every matching event. Only this
   project's are touched: an automation is ours when its name and description are those of a
   trigger of prefect.yaml (every trigger there carries a description naming the project).

A step that cannot be done ends the command with status 1 and one line saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from prefect.events.filters import AutomationFilter, AutomationFilterName
from prefect.events.schemas.automations import Automation
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from blocks.powerbi_setup import powerbi_contracts
from processing.contract import DEFAULT_CONTRACTS_DIR
from blocks.register import register_blocks
from flows.export_powerbi import (
    RATE_LIMIT_SLOT_DECAY_PER_SECOND,
    RATE_LIMIT_SLOTS,
    rate_limit_name,
)
from blocks.settings import SetupSettings
from deployments import prewarmed_start
from deployments import work_pool as process_pool
from deployments.work_pool import WorkPoolTypeMismatch

# Read from the directory the setup step runs in (the project directory; /app in the images),
# which `prefect deploy` records as the flows' working directory.
PREFECT_FILE = Path("prefect.yaml")
# The Power BI rate limit's values, and why they are what they are, live with the task that
# uses them (flows/export_powerbi.py).
POWERBI_LIMIT_SLOTS = RATE_LIMIT_SLOTS
POWERBI_SLOT_DECAY_PER_SECOND = RATE_LIMIT_SLOT_DECAY_PER_SECOND
AUTOMATION_PAGE = 100


def pool_job_template() -> dict[str, Any]:
    """The process worker's template, its job command set to the pre-warmed engine launcher.

    `deployments/prewarmed_start.py` starts each run on the already-imported engine of
    `ivi up` (seconds faster), and runs `python -m prefect.engine` itself when that engine
    is not there: the pool works either way.
    """
    template = ProcessWorker.get_default_base_job_template()
    properties = template["variables"]["properties"]
    # -S: the launcher needs the standard library only, not the site-packages' start-up
    properties["command"]["default"] = f"{sys.executable} -S {Path(prewarmed_start.__file__).resolve()}"
    # Runs start in the project directory (where the setup step runs: the repository, /app in
    # the images), the flows' entrypoints being relative to it. prefect.yaml has no pull step
    # to get there: a `set_working_directory` step costs every run two API clients and an
    # event, in the worker and again in the run (docs/shared-state.md, throughput).
    properties["working_dir"]["default"] = str(Path.cwd().resolve())
    return template


def ensure_work_pool(client: SyncPrefectClient, name: str) -> bool:
    """Create the process work pool when absent (or bring its template up to date); True
    when it was created. A pool of that name and another type raises WorkPoolTypeMismatch."""
    return process_pool.ensure_work_pool(client, name, ProcessWorker.type, pool_job_template()) == "created"


def ensure_rate_limit(
    client: SyncPrefectClient, name: str, limit: int, slot_decay_per_second: float
) -> str:
    """Create the global concurrency limit, or bring an existing one to these values.

    Returns "created", "updated" or "unchanged". The task uses it with
    `rate_limit(name, strict=True)`, which fails when it is missing.
    """
    try:
        existing = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        existing = None
    if existing is None:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(
                name=name, limit=limit, slot_decay_per_second=slot_decay_per_second, active=True
            )
        )
        return "created"
    if (existing.limit, existing.slot_decay_per_second, existing.active) == (
        limit, slot_decay_per_second, True
    ):
        return "unchanged"
    client.update_global_concurrency_limit(
        name,
        GlobalConcurrencyLimitUpdate(
            limit=limit, slot_decay_per_second=slot_decay_per_second, active=True
        ),
    )
    return "updated"


def ensure_powerbi_rate_limits(
    client: SyncPrefectClient, directory: Path = DEFAULT_CONTRACTS_DIR
) -> list[tuple[str, str]]:
    """One rate limit per contract of `directory` with a Power BI table; (name, what was
    done) for each."""
    return [ensure_powerbi_rate_limit(client, contract.name) for contract in powerbi_contracts(directory)]


def ensure_powerbi_rate_limit(client: SyncPrefectClient, contract: str) -> tuple[str, str]:
    """The rate limit of one contract's dataset; (its name, what was done). `ivi contract
    publish` calls it for the contract it publishes."""
    name = rate_limit_name(contract)
    return name, ensure_rate_limit(client, name, POWERBI_LIMIT_SLOTS, POWERBI_SLOT_DECAY_PER_SECOND)


def deploy_all(settings: SetupSettings, prefect_file: Path = PREFECT_FILE) -> None:
    """`prefect deploy --all`, from the repository root (recorded as the flows' working dir).

    prefect.yaml reads the work pool and the raw bucket as `{{ $IVI_WORK_POOL }}` and
    `{{ $IVI_RAW_BUCKET }}`; the child gets them from `settings`, whatever the shell has.
    """
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
         "--prefect-file", str(prefect_file)],
        cwd=prefect_file.resolve().parent,
        env={**os.environ, **deploy_env(settings)},
        check=True,
    )


def deploy_env(settings: SetupSettings) -> dict[str, str]:
    """The variables prefect.yaml is templated with (no secret among them)."""
    return {"IVI_WORK_POOL": settings.work_pool, "IVI_RAW_BUCKET": settings.raw_bucket}


def project_automations(prefect_file: Path = PREFECT_FILE) -> set[tuple[str, str]]:
    """(name, description) of every automation `prefect deploy --all` creates from the file.

    Named as Prefect names them (a trigger without a name gets
    `<deployment>__automation_<n>`).
    """
    config = yaml.safe_load(prefect_file.read_text(encoding="utf-8")) or {}
    found: set[tuple[str, str]] = set()
    for deployment in config.get("deployments") or []:
        specs = [dict(spec) for spec in deployment.get("triggers") or []]
        for spec in specs:
            spec.pop("parameters", None)  # templated per event: not needed to name it
        for trigger in _initialize_deployment_triggers(deployment["name"], specs):
            found.add((trigger.name or "", trigger.description))
    return found


def is_ours(automation: Automation, ours: set[tuple[str, str]]) -> bool:
    """The automation was created from our prefect.yaml (its name and description match).

    Prefect records which deployment owns a trigger's automation, but neither returns it nor
    says which project the deployment was: the name and the description are what we wrote.
    """
    return (automation.name, automation.description) in ours


def delete_orphan_automations(
    client: SyncPrefectClient, prefect_file: Path = PREFECT_FILE
) -> list[str]:
    """Delete this project's automations that run a deployment which no longer exists; return
    their names. Other automations (by hand, of other projects) are never touched.

    The server does not return an automation's `owner_resource`, so the link is read from the
    automation's own run-deployment actions.
    """
    ours = project_automations(prefect_file)
    deleted: list[str] = []
    for automation in _automations_named(client, sorted({name for name, _ in ours})):
        if not is_ours(automation, ours):
            continue
        actions = [*automation.actions, *automation.actions_on_trigger, *automation.actions_on_resolve]
        targets = {
            deployment_id
            for action in actions
            if isinstance(deployment_id := getattr(action, "deployment_id", None), UUID)
        }
        if targets and not all(_deployment_exists(client, target) for target in targets):
            client.delete_automation(automation.id)
            deleted.append(automation.name)
    return deleted


def _automations_named(client: SyncPrefectClient, names: list[str]) -> list[Automation]:
    """Every automation with one of these names, page by page (the server caps a page)."""
    if not names:
        return []
    wanted = AutomationFilter(name=AutomationFilterName(any_=names))
    found: list[Automation] = []
    while page := client.read_automations(
        automations=wanted, limit=AUTOMATION_PAGE, offset=len(found)
    ):
        found.extend(page)
        if len(page) < AUTOMATION_PAGE:
            break
    return found


def _deployment_exists(client: SyncPrefectClient, deployment_id: UUID) -> bool:
    try:
        client.read_deployment(deployment_id)
    except ObjectNotFound:
        return False
    return True


def apply(settings: SetupSettings) -> None:
    if settings.work_pool_type == ProcessWorker.type:
        with get_client(sync_client=True) as client:
            if ensure_work_pool(client, settings.work_pool):
                print(f"created work pool {settings.work_pool}")
    for name in register_blocks(settings):
        print(f"saved block {name}")
    with get_client(sync_client=True) as client:
        for name, done in ensure_powerbi_rate_limits(client, settings.contracts_directory):
            print(f"rate limit {name}: {done}")
    deploy_all(settings)
    with get_client(sync_client=True) as client:
        for name in delete_orphan_automations(client):
            print(f"deleted orphan automation {name!r}")


def main() -> int:
    try:
        apply(SetupSettings())
    except WorkPoolTypeMismatch as error:
        print(f"deployments.apply: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
