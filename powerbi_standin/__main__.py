"""`python -m powerbi_standin --port 8765 --db PATH`: serve the stand-in on 127.0.0.1.

The admin API (`/_standin/...`, the page) takes its token from `--admin-token-file` or the
environment variable POWERBI_STANDIN_ADMIN_TOKEN; without one the stand-in refuses to listen
on anything but a loopback address.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from powerbi_standin.adminauth import ADMIN_TOKEN_ENV, AdminTokenRequired, require_token_off_loopback
from powerbi_standin.app import create_app

GRACEFUL_SHUTDOWN_SECONDS = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m powerbi_standin",
        description="Local stand-in for the Power BI push dataset API (for tests and demos).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, required=True, help="SQLite file for datasets and rows")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET",
        help="a client the token endpoint accepts (repeatable; default: any client)",
    )
    parser.add_argument(
        "--static-token-file",
        type=Path,
        help="file holding a bearer token always accepted (a file, to keep it out of `ps`)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help=f"file holding the admin API's token (default: ${ADMIN_TOKEN_ENV}); required "
        "unless --host is a loopback address",
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def admin_token(args: argparse.Namespace) -> str | None:
    """The admin token: the file's content, else the environment's; None when neither is set."""
    if args.admin_token_file is not None:
        return args.admin_token_file.read_text(encoding="utf-8").strip() or None
    return os.environ.get(ADMIN_TOKEN_ENV, "").strip() or None


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    token = admin_token(args)
    try:
        require_token_off_loopback(args.host, token)
    except AdminTokenRequired as error:
        sys.exit(f"powerbi_standin: {error}")
    clients: dict[str, str] | None = None
    if args.client:
        clients = dict(entry.split(":", 1) for entry in args.client)
    static_token = None
    if args.static_token_file is not None:
        static_token = args.static_token_file.read_text(encoding="utf-8").strip() or None
    app = create_app(args.db, clients=clients, static_token=static_token, admin_token=token)
    # A `delay` fault holds a request for up to 10 minutes; stopping must not wait for it.
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
