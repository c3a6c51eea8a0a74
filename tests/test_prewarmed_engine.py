"""The pre-warmed engine imports, before it forks, everything a flow run would import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ivi import prefect_stack
from ivi.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_prewarming_loads_the_flows_and_the_validation_engine() -> None:
    # in a fresh interpreter: pytest's own process has imported these long ago
    script = (
        "import sys\n"
        "from deployments.prewarmed_engine import _prewarm\n"
        "_prewarm()\n"
        "from deployments.prewarmed_engine import _LAZY_IMPORTS\n"
        "wanted = ('flows.process_object', 'flows.backfill', 'processing.engine', 'pandera.polars',\n"
        "          'anyio._backends._asyncio', *_LAZY_IMPORTS)\n"
        "print(','.join(name for name in wanted if name not in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"not loaded before the fork: {run.stdout.strip()}"


# A forked child loads the results block as a run does (`S3Bucket.load`) and asks it for its
# client: the one the engine made before the fork, not a new one (a cache hit, no miss).
_FORKED_RUN_FINDS_THE_CLIENT = """
import os, sys
from deployments.prewarmed_engine import _ResultsClient, _prewarm
from prefect_aws import S3Bucket
from prefect_aws.credentials import _get_client_cached
from blocks.objectstore import RESULTS_BLOCK
_prewarm()
_ResultsClient.make()
assert _ResultsClient.made, "the engine could not make the results client"
made_before = _get_client_cached.cache_info()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    S3Bucket.load(RESULTS_BLOCK)._get_s3_client()
    info = _get_client_cached.cache_info()
    os.write(write, f"{info.hits - made_before.hits} {info.misses - made_before.misses}".encode())
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(read, 100).decode())
"""


@pytest.mark.services
def test_a_forked_run_uses_the_results_client_the_engine_made(stack: Settings) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _FORKED_RUN_FINDS_THE_CLIENT], cwd=REPO, capture_output=True, text=True,
        timeout=120, env=prefect_stack.env(stack),
    )
    assert run.returncode == 0, run.stderr
    hits, misses = (int(n) for n in run.stdout.split()[-2:])
    assert (hits, misses) == (1, 0), f"the run built its own client: {hits} hits, {misses} misses"
