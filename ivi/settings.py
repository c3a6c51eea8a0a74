"""The one place settings are read: the environment and `.env` in the repository root.

Everything else receives a `Settings` object and passes it down; nothing re-reads
`os.getenv`. Child processes started by `ivi up` get the same values through
`Settings.child_env()`, so a test that builds its own `Settings` (other ports, another data
dir) starts a stack that is entirely its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = REPO_ROOT / ".env"
ENV_EXAMPLE_FILE = REPO_ROOT / ".env.example"
ENV_PREFIX = "IVI_"
GRPC_PORT_OFFSET = 10000  # SeaweedFS' own default: a gRPC port is its HTTP port + 10000
# Per-contract Power BI settings, `IVI_POWERBI_<CONTRACT>_<SETTING>` (e.g.
# `IVI_POWERBI_VENDAS_PUSH_URL`): one variable per contract rather than a field per contract,
# so that a new contract file needs no code change here.
POWERBI_CONTRACT_SETTINGS = ("push_url", "dataset_id")
_POWERBI_CONTRACT_NAME = re.compile(
    r"^(?:ivi_)?powerbi_([a-z0-9_]+?)_(" + "|".join(POWERBI_CONTRACT_SETTINGS) + r")$"
)


def _powerbi_contract_key(name: str) -> tuple[str, str] | None:
    """(contract, setting) for `IVI_POWERBI_VENDAS_PUSH_URL` / `powerbi_vendas_push_url`."""
    match = _POWERBI_CONTRACT_NAME.match(name.lower())
    return (match.group(1), match.group(2)) if match else None


class _PowerBIContractEnv(PydanticBaseSettingsSource):
    """`IVI_POWERBI_<CONTRACT>_<SETTING>` variables of the process environment.

    pydantic-settings reads the environment only for declared fields; this source collects
    the per-contract ones into `powerbi_contract_settings` (`.env` extras reach the model's
    validator on their own).
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the environment directly

    def __call__(self) -> dict[str, Any]:
        found = {
            name.upper(): value
            for name, value in os.environ.items()
            if value and _powerbi_contract_key(name) and name.upper().startswith(ENV_PREFIX)
        }
        return {"powerbi_contract_settings": found} if found else {}


class Settings(BaseSettings):
    """Settings of the embedded stack, the relay and the flows (env prefix `IVI_`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `IVI_DATA_DIR=` in .env means "the default", not ""
        extra="ignore",
    )

    # Object store (SeaweedFS embedded, MinIO in docker-compose/production).
    s3_host: str = "127.0.0.1"
    s3_port: int = 9000
    s3_secure: bool = False
    s3_access_key: str = "ivi-local"
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    raw_bucket: str = "raw"
    processed_bucket: str = "processed"
    quarantine_bucket: str = "quarantine"

    # SeaweedFS' internal servers: every port pinned, because a busy one is silently replaced.
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 9340
    seaweed_filer_port: int = 8888
    seaweed_admin_port: int = 23646

    # Relay (store webhook -> Prefect event).
    webhook_token: SecretStr = SecretStr("")
    relay_host: str = "127.0.0.1"
    relay_port: int = 8000
    relay_max_body_bytes: int = 1024 * 1024

    # Prefect server and worker.
    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    # The embedded stack's PostgreSQL (the Prefect server's database), on 127.0.0.1 only; its
    # password is set when its data directory is created (`ivi up` generates it into `.env`).
    postgres_port: int = 55432
    postgres_password: SecretStr = SecretStr("")
    worker_query_seconds: float = 1.0
    # A Prefect API elsewhere, e.g. a Prefect Cloud workspace
    # (https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>): wins over
    # host and port for the relay and the setup step; its API key is sent as a bearer token.
    prefect_remote_api_url: str | None = None
    prefect_api_key: SecretStr = SecretStr("")
    # The work pool the deployments of prefect.yaml run on. `process` pools are created and
    # kept up to date by `deployments/apply.py`; any other type (kubernetes) is created by its
    # worker (`prefect worker start --type kubernetes`) or by the infra code.
    work_pool: str = "local-process"
    work_pool_type: str = "process"

    # Power BI stand-in (used by the export).
    powerbi_port: int = 8765
    # Where the setup and the flows reach the stand-in: 127.0.0.1 for `ivi up`, its service
    # name in docker-compose.
    powerbi_standin_host: str = "127.0.0.1"
    # Power BI push datasets through the REST API (`ivi powerbi create-dataset`). Unset API
    # URL and authority mean the local stand-in; an empty secret lets `ivi` make one up for it.
    powerbi_api_url: str | None = None
    powerbi_authority_host: str | None = None
    powerbi_tenant_id: str = "ivi-local"
    powerbi_client_id: str = "ivi-local"
    powerbi_client_secret: SecretStr = SecretStr("")
    powerbi_workspace_id: str = "ivi-local"
    # Every `IVI_POWERBI_<CONTRACT>_PUSH_URL` / `_DATASET_ID` found, by variable name (filled
    # from the environment and `.env`; read it through `powerbi_push_url` / `powerbi_dataset_id`).
    powerbi_contract_settings: dict[str, SecretStr] = Field(default_factory=dict, repr=False)

    # Where the embedded stack keeps its data, pids and logs.
    data_dir: Path = Field(default=REPO_ROOT / ".data")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual order (init, environment, `.env`), per-contract variables included."""
        return (
            init_settings,
            env_settings,
            _PowerBIContractEnv(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _collect_powerbi_contract_settings(cls, data: Any) -> Any:
        """Fold `.env` lines such as `IVI_POWERBI_VENDAS_PUSH_URL=` into the per-contract dict.

        They arrive as extra keys (`powerbi_vendas_push_url`); the environment's, collected by
        `_PowerBIContractEnv`, are already in the dict and win over `.env`.
        """
        if not isinstance(data, dict):
            return data
        collected: dict[str, Any] = {}
        for name in list(data):
            if isinstance(name, str) and name != "powerbi_contract_settings" and (
                _powerbi_contract_key(name)
            ):
                value = data.pop(name)
                if value:
                    collected[f"{ENV_PREFIX}{name.upper().removeprefix(ENV_PREFIX)}"] = value
        collected.update(data.get("powerbi_contract_settings") or {})
        data["powerbi_contract_settings"] = collected
        return data

    def _powerbi_contract_value(self, contract: str, setting: str) -> SecretStr | None:
        value = self.powerbi_contract_settings.get(
            f"{ENV_PREFIX}POWERBI_{contract.upper()}_{setting.upper()}"
        )
        return value if value is not None and value.get_secret_value() else None

    def powerbi_push_url(self, contract: str) -> SecretStr | None:
        """`IVI_POWERBI_<CONTRACT>_PUSH_URL`: a streaming/push dataset's URL, key included."""
        return self._powerbi_contract_value(contract, "push_url")

    def powerbi_dataset_id(self, contract: str) -> str | None:
        """`IVI_POWERBI_<CONTRACT>_DATASET_ID`: the contract's push dataset (REST API)."""
        value = self._powerbi_contract_value(contract, "dataset_id")
        return value.get_secret_value() if value is not None else None

    # Derived URLs --------------------------------------------------------------------------
    @property
    def s3_address(self) -> str:
        """`host:port` as the `minio` client wants it."""
        return f"{self.s3_host}:{self.s3_port}"

    @property
    def s3_endpoint(self) -> str:
        scheme = "https" if self.s3_secure else "http"
        return f"{scheme}://{self.s3_address}"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.prefect_host}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return self.prefect_remote_api_url or f"{self.prefect_ui_url}/api"

    @property
    def relay_url(self) -> str:
        return f"http://{self.relay_host}:{self.relay_port}"

    @property
    def powerbi_url(self) -> str:
        return f"http://{self.powerbi_standin_host}:{self.powerbi_port}"

    @property
    def powerbi_standin_url(self) -> str:
        """The local Power BI stand-in that `ivi up` starts (not the Power BI service)."""
        return self.powerbi_url

    @property
    def powerbi_api_base(self) -> str:
        """The Power BI REST API base: the configured one, or the local stand-in."""
        return (self.powerbi_api_url or self.powerbi_url).rstrip("/")

    @property
    def powerbi_authority(self) -> str:
        """The Entra ID authority host: the configured one, or the local stand-in."""
        return (self.powerbi_authority_host or self.powerbi_url).rstrip("/")

    @property
    def engine_socket(self) -> Path:
        """Unix socket of the pre-warmed engine that starts the worker's flow runs."""
        return self.data_dir / "run" / "engine.sock"

    @property
    def buckets(self) -> dict[str, str]:
        return {
            "raw": self.raw_bucket,
            "processed": self.processed_bucket,
            "quarantine": self.quarantine_bucket,
        }

    @property
    def seaweed_ports(self) -> dict[str, int]:
        """The HTTP port of every server in `weed mini`, by its flag name."""
        return {
            "s3.port": self.s3_port,
            "master.port": self.seaweed_master_port,
            "volume.port": self.seaweed_volume_port,
            "filer.port": self.seaweed_filer_port,
            "admin.port": self.seaweed_admin_port,
        }

    @property
    def seaweed_grpc_ports(self) -> dict[str, int]:
        """The gRPC ports `weed mini` derives (HTTP port + 10000).

        Not passed as flags: in 4.48 the built-in admin worker dials admin.port + 10000
        whatever `-admin.port.grpc` says. They are checked for being free instead.
        """
        return {f"{flag}.grpc": port + GRPC_PORT_OFFSET for flag, port in self.seaweed_ports.items()}

    # Passing settings to child processes ---------------------------------------------------
    def child_env(self) -> dict[str, str]:
        """Every setting as an `IVI_*` variable (secrets included), for child processes only.

        Environment variables win over `.env` in pydantic-settings, so a child sees exactly
        this object's values even when the repository's `.env` says otherwise.
        """
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if name == "powerbi_contract_settings":
                env.update({key: secret.get_secret_value() for key, secret in value.items()})
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env


def load_settings() -> Settings:
    """Read the settings from the environment and `.env` (the only reader in the project)."""
    return Settings()
