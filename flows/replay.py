"""Replays: send the rows a run quarantined through the pipeline again (`ivi replay`, the console).

For use after a contract fix. Forcing a reprocess of the object would push its exported rows
to Power BI a second time; a replay uploads a new object to the raw bucket, beside the
original (same folder, so the same contract applies), holding only the quarantined rows
(`processing/replay.py` builds it). The event path then processes it like any upload, under
the contract as it is now:

    raw/vendas/nov.csv  ->  raw/vendas/nov.replay-20261130T120000Z.csv

A file rejected as a whole (`quarantine/_rejected_files/<key>` holds it) is copied back under such a name.
Rows that still fail land in the replay's own quarantine, which can be replayed in turn.

Nothing is replayed twice: each replay object records in its metadata which object version
it replays (`x-amz-meta-ivi-replay-of`), and a second replay of the same version is refused.
The raw bucket is never rewritten: a replay only adds an object.

Here, below `ivi/`, as a plain function over the store and the processing core (no Prefect
task: a replay only adds an object, the event path does the rest), so that the CLI
(`ivi/replay_command.py`) and the web console (`console/`) call the same code.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from minio import Minio
from minio.error import S3Error

from blocks.settings import SetupSettings
from objectstore import store
from objectstore.output_names import fit
from processing.contract import Contract, contract_for_key
from processing.errors import FileRejected
from processing.replay import ReplayError, build_replay

REPLAY_OF = "ivi-replay-of"  # user metadata: `<key>@<etag>` of the version a replay replays
_REPLAY_SUFFIX = re.compile(r"\.replay-\d{8}T\d{6}Z$")
_CSV_EXTENSION = re.compile(r"\.csv$", re.IGNORECASE)


class ReplayRefused(Exception):
    """Why there is nothing to replay, in one line for the user."""


@dataclass(frozen=True)
class Replay:
    source_key: str  # the raw object whose quarantine is replayed
    source_etag: str
    key: str  # the replay object in the raw bucket
    rows: int | None  # rows in the replay file; None for a whole file copied back
    reused_ids: int = 0  # quarantined rows left in quarantine (their id belongs to an earlier row)
    uploaded: bool = False
    checked: tuple[str, int, int] | None = None  # --contract: (contract, passing rows, failing rows)

    def describe(self, bucket: str) -> str:
        verb = "uploaded" if self.uploaded else "would upload (dry run)"
        source = f"{self.source_key} (eTag {self.source_etag})"
        what = (f"the file {source}, rejected as a whole" if self.rows is None
                else f"{self.rows} row{'s' * (self.rows != 1)} quarantined from {source}")
        text = f"{verb} s3://{bucket}/{self.key}: {what}"
        if self.reused_ids == 1:
            text += "; 1 row whose id belongs to an earlier row of the file stays in quarantine"
        elif self.reused_ids:
            text += f"; {self.reused_ids} rows whose id belongs to an earlier row of the file stay in quarantine"
        if self.checked is not None:
            name, passing, failing = self.checked
            text += f"; checked here against contract `{name}`: {passing} would pass, {failing} would fail"
        return text


def replay_key(key: str, now: datetime) -> str:
    """`vendas/nov.csv` -> `vendas/nov.replay-<UTC time>.csv`; a replay's replay keeps one suffix.
    A name too long for the store is shortened in its last segment (output_names.shortened)."""
    base = _REPLAY_SUFFIX.sub("", _CSV_EXTENSION.sub("", key))
    suffix = f".replay-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"
    return fit(base, key, suffix_bytes=len(suffix)) + suffix


def replay(
    key: str,
    settings: SetupSettings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    client: Minio | None = None,
    check: Contract | None = None,
) -> Replay:
    """Upload the replay of raw object `key`'s quarantine (or say what it would upload).

    With `check`, the replay's rows are first processed here against that contract (a fixed
    draft, say) and the counts reported; the upload itself is processed by the contract of
    the key's folder, as any upload.

    Raises ReplayRefused with the reason when there is nothing to replay.
    """
    client = client or store.minio_client(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
        settings.s3_region,
    )
    keys = store.OutputKeys.for_key(key)
    report = store.read_report(client, settings.processed_bucket, keys.report)
    if report is None:
        raise ReplayRefused(
            f"no quarantine for {key}: it has no report (s3://{settings.processed_bucket}/{keys.report}); "
            "was it ever processed?"
        )
    etag = str(report.get("source_etag") or "")
    original = store.find_object(client, settings.raw_bucket, key)
    if original is not None and original.etag != etag:
        raise ReplayRefused(
            f"{key} changed since its last run (report at eTag {etag}, object now {original.etag}): "
            "wait for the new version's run, then replay that"
        )
    contract = str(report.get("contract") or "")
    if contract and contract != contract_for_key(key):
        raise ReplayRefused(
            f"{key} was processed with contract `{contract}`, but uploads under it get "
            f"`{contract_for_key(key)}`: a replay would not be read with the same contract"
        )
    target = replay_key(key, now or datetime.now(UTC))
    earlier = _earlier_replay(client, settings.raw_bucket, target, key, etag)
    if earlier is not None:
        raise ReplayRefused(
            f"{key} at eTag {etag} was already replayed as {earlier}; to replay what is still "
            f"quarantined, replay that one: ivi replay {earlier}"
        )
    if report.get("status") == "rejected":
        return _replay_whole_file(client, settings, keys, etag, target, dry_run)
    quarantined = int(report.get("quarantined_rows") or 0)  # type: ignore[call-overload]
    if quarantined == 0:
        raise ReplayRefused(f"no quarantine for {key}: its last run (eTag {etag}) quarantined no rows")
    if original is None:
        raise ReplayRefused(
            f"s3://{settings.raw_bucket}/{key} no longer exists: a replay takes the header and the "
            "records of the quarantined rows from it"
        )
    return _replay_rows(client, settings, original, keys, target, dry_run, check)


def _replay_whole_file(
    client: Minio, settings: SetupSettings, keys: store.OutputKeys, etag: str, target: str, dry_run: bool
) -> Replay:
    """A file rejected as a whole: its copy in quarantine goes back to raw under a new name."""
    key = keys.key
    quarantined = store.find_object(client, settings.quarantine_bucket, keys.original)
    if quarantined is None:
        raise ReplayRefused(
            f"no quarantine for {key}: it was rejected as a whole, but "
            f"s3://{settings.quarantine_bucket}/{keys.original} is gone"
        )
    result = Replay(source_key=key, source_etag=etag, key=target, rows=None)
    if dry_run:
        return result
    store.copy_object(
        client, quarantined, settings.raw_bucket, target, metadata={REPLAY_OF: _replay_of(key, etag)}
    )
    return replace(result, uploaded=True)


def _replay_rows(
    client: Minio,
    settings: SetupSettings,
    original: store.ObjectVersion,
    keys: store.OutputKeys,
    target: str,
    dry_run: bool,
    check: Contract | None = None,
) -> Replay:
    rejected = store.find_object(client, settings.quarantine_bucket, keys.rejected)
    if rejected is None:
        raise ReplayRefused(
            f"no quarantine for {original.key}: s3://{settings.quarantine_bucket}/{keys.rejected} is gone"
        )
    with tempfile.TemporaryDirectory(prefix="ivi-replay-") as temp:
        work = Path(temp)
        (work / "raw").mkdir()
        (work / "quarantine").mkdir()
        raw_file = store.fetch_object(client, original, work / "raw")
        rejected_file = store.fetch_object(client, rejected, work / "quarantine")
        replay_file = work / "replay.csv"
        try:
            summary = build_replay(raw_file, rejected_file, replay_file)
        except ReplayError as error:
            raise ReplayRefused(f"cannot replay {original.key}: {error}") from None
        result = Replay(
            source_key=original.key, source_etag=original.etag, key=target,
            rows=summary.rows, reused_ids=summary.reused_ids,
        )
        if summary.rows == 0:
            raise ReplayRefused(
                f"nothing to replay for {original.key}: its {summary.quarantined} quarantined "
                "row(s) all reuse an id of an earlier row of the file, and stay in quarantine"
            )
        if check is not None:
            result = replace(result, checked=_check_rows(replay_file, check))
        if dry_run:
            return result
        store.put_file(
            client, settings.raw_bucket, target, replay_file, "text/csv",
            metadata={REPLAY_OF: _replay_of(original.key, original.etag)},
        )
    return replace(result, uploaded=True)


def _check_rows(replay_file: Path, contract: Contract) -> tuple[str, int, int]:
    """(contract, rows that pass, rows that fail) of the replay file, processed here."""
    from processing.run import process_file

    try:
        report = process_file(replay_file, contract)
    except FileRejected as error:
        raise ReplayRefused(f"the replay rows cannot be read with contract `{contract.name}`: {error}") from None
    return contract.name, report.exported_rows, report.quarantined_rows


def _replay_of(key: str, etag: str) -> str:
    """Metadata values travel as HTTP headers: ASCII only, so the key is percent-encoded."""
    return quote(f"{key}@{etag}", safe="/@")


def _earlier_replay(client: Minio, bucket: str, target: str, key: str, etag: str) -> str | None:
    """The key of an existing replay of `key` at `etag`, if there is one.

    Replays of one file share the prefix `<base>.replay-`; each one's metadata names the
    version it replays (a replay of a replay names that replay, not the original).
    """
    prefix = target[: target.rindex(".replay-") + len(".replay-")]
    wanted = f"{key}@{etag}"
    for listed in client.list_objects(bucket, prefix=prefix):
        name = listed.object_name
        if not name or listed.is_dir:
            continue
        try:
            metadata = client.stat_object(bucket, name).metadata
        except S3Error as error:
            if error.code in store.NO_OBJECT:
                continue
            raise
        value = metadata.get(f"x-amz-meta-{REPLAY_OF}") if metadata is not None else None
        if value is not None and unquote(value) == wanted:
            return name
    return None
