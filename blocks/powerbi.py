"""Power BI destinations as Prefect blocks: where rows go and the secret that lets them in.

One block per contract, saved as `powerbi-<contract>`. Both classes satisfy the `Destination`
protocol of `powerbi/push.py`, so the push code does not care which one it holds:

- `PowerBIStreamingDataset`: a push URL, whose `key=` query parameter is the secret;
- `PowerBIPushDataset`: a push dataset's table through the REST API, authenticated by an
  Entra ID client-credentials token from msal (cached by msal, refreshed once on a 401).

Both can point at the local stand-in (`powerbi_standin`), which is what they do by default in
the embedded stack. msal only accepts https authorities; for a loopback authority given as
`http://127.0.0.1:PORT` the block hands msal the https spelling and a requests session that
sends those calls over plain HTTP to the same host and port. That mapping is refused for any
non-loopback host, so a client secret never travels in clear text off the machine.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msal
import requests
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from powerbi.push import (
    MAX_BYTES_PER_POST,
    STREAMING_MAX_BYTES,
    Batch,
    PowerBIRejected,
    PowerBIUnavailable,
    redact,
)

POWERBI_SCOPE = "https://analysis.windows.net/powerbi/api/.default"
ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"
POWERBI_API_BASE = "https://api.powerbi.com"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
REST_ENVELOPE_BYTES = len(b'{"rows":}')
#: One lock for every block's msal calls: a lock cannot be pickled, and tokens are rare.
_TOKEN_LOCK = threading.RLock()


def block_name(contract: str) -> str:
    """The block a contract's rows go to: `powerbi-<contract>`, its `_` written `-`.

    Prefect refuses a block name with `_` (lower-case letters, digits and dashes only), and a
    contract name has no `-`, so `obitos_2020` -> `powerbi-obitos-2020` names one contract.
    """
    return f"powerbi-{contract.replace('_', '-')}"


class PowerBIStreamingDataset(Block):
    """A streaming (or push) dataset's push URL; the URL's `key` is the secret."""

    _block_type_name = "Power BI Streaming Dataset"
    _description = "A Power BI push URL (…/beta/<tenant>/datasets/<id>/rows?key=…)."

    push_url: SecretStr = Field(description="The push URL, key included.")
    streaming_only: bool = Field(
        default=False,
        description="A streaming-only dataset takes at most 15 KB per request.",
    )

    def rows_url(self) -> str:
        return self.push_url.get_secret_value()

    def request_body(self, batch: Batch) -> bytes:
        return batch.body

    def auth_headers(self) -> dict[str, str]:
        return {}

    def refresh_credentials(self) -> bool:
        return False  # a push URL's key cannot be refreshed: a 401/403 is final

    def max_batch_bytes(self) -> int:
        return STREAMING_MAX_BYTES if self.streaming_only else MAX_BYTES_PER_POST

    def describe(self) -> str:
        parts = urlsplit(self.push_url.get_secret_value())
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def secret_values(self) -> list[str]:
        query = urlsplit(self.push_url.get_secret_value()).query
        keys = [value for name, _, value in (p.partition("=") for p in query.split("&")) if value]
        return [self.push_url.get_secret_value(), *keys]


class _LoopbackHttpsSession(requests.Session):
    """Sends msal's https calls for one loopback host and port over plain HTTP.

    msal insists on an https authority; the stand-in speaks HTTP on 127.0.0.1. The rewrite is
    exact (scheme, host and port must match) and only ever built for a loopback host.
    """

    def __init__(self, https_base: str, http_base: str, timeout: float = 30.0) -> None:
        super().__init__()
        self._https_base = https_base.rstrip("/")
        self._http_base = http_base.rstrip("/")
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else str(url)
        if text.startswith(self._https_base + "/"):
            text = self._http_base + text[len(self._https_base) :]
        kwargs.setdefault("timeout", self._timeout)
        verb = method.decode() if isinstance(method, bytes) else str(method)
        return super().request(verb, text, *args, **kwargs)


class PowerBIPushDataset(Block):
    """A push dataset's table through the REST API, with an Entra ID app's credentials."""

    _block_type_name = "Power BI Push Dataset"
    _description = "A Power BI push dataset table, written through the REST API with msal."

    tenant_id: str = Field(description="Entra ID tenant (directory) id.")
    client_id: str = Field(description="The app registration's client id.")
    client_secret: SecretStr = Field(description="The app registration's client secret.")
    workspace_id: str = Field(description="Power BI workspace (group) id.")
    dataset_id: str = Field(description="Push dataset id.")
    table: str = Field(description="Table in the dataset.")
    authority_host: str = Field(
        default=ENTRA_AUTHORITY_HOST,
        description="Entra ID authority host; http://127.0.0.1:PORT for the local stand-in.",
    )
    api_base_url: str = Field(
        default=POWERBI_API_BASE,
        description="Power BI REST API base; http://127.0.0.1:PORT for the local stand-in.",
    )
    scope: str = Field(default=POWERBI_SCOPE, description="Token scope.")

    _app: Any = PrivateAttr(default=None)
    _token: str | None = PrivateAttr(default=None)

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle without msal's app and the token (caching and task runners may pickle)."""
        state = dict(super().__getstate__())
        state["__pydantic_private__"] = {"_app": None, "_token": None}
        return state

    # Token -------------------------------------------------------------------------------
    def _authority(self) -> tuple[str, requests.Session | None]:
        """(https authority for msal, session mapping it to plain HTTP when on loopback)."""
        base = self.authority_host.rstrip("/")
        parts = urlsplit(base)
        if parts.scheme == "https":
            return f"{base}/{self.tenant_id}", None
        if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
            https_base = urlunsplit(("https", parts.netloc, parts.path, "", ""))
            return f"{https_base}/{self.tenant_id}", _LoopbackHttpsSession(https_base, base)
        raise ValueError(
            f"authority_host {self.authority_host!r}: use https (plain http only on loopback)"
        )

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            authority, session = self._authority()
            local = session is not None
            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self.client_secret.get_secret_value(),
                authority=authority,
                http_client=session,
                validate_authority=not local,
                instance_discovery=False if local else None,
            )
        return self._app

    def get_token(self) -> str:
        """A bearer token for the Power BI API (msal serves it from its cache until expiry)."""
        with _TOKEN_LOCK:
            try:
                result = self._msal_app().acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as error:
                raise PowerBIUnavailable(
                    f"could not reach {self.authority_host} for a token: "
                    f"{type(error).__name__}: {redact(str(error), self.secret_values())}"
                ) from None
            except ValueError as error:  # msal refusing the authority or its answers
                raise PowerBIRejected(
                    "could not get a token from "
                    f"{self.authority_host}: {redact(str(error), self.secret_values())}"
                ) from None
            token = result.get("access_token") if isinstance(result, dict) else None
            if not token:
                reason = result.get("error", "no token") if isinstance(result, dict) else "?"
                description = (
                    result.get("error_description", "") if isinstance(result, dict) else ""
                )
                raise PowerBIRejected(
                    f"no token from {self.authority_host}: {reason}: "
                    f"{redact(str(description), self.secret_values())}"
                )
            self._token = token
            return str(token)

    def refresh_credentials(self) -> bool:
        """Forget msal's app and its cache, so that the next token is a new one."""
        with _TOKEN_LOCK:
            self._app = None
            self._token = None
        return True

    # Destination -------------------------------------------------------------------------
    def rows_url(self) -> str:
        return (
            f"{self.api_base_url.rstrip('/')}/v1.0/myorg/groups/{quote(self.workspace_id)}"
            f"/datasets/{quote(self.dataset_id)}/tables/{quote(self.table)}/rows"
        )

    def datasets_url(self) -> str:
        """Where a push dataset is created in this block's workspace."""
        return (
            f"{self.api_base_url.rstrip('/')}/v1.0/myorg/groups/{quote(self.workspace_id)}/datasets"
        )

    def request_body(self, batch: Batch) -> bytes:
        return b'{"rows":' + batch.body + b"}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.get_token()}"}

    def max_batch_bytes(self) -> int:
        return MAX_BYTES_PER_POST - REST_ENVELOPE_BYTES

    def describe(self) -> str:
        return self.rows_url()

    def secret_values(self) -> list[str]:
        values = [self.client_secret.get_secret_value()]
        if self._token:
            values.append(self._token)
        return values
