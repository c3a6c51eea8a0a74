"""`ivi contract draft FILE --name NAME [--out PATH] [--sample-rows N]`: a first contract
inferred from a file (processing/draft.py), to read, adjust and try with `ivi validate`.

Exit codes as for `ivi process`: 0 written, 1 the file cannot be drafted from (empty, header
only, not text; one line on stderr), 2 usage error. Never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ivi.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, failure_line


def _fail(code: int, message: str) -> int:
    print(f"ivi contract draft: {' '.join(message.split())}", file=sys.stderr)
    return code


def add_contract_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    contract = commands.add_parser("contract", help="write contracts")
    actions = contract.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    draft = actions.add_parser(
        "draft", help="infer a contract from a CSV file (read it, adjust it, then ivi validate)"
    )
    draft.add_argument("file", help="CSV file (optionally gzipped)")
    draft.add_argument("--name", required=True, help="the dataset's name, e.g. produtos")
    draft.add_argument("--out", help="where to write the TOML (default: stdout)")
    draft.add_argument(
        "--sample-rows", type=int, default=None, metavar="N", help="infer from the first N rows only"
    )


def run_contract_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        return _fail(EXIT_USAGE, f"no such file: {path}")
    if args.sample_rows is not None and args.sample_rows < 1:
        return _fail(EXIT_USAGE, "--sample-rows must be at least 1")
    try:
        from processing.draft import draft_contract
        from processing.errors import FileRejected
    except Exception as error:  # a broken install is not the data's fault
        return _fail(EXIT_REJECTED, f"cannot load the processing engine: {error}")
    try:
        draft = draft_contract(path, args.name, sample_rows=args.sample_rows)
    except ValueError as error:
        return _fail(EXIT_USAGE, str(error))
    except FileRejected as error:
        return _fail(EXIT_REJECTED, f"{path}: {error}")
    except Exception as error:  # noqa: BLE001 - the promise is: no traceback, for any input
        return _fail(EXIT_REJECTED, failure_line(path, error))
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(draft.toml, encoding="utf-8")
        except OSError as error:
            return _fail(EXIT_REJECTED, f"cannot write {out}: {error.strerror or error}")
        where = str(out)
    else:
        sys.stdout.write(draft.toml)
        where = "stdout"
    sample = " (sampled)" if draft.sampled else ""
    print(
        f"ivi contract draft: {draft.columns} columns from {draft.rows} rows{sample} -> {where}",
        file=sys.stderr,
    )
    for note in draft.notes:
        print(f"  note: {note}", file=sys.stderr)
    return EXIT_OK
