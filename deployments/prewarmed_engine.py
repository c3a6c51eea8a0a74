"""A pre-warmed Prefect engine: flow runs start in milliseconds instead of seconds.

The process worker starts one process per flow run (`python -m prefect.engine`), and that
process spends several seconds importing Prefect, polars, pyarrow and Pandera before the
flow's first line: more than the whole upload-to-report budget. This server imports all of
that once, then forks a child per flow run. Each run still gets a process of its own (a crash
or a kill takes down that run only), but starts with its imports done.

    worker --(job command)--> prewarmed_start.py --(unix socket)--> this server --fork--> run

Nothing here changes what a run does: the child executes `prefect.engine` as `__main__`,
exactly what the worker would have started, with the environment and standard streams of the
launcher the worker started. When the server is not running the launcher runs the engine
itself, so the pipeline works (slower) without it.

A run's logs reach the Prefect API (its page in the UI) from a background thread that sends
them in batches, every 2 s; the interpreter's exit drains it, through the exit hooks of the
`threading` module. A forked child ends with `os._exit` (the parent's atexit handlers and
buffers are not the child's to run), which skips them: every log of a run shorter than one
batch interval was lost, and the tail of any other. The child therefore runs those hooks
itself before `os._exit`, with `threading._shutdown()`: what CPython's own forked children do
(`multiprocessing.process.BaseProcess._bootstrap`), and what `python -m prefect.engine` runs
at its exit. It is private to CPython (present in every version; the cost of relying on it),
and it waits, like the interpreter's exit, for the log and event workers to send what they
hold and for any non-daemon thread the run left behind.

Prefect computes its settings and logging configuration when imported, from the engine's
environment. The child gets the launcher's, which the stack gives the same values; when a
Prefect setting differs (a deployment's job variables can set one, e.g. the logging level),
the child recomputes both, so that the run logs where and how it was told to (about 90 ms).
Not compared: `PREFECT__*` (values of this run, which Prefect reads from the environment when
it needs them) and `PREFECT_SERVER_*` (the server's; the worker passes its own along).
"""

from __future__ import annotations

import array
import gc
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

MAX_MESSAGE = 1 << 20
_LENGTH = struct.Struct("!I")


# Imported lazily, on first use, by every run, and so once per forked child: found with py-spy
# on 40 small uploads, where these imports were 16% of the runs' CPU (anyio's asyncio backend
# alone 6%: nothing async ran in this process before the fork).
_LAZY_IMPORTS = (
    "_strptime",
    "anyio._backends._asyncio",
    "deltalake.fs",
    "numpy.ma",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "pyarrow.dataset",
    "rich._emoji_codes",
)


def _prewarm() -> None:
    """Import what every flow run needs, without starting threads or connections."""
    import prefect.engine  # noqa: F401
    import prefect.flow_engine  # noqa: F401

    import flows.backfill  # noqa: F401
    import flows.process_object  # noqa: F401
    import flows.process_objects  # noqa: F401
    import flows.version_lock
    import processing.engine  # noqa: F401  # Pandera: process_file imports it only when needed

    for module in _LAZY_IMPORTS:
        importlib.import_module(module)
    flows.version_lock.prewarm()
    _complete_pydantic_models()
    # What was imported stays as it is in every child: out of the collector's sight, it is
    # neither walked by each run's collections nor copied page by page into each child when
    # the walk touches it (copy-on-write).
    gc.collect()
    gc.freeze()


class _ResultsClient:
    """The results block's S3 client, made once here and inherited by every run
    (`blocks.objectstore.warm_results_client`). Made before the first fork, not at start:
    `ivi up` starts this server while it creates the blocks. Until it is made (no block yet,
    a server that does not answer) each run only pays for its own client, as before."""

    made = False
    failures = 0

    @classmethod
    def make(cls) -> None:
        from blocks.objectstore import warm_results_client

        if cls.made:
            return
        try:
            warm_results_client()
            cls.made = True
        except Exception as error:  # noqa: BLE001 - an optimisation: the runs work without it
            cls.failures += 1
            if cls.failures == 1:
                print(f"results client not made ahead yet ({type(error).__name__}: {error})",
                      file=sys.stderr, flush=True)


def _complete_pydantic_models() -> None:
    """Build now the validators pydantic defers to a model's first use (Prefect's API models
    with forward references: FlowRun, deployments, block documents, event filters...):
    built in every run otherwise, ~5% of a small run's CPU."""
    from pydantic import BaseModel

    pending = [BaseModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model is not BaseModel and not model.__pydantic_complete__:
            try:
                model.model_rebuild()
            except Exception:  # noqa: BLE001 - a model that cannot be completed yet stays lazy
                pass


def _receive_request(connection: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    data, ancillary, _flags, _address = connection.recvmsg(
        MAX_MESSAGE, socket.CMSG_LEN(3 * fds.itemsize)
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if len(data) < _LENGTH.size:
        raise ConnectionError("not a launcher (a readiness probe)")
    (length,) = _LENGTH.unpack_from(data)
    body = data[_LENGTH.size :]
    while len(body) < length:
        more = connection.recv(length - len(body))
        if not more:
            raise ConnectionError("launcher went away")
        body += more
    return json.loads(body), list(fds)


def _run_engine_in_child(request: dict[str, object], fds: list[int], listener: socket.socket) -> None:
    """In the forked child: become the launcher's flow-run process and run the engine."""
    listener.close()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    import warnings

    # prefect.engine was imported to pre-warm; running it again as __main__ is the point
    warnings.filterwarnings("ignore", message=".*found in sys.modules.*", category=RuntimeWarning)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(str(request["cwd"]))
    launcher_env = {str(k): str(v) for k, v in dict(request["env"]).items()}  # type: ignore[arg-type]
    settings_differ = _prefect_settings_differ(dict(os.environ), launcher_env)
    os.environ.clear()
    os.environ.update(launcher_env)
    if settings_differ:
        _reload_prefect_settings()
    sys.argv = ["prefect.engine", *[str(a) for a in list(request["args"])]]  # type: ignore[arg-type]
    code = 0
    try:
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - the run's own logging has reported it
        code = 1
    finally:
        _run_exit_hooks()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _prefect_settings_differ(engine_env: dict[str, str], launcher_env: dict[str, str]) -> bool:
    """Do the two environments give a flow run other Prefect settings? (`false` is `False`)"""
    def relevant(env: dict[str, str]) -> dict[str, str]:
        return {
            k: v.lower() for k, v in env.items()
            if k.startswith("PREFECT_") and not k.startswith(("PREFECT__", "PREFECT_SERVER_"))
        }

    return relevant(engine_env) != relevant(launcher_env)


def _reload_prefect_settings() -> None:
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging()


def _run_exit_hooks() -> None:
    """What the interpreter runs at exit before atexit: Prefect's workers drain there."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # noqa: SLF001 - see the docstring
    except BaseException as error:  # noqa: BLE001 - the run is over; its exit code stands
        print(f"draining the run's log and event workers failed: {error!r}", file=sys.stderr)


def _serve_one(connection: socket.socket, listener: socket.socket) -> None:
    """Fork a run for one launcher; a thread reports its exit code back and closes up."""
    try:
        request, fds = _receive_request(connection)
    except BaseException:
        connection.close()
        raise
    _ResultsClient.make()
    pid = os.fork()
    if pid == 0:
        connection.close()
        _run_engine_in_child(request, fds, listener)
    for fd in fds:
        os.close(fd)

    def report_exit() -> None:
        with connection:
            try:
                connection.sendall(_LENGTH.pack(pid))
            except OSError:
                pass
            _pid, status = os.waitpid(pid, 0)
            try:
                connection.sendall(_LENGTH.pack(os.waitstatus_to_exitcode(status) & 0xFFFFFFFF))
            except OSError:
                pass  # the launcher was killed; the worker already knows

    threading.Thread(target=report_exit, name=f"run-{pid}", daemon=True).start()


def serve(socket_path: Path) -> None:
    _prewarm()
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    print(f"pre-warmed engine ready on {socket_path}", flush=True)
    while True:
        connection, _ = listener.accept()
        try:
            _serve_one(connection, listener)
        except ConnectionError:
            continue  # a readiness probe, or a launcher killed before it asked
        except Exception as error:  # noqa: BLE001 - one bad request must not stop the server
            print(f"launcher request failed: {error!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
