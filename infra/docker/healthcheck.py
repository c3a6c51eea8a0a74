#!/usr/bin/env python3
"""`ivi-healthcheck URL`: exit 0 when URL answers 2xx within 3 seconds, 1 otherwise.

The healthchecks of docker-compose.yml use it: the slim Python image has no curl, and the
standard library answers in milliseconds (nothing of the pipeline or Prefect is imported).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: ivi-healthcheck URL", file=sys.stderr)
        return 2
    url = argv[1]
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:  # a 4xx/5xx answer
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"{url}: HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
