"""The embedded stack's PostgreSQL: the Prefect server's data is there, only there, reachable
only on 127.0.0.1 with the password, and it survives `ivi down` + `ivi up`.

The `services` tests use the session's stack (tests/conftest.py): the database is queried over
the same TCP connection the Prefect server uses, with asyncpg, the server's own driver.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from tests.fault_support import bring_back, stack_left_healthy
from tests.stack_support import declared_deployments, isolated_settings, prefect_request

from ivi import postgres, prefect_stack
from ivi import stack as ivi_stack
from ivi.processes import port_is_free, running
from ivi.settings import Settings

services = pytest.mark.services


def _query(settings: Settings, sql: str, *, password: str | None = None) -> list[Any]:
    async def fetch() -> list[Any]:
        connection = await asyncpg.connect(
            host=postgres.LISTEN_IP, port=settings.postgres_port, user=postgres.ROLE,
            database=postgres.DATABASE, timeout=10,
            password=settings.postgres_password.get_secret_value() if password is None else password,
        )
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def _deployments(settings: Settings) -> dict[str, str]:
    found = prefect_request("POST", f"{settings.prefect_api_url}/deployments/filter", json={}).json()
    return {d["name"]: d["id"] for d in found}


@services
def test_the_prefect_server_keeps_its_data_in_the_stacks_postgresql(stack: Settings) -> None:
    in_database = dict(_query(stack, "SELECT name, id::text FROM deployment"))
    assert in_database == _deployments(stack)
    assert set(in_database) == declared_deployments() >= {"process-object", "backfill", "reconcile"}
    assert not list(stack.data_dir.rglob("*.db")), "no SQLite database beside it"


@services
def test_postgresql_listens_on_127_0_0_1_only_without_a_socket_and_not_as_root(stack: Settings) -> None:
    server = running(ivi_stack.files(stack, postgres.SERVICE))
    assert server is not None
    listening = {c.laddr for c in server.net_connections(kind="all") if c.status == psutil.CONN_LISTEN}
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", stack.postgres_port)]
    assert not [c for c in server.net_connections(kind="unix")], "no Unix socket"
    if os.geteuid() == 0:
        assert server.username() == postgres.OS_USER_WHEN_ROOT
    pgdata = postgres.data_dir(stack)
    assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700
    assert pgdata.stat().st_uid == server.uids().effective


@services
def test_postgresql_refuses_a_wrong_or_missing_password(stack: Settings) -> None:
    for wrong in ("wrong", ""):
        with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            _query(stack, "SELECT 1", password=wrong)


@services
def test_down_stops_postgresql_and_up_again_finds_the_data_it_had(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    api = stack.prefect_api_url
    marker = f"ivi-test-{uuid.uuid4().hex[:8]}"
    prefect_request("POST", f"{api}/variables/", json={"name": marker.replace("-", "_"), "value": 42})
    deployments = _deployments(stack)
    server = running(ivi_stack.files(stack, postgres.SERVICE))
    assert server is not None
    family = [server, *server.children(recursive=True)]

    with stack_left_healthy(stack):
        assert ivi_stack.down(stack) == 0
        assert "postgres" in capsys.readouterr().out.splitlines()[-1]
        _, alive = psutil.wait_procs(family, timeout=5)
        assert alive == []
        assert port_is_free(postgres.LISTEN_IP, stack.postgres_port)
        log = ivi_stack.files(stack, postgres.SERVICE).log_file.read_text()
        assert "received fast shutdown request" in log and "database system is shut down" in log

        # Brought back without re-applying prefect.yaml: what is there was kept, not re-created.
        assert postgres.SERVICE in bring_back(stack)
    assert _deployments(stack) == deployments
    variable = prefect_request("GET", f"{api}/variables/name/{marker.replace('-', '_')}").json()
    assert variable["value"] == 42
    prefect_request("DELETE", f"{api}/variables/name/{marker.replace('-', '_')}")


def test_the_cluster_is_created_once_and_an_interrupted_creation_is_redone(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    pgdata = postgres.data_dir(settings)
    (pgdata.with_name("postgres.init") / "base").mkdir(parents=True)  # a creation cut short
    postgres.prepare(settings)
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    assert not pgdata.with_name("postgres.init").exists()
    assert not list(tmp_path.glob(".pwfile-*")), "the password file is removed"
    created = (pgdata / "PG_VERSION").stat().st_mtime_ns
    postgres.prepare(settings)
    assert (pgdata / "PG_VERSION").stat().st_mtime_ns == created


def test_only_the_prefect_server_gets_the_database_password(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    password = settings.postgres_password.get_secret_value()
    url = prefect_stack.server_env(settings)["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url == (f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{settings.postgres_port}"
                   "/prefect")
    assert not [k for k, v in prefect_stack.env(settings).items() if password in v]
    assert prefect_stack.server_command(settings)[1:4] == ["-m", "prefect", "server"]


# What a developer's `make demo` does (not root): initdb and postgres run as the invoking user,
# with no account to create and no directory to open up. Run here as `nobody`, in a process of
# its own, through the stack's own start and stop.
_AS_ANOTHER_USER = """
import asyncio, os, sys, time
from pathlib import Path
import asyncpg
from ivi import postgres
from ivi import stack as ivi_stack
from ivi.processes import spawn, stop
from tests.stack_support import isolated_settings

settings = isolated_settings(Path(sys.argv[1]))
assert postgres.os_user() is None
postgres.prepare(settings)
files = ivi_stack.files(settings, postgres.SERVICE)
server = spawn(files, postgres.command(settings), env=dict(os.environ), cwd=Path("/"))
try:
    deadline = time.monotonic() + 60
    while not postgres.is_ready(settings):  # polled, as the stack waits for it
        assert server.is_running() and time.monotonic() < deadline, "postgres did not start"
        time.sleep(0.1)
    async def who():
        connection = await asyncpg.connect(host=postgres.LISTEN_IP, port=settings.postgres_port,
            user=postgres.ROLE, database=postgres.DATABASE,
            password=settings.postgres_password.get_secret_value(), timeout=10)
        try:
            return await connection.fetchval("select current_setting('data_directory')")
        finally:
            await connection.close()
    print("data_directory", asyncio.run(who()))
    print("server uids", sorted({p.uids().real for p in [server, *server.children()]}))
finally:
    print("stopped", stop([files], timeout=30, leader_signals={postgres.SERVICE: postgres.STOP_SIGNAL}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: every stack test already runs PostgreSQL as the invoking user")
def test_postgresql_runs_as_an_invoking_user_that_is_not_root() -> None:
    import pwd
    import shutil
    import subprocess
    import sys
    import tempfile

    nobody = pwd.getpwnam("nobody")
    # as the root path does for its own user: the traverse bit where a parent lacks it, so
    # that `nobody` reaches the project's code and its .venv (a clone under a 0700 folder)
    postgres._let_reach(ivi_stack.PROJECT_DIR, (nobody.pw_uid, nobody.pw_gid))  # noqa: SLF001
    data = Path(tempfile.mkdtemp(prefix="ivi-nonroot-", dir="/tmp"))
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    try:
        result = subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             sys.executable, "-c", _AS_ANOTHER_USER, str(data)],
            cwd=ivi_stack.PROJECT_DIR, capture_output=True, text=True, timeout=180,
            env={**os.environ, "PYTHONPATH": str(ivi_stack.PROJECT_DIR), "HOME": str(data)},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"data_directory {postgres.data_dir(isolated_settings(data))}" in result.stdout
        assert f"server uids [{nobody.pw_uid}]" in result.stdout
        assert "stopped ['postgres']" in result.stdout, result.stdout
        assert (data / "postgres").stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(data, ignore_errors=True)
