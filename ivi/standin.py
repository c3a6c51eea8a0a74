"""The local Power BI stand-in as a service of the embedded stack (`ivi up` starts it).

It is a stand-in, not Power BI: it listens on 127.0.0.1 only, and `ivi status` shows its
address as `powerbi_standin_url` so that nobody takes it for the service's API. Its admin API
takes `IVI_POWERBI_STANDIN_ADMIN_TOKEN`, handed over in the stand-in's own variable
(`POWERBI_STANDIN_ADMIN_TOKEN`: it reads nothing of the pipeline's settings).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from ivi.settings import Settings
from powerbi_standin.adminauth import ADMIN_TOKEN_ENV

SERVICE = "powerbi-standin"
LISTEN_IP = "127.0.0.1"


def db_path(settings: Settings) -> Path:
    """Its SQLite file (datasets and rows survive a restart, as a demo's should)."""
    return settings.data_dir / "powerbi" / "standin.sqlite"


def command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "powerbi_standin",
        "--host", LISTEN_IP, "--port", str(settings.powerbi_port),
        "--db", str(db_path(settings)),
    ]


def env(settings: Settings) -> dict[str, str]:
    """The stand-in's environment: ours, with its admin token set from the settings only."""
    child = {name: value for name, value in os.environ.items() if name != ADMIN_TOKEN_ENV}
    token = settings.powerbi_standin_admin_token.get_secret_value()
    if token:
        child[ADMIN_TOKEN_ENV] = token
    return child


def is_ready(settings: Settings) -> bool:
    """Its admin API answers with our token (so a stand-in holding another token is not ours)."""
    response = httpx.get(
        f"{settings.powerbi_standin_url}/_standin/datasets",
        headers=settings.powerbi_standin_admin_headers, timeout=2,
    )
    return response.status_code == 200
