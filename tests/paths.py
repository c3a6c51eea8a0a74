"""Where the repository's files are, for tests that read them (prefect.yaml, the Compose file,
the manifests): the tests' own location, whatever directory pytest runs in."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
