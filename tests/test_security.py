"""No secret leaks anywhere a user, an operator or the Prefect UI can see; the relay's door.

One module-scoped run on the session's stack uses every secret the stack has: an upload
processed end to end and pushed to the Power BI stand-in through a push URL whose `key=` is
a secret (with a 429 and a 500 on the way, so that the retry and error paths log too), a
push dataset reached through the REST API with a client secret (its token revoked once, so
that the 401-refresh path runs), a file rejected as a whole (a failed run, its original
copied to quarantine), and webhook calls with right and wrong tokens. Then every place such
a value could end up is searched for every secret, as is and URL-encoded, form-encoded,
JSON-escaped and base64-encoded (at each of the three byte alignments a secret can have
inside a longer base64 text):

- the service logs (`<data dir>/logs/*`) and the output of the `ivi` command that was run;
- every object in the processed and quarantine buckets (clean files, rejected rows, reports);
- the Prefect API: artifacts, flow runs (parameters, state messages, job variables), task
  runs, logs, events, deployments, work pools, automations, variables, and the block
  documents as the API shows them (secret fields must come back obfuscated);
- every file under the data dir except the few whose job is to hold a secret;
- the command lines of the stack's processes (any local user can read them).

The S3 access key is an identifier, not a secret (every signed S3 request carries it in
clear), but nothing of the pipeline has a reason to show it either: it is searched for in the
same places, allowed only where the stores keep their configuration (SeaweedFS' `s3.json`,
the `minio-credentials` block's user name in Prefect's database, block API and block events).

The relay half checks the token comparison (constant time, `hmac.compare_digest`, for every
wrong token shape) and the body cap on a real socket: a body one byte over
`IVI_RELAY_MAX_BODY_BYTES` is refused however its size is announced (Content-Length,
chunked, a Content-Length that lies either way) and a sender that stalls or leaves half way
neither holds the relay nor makes it fail.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets as token_source
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import psutil
import pytest
from pydantic import SecretStr

from blocks.powerbi_setup import standin_push_key
from objectstore.store import OutputKeys
from ivi.settings import Settings
from tests.paths import REPO_ROOT
from tests.fault_support import poll
from tests.pipeline_support import (
    s3,
    upload,
    wait_for_report,
    wait_for_runs_to_finish,
)
from tests.powerbi_pipeline_support import clear_faults, new_marker, queue_fault, vendas_csv
from tests.stack_support import assert_stays, auth_headers, prefect_request

MIN_SECRET_CHARS = 16
MIN_IDENTIFIER_CHARS = 12
# Files under the data dir whose job is to hold a secret (value: the secrets they may hold).
SECRET_HOLDERS = {
    "seaweedfs/s3.json": {"s3 secret key", "s3 access key"},  # the S3 server's own config
    "seaweedfs/notification.toml": {"webhook token"},  # the filer's webhook sender config
    # the stand-in plays the Power BI service, which knows the keys of its datasets
    "powerbi/standin.sqlite": {"push key vendas", "push key clientes"},
    # Prefect's database (data files and WAL): block secrets are stored encrypted, the
    # credentials block's user name plain; its own password only as a SCRAM verifier
    "postgres/": {"s3 access key"},
}


# --- the secrets, and every form a leak could take ------------------------------------------
@dataclass(frozen=True)
class Secret:
    name: str
    value: str

    def forms(self) -> dict[str, str]:
        """The value as it could appear in a text: as is, escaped, or base64-encoded."""
        forms = {
            "as is": self.value,
            "URL-encoded": quote(self.value, safe=""),
            "form-encoded": quote_plus(self.value),
            "JSON-escaped": json.dumps(self.value)[1:-1],
        }
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            for shift in range(3):  # where the secret starts in its 3-byte group
                encoded = encode(b"\0" * shift + self.value.encode()).decode()
                # keep the characters made of the secret's bits only
                forms[f"{name} at offset {shift}"] = encoded[(4 * shift + 2) // 3 : -4]
        return forms

    def found_in(self, text: str) -> list[str]:
        return [form for form, value in self.forms().items() if value in text]


def leaks(text: str, secrets: list[Secret]) -> list[str]:
    """`name (form)` for every secret found in `text`."""
    return [f"{s.name} ({form})" for s in secrets for form in s.found_in(text)]


# --- the run that uses every secret --------------------------------------------------------------
@dataclass
class Exercise:
    """What the module's run did: its secrets, keys, reports, runs and command output."""

    secrets: list[Secret]
    identifiers: list[Secret]
    keys: dict[str, str] = field(default_factory=dict)  # what -> object key of the raw bucket
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_run: dict[str, Any] = field(default_factory=dict)
    command_output: str = ""

    @property
    def everything(self) -> list[Secret]:
        return [*self.secrets, *self.identifiers]


def _restore_clientes_block(settings: Settings) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.powerbi import PowerBIPushDataset
    from blocks.powerbi_setup import delete_block_document, register_powerbi_blocks

    with temporary_settings({PREFECT_API_URL: settings.prefect_api_url}):
        delete_block_document(PowerBIPushDataset, "powerbi-clientes")
        register_powerbi_blocks(settings)


@pytest.fixture(scope="module")
def exercise(stack: Settings) -> Iterator[Exercise]:
    client_secret = token_source.token_urlsafe(24)
    done = Exercise(
        secrets=[
            Secret("webhook token", stack.webhook_token.get_secret_value()),
            Secret("metrics token", stack.metrics_token.get_secret_value()),
            Secret("s3 secret key", stack.s3_secret_key.get_secret_value()),
            Secret("postgres password", stack.postgres_password.get_secret_value()),
            Secret("push key vendas", standin_push_key("vendas", stack)),
            Secret("push key clientes", standin_push_key("clientes", stack)),
            Secret("client secret", client_secret),
        ],
        identifiers=[Secret("s3 access key", stack.s3_access_key)],
    )
    marker = new_marker()
    try:
        # 1. push URL with its key, through a 429 and a 500
        clear_faults(stack)
        queue_fault(stack, "429", 1, retry_after=1)
        queue_fault(stack, "500", 1)
        key = done.keys["push url"] = f"vendas/security/{marker}.csv"
        etag = upload(stack, key, vendas_csv(30, marker) + b"99,2024-01-02,x,y,z,1,10,10,XX\n")
        done.reports["push url"] = wait_for_report(stack, key, etag, timeout=180)
        wait_for_runs_to_finish(stack, key)

        # 2. the REST API with a client secret, its token revoked once (401 -> refresh)
        with_secret = stack.model_copy(update={"powerbi_client_secret": SecretStr(client_secret)})
        command = subprocess.run(
            [sys.executable, "-m", "ivi.cli", "powerbi", "create-dataset", "--contract", "clientes"],
            env={**os.environ, **with_secret.child_env()}, cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=180,
        )
        done.command_output = command.stdout + command.stderr
        assert command.returncode == 0, done.command_output
        httpx.delete(
            f"{stack.powerbi_standin_url}/_standin/tokens",
            headers=stack.powerbi_standin_admin_headers, timeout=30,
        ).raise_for_status()
        key = done.keys["rest api"] = f"clientes/security/{marker}.csv"
        etag = upload(stack, key, b"idade,genero,renda_mensal\n30,F,1000\n41,m,2500.5\n200,x,1\n")
        done.reports["rest api"] = wait_for_report(stack, key, etag, timeout=180)
        wait_for_runs_to_finish(stack, key)

        # 3. a run that fails: a file rejected as a whole (its original goes to quarantine)
        key = done.keys["rejected"] = f"vendas/security/{marker}-empty.csv"
        etag = upload(stack, key, b"  \n")
        done.reports["rejected"] = wait_for_report(stack, key, etag, timeout=180)
        done.failed_run = wait_for_runs_to_finish(stack, key)[0]

        # 4. the webhook with a wrong token and with the right one
        wrong = {"Authorization": f"Bearer {token_source.token_urlsafe(24)}"}
        for headers in (wrong, auth_headers(stack)):
            httpx.post(f"{stack.relay_url}/minio/events", json={"EventName": "probe"},
                       headers=headers, timeout=30)
        yield done
    finally:
        clear_faults(stack)
        _restore_clientes_block(stack)


# --- where secrets could end up ----------------------------------------------------------------
def _pages(settings: Settings, path: str, body: dict[str, Any] | None = None) -> list[Any]:
    """Every record of a Prefect `.../filter` endpoint, page by page."""
    records: list[Any] = []
    while True:
        page = prefect_request(
            "POST", f"{settings.prefect_api_url}/{path}",
            json={**(body or {}), "limit": 200, "offset": len(records)},
        ).json()
        records.extend(page)
        if len(page) < 200:
            return records


def _events(settings: Settings) -> list[Any]:
    """Every event the server kept (the filter's default window is the last day)."""
    page = prefect_request(
        "POST", f"{settings.prefect_api_url}/events/filter", json={"limit": 50}
    ).json()
    events = list(page["events"])
    while page.get("next_page"):
        page = prefect_request("GET", page["next_page"]).json()
        events.extend(page["events"])
    return events


def prefect_records(settings: Settings) -> dict[str, Any]:
    """Everything the Prefect API shows that a run, a trigger or a deployment wrote.

    Block document events (`prefect.block-document.*`) are kept apart: like the block API,
    they show a block's non-secret fields, the credentials block's user name among them.
    """
    events = _events(settings)
    return {
        "artifacts": _pages(settings, "artifacts/filter"),
        "flow runs": _pages(settings, "flow_runs/filter"),
        "task runs": _pages(settings, "task_runs/filter"),
        "logs": _pages(settings, "logs/filter"),
        "events": [e for e in events if not e["event"].startswith("prefect.block-document.")],
        "block document events": [
            e for e in events if e["event"].startswith("prefect.block-document.")
        ],
        "deployments": _pages(settings, "deployments/filter"),
        "work pools": _pages(settings, "work_pools/filter"),
        "automations": prefect_request(
            "POST", f"{settings.prefect_api_url}/automations/filter", json={}
        ).json(),
        "variables": _pages(settings, "variables/filter"),
    }


def bucket_objects(settings: Settings, bucket: str) -> dict[str, bytes]:
    client = s3(settings)
    found = {}
    for obj in client.list_objects(bucket, recursive=True):
        response = client.get_object(bucket, obj.object_name)
        try:
            found[obj.object_name] = response.read()
        finally:
            response.close()
            response.release_conn()
    return found


# --- the search itself can find what it looks for ------------------------------------------------
@pytest.mark.services
def test_every_secret_is_long_enough_to_search_for(exercise: Exercise) -> None:
    for secret in exercise.secrets:
        assert len(secret.value) >= MIN_SECRET_CHARS, secret.name
    for identifier in exercise.identifiers:
        assert len(identifier.value) >= MIN_IDENTIFIER_CHARS, identifier.name
    values = [secret.value for secret in exercise.everything]
    assert len(set(values)) == len(values)


@pytest.mark.services
def test_the_search_finds_each_secret_planted_in_any_form(stack: Settings, exercise: Exercise) -> None:
    # a settings dump as `.env` holds it, with the push URL and the client secret added
    dump = "\n".join(f"{name}={value}" for name, value in stack.child_env().items())
    dump += f"\nPUSH_URL={stack.powerbi_standin_url}/beta/t/datasets/d/rows?key="
    dump += standin_push_key("vendas", stack) + "&x=" + standin_push_key("clientes", stack)
    dump += f"\nIVI_POWERBI_CLIENT_SECRET={exercise.secrets[-1].value}\n"
    assert {hit.split(" (")[0] for hit in leaks(dump, exercise.everything)} == {
        secret.name for secret in exercise.everything
    }
    for secret in exercise.everything:
        for form, value in secret.forms().items():
            assert form in secret.found_in(f"...{value}..."), (secret.name, form)
        # inside a longer base64 text (a basic-auth header, a pickled block), any alignment
        for prefix in (b"", b"u", b"u:"):
            blob = base64.b64encode(prefix + secret.value.encode() + b"!").decode()
            assert secret.found_in(f"Authorization: Basic {blob}"), (secret.name, prefix)
    assert leaks(dump.replace(exercise.secrets[0].value, "x"), exercise.secrets[:1]) == []


@pytest.mark.services
def test_the_run_used_every_secret(stack: Settings, exercise: Exercise) -> None:
    push, rest = exercise.reports["push url"], exercise.reports["rest api"]
    assert push["powerbi_rows"] == push["exported_rows"] == 30 and push["quarantined_rows"] == 1
    assert "/beta/" in push["powerbi_destination"] and "key=" not in push["powerbi_destination"]
    assert rest["powerbi_rows"] == rest["exported_rows"] == 2
    assert rest["powerbi_destination"].endswith("/tables/clientes/rows")
    assert exercise.reports["rejected"]["status"] == "rejected"
    assert exercise.failed_run["state_type"] == "FAILED"
    assert "created Power BI dataset" in exercise.command_output


# --- and finds none where none may be -------------------------------------------------------------
def _assert_clean(where: str, text: str, secrets: list[Secret]) -> None:
    found = leaks(text, secrets)
    assert not found, f"{where} contains {', '.join(found)}"


@pytest.mark.services
def test_no_secret_in_the_service_logs_or_the_commands_output(
    stack: Settings, exercise: Exercise
) -> None:
    logs = sorted((stack.data_dir / "logs").glob("*"))
    assert {"relay.log", "worker.log", "prefect-server.log", "seaweedfs.log"} <= {p.name for p in logs}
    relay_log = (stack.data_dir / "logs" / "relay.log").read_text(errors="replace")
    assert "401" in relay_log  # the wrong token of the run was logged, the token itself not
    for path in logs:
        _assert_clean(f"log {path.name}", path.read_bytes().decode("latin-1"), exercise.everything)
    _assert_clean("`ivi powerbi create-dataset` output", exercise.command_output, exercise.everything)


@pytest.mark.services
def test_no_secret_in_any_output_or_report(stack: Settings, exercise: Exercise) -> None:
    outputs = {
        f"{bucket}/{key}": data
        for bucket in (stack.processed_bucket, stack.quarantine_bucket)
        for key, data in bucket_objects(stack, bucket).items()
    }
    for what in ("push url", "rest api"):
        base = OutputKeys.for_key(exercise.keys[what])
        for output in (base.report, base.json):
            assert f"{stack.processed_bucket}/{output}" in outputs
    assert any(name.startswith(stack.quarantine_bucket) for name in outputs)
    for name, data in outputs.items():
        _assert_clean(f"object {name}", data.decode("latin-1"), exercise.everything)


@pytest.mark.services
def test_no_secret_in_what_the_prefect_api_shows(stack: Settings, exercise: Exercise) -> None:
    records = prefect_records(stack)
    text = {where: json.dumps(found, ensure_ascii=False) for where, found in records.items()}
    # the search covered the run: its flow runs, their logs, artifacts and events are there
    for what in ("push url", "rest api"):
        assert exercise.keys[what] in text["flow runs"] and exercise.keys[what] in text["events"]
    assert exercise.failed_run["id"] in text["logs"] and exercise.keys["rejected"] in text["flow runs"]
    assert "report-" in text["artifacts"] and "push-batch" in text["task runs"]
    assert "process-object" in text["deployments"] and records["work pools"]
    assert "minio-credentials" in text["block document events"]
    for where, dumped in text.items():
        searched = exercise.secrets if where == "block document events" else exercise.everything
        _assert_clean(f"Prefect {where}", dumped, searched)


@pytest.mark.services
def test_block_documents_show_their_secrets_obfuscated(stack: Settings, exercise: Exercise) -> None:
    documents = _pages(stack, "block_documents/filter", {"include_secrets": False})
    names = {document["name"] for document in documents}
    assert {"minio-credentials", "powerbi-vendas", "powerbi-clientes"} <= names
    _assert_clean("Prefect block documents", json.dumps(documents), exercise.secrets)


@pytest.mark.services
def test_no_secret_on_disk_outside_the_files_that_hold_it(stack: Settings, exercise: Exercise) -> None:
    files = [path for path in stack.data_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".log" for path in files)
    for path in files:
        relative = path.relative_to(stack.data_dir).as_posix()
        holder = next((name for name in SECRET_HOLDERS if relative.startswith(name)), None)
        allowed = SECRET_HOLDERS.get(holder, set()) if holder else set()
        searched = [secret for secret in exercise.everything if secret.name not in allowed]
        try:
            data = path.read_bytes()
        except OSError:
            continue  # removed while listing (a SQLite journal, a lock)
        _assert_clean(f"file {relative}", data.decode("latin-1"), searched)


@pytest.mark.services
def test_no_secret_on_a_command_line_of_the_stack(stack: Settings, exercise: Exercise) -> None:
    from ivi import stack as ivi_stack
    from ivi.processes import running

    processes = []
    for service in ivi_stack.SERVICES:
        process = running(ivi_stack.files(stack, service.name))
        if process is not None:
            processes += [process, *process.children(recursive=True)]
    assert len(processes) >= 5
    for process in processes:
        try:
            command_line = " ".join(process.cmdline())
        except psutil.Error:
            continue  # ended meanwhile
        _assert_clean(f"the command line of pid {process.pid}", command_line, exercise.everything)


# --- the relay's door: the token ----------------------------------------------------------------
def test_the_relay_compares_the_token_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every token shape goes through `hmac.compare_digest` (no `==`, no length check first)."""
    import hmac

    import relay.app as relay

    token = token_source.token_urlsafe(24)
    calls: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(relay.hmac, "compare_digest", spy)
    settings = Settings(_env_file=None, webhook_token=SecretStr(token))  # type: ignore[call-arg]
    app = relay.create_app(settings)
    presented = {
        "right": token,
        "same length": token[:-1] + ("a" if token[-1] != "a" else "b"),
        "shorter": token[:8],
        "longer": token + "x",
    }

    async def heads() -> dict[str, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            statuses = {}
            for name, value in presented.items():
                answer = await client.head("/minio/events", headers={"Authorization": f"Bearer {value}"})
                statuses[name] = answer.status_code
            return statuses

    statuses = asyncio.run(heads())
    assert statuses == {"right": 200, "same length": 401, "shorter": 401, "longer": 401}
    assert calls == [(value.encode(), token.encode()) for value in presented.values()]


@dataclass
class Exchange:
    status: int | None  # None: the connection ended without an answer
    body: bytes
    seconds: float


def exchange(
    settings: Settings, head: bytes, body: Sequence[bytes] = (), *,
    leave: bool = False, timeout: float = 30.0,
) -> Exchange:
    """One HTTP/1.1 request written by hand on a socket, and the first answer read back
    (`leave`: close the connection without waiting for one)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection((settings.relay_host, settings.relay_port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            for part in body:
                sock.sendall(part)
        except OSError:
            pass  # the relay answered and closed before taking all of it
        if leave:
            return Exchange(None, b"", time.monotonic() - started)
        try:
            while not _complete(received):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    header, _, rest = received.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.1 (\d{3})", header)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", header)
    if length:
        rest = rest[: int(length.group(1))]  # what follows answers a next request
    return Exchange(int(status.group(1)) if status else None, rest, time.monotonic() - started)


def _complete(received: bytes) -> bool:
    header, found, rest = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", header)
    return bool(found) and (length is None or len(rest) >= int(length.group(1)))


def request_head(path: str, authorization: bytes | None, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: relay"]
    if authorization is not None:
        lines.append(b"Authorization: " + authorization)
    lines += [line.encode() for line in extra]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def bearer(settings: Settings) -> bytes:
    return b"Bearer " + settings.webhook_token.get_secret_value().encode()


@pytest.mark.services
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(lambda t: b"Bearer " + t[:-1] + (b"b" if t.endswith(b"a") else b"a"),
                     id="same-length"),
        pytest.param(lambda t: b"Bearer " + t[:-1], id="one-char-short"),
        pytest.param(lambda t: b"Bearer " + t + t, id="token-twice"),
        pytest.param(lambda t: b"Bearer ", id="empty-bearer"),
        pytest.param(lambda t: b"Bearer \xc3\xa9" + t[2:], id="utf8-bytes"),
        pytest.param(lambda t: b"Bearer \xff\xfe" + t, id="latin1-bytes"),
        pytest.param(lambda t: b"Bearer " + b"x" * 6000, id="very-long"),
        pytest.param(lambda t: b"Token " + t, id="other-scheme"),
    ],
)
def test_a_wrong_token_of_any_shape_gets_401_on_the_wire(stack: Settings, authorization: Any) -> None:
    token = stack.webhook_token.get_secret_value().encode()
    head = request_head("/minio/events", authorization(token), "Content-Length: 2")
    answer = exchange(stack, head, [b"{}"])
    assert answer.status == 401
    assert token not in answer.body


@pytest.mark.services
def test_the_scheme_is_case_insensitive_and_the_right_token_gets_in(stack: Settings) -> None:
    token = stack.webhook_token.get_secret_value().encode()
    for scheme in (b"Bearer", b"bearer", b"BEARER"):
        head = request_head("/minio/events", scheme + b" " + token, "Content-Length: 2")
        answer = exchange(stack, head, [b"{}"])
        assert answer.status == 200, scheme


# --- the relay's door: the body cap -------------------------------------------------------------
def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes that the relay reads and ignores."""
    body = b'{"pad":"' + b"x" * (size - 10) + b'"}'
    assert len(body) == size
    return body


def _chunked(data: bytes, piece: int = 64 * 1024, end: bool = True) -> list[bytes]:
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + ([b"0\r\n\r\n"] if end else [])


@pytest.mark.services
def test_a_body_of_exactly_the_limit_is_read(stack: Settings) -> None:
    limit = stack.relay_max_body_bytes
    body = _json_of_size(limit)
    head = request_head("/minio/events", bearer(stack), f"Content-Length: {limit}")
    answer = exchange(stack, head, [body])
    assert answer.status == 200
    head = request_head("/minio/events", bearer(stack), "Transfer-Encoding: chunked")
    assert exchange(stack, head, _chunked(body)).status == 200


@pytest.mark.services
def test_one_byte_over_the_limit_gets_413_however_the_size_is_announced(stack: Settings) -> None:
    limit = stack.relay_max_body_bytes
    body = _json_of_size(limit + 1)
    head = request_head("/minio/events", bearer(stack), f"Content-Length: {limit + 1}")
    honest = exchange(stack, head, [body])
    head = request_head("/seaweedfs/events", bearer(stack), "Transfer-Encoding: chunked")
    chunked = exchange(stack, head, _chunked(body))
    # announced far beyond what the relay would drain, then only the first bytes sent: the
    # 413 comes at once, without waiting for bytes that will never come
    head = request_head("/minio/events", bearer(stack), "Content-Length: 10000000000")
    huge = exchange(stack, head, [body[: 64 * 1024]], timeout=20)
    assert (honest.status, chunked.status, huge.status) == (413, 413, 413)
    assert huge.seconds < 5


@pytest.mark.services
def test_a_content_length_that_lies_low_lets_no_more_than_it_said_in(stack: Settings) -> None:
    limit = stack.relay_max_body_bytes
    head = request_head("/minio/events", bearer(stack), "Content-Length: 2")
    answer = exchange(stack, head, [b"{}" + _json_of_size(limit + 1)])
    # The bytes past the announced two are never read as this request's body: uvicorn's
    # HTTP parser, httptools (a dependency, as in uvicorn[standard]), reads them as a next
    # request on the connection and refuses it as invalid. (h11, without httptools, answered
    # the announced `{}` and dropped the rest.)
    assert (answer.status, answer.body) == (400, b"Invalid HTTP request received.")
    assert httpx.get(f"{stack.relay_url}/healthz", timeout=10).status_code == 200  # and it serves on


@pytest.mark.services
def test_a_sender_that_stalls_over_the_limit_gets_413_without_holding_the_relay(
    stack: Settings,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from relay.app import DRAIN_SECONDS

    head = request_head("/minio/events", bearer(stack), "Transfer-Encoding: chunked")
    body = _chunked(_json_of_size(stack.relay_max_body_bytes + 1), end=False)  # never ends
    with ThreadPoolExecutor(max_workers=1) as pool:
        stalling = pool.submit(exchange, stack, head, body, timeout=DRAIN_SECONDS + 20)
        # Not a synchronisation for an assertion of absence: it lets the stalled sender get
        # its head and first chunks in, so that the relay is draining while it answers below
        # (a shorter wait only makes the test weaker; it cannot make it pass wrongly).
        time.sleep(1)
        started = time.monotonic()  # meanwhile, the relay answers others at once
        assert httpx.get(f"{stack.relay_url}/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 2 and not stalling.done()
        stalled = stalling.result()
    assert stalled.status == 413
    assert stalled.seconds < DRAIN_SECONDS + 10


@pytest.mark.services
def test_a_sender_that_leaves_half_way_is_no_error_of_the_relay(stack: Settings) -> None:
    log = stack.data_dir / "logs" / "relay.log"
    seen = log.stat().st_size
    for head in (
        request_head("/minio/events", bearer(stack), "Content-Length: 1000"),
        request_head("/minio/events", bearer(stack), "Transfer-Encoding: chunked"),
    ):
        exchange(stack, head, [b'{"Records": ['], leave=True)

    def written() -> str:
        with log.open("rb") as handle:
            handle.seek(seen)
            return handle.read().decode(errors="replace")

    # the relay has seen both senders leave once it says so, then nothing goes wrong for a while
    poll(lambda: written().count("the sender closed the connection before the end of its body") >= 2,
         "the relay to log both senders leaving", timeout=30)
    assert httpx.get(f"{stack.relay_url}/healthz", timeout=10).status_code == 200
    assert_stays(lambda: "Exception in ASGI application" not in written() and "Traceback" not in written(),
                 seconds=3, what="an unhandled error in the relay's log")
