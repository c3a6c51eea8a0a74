"""A one-certificate CA file for Prefect's clients when the API is plain HTTP.

Prefect builds a certificate-verifying TLS context for every API client it makes, loading the
whole CA bundle (about 150 certificates, 15-20 ms of CPU) each time, even when the API URL is
http:// and no certificate is ever checked. A flow run makes about fifteen clients (its
engine, its log and event workers, the suspension observer...): a quarter of a small run's
CPU. Where the API is http:// (the embedded stack, Compose and Kubernetes inside their
networks) `PREFECT_API_SSL_CERT_FILE` points at a file holding the bundle's first certificate
only (a TLS context needs one). An https:// API keeps the full bundle: no verification that
takes place is weakened.

    python -m deployments.api_tls PATH     # writes the file (the image does, at build)
"""

from __future__ import annotations

import sys
from pathlib import Path

import certifi

END = "-----END CERTIFICATE-----"


def write_plain_http_ca_file(path: Path) -> Path:
    """The first certificate of certifi's bundle, at `path` (left as it is when present)."""
    if not path.exists():
        bundle = Path(certifi.where()).read_text(encoding="ascii")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bundle[: bundle.index(END) + len(END)] + "\n", encoding="ascii")
    return path


def ca_file_setting(api_url: str, path: Path) -> dict[str, str]:
    """`PREFECT_API_SSL_CERT_FILE` for an http:// API; nothing for any other."""
    if not api_url.startswith("http://"):
        return {}
    return {"PREFECT_API_SSL_CERT_FILE": str(write_plain_http_ca_file(path))}


if __name__ == "__main__":
    write_plain_http_ca_file(Path(sys.argv[1]))
