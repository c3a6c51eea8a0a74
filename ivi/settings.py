"""The CLI's settings: the environment and `.env` in the project directory (where `ivi` runs).

`Settings` is what the setup step reads (`blocks/settings.py`: store, buckets, Power BI, work
pool), what the relay reads (`relay/settings.py`), what the console reads
(`console/settings.py`, which extends those two) and what the metrics exporter reads
(`metrics/settings.py`), plus what only the embedded stack needs
(SeaweedFS' ports, the worker's polling, the data dir). `ivi up` hands each child process its
part through `Settings.child_env()`, so a test that builds its own `Settings` (other ports,
another data dir) starts a stack that is entirely its own. The flows read none of this: they
load the blocks the setup step saved.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from blocks.settings import ENV_PREFIX
from console.settings import ConsoleSettings
from metrics.settings import MetricsSettings

# The project directory: `.env`, `prefect.yaml` and `contracts/` are read from where `ivi`
# runs (as `docker compose` reads its files), so an installed `ivi` works as an editable one.
PROJECT_DIR = Path.cwd()
ENV_FILE = PROJECT_DIR / ".env"
ENV_EXAMPLE_FILE = PROJECT_DIR / ".env.example"
GRPC_PORT_OFFSET = 10000  # SeaweedFS' own default: a gRPC port is its HTTP port + 10000


class Settings(ConsoleSettings, MetricsSettings):
    """Settings of the embedded stack and of every process it starts (env prefix `IVI_`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `IVI_DATA_DIR=` in .env means "the default", not ""
        extra="ignore",
    )

    # SeaweedFS' internal servers: every port pinned, because a busy one is silently replaced.
    # Every default port here, and each gRPC port (+ 10000), is below Linux's ephemeral range
    # (32768-60999): a port in it may be held for a minute by an outgoing connection that just
    # closed (TIME_WAIT), and `ivi up` would refuse it (seen: PostgreSQL's old 55432 after a
    # test run). Hence admin 22646, not SeaweedFS' own 23646 (its gRPC port would be 33646).
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 9340
    seaweed_filer_port: int = 8888
    seaweed_admin_port: int = 22646

    # The embedded stack's PostgreSQL (the Prefect server's database), on 127.0.0.1 only; its
    # password is set when its data directory is created (`ivi up` generates it into `.env`).
    postgres_port: int = 15432
    postgres_password: SecretStr = SecretStr("")

    # The embedded worker polls this often (Prefect's own default is 10 s).
    worker_query_seconds: float = 1.0

    # Where the embedded stack keeps its data, pids and logs.
    data_dir: Path = Field(default=PROJECT_DIR / ".data")

    @property
    def engine_socket(self) -> Path:
        """Unix socket of the pre-warmed engine that starts the worker's flow runs."""
        return self.data_dir / "run" / "engine.sock"

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
        this object's values even when the project's `.env` says otherwise.
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
    """Read the settings from the environment and `.env` (the CLI's only reader)."""
    return Settings()
