"""Entra ID client-credentials tokens, as far as a client of Power BI can tell.

`POST /{tenant}/oauth2/v2.0/token` answers like the Microsoft identity platform, and
`/{tenant}/v2.0/.well-known/openid-configuration` tells msal where that endpoint is. msal
accepts only https authorities, so the configuration names https endpoints on the stand-in's
host and port; the client maps them back to plain HTTP for loopback hosts only (see
`blocks/powerbi.py`). Tokens live in memory: after a restart every token is unknown and the
REST route answers 401, which is exactly the "token expired, refresh once" path.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

POWERBI_SCOPE = "https://analysis.windows.net/powerbi/api/.default"
TOKEN_SECONDS = 3599


@dataclass(frozen=True)
class Issued:
    client_id: str
    tenant: str
    expires_at: float


class TokenError(Exception):
    """An OAuth error answer: `{"error", "error_description"}` with its status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class TokenIssuer:
    """Issues bearer tokens to known clients (or, with no clients configured, to anyone).

    The open mode is for the local demo, where the client secret is whatever `ivi` generated;
    tests configure clients to check that a wrong secret gets no token.
    """

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        static_token: str | None = None,
        seconds: int = TOKEN_SECONDS,
    ) -> None:
        self._clients = dict(clients) if clients is not None else None
        self._static_token = static_token
        self._seconds = seconds
        self._issued: dict[str, Issued] = {}

    def issue(self, tenant: str, form: Mapping[str, str]) -> dict[str, object]:
        if form.get("grant_type") != "client_credentials":
            raise TokenError("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            raise TokenError("invalid_client", "client_id and client_secret are required", 401)
        if self._clients is not None and not secrets.compare_digest(
            self._clients.get(client_id, "\0"), secret
        ):
            raise TokenError("invalid_client", "AADSTS7000215: Invalid client secret.", 401)
        scope = form.get("scope", "")
        if POWERBI_SCOPE not in scope.split():
            raise TokenError("invalid_scope", f"the scope must include {POWERBI_SCOPE}")
        token = secrets.token_urlsafe(32)
        self._issued[token] = Issued(client_id, tenant, time.time() + self._seconds)
        return {
            "token_type": "Bearer",
            "expires_in": self._seconds,
            "ext_expires_in": self._seconds,
            "access_token": token,
        }

    def valid(self, token: str) -> bool:
        if self._static_token is not None and secrets.compare_digest(token, self._static_token):
            return True
        issued = self._issued.get(token)
        return issued is not None and issued.expires_at > time.time()

    def revoke_all(self) -> int:
        """Forget every issued token (tests use it to force the client's refresh on 401)."""
        count = len(self._issued)
        self._issued.clear()
        return count


def openid_configuration(base_https: str, tenant: str) -> dict[str, object]:
    """The OIDC discovery document msal reads before asking for a token."""
    root = f"{base_https}/{tenant}"
    return {
        "issuer": f"{root}/v2.0",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "response_types_supported": ["code", "token"],
        "scopes_supported": ["openid"],
        "tenant_region_scope": "EU",
    }
