"""A Prefect API elsewhere (Prefect Cloud): the relay posts there with the API key."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from relay.app import create_app
from ivi import prefect_stack
from ivi.settings import Settings

CLOUD = "https://api.prefect.cloud/api/accounts/a1/workspaces/w1"


def test_the_remote_api_url_wins_over_host_and_port() -> None:
    local = Settings(_env_file=None, prefect_host="10.1.2.3", prefect_port=4300)  # type: ignore[call-arg]
    assert local.prefect_api_url == "http://10.1.2.3:4300/api"
    remote = Settings(_env_file=None, prefect_port=4300, prefect_remote_api_url=CLOUD)  # type: ignore[call-arg]
    assert remote.prefect_api_url == CLOUD


def test_the_relay_sends_the_api_key_as_a_bearer_token_and_only_when_set() -> None:
    key = "pnu_" + "k" * 36
    with_key = Settings(_env_file=None, prefect_remote_api_url=CLOUD, prefect_api_key=SecretStr(key),  # type: ignore[call-arg]
                        webhook_token=SecretStr("t" * 32))
    with TestClient(create_app(with_key)) as client:
        prefect = client.app.state.prefect  # type: ignore[attr-defined]
        assert prefect.headers["authorization"] == f"Bearer {key}"
    without = Settings(_env_file=None, webhook_token=SecretStr("t" * 32))  # type: ignore[call-arg]
    with TestClient(create_app(without)) as client:
        assert "authorization" not in client.app.state.prefect.headers  # type: ignore[attr-defined]


def test_prefect_processes_get_the_remote_url_and_key() -> None:
    settings = Settings(_env_file=None, prefect_remote_api_url=CLOUD, prefect_api_key=SecretStr("pnu_x"))  # type: ignore[call-arg]
    env = prefect_stack.env(settings)
    assert env["PREFECT_API_URL"] == CLOUD and env["PREFECT_API_KEY"] == "pnu_x"
    assert "PREFECT_API_KEY" not in prefect_stack.env(Settings(_env_file=None))  # type: ignore[call-arg]
