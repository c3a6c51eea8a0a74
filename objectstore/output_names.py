"""The names a raw key's outputs get: one set per key, never shared, always a key the store takes.

What the stores refuse (`KeyTooLongError`): a key over 1024 bytes (S3's limit; measured on
SeaweedFS, which also refuses a last segment over 255 bytes), and in MinIO any path segment
over 255 characters (its `checkPathLength`). `fits` holds a name to the strictest of these:
1024 bytes, and 255 bytes for every segment.

An output name is longer than its raw key (`.rejected.csv`, `_reports/`, `_rejected_files/`),
so a raw key the store took could give an output name it refuses: the run then failed at
every attempt, and the reconcile started it again every 5 minutes, for good. Such a name is
shortened instead: what fits of the readable name, then `~#` and a digest of the whole key.
"""

from __future__ import annotations

import hashlib

KEY_MAX_BYTES = 1024
SEGMENT_MAX_BYTES = 255
REPORTS_PREFIX = "_reports/"
REJECTED_FILES_PREFIX = "_rejected_files/"  # in the quarantine bucket
# A rejected file whose key is too long to go under REJECTED_FILES_PREFIX whole: only shortened
# names live here, so none can meet a raw key's.
SHORTENED_REJECTED_FILES_PREFIX = "_rejected_files_shortened/"
SHORTENED_MARK = "~#"
DIGEST_CHARS = 32  # 128 bits of sha256: two keys share one only by a collision


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def output_base(key: str) -> str:
    """The name every output of raw `key` starts with: one per key, never shared.

    `vendas/nov.csv` -> `vendas/nov`, so outputs keep the names people expect
    (`vendas/nov.csv`, `vendas/nov.json`, `vendas/nov.rejected.csv`). Any other key keeps its
    whole name and gets a `~` mark at the end (`a.CSV` -> `a.CSV~`, `a.csv.gz` -> `a.csv.gz~`).
    For that mark to be unambiguous a `~` of the key is written twice, and a leading `_` as
    `~_` (so that no output can start with `_`, where `_reports/` and the pipeline's own
    state live). The mapping can be read back, hence two keys that differ in any character
    (case, extension) never share an output, a report or a lock.

    The escaped name has a run of `~` of odd length only at its start (before `_`) or at its
    very end; `shortened` puts one before a `#`, so no shortened name is ever another key's.
    """
    stripped = key[:-4] if key.endswith(".csv") else key
    escaped = ("~" if stripped.startswith("_") else "") + stripped.replace("~", "~~")
    return escaped if key.endswith(".csv") else f"{escaped}~"


def output_name(key: str, suffix: str, prefix: str = "") -> str:
    """`<prefix><output base><suffix>`, or with the base shortened if the store would refuse
    that. Each name is fitted on its own, so every name that fits keeps its readable form."""
    base = fit(output_base(key), key, prefix_bytes=_bytes(prefix), suffix_bytes=_bytes(suffix))
    return f"{prefix}{base}{suffix}"


def rejected_file_name(key: str) -> str:
    """Where a file rejected as a whole is copied byte for byte, in the quarantine bucket:
    `_rejected_files/<key>` (no output base starts with `_`), or a shortened name under a
    prefix of its own when that is too long for the store."""
    if fits(key, prefix_bytes=len(REJECTED_FILES_PREFIX), suffix_bytes=0):
        return f"{REJECTED_FILES_PREFIX}{key}"
    return SHORTENED_REJECTED_FILES_PREFIX + shortened(
        key, key, prefix_bytes=len(SHORTENED_REJECTED_FILES_PREFIX), suffix_bytes=0)


def fit(name: str, key: str, *, prefix_bytes: int = 0, suffix_bytes: int = 0) -> str:
    """`name` if the store takes it with `prefix_bytes` of folders before it and `suffix_bytes`
    after it, else `name` shortened with a digest of `key` (the raw key it was made from)."""
    if fits(name, prefix_bytes=prefix_bytes, suffix_bytes=suffix_bytes):
        return name
    return shortened(name, key, prefix_bytes=prefix_bytes, suffix_bytes=suffix_bytes)


def fits(name: str, *, prefix_bytes: int, suffix_bytes: int) -> bool:
    """Whether `name`, with up to `prefix_bytes` of folders before it and `suffix_bytes` after its
    last segment, is a key the store takes."""
    segments = name.split("/")
    return (
        _bytes(name) + prefix_bytes + suffix_bytes <= KEY_MAX_BYTES
        and all(_bytes(segment) <= SEGMENT_MAX_BYTES for segment in segments[:-1])
        and _bytes(segments[-1]) + suffix_bytes <= SEGMENT_MAX_BYTES
    )


def shortened(name: str, key: str, *, prefix_bytes: int, suffix_bytes: int) -> str:
    """`name` cut to what fits, then `~#` and a digest of `key`. The cut takes from the last
    segment first, so a shortened name stays in the folder people look in (and a replay in the
    folder that says its contract); folders are cut only when they alone are too long."""
    mark = SHORTENED_MARK + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    *folders, last = name.split("/")
    path = "".join(f"{_cut(folder, SEGMENT_MAX_BYTES)}/" for folder in folders)
    last_room = SEGMENT_MAX_BYTES - suffix_bytes - len(mark)
    total_room = KEY_MAX_BYTES - prefix_bytes - suffix_bytes - len(mark)
    if _bytes(path) <= total_room:
        return path + _cut(last, min(last_room, total_room - _bytes(path))) + mark
    *folders, last = _cut(path, total_room).split("/")  # ends inside a folder: now the last segment
    return "".join(f"{folder}/" for folder in folders) + _cut(last, last_room) + mark


def _cut(text: str, max_bytes: int) -> str:
    """The longest start of `text` in whole characters within `max_bytes`, ending in a run of
    `~` of even length (an escaped `~` is never split from its pair)."""
    kept, used = 0, 0
    for character in text:
        used += _bytes(character)
        if used > max_bytes:
            break
        kept += 1
    start = text[:kept]
    tildes = len(start) - len(start.rstrip("~"))
    return start[:-1] if tildes % 2 else start
