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


def cpu_seconds_by_service(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system) each service of the stack has used so far, its children
    included (the flow runs are the pre-warmed engine's children; PostgreSQL's backends the
    postmaster's): on shared cores the wall clock says little, the CPU a file costs says
    what the stack could do on cores of its own."""
    import psutil

    totals: dict[str, float] = {}
    for pid_file in sorted((settings.data_dir / "pids").glob("*.pid")):
        try:
            leader = psutil.Process(int(pid_file.read_text().split()[0]))
            members = [leader, *leader.children(recursive=True)]
        except (psutil.Error, ValueError, IndexError):
            continue
        seconds = 0.0
        for process in members:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            seconds += times.user + times.system + times.children_user + times.children_system
        totals[pid_file.stem] = seconds
    return totals


def reference_cpu_seconds(rounds: int = 5) -> float:
    """CPU seconds a fixed pure-Python loop takes here, the median of `rounds`: the baseline
    measured in the same run. This machine's cores are shared with other machines: the same
    loop took 0.70 s one minute and 1.02 s the next, and every service's CPU per file moved
    with it. A burst's CPU per file divided by this compares runs made at different speeds."""
    import statistics
    import time

    def once() -> float:
        started = time.process_time()
        sum(number * number for number in range(2_000_000))
        return time.process_time() - started

    return statistics.median(once() for _ in range(rounds))


def machine_cpu_seconds() -> dict[str, float]:
    """The whole machine's CPU seconds so far, all cores: `busy` (everything but idle and I/O
    wait, whoever ran it) and `steal` (time the hypervisor gave our virtual cores to other
    machines). Read before and after a burst, beside `cpu_seconds_by_service`, it says how much
    of the machine the stack had: on a shared machine a burst that is slow with few of our CPU
    seconds per minute ran beside somebody else's work."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    steal = getattr(times, "steal", 0.0)
    return {"busy": sum(times) - idle - steal, "steal": steal}
