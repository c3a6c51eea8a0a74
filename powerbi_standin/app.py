"""The stand-in as one FastAPI app: the service's routes, the test routes, and its state.

See `service.py` for the routes Power BI has, `admin.py` for the `/_standin` routes and the
page, and `httpio.py` for how a test's "close the connection" fault is served.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from powerbi_standin.admin import add_admin_routes
from powerbi_standin.adminauth import AdminGuard
from powerbi_standin.faults import FaultQueue
from powerbi_standin.httpio import ConnectionDropper
from powerbi_standin.limits import AdjustableClock, Clock, Limits
from powerbi_standin.service import add_service_routes
from powerbi_standin.state import StandIn
from powerbi_standin.store import Store
from powerbi_standin.tokens import TokenIssuer


def create_app(
    db_path: Path | str,
    *,
    limits: Limits | None = None,
    clients: dict[str, str] | None = None,
    static_token: str | None = None,
    admin_token: str | None = None,
    clock: Clock = time.monotonic,
) -> FastAPI:
    """The stand-in, storing rows in the SQLite file `db_path`.

    `clients` maps client ids to secrets the token endpoint accepts (None: any client, for the
    demo); `static_token` is a bearer token always accepted (for scripts without msal);
    `admin_token`, when set, is required by the `/_standin` routes and the page (see
    `adminauth.py`).
    """
    adjustable = AdjustableClock(clock)  # `POST /_standin/clock` moves it forward
    state = StandIn(
        store=Store(Path(db_path)),
        limits=limits or Limits(),
        issuer=TokenIssuer(clients, static_token),
        clock=adjustable,
        faults=FaultQueue(adjustable),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Power BI stand-in",
        docs_url="/_standin/docs",
        redoc_url=None,
        openapi_url="/_standin/openapi.json",
    )
    app.state.standin = state
    app.add_middleware(ConnectionDropper)
    if admin_token:
        app.add_middleware(AdminGuard, token=admin_token)  # outermost: checked first

    add_service_routes(app, state)
    add_admin_routes(app, state)
    return app
