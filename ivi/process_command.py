"""`ivi process` and `ivi validate`: the processing core from the command line.

Exit codes are part of the interface: 0 processed (quarantined rows included), 1 the file is
rejected as a whole (one line on stderr), 2 usage error. Never a traceback, for any input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ivi.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, failure_line


def _fail(code: int, message: str) -> int:
    print(f"ivi: {' '.join(message.split())}", file=sys.stderr)
    return code


def _contract_name(args: argparse.Namespace, path: Path) -> str | None:
    if args.contract:
        return str(args.contract)
    from processing.contract import available_contracts, normalise_name

    known = available_contracts()
    for candidate in (path.parent.name, path.name.split(".")[0].split("_")[0]):
        if normalise_name(candidate) in known:
            return normalise_name(candidate)
    return None


def run_process_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        return _fail(EXIT_USAGE, f"no such file: {path}")
    try:
        from processing.contract import available_contracts, load_contract
        from processing.errors import ContractError, FileRejected
        from processing.run import process_file
    except Exception as error:  # a broken install is not the data's fault
        return _fail(EXIT_REJECTED, f"cannot load the processing engine: {error}")
    name = _contract_name(args, path)
    if name is None:
        known = ", ".join(available_contracts())
        return _fail(EXIT_USAGE, f"cannot tell which contract applies to {path}; pass --contract ({known})")
    try:
        contract = load_contract(name)
    except ContractError as error:
        return _fail(EXIT_USAGE, str(error))
    out_dir = Path(args.out) if args.command == "process" else None
    try:
        report = process_file(path, contract, out_dir)
    except FileRejected as error:
        return _fail(EXIT_REJECTED, f"{path} rejected: {error}")
    except Exception as error:  # noqa: BLE001 - the promise is: no traceback, for any input
        return _fail(EXIT_REJECTED, failure_line(path, error))
    if args.command == "validate":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK if report.quarantined_rows == 0 else EXIT_REJECTED
    print(report.summary())
    return EXIT_OK
