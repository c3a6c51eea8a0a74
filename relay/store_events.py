"""What an object store's webhook body means: which objects were created, which to ignore.

Pure functions over parsed JSON, no web framework and no Prefect, so that every payload
variant MinIO and SeaweedFS send can be read here and tested without a server.

- MinIO posts `{"EventName", "Key", "Records": [...]}`; only `Records[].s3.object.key` is used,
  URL-decoded with `unquote_plus` (the top-level `Key` is unencoded and ambiguous).
- SeaweedFS' filer webhook posts `{"event_type", "key": "/buckets/<bucket>/<key>",
  "message": {"new_entry": {...}}}` with a raw key. The S3 ETag is in
  `new_entry.extended["Seaweed-X-Amz-ETag"]` (base64 of the ETag text, `-N` for multipart),
  the size in `new_entry.attributes.file_size` (absent for 0 bytes: protobuf JSON omits zeros).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

EVENT_NAME = "minio.object.created"
# Fixed namespace of this project's event ids: the same delivery always gets the same id,
# so Prefect's trigger evaluation sees a re-delivered event as one it has already seen.
EVENT_ID_NAMESPACE = uuid.UUID("5d0f3c1e-7a52-4d5e-9a55-6c1f2d3b9e01")

# MinIO `s3:ObjectCreated:*` events that change no content (metadata only).
_METADATA_ONLY_EVENTS = frozenset({"PutTagging", "DeleteTagging", "PutRetention", "PutLegalHold"})
_SEAWEED_CREATED = frozenset({"create", "update"})
_SEAWEED_ETAG_KEY = "Seaweed-X-Amz-ETag"


# The members of each body that are read, as JSON Schema for the relay's OpenAPI document
# (its fuzz tests generate bodies from them). Other members, and other shapes, are allowed:
# what is not understood is ignored, never refused.
MINIO_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "MinIO's webhook body; only `Records[].s3` and `eventName` are read.",
    "properties": {
        "EventName": {"type": "string"},
        "Key": {"type": "string"},
        "Records": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "eventName": {"type": "string", "example": "s3:ObjectCreated:Put"},
                    "s3": {
                        "type": "object",
                        "properties": {
                            "bucket": {"type": "object", "properties": {"name": {"type": "string"}}},
                            "object": {
                                "type": "object",
                                "properties": {
                                    "key": {"type": "string", "description": "URL-encoded"},
                                    "size": {"type": "integer"},
                                    "eTag": {"type": "string"},
                                    "sequencer": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
SEAWEEDFS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "SeaweedFS' filer webhook body (one change per body).",
    "properties": {
        "event_type": {"type": "string", "enum": ["create", "update", "delete"]},
        "key": {"type": "string", "example": "/buckets/processed/clientes/nov.csv"},
        "message": {
            "type": "object",
            "properties": {
                "new_entry": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "is_directory": {"type": "boolean"},
                        "attributes": {
                            "type": "object",
                            "properties": {
                                "file_size": {"type": "integer"},
                                "mtime": {"type": "integer"},
                                "md5": {"type": "string"},
                            },
                        },
                        "extended": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class CreatedObject:
    """One object version that appeared in a bucket."""

    source: str  # "minio" or "seaweedfs"
    bucket: str
    key: str  # decoded
    etag: str  # without quotes; "" when the store did not say
    size: str  # bytes as text; "" when the store did not say
    sequencer: str  # the store's ordering token for this change; "" when unknown

    def event_id(self) -> uuid.UUID:
        """One id per object version, so that Prefect (which keeps one event per id) starts
        one run for it: re-deliveries, SeaweedFS' `update` right after its `create`, and an
        identical re-upload are all the same version to the pipeline. Without an eTag the
        store's sequencer tells deliveries apart; without either, every delivery is new."""
        if self.etag:
            return uuid.uuid5(EVENT_ID_NAMESPACE, f"{self.bucket}/{self.key}\n{self.etag}")
        if self.sequencer:
            return uuid.uuid5(EVENT_ID_NAMESPACE, f"{self.bucket}/{self.key}\n\n{self.sequencer}")
        return uuid.uuid4()

    def prefect_event(self, dispatch: str = "run") -> dict[str, Any]:
        """The Prefect event. Every label is always present (a missing templated label makes
        a deployment trigger fail silently on the server). `dispatch` is `run` when this event
        starts the object's run, `batch` when a group event will (relay/dispatch.py)."""
        return {
            "id": str(self.event_id()),
            "occurred": datetime.now(UTC).isoformat(),
            "event": EVENT_NAME,
            "resource": {
                "prefect.resource.id": f"minio.object.{self.bucket}/{self.key}",
                "prefect.resource.name": self.key,
                "minio.bucket": self.bucket,
                "minio.key": self.key,
                "minio.etag": self.etag,
                "minio.size": self.size,
                "ivi.dispatch": dispatch,
            },
            "related": [],
            "payload": {"source": self.source, "sequencer": self.sequencer},
        }


@dataclass(frozen=True)
class Ignored:
    """A part of a webhook body that starts nothing, and why: `reason` in words for the answer
    and the log, `kind` one of IGNORED_KINDS for the metrics (a label with a few values, where
    the reason names buckets and event names)."""

    key: str
    reason: str
    kind: str


# Why an object or a body starts nothing, as the relay's metrics label it.
IGNORED_KINDS = (
    "no_records", "bad_record", "not_created", "metadata_only", "not_in_a_bucket", "no_entry",
    "folder", "other_bucket", "multipart_part", "not_csv", "empty_body", "unreadable_body",
)


Outcome = CreatedObject | Ignored


def minio_outcomes(body: Mapping[str, Any]) -> Iterator[Outcome]:
    """One outcome per record of a MinIO webhook body."""
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        yield Ignored("", "no Records (liveness ping or unknown shape)", "no_records")
        return
    for record in records:
        yield _minio_record(record)


def _minio_record(record: Any) -> Outcome:
    s3 = _mapping(_mapping(record).get("s3"))
    obj = _mapping(s3.get("object"))
    bucket = _text(_mapping(s3.get("bucket")).get("name"))
    raw_key = obj.get("key")
    if not isinstance(raw_key, str) or not bucket:
        return Ignored("", "record without s3.bucket.name / s3.object.key", "bad_record")
    key = unquote_plus(raw_key)
    event_name = _text(_mapping(record).get("eventName")).removeprefix("s3:")
    kind, _, detail = event_name.partition(":")
    if kind != "ObjectCreated":
        return Ignored(key, f"not a creation ({event_name or 'no eventName'})", "not_created")
    if detail in _METADATA_ONLY_EVENTS:
        return Ignored(key, f"metadata change only ({event_name})", "metadata_only")
    size = obj.get("size")
    return CreatedObject(
        source="minio",
        bucket=bucket,
        key=key,
        etag=_text(obj.get("eTag")).strip('"'),
        # MinIO leaves `size` out for a 0-byte object.
        size="0" if size is None else _text(size),
        sequencer=_text(obj.get("sequencer")),
    )


def seaweedfs_outcomes(body: Mapping[str, Any]) -> Iterator[Outcome]:
    """The outcome of one SeaweedFS filer webhook body (it carries one change)."""
    path = _text(body.get("key"))
    event_type = _text(body.get("event_type"))
    if event_type not in _SEAWEED_CREATED:
        yield Ignored(path, f"not a creation ({event_type or 'no event_type'})", "not_created")
        return
    parts = path.split("/", 3)  # "", "buckets", bucket, key
    if len(parts) < 4 or parts[0] != "" or parts[1] != "buckets" or not parts[2] or not parts[3]:
        yield Ignored(path, "not an object in a bucket", "not_in_a_bucket")
        return
    entry = _mapping(_mapping(body.get("message")).get("new_entry"))
    if not entry:
        yield Ignored(path, "no new_entry", "no_entry")
        return
    if entry.get("is_directory"):
        yield Ignored(path, "folder", "folder")
        return
    attributes = _mapping(entry.get("attributes"))
    yield CreatedObject(
        source="seaweedfs",
        bucket=parts[2],
        key=parts[3],
        etag=_seaweed_etag(entry, attributes),
        size=_text(attributes.get("file_size", 0)),
        sequencer=_seaweed_sequencer(entry, attributes),
    )


def _seaweed_etag(entry: Mapping[str, Any], attributes: Mapping[str, Any]) -> str:
    """The S3 ETag SeaweedFS answers for the object (multipart ones end in `-N`)."""
    stored = _mapping(entry.get("extended")).get(_SEAWEED_ETAG_KEY)
    if isinstance(stored, str):
        try:
            return base64.b64decode(stored, validate=True).decode("ascii").strip('"')
        except ValueError:  # not base64, or base64 of something other than ASCII text
            pass
    md5 = attributes.get("md5")
    if isinstance(md5, str):
        try:
            return base64.b64decode(md5, validate=True).hex()
        except ValueError:
            pass
    return ""


def _seaweed_sequencer(entry: Mapping[str, Any], attributes: Mapping[str, Any]) -> str:
    """Newest chunk write time (ns), else the entry's mtime: changes with every upload."""
    chunks = entry.get("chunks")
    stamps = [
        chunk["modified_ts_ns"]
        for chunk in chunks
        if isinstance(chunk, Mapping) and isinstance(chunk.get("modified_ts_ns"), int)
    ] if isinstance(chunks, list) else []
    if stamps:
        return str(max(stamps))
    return _text(attributes.get("mtime"))


def should_trigger(obj: CreatedObject, raw_bucket: str) -> Ignored | None:
    """Why this created object must not start a run, or None when it must."""
    if obj.bucket != raw_bucket:
        return Ignored(obj.key, f"bucket {obj.bucket!r} is not the raw bucket", "other_bucket")
    if obj.key.endswith("/"):
        return Ignored(obj.key, "folder", "folder")
    if obj.key.startswith(".uploads/"):  # SeaweedFS keeps multipart parts there
        return Ignored(obj.key, "multipart upload part", "multipart_part")
    if not obj.key.lower().endswith(".csv"):
        return Ignored(obj.key, "not a .csv object", "not_csv")
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)
