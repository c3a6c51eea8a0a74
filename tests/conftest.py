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

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.stack_support import isolated_settings

from ivi.settings import Settings


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The running stack's settings (S3 endpoint, Prefect API, relay URL, token, buckets).

    Its data dir is a temporary directory of its own, not under pytest's `tmp_path`: every
    pytest session that starts on the machine resets `/tmp/pytest-of-<user>` to mode 0700,
    which cuts PostgreSQL, run as another user when the tests run as root, off its data. It
    is removed at the end unless a test failed (its logs are then still there).
    """
    from ivi import stack as ivi_stack

    settings = isolated_settings(Path(tempfile.mkdtemp(prefix="ivi-stack-")))
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
        if request.session.testsfailed:
            print(f"embedded stack's data and logs kept in {settings.data_dir}")
        else:
            shutil.rmtree(settings.data_dir, ignore_errors=True)


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
