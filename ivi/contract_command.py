"""`ivi contract draft` and `ivi contract publish`: a dataset's contract from a sample to the
workers.

- `draft FILE --name NAME [--out PATH] [--sample-rows N]`: a first contract inferred from a
  file (processing/draft.py), to read, adjust and try with `ivi validate`;
- `publish PATH`: the contract checked by the engine's own parser, its Power BI block and
  rate limit made (the setup step's code), then the file uploaded to the store prefix that
  every worker reads contracts from (block `ivi-pipeline`): live for the next upload, with no
  new image and no restart.

Exit codes as for `ivi process`: 0 done, 1 refused (a file that cannot be drafted from, a
contract the parser refuses, a service that cannot be reached; one line on stderr), 2 usage
error. Never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ivi.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, failure_line

if TYPE_CHECKING:
    from ivi.settings import Settings


def _fail(code: int, message: str, action: str = "draft") -> int:
    print(f"ivi contract {action}: {' '.join(message.split())}", file=sys.stderr)
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
    publish = actions.add_parser(
        "publish",
        help="check a contract and publish it to the object store, where every worker reads it "
        "(also creates its Power BI block and rate limit)",
    )
    publish.add_argument("path", help="the contract's .toml file")


def run_contract_command(args: argparse.Namespace) -> int:
    if args.contract_command == "publish":
        from ivi.settings import load_settings

        return run_publish(Path(args.path), load_settings())
    return run_draft(args)


def run_draft(args: argparse.Namespace) -> int:
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


class PublishRefused(Exception):
    """Why a contract was not published, in one line."""


def publish_contract(path: Path, settings: Settings) -> list[str]:
    """Check the contract at `path`, make its Power BI block and rate limit, upload it; what
    was done, a line each. The upload comes last: once a worker can see the contract, its
    destination exists.
    """
    import requests
    from minio.error import S3Error
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks.pipeline import load_buckets
    from blocks.powerbi_setup import register_powerbi_block
    from deployments.apply import ensure_powerbi_rate_limit
    from objectstore import store
    from objectstore.contracts import put_published_contract
    from processing.contract import CONTRACT_NAME, ContractError, parse_contract_text

    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PublishRefused(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        contract = parse_contract_text(text, path.name, default_name=path.stem)
    except ContractError as error:
        raise PublishRefused(str(error)) from None
    if not CONTRACT_NAME.fullmatch(contract.name):
        raise PublishRefused(
            f"{path.name}: the contract's name {contract.name!r} is not a folder name of the raw "
            "bucket (lower-case letters, digits and _)"
        )
    done: list[str] = []
    with temporary_settings({PREFECT_API_URL: settings.prefect_api_url}):
        try:
            buckets = load_buckets()
        except ValueError as error:
            raise PublishRefused(f"no block `ivi-pipeline` on {settings.prefect_api_url}: {error} "
                                 "(run the setup step, or `ivi up`, first)") from None
        if not buckets.contracts_prefix:
            raise PublishRefused("block `ivi-pipeline` has no contracts_prefix: the workers read "
                                 "no contracts from the store")
        if contract.powerbi_table:
            try:
                block, where = register_powerbi_block(contract, settings)
            except (RuntimeError, OSError, requests.RequestException) as error:
                raise PublishRefused(
                    f"no Power BI destination for `{contract.name}` ({error}): set "
                    f"IVI_POWERBI_{contract.name.upper()}_PUSH_URL or _DATASET_ID, or run the "
                    "stand-in (docs/contracts.md, step 6); nothing was published"
                ) from None
            done.append(f"saved block {block} ({where})")
            with get_client(sync_client=True) as client:
                limit, what = ensure_powerbi_rate_limit(client, contract.name)
            done.append(f"rate limit {limit}: {what}")
        else:
            done.append("no [powerbi] table: its rows are stored, not pushed to Power BI")
    client = store.minio_client(
        settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
        settings.s3_region,
    )
    try:
        published = put_published_contract(
            client, buckets.processed_bucket, buckets.contracts_prefix, contract.name, data
        )
    except S3Error as error:
        raise PublishRefused(f"the object store refused: {error.code} ({error.message})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    done.append(
        f"published contract {contract.name} ({len(contract.columns)} columns, sha256 {sha256[:12]}) "
        f"to {published.uri}: uploads under {settings.raw_bucket}/{contract.name}/ use it from "
        "their next run"
    )
    return done


def run_publish(path: Path, settings: Settings) -> int:
    """The CLI's side: what was done (exit 0) or why not, in one line (exit 1 or 2)."""
    if not path.is_file():
        return _fail(EXIT_USAGE, f"no such file: {path}", "publish")
    try:
        for line in publish_contract(path, settings):
            print(line)
    except PublishRefused as error:
        return _fail(EXIT_REJECTED, str(error), "publish")
    except Exception as error:  # noqa: BLE001 - services unreachable, refused: one line, no traceback
        return _fail(EXIT_REJECTED, f"{path}: {type(error).__name__}: {error}", "publish")
    return EXIT_OK
