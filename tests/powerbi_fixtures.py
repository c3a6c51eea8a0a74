"""The Power BI stand-in, served over real HTTP once per test session.

Test modules load this with `pytest_plugins = ["tests.powerbi_fixtures"]` rather than
importing the fixtures by name: an imported session fixture is registered once per module that
imports it, and would start one server per module. As a plugin it is registered once, and
every module shares the one server. (tests/conftest.py belongs to the stack's tests.)
Helpers and constants that tests import by name are in `tests/powerbi_support.py`.

Each test registers datasets of its own (fresh ids) so that counts, rate windows and faults
never leak between tests sharing the server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.powerbi_support import (
    TEST_ADMIN_TOKEN,
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_STATIC_TOKEN,
    StandIn,
    StandInServer,
)


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """One stand-in for the session: a known test client, a static token, default limits."""
    server = StandInServer(
        tmp_path_factory.mktemp("powerbi-standin") / "standin.sqlite",
        clients={TEST_CLIENT_ID: TEST_CLIENT_SECRET},
        static_token=TEST_STATIC_TOKEN,
        admin_token=TEST_ADMIN_TOKEN,
    ).start()
    try:
        yield StandIn(server)
    finally:
        server.stop()


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
