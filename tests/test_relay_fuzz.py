"""The relay's OpenAPI document, fuzzed with schemathesis against the relay the stack runs.

Every operation the relay documents (`/openapi.json`: the two event routes, their liveness
HEADs, `/healthz`) gets generated requests over real HTTP, with the bearer token and
without it. Whatever arrives, the relay answers no 5xx but the 503 it documents (Prefect
unavailable: the store should retry), only status codes it documents, and bodies that match
the schemas it declares; without the token every event route answers 401. A second fuzz
builds store bodies that do name CSV objects of the raw bucket, so that the path through
Prefect's `POST /api/events` is fuzzed too.

The deployment triggers are paused while this module runs, so the objects the fuzz names
(none of which exists) start no flow run; events it posts stay in Prefect's event log and
are harmless there. The relay's log must show no unhandled exception afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ivi.settings import Settings
from tests.pipeline_support import flow_runs_for_key
from tests.stack_support import auth_headers, automations_paused

pytestmark = pytest.mark.services

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=list(HealthCheck),
)
EVENT_ROUTES = {"/minio/events", "/seaweedfs/events"}


def documented_server_errors_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, but the 503 the relay documents (Prefect unavailable, store to retry)."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(
            f"{case.method} {case.path} answered {response.status_code}: {response.text[:300]}"
        )
    return None


CHECKS = [documented_server_errors_only, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def relay_log_offset(stack: Settings) -> int:
    return (stack.data_dir / "logs" / "relay.log").stat().st_size


@pytest.fixture(scope="module", autouse=True)
def triggers_paused(stack: Settings, relay_log_offset: int) -> Iterator[None]:
    """No flow run for the objects the fuzz makes up; the triggers come back afterwards."""
    with automations_paused(stack):
        yield


def relay_document() -> dict[str, Any]:
    """The relay's OpenAPI document, as its code makes it (no server needed to collect).

    The relay the stack runs serves this same document; the first test checks that it does.
    (schemathesis' lazy `from_fixture` loader, which would read it from the running relay,
    fails under pytest 9.2: it sets `node._nodeid`, which pytest no longer has.)
    """
    from pydantic import SecretStr

    from relay.app import create_app

    settings = Settings(_env_file=None, webhook_token=SecretStr("x" * 32))  # type: ignore[call-arg]
    return create_app(settings).openapi()


schema = schemathesis.openapi.from_dict(relay_document())


def test_the_relay_documents_every_answer_it_gives(stack: Settings) -> None:
    document = httpx.get(f"{stack.relay_url}/openapi.json", timeout=30).json()
    assert document == relay_document()  # what the fuzz below was generated from
    for route in EVENT_ROUTES:
        post = document["paths"][route]["post"]
        assert set(post["responses"]) == {"200", "400", "401", "413", "503"}
        assert post["security"] == [{"bearer": []}]
        assert "application/json" in post["requestBody"]["content"]
        assert set(document["paths"][route]["head"]["responses"]) == {"200", "401"}
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    operation_ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids))


def assert_the_token_decides(case: Any, response: Any, stack: Settings) -> None:
    """An event route lets in exactly the requests that carried the token (schemathesis also
    drops or garbles the header on purpose, to see that those are refused)."""
    if case.path not in EVENT_ROUTES or response.request.method not in ("POST", "HEAD"):
        return  # other methods get 405 whoever asks
    token = stack.webhook_token.get_secret_value()
    if response.request.headers.get("Authorization") == f"Bearer {token}":
        assert response.status_code != 401
    else:
        assert response.status_code == 401
        assert token not in response.text


@schema.parametrize()
@FUZZ
def test_with_the_token_no_request_gets_a_server_error_or_an_undocumented_answer(
    case: Any, stack: Settings
) -> None:
    response = case.call(base_url=stack.relay_url, headers=auth_headers(stack), timeout=60)
    case.validate_response(response, checks=CHECKS)
    assert_the_token_decides(case, response, stack)


@schema.parametrize()
@FUZZ
def test_without_the_token_every_event_route_answers_401(case: Any, stack: Settings) -> None:
    response = case.call(base_url=stack.relay_url, timeout=60)
    case.validate_response(response, checks=CHECKS)
    assert_the_token_decides(case, response, stack)
    if case.path in EVENT_ROUTES and response.request.method in ("POST", "HEAD"):
        assert response.status_code == 401


# --- bodies that reach Prefect ------------------------------------------------------------------
KEY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
ETAG = r"[0-9a-f]{32}(-[0-9]{1,3})?"
fuzz_keys: list[str] = []


@st.composite
def store_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(route, body, key): a MinIO or SeaweedFS body creating a `.csv` of the raw bucket."""
    key = f"fuzz/{draw(KEY_TEXT)}.{draw(st.sampled_from(['csv', 'CSV']))}"
    etag = draw(st.none() | st.text(max_size=40) | st.from_regex(ETAG, fullmatch=True))
    size = draw(st.one_of(st.none(), st.integers(-1, 2**63), st.text(max_size=10)))
    if draw(st.booleans()):
        obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": draw(st.text(max_size=20))}
        if etag is not None:
            obj["eTag"] = etag
        if size is not None:
            obj["size"] = size
        event = draw(st.sampled_from(["s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload",
                                      "s3:ObjectCreated:Copy"]))
        body = {"EventName": event, "Key": f"raw/{key}",
                "Records": [{"eventName": event, "s3": {"bucket": {"name": "raw"}, "object": obj}}]}
        return "/minio/events", body, key
    mtime = draw(st.integers(0, 2**40))
    entry: dict[str, Any] = {"name": key.rsplit("/", 1)[-1], "attributes": {"mtime": mtime}}
    if size is not None:
        entry["attributes"]["file_size"] = size
    if etag is not None:
        entry["extended"] = {"Seaweed-X-Amz-ETag": etag}
    body = {"event_type": draw(st.sampled_from(["create", "update"])), "key": f"/buckets/raw/{key}",
            "message": {"new_entry": entry}}
    return "/seaweedfs/events", body, key


@FUZZ
@given(store_body=store_bodies())
def test_bodies_that_reach_prefect_get_200_or_the_documented_503(
    stack: Settings, store_body: tuple[str, dict[str, Any], str]
) -> None:
    assert stack.raw_bucket == "raw"  # the bucket the bodies name
    route, body, key = store_body
    url = f"{stack.relay_url}{route}"
    response = httpx.post(url, json=body, headers=auth_headers(stack), timeout=60)
    assert response.status_code in (200, 503), response.text[:300]
    if response.status_code == 200:  # posted, or refused by Prefect for good and dropped
        answer = response.json()
        assert [item["key"] for item in answer["posted"] + answer["dropped"]] == [key], answer
        fuzz_keys.append(key)


def test_the_fuzz_started_no_flow_run_and_left_no_unhandled_error(
    stack: Settings, relay_log_offset: int
) -> None:
    for key in fuzz_keys[:20]:
        assert flow_runs_for_key(stack, key) == []
    with Path(stack.data_dir / "logs" / "relay.log").open("rb") as handle:
        handle.seek(relay_log_offset)
        written = handle.read().decode(errors="replace")
    assert "Exception in ASGI application" not in written
    assert "Traceback" not in written
