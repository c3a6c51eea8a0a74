"""What the setup step (`python -m deployments.apply`) reads from its environment and turns
into Prefect blocks: the object store, the buckets, the Power BI destinations, the work pool.

`IVI_*` variables, or `.env` in the directory the setup runs in. The flows never read these:
they load the blocks the setup step saved. `ivi`'s settings extend this class for the
embedded stack.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from processing.contract import DEFAULT_CONTRACTS_DIR

ENV_PREFIX = "IVI_"
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


class SetupSettings(BaseSettings):
    """Settings of the setup step (env prefix `IVI_`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `IVI_X=` in .env means "the default", not ""
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
    lake_bucket: str = "lake"  # the Delta Lake tables, s3://<lake_bucket>/<contract>
    # Published contracts: `<processed_bucket>/<contracts_prefix><name>.toml` ("" = none);
    # the image's own: `contracts_dir` ("" = the repository's `contracts/`). Saved in block
    # `ivi-pipeline`, which the flows and `ivi contract publish` read.
    contracts_prefix: str = "_ivi/contracts/"
    contracts_dir: str = ""

    # Power BI stand-in (used by the export).
    powerbi_port: int = 8765
    # Where the setup and the flows reach the stand-in: 127.0.0.1 for `ivi up`, its service
    # name in docker-compose.
    powerbi_standin_host: str = "127.0.0.1"
    # Token of the stand-in's admin API (`/_standin/...`, its page): sent by every caller as
    # `Authorization: Bearer`; the stand-in requires it whenever it is set, and refuses to
    # listen beyond loopback without it (generated into `.env` by `ivi up`).
    powerbi_standin_admin_token: SecretStr = SecretStr("")
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

    # The work pool the deployments of prefect.yaml run on. `process` pools are created and
    # kept up to date by `deployments/apply.py`; any other type (kubernetes) is created by its
    # worker (`prefect worker start --type kubernetes`) or by the infra code.
    work_pool: str = "local-process"
    work_pool_type: str = "process"

    # The local stand-in's push keys are derived from it (blocks/powerbi_setup.py).
    webhook_token: SecretStr = SecretStr("")

    @field_validator("contracts_prefix")
    @classmethod
    def _contracts_prefix_is_pipeline_state(cls, prefix: str) -> str:
        """A folder under `_`, where no output can land (objectstore.store.output_base)."""
        if prefix and not (prefix.startswith("_") and prefix.endswith("/")):
            raise ValueError(f"IVI_CONTRACTS_PREFIX must start with `_` and end with `/` (or be empty), not {prefix!r}")
        return prefix

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
    def powerbi_url(self) -> str:
        return f"http://{self.powerbi_standin_host}:{self.powerbi_port}"

    @property
    def powerbi_standin_url(self) -> str:
        """The local Power BI stand-in that `ivi up` starts (not the Power BI service)."""
        return self.powerbi_url

    @property
    def powerbi_standin_admin_headers(self) -> dict[str, str]:
        """Headers for a call to the stand-in's admin API (none when no token is set)."""
        token = self.powerbi_standin_admin_token.get_secret_value()
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def powerbi_api_base(self) -> str:
        """The Power BI REST API base: the configured one, or the local stand-in."""
        return (self.powerbi_api_url or self.powerbi_url).rstrip("/")

    @property
    def powerbi_authority(self) -> str:
        """The Entra ID authority host: the configured one, or the local stand-in."""
        return (self.powerbi_authority_host or self.powerbi_url).rstrip("/")

    @property
    def contracts_directory(self) -> Path:
        """The image's contracts: `contracts_dir`, or the repository's `contracts/`."""
        return Path(self.contracts_dir) if self.contracts_dir else DEFAULT_CONTRACTS_DIR

    @property
    def buckets(self) -> dict[str, str]:
        return {
            "raw": self.raw_bucket,
            "processed": self.processed_bucket,
            "quarantine": self.quarantine_bucket,
            "lake": self.lake_bucket,
        }
