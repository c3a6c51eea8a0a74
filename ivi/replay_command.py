"""`ivi replay KEY [--dry-run] [--contract C]`: the CLI's side of a replay.

What a replay is and does lives in `flows/replay.py` (the console calls it too); this module
turns the arguments into a call and the outcome into a line and an exit code.
"""

from __future__ import annotations

import argparse
import sys

from minio.error import S3Error
from urllib3.exceptions import HTTPError

from flows.replay import ReplayRefused, replay
from ivi.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from ivi.settings import load_settings
from processing.contract import contract_for_key, is_contract_path, load_contract
from processing.errors import ContractError


def run_replay_command(args: argparse.Namespace) -> int:
    """The CLI's side: print what was uploaded (exit 0) or why nothing was (exit 1)."""
    settings = load_settings()
    key = _raw_key(str(args.key), settings.raw_bucket)
    check = None
    if getattr(args, "contract", None):
        name_or_path = str(args.contract)
        if not is_contract_path(name_or_path) and name_or_path != contract_for_key(key):
            print(
                f"ivi replay: {key} is processed with contract `{contract_for_key(key)}`, not "
                f"`{name_or_path}` (its folder decides); pass a .toml path to check the rows "
                "against another contract first",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            check = load_contract(name_or_path)
        except ContractError as error:
            print(f"ivi replay: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        result = replay(key, settings, dry_run=args.dry_run, check=check)
    except ReplayRefused as error:
        print(f"ivi replay: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except S3Error as error:
        print(f"ivi replay: the object store refused: {error.code} ({error.message})", file=sys.stderr)
        return EXIT_REJECTED
    except (HTTPError, OSError) as error:  # connection refused, DNS, disk
        print(f"ivi replay: cannot reach the object store at {settings.s3_endpoint}: {error}",
              file=sys.stderr)
        return EXIT_REJECTED
    print(result.describe(settings.raw_bucket))
    return EXIT_OK


def _raw_key(given: str, raw_bucket: str) -> str:
    """`vendas/nov.csv`, or `s3://raw/vendas/nov.csv` as the reports and `ivi` print keys."""
    prefix = f"s3://{raw_bucket}/"
    return given[len(prefix):] if given.startswith(prefix) else given.lstrip("/")
