"""Start, find and stop the stack's background processes by pid file.

Each service runs in its own session (its own process group), so that stopping it reaches the
processes it started itself (Prefect's server and worker start children) and nothing else.
A pid file holds the pid and the process' start time: a pid reused by an unrelated process
after a reboot is never mistaken for ours.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


log = logging.getLogger("ivi.stack")


class StackError(RuntimeError):
    """A service could not be started; the message says why, in one line for a human."""


@dataclass(frozen=True)
class ServiceFiles:
    """Where one service keeps its pid and its log."""

    name: str
    pid_file: Path
    log_file: Path

    @classmethod
    def under(cls, data_dir: Path, name: str) -> ServiceFiles:
        return cls(name, data_dir / "pids" / f"{name}.pid", data_dir / "logs" / f"{name}.log")


def spawn(
    files: ServiceFiles,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    user: tuple[int, int] | None = None,
) -> psutil.Process:
    """Start `argv` in a new session, output appended to the service's log, pid recorded.

    `user` is a (uid, gid) to run as, for a server that refuses root (PostgreSQL).
    """
    files.pid_file.parent.mkdir(parents=True, exist_ok=True)
    files.log_file.parent.mkdir(parents=True, exist_ok=True)
    with files.log_file.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {files.name}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **run_as(user),
        )
    process = psutil.Process(popen.pid)
    files.pid_file.write_text(f"{popen.pid}\n{process.create_time()}\n")
    return process


def run_as(user: tuple[int, int] | None) -> dict[str, Any]:
    """`subprocess.Popen` arguments that start a child as (uid, gid), with no other group."""
    return {} if user is None else {"user": user[0], "group": user[1], "extra_groups": []}


def running(files: ServiceFiles) -> psutil.Process | None:
    """The service's process if its pid file names a live process we started, else None."""
    try:
        pid_text, started_text = files.pid_file.read_text().split()[:2]
        process = psutil.Process(int(pid_text))
        if abs(process.create_time() - float(started_text)) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(process.pid)
            return None
        return process
    except (OSError, ValueError, psutil.Error):
        return None


def stop(
    services: Sequence[ServiceFiles],
    timeout: float = 10.0,
    *,
    leader_signals: Mapping[str, signal.Signals] | None = None,
) -> list[str]:
    """SIGTERM each service's process group, SIGKILL what is left after `timeout`.

    A service named in `leader_signals` gets that signal, sent to its leader alone, instead
    (PostgreSQL shuts down fast on SIGINT to its postmaster and must not have its children
    signalled); its group is still killed if anything is left after `timeout`.

    All are signalled first and awaited together, so stopping takes as long as the slowest
    service, not their sum. A group whose leader already died is still stopped (Linux never
    reuses a pid that is some group's id). Pid files are removed. Returns the names of the
    services that had something running.
    """
    groups: dict[str, tuple[int, list[psutil.Process]]] = {}
    for service in services:
        pgid = _our_group_id(service)
        service.pid_file.unlink(missing_ok=True)
        if pgid is not None and (members := _group_members(pgid)):
            groups[service.name] = (pgid, members)
    for name, (pgid, members) in groups.items():
        if leader_signals and name in leader_signals:
            _signal_leader(pgid, leader_signals[name])
        else:
            _signal_all(pgid, members, signal.SIGTERM)
    everything = [process for _, members in groups.values() for process in members]
    _, alive = psutil.wait_procs(everything, timeout=timeout)
    if alive:
        for name, (pgid, members) in groups.items():
            stubborn = [p for p in members if p in alive]
            if stubborn:
                log.warning("%s did not stop within %.0f s of SIGTERM: killed", name, timeout)
                _signal_all(pgid, stubborn, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    for process in everything:
        _reap(process.pid)
    return [service.name for service in services if service.name in groups]


def _our_group_id(files: ServiceFiles) -> int | None:
    """The process group id of the service, unless its pid now names another process."""
    try:
        pid_text, started_text = files.pid_file.read_text().split()[:2]
        pid = int(pid_text)
        started = float(started_text)
    except (OSError, ValueError):
        return None
    try:
        if abs(psutil.Process(pid).create_time() - started) > 1.0:
            return None  # the pid was reused by an unrelated process
    except psutil.NoSuchProcess:
        pass  # leader gone: its group may live on
    except psutil.Error:
        return None
    return pid


def _group_members(pgid: int) -> list[psutil.Process]:
    """Every live process of the group, and the leader's descendants that left it."""
    members: dict[int, psutil.Process] = {}
    for candidate in psutil.process_iter():
        try:
            if os.getpgid(candidate.pid) == pgid:
                members[candidate.pid] = candidate
        except (OSError, psutil.Error):
            continue
    if pgid in members:
        try:
            for child in members[pgid].children(recursive=True):
                members[child.pid] = child
        except psutil.Error:
            pass
    return list(members.values())


def _signal_all(pgid: int, processes: Sequence[psutil.Process], sig: signal.Signals) -> None:
    """Signal the group once, and separately only the members that left it.

    Never twice: Prefect's CLI escalates a second SIGTERM to SIGKILL of its child, and
    `weed mini` can hang in its shutdown when signalled again during it.
    """
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
    for process in processes:
        try:
            if os.getpgid(process.pid) != pgid:
                process.send_signal(sig)
        except (OSError, psutil.Error):
            pass


def _signal_leader(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # the leader is gone: what is left of its group is killed after the timeout


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process (tests start services as children)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (checked by binding it, as the server would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_ports(service: str, host: str, ports: Mapping[str, int]) -> None:
    """Fail with one clear line naming every busy port, before a server silently moves."""
    busy = [f"{label}={port}" for label, port in ports.items() if not port_is_free(host, port)]
    if busy:
        raise StackError(
            f"cannot start {service}: port(s) already in use on {host}: {', '.join(busy)} "
            "(stop what uses them or change the IVI_* port settings)"
        )


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    files: ServiceFiles,
    process: psutil.Process | None,
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Poll `ready` until it holds; fail early, pointing at the log, if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # a probe that raises just means "not yet"
            pass
        if process is not None and not _alive(process):
            raise StackError(f"{what} exited during start-up; see {files.log_file}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} not ready after {timeout:.0f} s; see {files.log_file}")
        time.sleep(interval)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
