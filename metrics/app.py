"""The metrics exporter's web app: `GET /metrics` (bearer token IVI_METRICS_TOKEN) and
`GET /healthz`, served by uvicorn (`ivi up`, Compose and Kubernetes start it the same way).

/metrics says how many files of which contract went through and how fast, which is data
about the uploads: it answers 401 without the token, and always when no token is set.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from metrics.exporter import Exporter
from metrics.settings import MetricsSettings

log = logging.getLogger("ivi.metrics")


def create_app(settings: MetricsSettings | None = None, exporter: Exporter | None = None) -> FastAPI:
    """The exporter for these settings (tests build one with their own)."""
    settings = settings or MetricsSettings()
    token = settings.metrics_token.get_secret_value().encode()
    if not token:
        log.warning("IVI_METRICS_TOKEN is empty: every GET /metrics will be refused (401)")
    figures = exporter or Exporter()
    bearer = HTTPBearer(auto_error=False)
    app = FastAPI(title="ivi metrics", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    def metrics(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
        """The figures, brought up to date from the reports (a sync route: it runs in the
        thread pool, so a long first scan blocks no other request)."""
        given = credentials.credentials.encode() if credentials else b""
        if not token or not hmac.compare_digest(given, token):
            return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(figures.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
