"""The local Power BI stand-in as a service of the embedded stack (`ivi up` starts it).

It is a stand-in, not Power BI: it listens on 127.0.0.1 only, and `ivi status` shows its
address as `powerbi_standin_url` so that nobody takes it for the service's API.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from ivi.settings import Settings

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


def is_ready(settings: Settings) -> bool:
    """Its admin API answers (the page at `/` would too, but renders every dataset)."""
    response = httpx.get(f"{settings.powerbi_standin_url}/_standin/datasets", timeout=2)
    return response.status_code == 200
