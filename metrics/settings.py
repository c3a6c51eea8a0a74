"""What the metrics exporter reads from its environment (`IVI_*` variables, or `.env`): its
address and the bearer token Prometheus must send. The store and the buckets come from the
blocks the setup step saved (`minio-credentials`, `ivi-pipeline`), as for the flows; the
Prefect API from Prefect's own settings (`PREFECT_API_URL`)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVI_", env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    # Bearer token Prometheus sends to GET /metrics (the relay checks the same one).
    metrics_token: SecretStr = SecretStr("")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_host}:{self.metrics_port}"
