"""The pre-warmed engine imports, before it forks, everything a flow run would import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_prewarming_loads_the_flows_and_the_validation_engine() -> None:
    # in a fresh interpreter: pytest's own process has imported these long ago
    script = (
        "import sys\n"
        "from deployments.prewarmed_engine import _prewarm\n"
        "_prewarm()\n"
        "wanted = ('flows.process_object', 'flows.backfill', 'processing.engine', 'pandera.polars')\n"
        "print(','.join(name for name in wanted if name not in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"not loaded before the fork: {run.stdout.strip()}"
