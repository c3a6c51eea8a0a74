"""What the relay reads from its environment (`IVI_*` variables, or `.env` in the directory it
runs in): its token, its address, the raw bucket, and the Prefect API it posts events to.

The relay's own class, so that the relay imports nothing of the pipeline; `ivi`'s settings
extend it for the embedded stack.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVI_", env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    webhook_token: SecretStr = SecretStr("")
    relay_host: str = "127.0.0.1"
    relay_port: int = 8000
    relay_max_body_bytes: int = 1024 * 1024
    raw_bucket: str = "raw"
    # A burst's objects are grouped into one process-objects run (relay/dispatch.py): at most
    # this many per group (1 turns grouping off), each waiting at most this long for more.
    relay_batch_max: int = 16
    relay_batch_window_seconds: float = 0.5
    # Bearer token Prometheus sends to GET /metrics (of the relay and of the metrics exporter).
    metrics_token: SecretStr = SecretStr("")

    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    # A Prefect API elsewhere, e.g. a Prefect Cloud workspace
    # (https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>): wins over
    # host and port; its API key is sent as a bearer token.
    prefect_remote_api_url: str | None = None
    prefect_api_key: SecretStr = SecretStr("")

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.prefect_host}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return self.prefect_remote_api_url or f"{self.prefect_ui_url}/api"

    @property
    def relay_url(self) -> str:
        return f"http://{self.relay_host}:{self.relay_port}"
