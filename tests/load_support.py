"""A load batch on the running stack: files with known outcomes, uploaded at once, then watched.

Shared by tests/test_load.py (what must hold under load: every file processed exactly once,
exact Power BI rows, the POST rate) and bench/bench_load.py (how fast: files per minute and
upload-to-report latency at several run concurrencies), so both measure the same thing.

The batch mixes both contracts and three kinds of file: tiny clean files (tens of rows, every
row exported), messy files from bench/generate_messy.py (hundreds to a few thousand rows with
invalid rows and duplicates, outcomes known from the generator's ground truth) and a few big
messy files (over 20,000 exported rows: three Power BI batches each).
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Self

from blocks.powerbi_setup import standin_dataset_id
from objectstore.output_names import REPORTS_PREFIX
from objectstore.store import OutputKeys, read_report
from ivi.settings import Settings
from tests.messy_support import load_generator
from tests.pipeline_support import FINAL_STATES, runs_that_processed, s3, upload
from tests.powerbi_pipeline_support import dataset_state, new_marker, post_times, standin, vendas_csv
from tests.stack_support import prefect_request

CONTRACTS = ("vendas", "clientes")
CLIENTES_HEADER = "id_cliente,idade,genero,renda_mensal\n"
TINY_ROWS = (10, 90)
SMALL_ROWS = (200, 700)  # the generator needs ~200 rows for its full mix of messy rows
MEDIUM_ROWS = (1_500, 4_000)
BIG_ROWS = (22_000, 24_000)  # ~94 % exported: over 20,000 rows, three Power BI batches


@dataclass(frozen=True)
class LoadFile:
    """One object of the batch and what its report must say (the generator's ground truth)."""

    key: str
    contract: str
    data: bytes
    input_rows: int
    exported_rows: int
    quarantined_rows: int
    duplicate_rows: int


def clientes_csv(rows: int, first_id: int) -> bytes:
    """`rows` valid `clientes` rows (required columns and a unique id each)."""
    lines = [CLIENTES_HEADER]
    for number in range(first_id, first_id + rows):
        lines.append(f"{number},{18 + number % 70},{'MF'[number % 2]},{1000 + number % 5000}.50\n")
    return "".join(lines).encode()


def build_batch(prefix: str, count: int = 200, *, seed: int = 6, big: int = 4, medium: int = 16) -> list[LoadFile]:
    """`count` files under `<contract>/<prefix>/`, contracts alternating, in a shuffled order.

    Mix: `big` big messy files, `medium` messy files of a few thousand rows, and the rest
    half tiny clean files, half small messy files (~170,000 rows for the default 200).
    """
    generator = load_generator()
    r = random.Random(seed)
    kinds = ["big"] * big + ["medium"] * medium
    rest = count - len(kinds)
    kinds += ["tiny"] * (rest // 2) + ["small"] * (rest - rest // 2)
    files: list[LoadFile] = []
    with tempfile.TemporaryDirectory(prefix="ivi-load-") as temp:
        for number, kind in enumerate(kinds):
            contract = CONTRACTS[number % 2]
            key = f"{contract}/{prefix}/{number:03d}-{kind}.csv"
            if kind == "tiny":
                rows = r.randint(*TINY_ROWS)
                data = (
                    vendas_csv(rows, new_marker()) if contract == "vendas"
                    else clientes_csv(rows, first_id=10_000_000 + 1_000 * number)
                )
                files.append(LoadFile(key, contract, data, rows, rows, 0, 0))
                continue
            low, high = {"small": SMALL_ROWS, "medium": MEDIUM_ROWS, "big": BIG_ROWS}[kind]
            path = Path(temp) / f"{number}.csv"
            truth = generator.generate(
                path, contract, r.randint(low, high), seed=seed * 1_000 + number,
                encoding=r.choice(("utf-8", "utf-8-sig", "cp1252")), delimiter=r.choice((",", ";")),
            )
            files.append(LoadFile(
                key, contract, path.read_bytes(), truth["input_rows"], truth["exported_rows"],
                truth["quarantined_rows"], truth["duplicate_rows"],
            ))
    r.shuffle(files)
    return files


@dataclass
class Uploaded:
    etag: str
    started: float  # time.monotonic() when its put began
    done: float  # ... and when it returned


def upload_all(settings: Settings, files: list[LoadFile], workers: int = 16) -> dict[str, Uploaded]:
    """Put every file into the raw bucket from a thread pool; key -> eTag and times."""

    def put(file: LoadFile) -> tuple[str, Uploaded]:
        started = time.monotonic()
        etag = upload(settings, file.key, file.data)
        return file.key, Uploaded(etag, started, time.monotonic())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(put, files))


class Poller:
    """A background thread that calls `poll_once` every `interval` s while in a `with`."""

    def __init__(self, settings: Settings, interval: float, name: str) -> None:
        self.settings, self.interval = settings, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        raise NotImplementedError


class ReportWatcher(Poller):
    """Notes when each report under the batch's prefix first appears (one listing per poll).

    The time a report becomes readable is what a user waits for: the same end point as
    bench/bench_pipeline.py's latency, for many files at once without one GET per file.
    """

    def __init__(self, settings: Settings, prefix: str, interval: float = 0.25) -> None:
        super().__init__(settings, interval, "report-watcher")
        self.prefixes = [f"{REPORTS_PREFIX}{contract}/{prefix}/" for contract in CONTRACTS]
        self.seen: dict[str, float] = {}  # report key -> time.monotonic() when first listed
        self._client = s3(settings)

    def poll_once(self) -> None:
        for prefix in self.prefixes:
            try:
                names = [o.object_name for o in self._client.list_objects(
                    self.settings.processed_bucket, prefix=prefix, recursive=True)]
            except Exception:  # noqa: BLE001 - a failed listing is retried at the next poll
                continue
            now = time.monotonic()
            for name in names:
                self.seen.setdefault(str(name), now)

    def wait_for(self, keys: list[str], timeout: float) -> list[str]:
        """Wait until the reports of `keys` have all appeared; returns the keys still missing."""
        wanted = {OutputKeys.for_key(key).report: key for key in keys}
        deadline = time.monotonic() + timeout
        while True:
            missing = [key for report, key in wanted.items() if report not in self.seen]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.5)

    def seen_at(self, key: str) -> float:
        return self.seen[OutputKeys.for_key(key).report]


@dataclass
class BatchRun:
    """What uploading a batch and waiting for it left: the times, the reports that never
    came and every process_object run of its keys."""

    began: float  # time.monotonic() before the first put
    uploaded: dict[str, Uploaded]
    upload_seconds: float
    missing: list[str]
    runs: dict[str, list[dict[str, Any]]]
    watcher: ReportWatcher


def upload_batch_and_wait(
    settings: Settings, prefix: str, files: list[LoadFile], timeout: float
) -> BatchRun:
    """Upload `files` at once, wait up to `timeout` s for their reports, then for their runs
    to end (the load test and bench/bench_load.py run a batch the same way)."""
    since_iso = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    keys = [f.key for f in files]
    with ReportWatcher(settings, prefix) as watcher:
        began = time.monotonic()
        uploaded = upload_all(settings, files)
        upload_seconds = max(u.done for u in uploaded.values()) - began
        missing = watcher.wait_for(keys, timeout)
        runs = wait_for_final_runs(settings, set(keys), since_iso, timeout=120)
    return BatchRun(began, uploaded, upload_seconds, missing, runs, watcher)


def read_reports(settings: Settings, keys: list[str]) -> dict[str, dict[str, Any] | None]:
    client = s3(settings)
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = pool.map(
            lambda key: read_report(client, settings.processed_bucket, OutputKeys.for_key(key).report), keys
        )
        return dict(zip(keys, reports, strict=True))


def process_object_runs(settings: Settings, keys: set[str], since_iso: str) -> dict[str, list[dict[str, Any]]]:
    """Every process_object run created since `since_iso` whose `key` is one of `keys`, by key.

    Paged: a load batch makes more runs than one filter answer holds.
    """
    by_key: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    offset = 0
    while True:
        page = prefect_request(
            "POST", f"{settings.prefect_api_url}/flow_runs/filter",
            json={
                "flows": {"name": {"any_": ["process_object"]}},
                "flow_runs": {"expected_start_time": {"after_": since_iso}},
                "sort": "EXPECTED_START_TIME_ASC", "limit": 200, "offset": offset,
            },
            timeout=30,
        ).json()
        for run in page:
            key = run["parameters"].get("key")
            if key in by_key:
                by_key[key].append(run)
        if len(page) < 200:
            return by_key
        offset += len(page)


def runs_that_ran(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that did the work: they ran (a run the worker failed to start has run_count 0 and
    did nothing) and did not find the version already processed."""
    return [run for run in runs_that_processed(runs) if run["run_count"] > 0]


def never_started(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that ended without ever running (e.g. Crashed: "Failed to submit flow run")."""
    return [run for run in runs if run["state_type"] in FINAL_STATES and run["run_count"] == 0]


def wait_for_final_runs(
    settings: Settings, keys: set[str], since_iso: str, timeout: float, settle: float = 5.0
) -> dict[str, list[dict[str, Any]]]:
    """The keys' runs once every one is final and no new one came for `settle` s (or the
    timeout passed: the caller then sees the runs that are not final)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    quiet_since = time.monotonic()
    while True:
        runs = process_object_runs(settings, keys, since_iso)
        flat = [run for found in runs.values() for run in found]
        shape = (len(flat), sum(run["state_type"] in FINAL_STATES for run in flat))
        if shape != last:
            last, quiet_since = shape, time.monotonic()
        if (shape[0] == shape[1] and time.monotonic() - quiet_since >= settle) or time.monotonic() > deadline:
            return runs
        time.sleep(1.0)


@dataclass
class DatasetMark:
    """Where a contract's stand-in dataset stood before the batch: its row count and time."""

    contract: str
    rows: int
    at: float  # time.time(): POSTs received from then on are the batch's


def quiet_datasets(settings: Settings, timeout: float = 60.0, quiet: float = 3.0) -> dict[str, DatasetMark]:
    """Wait until no dataset takes rows for `quiet` s (an earlier test's push is over) and mark
    where each stands; rows and POSTs after the mark are the batch's."""
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    quiet_since = time.monotonic()
    while True:
        states = {contract: dataset_state(settings, contract) for contract in CONTRACTS}
        counts = {contract: int(state["rows"]) for contract, state in states.items()}
        busy = any(state["pending"] for state in states.values())
        if counts != last or busy:
            last, quiet_since = counts, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            now = time.time()
            return {contract: DatasetMark(contract, counts[contract], now) for contract in CONTRACTS}
        if time.monotonic() > deadline:
            raise AssertionError(f"the stand-in datasets kept taking rows for {timeout} s: {states}")
        time.sleep(0.5)


def rows_since(settings: Settings, mark: DatasetMark) -> list[dict[str, Any]]:
    """The rows the contract's dataset received after `mark` (rows are kept in arrival order)."""
    added = int(dataset_state(settings, mark.contract)["rows"]) - mark.rows
    body = standin(
        settings, "GET", f"/_standin/datasets/{standin_dataset_id(mark.contract)}/rows",
        params={"limit": max(added, 0)},
    )
    return list(body["rows"])


def repeated_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that arrived more than once. Every row of the batch is distinct in content (ids
    are unique within a file, and files differ in their seeded values or marker), so a repeat
    is a batch posted twice."""
    counts = Counter(tuple(sorted(row.items())) for row in rows)
    return [dict(row) for row, count in counts.items() if count > 1]


class PendingSampler(Poller):
    """Samples each dataset's requests in flight: the stand-in answers 429 from the 6th on."""

    def __init__(self, settings: Settings, interval: float = 0.2) -> None:
        super().__init__(settings, interval, "pending-sampler")
        self.peak: dict[str, int] = dict.fromkeys(CONTRACTS, 0)
        self.samples = 0

    def poll_once(self) -> None:
        for contract in CONTRACTS:
            try:
                pending = int(dataset_state(self.settings, contract)["pending"])
            except Exception:  # noqa: BLE001 - a missed sample is only a missed sample
                continue
            self.peak[contract] = max(self.peak[contract], pending)
        self.samples += 1


def batch_post_times(settings: Settings, mark: DatasetMark) -> list[float]:
    return post_times(settings, mark.contract, since=mark.at)
