"""The console's settings (env prefix `IVI_`, `.env` in the directory it runs in).

The store and buckets come from the setup step's settings, the Prefect address from the
relay's (the same variables every process of the stack reads); the console adds its own
address, its sign-in and its upload limit. `ivi`'s settings extend this class, so that
`ivi up` hands the console exactly its own values (`Settings.child_env()`).
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from blocks.settings import ENV_PREFIX, SetupSettings
from relay.settings import RelaySettings

DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class ConsoleSettings(SetupSettings, RelaySettings):
    """Settings of the web console (and, through `ivi`'s settings, of the whole stack)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    # Where it listens (127.0.0.1 for `ivi up`, 0.0.0.0 in a container).
    console_host: str = "127.0.0.1"
    console_port: int = 8500
    # Sign-in: a user and password (generated into `.env` by `ivi up`), or, for scripts,
    # `Authorization: Bearer <IVI_CONSOLE_TOKEN>` when that is set. No anonymous access.
    console_user: str = "ivi"
    console_password: SecretStr = SecretStr("")
    console_token: SecretStr = SecretStr("")
    # Signs the session cookie; generated into `.env` (an empty one is made up at start-up,
    # which signs everybody out on a restart).
    console_session_secret: SecretStr = SecretStr("")
    # Set on a console served over https (the cookie then only travels over https).
    console_https: bool = False
    # Largest file accepted, in bytes (checked in the browser before uploading, and again here).
    console_max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    # How long a download link is valid, in seconds.
    console_link_seconds: int = 300
    # The addresses a browser reaches the store and the Prefect UI at, when they differ from
    # the console's own view of them (containers); empty means the same.
    console_public_s3_url: str | None = None
    console_public_prefect_url: str | None = None

    @property
    def console_url(self) -> str:
        host = "127.0.0.1" if self.console_host in ("0.0.0.0", "") else self.console_host
        return f"http://{host}:{self.console_port}"

    @property
    def public_s3_url(self) -> str:
        return self.console_public_s3_url or self.s3_endpoint

    @property
    def public_prefect_url(self) -> str:
        return (self.console_public_prefect_url or self.prefect_ui_url).rstrip("/")


