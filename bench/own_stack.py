"""What the stack benchmarks share: a stack of their own, and the percentile they report.

A benchmark must not measure (or disturb) the stack `ivi up` left running, so each starts the
embedded stack on free ports in a temporary data dir, the way the test session does, and
stops it at the end whatever happened.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivi import stack as ivi_stack  # noqa: E402
from ivi.settings import Settings  # noqa: E402
from tests.stack_support import isolated_settings  # noqa: E402


@contextmanager
def own_stack() -> Iterator[Settings]:
    """The settings of a freshly started stack, stopped (and its data dir removed) on exit."""
    with tempfile.TemporaryDirectory(prefix="ivi-bench-") as temp:
        settings = isolated_settings(Path(temp))
        began = time.monotonic()
        ivi_stack.start(settings)
        print(f"stack started in {time.monotonic() - began:.1f} s", flush=True)
        try:
            yield settings
        finally:
            ivi_stack.down(settings)


def percentile(values: list[float], share: float) -> float:
    """The value at `share` (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
