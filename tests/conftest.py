"""Shared fixtures: the real embedded stack, started once per test session.

`stack` starts SeaweedFS, the Prefect server, the worker and the relay through the same
function `ivi up` uses (`ivi.stack.start`), on free ports with a temporary data dir and fresh
secrets, and stops them all at the end of the session (failing loudly if any process is left).
Tests that use it are marked `services`; `pytest -m "not services"` runs the rest without
starting anything (a session fixture only starts when a test asks for it).

Other test files add plain tests with `tmp_path`; `tests/stack_support.py` has the helpers for
tests that talk to the stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest
from tests.stack_support import isolated_settings

from ivi.settings import Settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The running stack's settings (S3 endpoint, Prefect API, relay URL, token, buckets)."""
    from ivi import stack as ivi_stack

    settings = isolated_settings(tmp_path_factory.mktemp("ivi-stack"))
    started_at = time.monotonic()
    ivi_stack.start(settings)
    print(f"\nembedded stack started in {time.monotonic() - started_at:.1f} s ({settings.data_dir})")
    try:
        yield settings
    finally:
        processes = _stack_processes(settings)  # now: tests restart services
        stopping_at = time.monotonic()
        ivi_stack.down(settings)
        print(f"\nembedded stack stopped in {time.monotonic() - stopping_at:.1f} s")
        gone, alive = psutil.wait_procs(processes, timeout=5)
        left = [f"{p.pid}" for p in alive if _is_alive(p)]
        assert not left, f"processes left running after `down`: {left}"


def _stack_processes(settings: Settings) -> list[psutil.Process]:
    """Every process the stack runs now (each service and its descendants)."""
    from ivi import stack as ivi_stack
    from ivi.processes import running

    found: list[psutil.Process] = []
    for service in ivi_stack.SERVICES:
        process = running(ivi_stack.files(settings, service.name))
        if process is not None:
            found.append(process)
            found.extend(process.children(recursive=True))
    return found


def _is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
