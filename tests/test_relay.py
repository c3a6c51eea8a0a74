"""The relay, as the object stores and Prefect see it: real HTTP in, real Prefect events out.

The tests talk to the relay the session's stack started (uvicorn, the real SeaweedFS webhook,
the real Prefect server). While this module runs, the deployment triggers are paused, so that
its made-up events do not start flow runs for objects that do not exist; test_stack.py checks
that an upload does start a run.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from minio import Minio
from tests.fault_support import poll
from tests.stack_support import (
    assert_stays,
    auth_headers,
    automations_paused,
    free_ports,
    prefect_events,
    wait_for_events,
)

from ivi.settings import Settings
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.services

ROUTES = ("/minio/events", "/seaweedfs/events")


# --- helpers ----------------------------------------------------------------------------------
def minio_body(
    key: str,
    *,
    bucket: str = "raw",
    event: str = "s3:ObjectCreated:Put",
    size: int | None = 12,
    etag: str | None = "0123456789abcdef0123456789abcdef",
    sequencer: str | None = None,
) -> dict[str, Any]:
    """A body shaped like MinIO's webhook target's (one record; `key` already URL-encoded)."""
    obj: dict[str, Any] = {
        "key": key,
        "contentType": "text/csv",
        "userMetadata": {"content-type": "text/csv"},
        "sequencer": sequencer or uuid.uuid4().hex[:16].upper(),
    }
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    return {
        "EventName": event,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2026-11-29T08:00:00.000Z",
                "eventName": event,
                "userIdentity": {"principalId": "minioadmin"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "17A", "x-minio-origin-endpoint": ""},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"},
                               "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
                "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
            }
        ],
    }


def seaweed_body(key: str, *, event_type: str = "create", directory: bool = False) -> dict[str, Any]:
    """A body shaped like SeaweedFS' filer webhook's (`key` is the raw filer path)."""
    entry: dict[str, Any] = {"name": key.rsplit("/", 1)[-1], "attributes": {"mtime": 1795935914}}
    if directory:
        entry["is_directory"] = True
    message = {"old_entry": entry} if event_type == "delete" else {"new_entry": entry}
    return {"event_type": event_type, "key": key, "message": message}


def post(settings: Settings, route: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", auth_headers(settings))
    return httpx.post(f"{settings.relay_url}{route}", timeout=30, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def trigger_paused(stack: Settings) -> Iterator[None]:
    """Pause the deployment triggers for this module; restore them afterwards."""
    with automations_paused(stack):
        yield


# --- authentication ---------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no-header", "wrong-token", "basic-auth"],
)
def test_event_routes_refuse_a_caller_without_the_token(
    stack: Settings, route: str, headers: dict[str, str]
) -> None:
    response = post(stack, route, json=minio_body("a.csv"), headers=headers)
    assert response.status_code == 401
    assert httpx.head(f"{stack.relay_url}{route}", headers=headers).status_code == 401


def test_token_without_bearer_scheme_is_refused(stack: Settings) -> None:
    bare = {"Authorization": stack.webhook_token.get_secret_value()}
    assert post(stack, "/minio/events", json=minio_body("a.csv"), headers=bare).status_code == 401


def test_health_check_needs_no_token(stack: Settings) -> None:
    assert httpx.get(f"{stack.relay_url}/healthz").json() == {"status": "ok"}


# --- what is ignored (answered 2xx so that MinIO's queue moves on) ---------------------------
IGNORED_MINIO = {
    "delete": minio_body("clientes/a.csv", event="s3:ObjectRemoved:Delete", size=None, etag=None),
    "folder": minio_body("clientes%2F", size=0),
    "other-bucket": minio_body("clientes/a.csv", bucket="processed"),
    "quarantine-bucket": minio_body("clientes/a.csv", bucket="quarantine"),
    "txt-suffix": minio_body("clientes/a.txt"),
    "tagging": minio_body("clientes/a.csv", event="s3:ObjectCreated:PutTagging"),
    "unexpected-shape": {"hello": "world"},
    "records-not-a-list": {"EventName": "s3:ObjectCreated:Put", "Records": "nope"},
    "record-not-an-object": {"EventName": "s3:ObjectCreated:Put", "Records": [42]},
}
IGNORED_SEAWEED = {
    "delete": seaweed_body("/buckets/raw/clientes/a.csv", event_type="delete"),
    "folder": seaweed_body("/buckets/raw/clientes", directory=True),
    "multipart-part": seaweed_body("/buckets/raw/.uploads/5647_43f1/0001_97c4.part"),
    "multipart-part-csv-name": seaweed_body("/buckets/raw/.uploads/5647_43f1/x.csv"),
    "other-bucket": seaweed_body("/buckets/processed/clientes/a.csv"),
    "txt-suffix": seaweed_body("/buckets/raw/clientes/a.txt"),
    "not-under-buckets": seaweed_body("/etc/passwd.csv"),
    "unexpected-shape": {"event_type": "create"},
}


@pytest.mark.parametrize("body", IGNORED_MINIO.values(), ids=IGNORED_MINIO.keys())
def test_minio_events_that_start_nothing_are_acknowledged(stack: Settings, body: Any) -> None:
    response = post(stack, "/minio/events", json=body)
    assert response.status_code == 200
    assert response.json()["posted"] == []


@pytest.mark.parametrize("body", IGNORED_SEAWEED.values(), ids=IGNORED_SEAWEED.keys())
def test_seaweedfs_events_that_start_nothing_are_acknowledged(stack: Settings, body: Any) -> None:
    response = post(stack, "/seaweedfs/events", json=body)
    assert response.status_code == 200
    assert response.json()["posted"] == []


@pytest.mark.parametrize("route", ROUTES)
def test_liveness_pings_are_answered(stack: Settings, route: str) -> None:
    assert httpx.head(f"{stack.relay_url}{route}", headers=auth_headers(stack)).status_code == 200
    response = post(stack, route, content=b"")
    assert response.status_code == 200
    assert response.json()["posted"] == []


# --- hostile bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "body", [b"not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"', b"null"],
    ids=["text", "binary", "json-array", "json-string", "json-null"],
)
def test_a_body_no_store_would_send_gets_400(stack: Settings, route: str, body: bytes) -> None:
    assert post(stack, route, content=body).status_code == 400


@pytest.mark.parametrize("route", ROUTES)
def test_an_oversized_body_gets_413(stack: Settings, route: str) -> None:
    assert post(stack, route, content=b"x" * 5_000_000).status_code == 413


def test_an_oversized_body_without_content_length_gets_413(stack: Settings) -> None:
    def chunks() -> Iterator[bytes]:  # chunked transfer: the size is only known by reading
        for _ in range(50):
            yield b"{" * 100_000

    assert post(stack, "/minio/events", content=chunks()).status_code == 413


# --- MinIO payload variants reach Prefect with every label ------------------------------------
@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("vendas%2Fnov+2026+final.csv", "vendas/nov 2026 final.csv"),
        ("vendas/a%2Bb.csv", "vendas/a+b.csv"),
        ("clientes/S%C3%A3o+Jo%C3%A3o%2Fjunho.CSV", "clientes/São João/junho.CSV"),
        ("clientes/100%25+real.csv", "clientes/100% real.csv"),
    ],
    ids=["spaces-and-slash", "plus", "non-ascii-and-upper-suffix", "percent"],
)
def test_minio_keys_are_decoded_from_the_record(
    stack: Settings, encoded: str, decoded: str
) -> None:
    response = post(stack, "/minio/events", json=minio_body(encoded))
    assert response.status_code == 200
    [posted] = response.json()["posted"]
    assert posted["key"] == decoded
    [event] = wait_for_events(stack, {"id": {"id": [posted["event_id"]]}})
    assert event["event"] == "minio.object.created"
    # `run` for an object that came alone, `batch` for one of a burst (test_a_burst_...)
    assert event["resource"].pop("ivi.dispatch") in {"run", "batch"}
    assert event["resource"] == {
        "prefect.resource.id": f"minio.object.raw/{decoded}",
        "prefect.resource.name": decoded,
        "minio.bucket": "raw",
        "minio.key": decoded,
        "minio.etag": "0123456789abcdef0123456789abcdef",
        "minio.size": "12",
    }


def test_a_multipart_upload_keeps_its_dash_n_etag(stack: Settings) -> None:
    body = minio_body(
        "vendas/big.csv", event="s3:ObjectCreated:CompleteMultipartUpload",
        etag="d41d8cd98f00b204e9800998ecf8427e-3", size=15_728_640,
    )
    [posted] = post(stack, "/minio/events", json=body).json()["posted"]
    [event] = wait_for_events(stack, {"id": {"id": [posted["event_id"]]}})
    assert event["resource"]["minio.etag"] == "d41d8cd98f00b204e9800998ecf8427e-3"
    assert event["resource"]["minio.size"] == "15728640"


def test_a_zero_byte_object_without_size_gets_size_0(stack: Settings) -> None:
    [posted] = post(stack, "/minio/events", json=minio_body("vendas/empty.csv", size=None)).json()["posted"]
    [event] = wait_for_events(stack, {"id": {"id": [posted["event_id"]]}})
    assert event["resource"]["minio.size"] == "0"


def test_an_event_without_etag_still_carries_every_label(stack: Settings) -> None:
    [posted] = post(stack, "/minio/events", json=minio_body("vendas/x.csv", etag=None)).json()["posted"]
    [event] = wait_for_events(stack, {"id": {"id": [posted["event_id"]]}})
    assert event["resource"]["minio.etag"] == ""
    assert {"minio.bucket", "minio.key", "minio.etag", "minio.size"} <= event["resource"].keys()


def test_a_redelivered_event_keeps_its_id(stack: Settings) -> None:
    body = minio_body("vendas/again.csv", sequencer="16A0F1C2D3E4F5A6")
    first = post(stack, "/minio/events", json=body).json()["posted"]
    second = post(stack, "/minio/events", json=body).json()["posted"]
    assert first == second


def test_a_burst_is_posted_object_by_object_and_then_as_one_group(stack: Settings) -> None:
    """Each object of a burst gets its own event before the store gets its 200 (label
    `ivi.dispatch: batch`, which starts nothing); one `ivi.objects.ready` event then names the
    group. The first of the burst may have come alone (`run`): it is in no group."""
    keys = [f"vendas/burst-{uuid.uuid4().hex[:8]}-{n}.csv" for n in range(4)]
    etags = [uuid.uuid4().hex for _ in keys]
    posted = [post(stack, "/minio/events", json=minio_body(key, etag=etag)).json()["posted"][0]
              for key, etag in zip(keys, etags, strict=True)]
    events = wait_for_events(stack, {"id": {"id": [p["event_id"] for p in posted]}}, count=len(keys))
    dispatch = {event["resource"]["minio.key"]: event["resource"]["ivi.dispatch"] for event in events}
    batched = [key for key in keys if dispatch[key] == "batch"]
    # posted back to back, well within the window: at least the second is grouped (a stall of
    # the machine longer than the window would let a later one come alone again)
    assert set(dispatch.values()) <= {"run", "batch"} and keys[1] in batched, dispatch

    # The burst's group may also hold objects of the tests before (they came within its window).
    def groups_of_the_burst() -> list[dict[str, Any]] | None:
        groups = prefect_events(stack, {"event": {"name": ["ivi.objects.ready"]},
                                        "related": {"id": [f"minio.object.raw/{key}" for key in batched]}})
        named = {ref["key"] for group in groups for ref in group["payload"]["objects"]}
        return groups if set(batched) <= named else None

    groups = sorted(poll(groups_of_the_burst, "the burst's group events", 20), key=lambda event: event["occurred"])
    grouped = [ref for group in groups for ref in group["payload"]["objects"] if ref["key"] in keys]
    assert grouped == [{"bucket": "raw", "key": key, "etag": etag}
                       for key, etag in zip(keys, etags, strict=True) if key in batched]
    assert all(group["resource"]["prefect.resource.id"] == f"ivi.batch.{group['id']}" for group in groups)


# --- Prefect down ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def relay_without_prefect(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second relay process, configured with a Prefect API on a port nobody listens on."""
    from ivi import prefect_stack
    from ivi import stack as ivi_stack
    from ivi.processes import ServiceFiles, spawn, stop, wait_until

    relay_port, dead_port = free_ports(2)
    settings = stack.model_copy(
        update={"relay_port": relay_port, "prefect_port": dead_port,
                "data_dir": tmp_path_factory.mktemp("relay-without-prefect")}
    )
    files = ServiceFiles.under(settings.data_dir, "relay")
    process = spawn(files, ivi_stack.relay_command(settings), env=prefect_stack.env(settings),
                    cwd=REPO_ROOT)
    try:
        wait_until(lambda: ivi_stack.relay_is_ready(settings), what="relay", files=files,
                   process=process, timeout=60)
        yield settings
    finally:
        stop([files])


@pytest.mark.parametrize("route", ROUTES)
def test_prefect_unreachable_gets_503_so_the_store_retries(
    relay_without_prefect: Settings, route: str
) -> None:
    body = minio_body("a.csv") if route == "/minio/events" else seaweed_body("/buckets/raw/a.csv")
    assert post(relay_without_prefect, route, json=body).status_code == 503


def test_prefect_unreachable_still_acknowledges_ignored_events(relay_without_prefect: Settings) -> None:
    response = post(relay_without_prefect, "/minio/events", json=minio_body("a.txt"))
    assert response.status_code == 200


# --- SeaweedFS: a real upload reaches Prefect and starts a run --------------------------------
def _s3(settings: Settings) -> Minio:
    return Minio(settings.s3_address, access_key=settings.s3_access_key,
                 secret_key=settings.s3_secret_key.get_secret_value(), secure=False)


def test_seaweedfs_multipart_upload_reaches_prefect_and_nothing_else_does(
    stack: Settings
) -> None:
    s3 = _s3(stack)
    s3.put_object("raw", "notes/readme.txt", io.BytesIO(b"hi"), 2)
    s3.put_object("processed", "clientes/out.csv", io.BytesIO(b"a\n"), 2)
    part = b"a,b\n" + b"1,2\n" * (5 * 1024 * 1024 // 4)
    key = f"vendas/multi {uuid.uuid4().hex[:6]}.csv"
    s3.put_object("raw", key, io.BytesIO(part * 2), len(part) * 2, part_size=len(part))
    etag = s3.stat_object("raw", key).etag
    assert etag.endswith("-2")

    [event] = wait_for_events(stack, {"resource": {"id": [f"minio.object.raw/{key}"]}})
    assert event["resource"]["minio.etag"] == etag
    assert event["resource"]["minio.size"] == str(len(part) * 2)
    # the two ignored objects were written before the multipart one, whose event is there
    assert_stays(
        lambda: wait_for_events(
            stack,
            {"resource": {"id": ["minio.object.raw/notes/readme.txt", "minio.object.processed/clientes/out.csv"]}},
            timeout=0,
        ) == [],
        seconds=3, what="a Prefect event for an object the relay must ignore",
    )
