"""`ivi lake show CONTRACT [--json] [--commits N]`: what a contract's Delta table holds.

Its version, row count, columns and latest commits (each with the raw object it came from),
read from the store the settings point at. Exit 0 shown; 1 no table yet (an unknown contract
has none), or the store cannot be read (one line on stderr); 2 usage error (not a contract
name). Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ivi.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE

if TYPE_CHECKING:  # the parser is built for every `ivi` command: settings load only here
    from ivi.settings import Settings


def add_lake_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lake = commands.add_parser("lake", help="read the Delta Lake tables (one per contract)")
    actions = lake.add_subparsers(dest="lake_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="a contract's table: version, rows, columns, latest commits")
    show.add_argument("contract", help="contract name, e.g. vendas")
    show.add_argument("--commits", type=int, default=5, metavar="N", help="how many latest commits (default 5)")
    show.add_argument("--json", action="store_true", help="machine-readable output")


def _fail(code: int, message: str) -> int:
    print(f"ivi lake show: {' '.join(message.split())}", file=sys.stderr)
    return code


def run_lake_command(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from ivi.settings import load_settings
    from lake.storage import s3_storage_options, table_uri
    from lake.table import COMMIT_ETAG, COMMIT_KEY, describe, error_text
    from processing.contract import CONTRACT_NAME

    if args.commits < 1:
        return _fail(EXIT_USAGE, "--commits must be at least 1")
    if not CONTRACT_NAME.fullmatch(args.contract):  # published contracts have tables too: no file check
        return _fail(EXIT_USAGE, f"{args.contract!r} is not a contract name (a-z, 0-9 and _)")
    settings = settings or load_settings()
    uri = table_uri(settings.lake_bucket, args.contract)
    options = s3_storage_options(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(), settings.s3_region
    )
    try:
        table = describe(uri, options, commits=args.commits)
    except Exception as error:  # noqa: BLE001 - a store away, a broken log: one line, no traceback
        return _fail(EXIT_REJECTED, f"cannot read {uri}: {error_text(error)}")
    if table is None:
        return _fail(EXIT_REJECTED, f"no Delta table at {uri} yet: no `{args.contract}` file has been processed")
    commits = [
        {
            "version": commit.get("version"),
            "time": datetime.fromtimestamp(commit.get("timestamp", 0) / 1000, UTC).isoformat(timespec="seconds"),
            "operation": commit.get("operation"),
            "source_key": commit.get(COMMIT_KEY),
            "source_etag": commit.get(COMMIT_ETAG),
            "rows_added": (commit.get("operationMetrics") or {}).get("num_added_rows"),
        }
        for commit in table.commits
    ]
    if args.json:
        print(json.dumps({"table": table.uri, "version": table.version, "rows": table.rows,
                          "columns": dict(table.columns), "commits": commits}, indent=2))
        return EXIT_OK
    print(_text(table.uri, table.version, table.rows, table.columns, commits))
    return EXIT_OK


def _text(uri: str, version: int, rows: int, columns: list[tuple[str, str]], commits: list[dict[str, Any]]) -> str:
    width = max(len(name) for name, _ in columns)
    lines = [f"table    {uri}", f"version  {version}", f"rows     {rows:,}", "", "columns"]
    lines += [f"  {name:<{width}}  {kind}" for name, kind in columns]
    lines += ["", "latest commits"]
    for commit in commits:
        source = f"  {commit['source_key']} @ {commit['source_etag']}" if commit["source_key"] else ""
        added = f"  +{commit['rows_added']} rows" if commit["rows_added"] is not None else ""
        lines.append(f"  v{commit['version']}  {commit['time']}  {commit['operation']}{added}{source}")
    return "\n".join(lines)
