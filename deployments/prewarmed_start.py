"""The job command of the local process work pool: start a flow run on the pre-warmed engine.

Standard library only, so that it starts in milliseconds. It hands its environment, working
directory and standard streams to the pre-warmed engine (prewarmed_engine.py), which forks the
run; it forwards SIGTERM / SIGINT to that run and exits with its exit code, so the worker sees
this process exactly as it would see `python -m prefect.engine`. Without the engine's socket
it becomes `python -m prefect.engine` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

_LENGTH = struct.Struct("!I")
SOCKET_ENV = "IVI_PREWARMED_ENGINE_SOCKET"


def _run_engine_here() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def _read_int(connection: socket.socket) -> int | None:
    data = b""
    while len(data) < _LENGTH.size:
        more = connection.recv(_LENGTH.size - len(data))
        if not more:
            return None
        data += more
    return int(_LENGTH.unpack(data)[0])


def main() -> int:
    path = os.environ.get(SOCKET_ENV, "")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        _run_engine_here()
    body = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "args": sys.argv[1:]}).encode()
    connection.sendmsg(
        [_LENGTH.pack(len(body)) + body],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("3i", 0, 1, 2))],
    )
    pid = _read_int(connection)
    if pid is None:
        return 1

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = _read_int(connection)
    if code is None:
        return 1
    return code - (1 << 32) if code >= 1 << 31 else code


if __name__ == "__main__":
    sys.exit(main())
