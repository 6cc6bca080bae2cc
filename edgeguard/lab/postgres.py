"""Run a real PostgreSQL (Debian's, /usr/lib/postgresql/*/bin) on loopback for tests.

The cluster lives in a directory of its own: data, unix socket and server log. It listens on
``127.0.0.1`` at a port chosen at run time; local (socket) connections are ``trust``, TCP ones
need the password (``scram-sha-256``). :meth:`PostgresServer.kill` SIGKILLs the whole server
(postmaster and backends, one process group), a crash: :meth:`PostgresServer.start` on the same
data directory then runs PostgreSQL's crash recovery.

PostgreSQL refuses to run as root. Run as root (as the tests may be), the server and initdb run
as the ``postgres`` system user (Debian's package creates it) and the cluster directory is a
fresh one under the system temp dir owned by that user, since pytest's ``tmp_path`` lies in a
root-only (0700) tree the server could not enter; :meth:`close` removes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Self

from edgeguard.lab.broker import _bindable, free_port
from edgeguard.lab.procs import run_tool

log = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_SERVICE_USER = "postgres"
_SUPERUSER = "postgres"


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with initdb and postgres, or raise."""
    candidates = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if all(os.access(bindir / b, os.X_OK) for b in ("initdb", "postgres", "psql")):
            with contextlib.suppress(ValueError):
                candidates.append((int(bindir.parent.name), bindir))
    if not candidates:
        raise FileNotFoundError(
            "PostgreSQL not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    return max(candidates)[1]


class PostgresServer:
    """A PostgreSQL server with one database and one password user, for tests.

    ``with PostgresServer(tmp_path / "pg") as pg: psycopg.connect(pg.dsn)``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        database: str = "edgeguard",
        user: str = "edgeguard",
        password: str = "edgeguard-lab",  # a throw-away lab cluster
        port: int | None = None,
    ) -> None:
        self.bindir = postgres_bindir()
        self.database = database
        self.user = user
        self.password = password
        self.port: int = port if port is not None else free_port()
        self._as: pwd.struct_passwd | None = None
        self._owned_dir: Path | None = None
        if os.geteuid() == 0:
            try:
                self._as = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                raise RuntimeError(
                    "running as root, but there is no 'postgres' user to run PostgreSQL as"
                    " (apt-get install postgresql creates it)"
                ) from None
            self._owned_dir = Path(tempfile.mkdtemp(prefix="edgeguard-pg-"))
            os.chown(self._owned_dir, self._as.pw_uid, self._as.pw_gid)
            self.workdir = self._owned_dir
        else:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.log_file = self.workdir / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], PostgresServer] | None = None
        self._dir_finalizer = (
            weakref.finalize(self, shutil.rmtree, self._owned_dir, True)
            if self._owned_dir is not None
            else None
        )

    @property
    def dsn(self) -> str:
        """A libpq connection string for the lab user over TCP (with its password)."""
        return (
            f"host={_HOST} port={self.port} dbname={self.database} user={self.user}"
            f" password={self.password} connect_timeout=5"
        )

    def create_database(self, name: str) -> str:
        """Create another database owned by the lab user (one per test); its DSN."""
        import psycopg

        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a plain database name")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
        return self.dsn.replace(f"dbname={self.database}", f"dbname={name}")

    @property
    def running(self) -> bool:
        """True while the postmaster is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, if it runs."""
        return self._proc.pid if self.running and self._proc else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """Start the server (initdb, database and user the first time); wait until it accepts."""
        if self.running:
            raise RuntimeError("PostgreSQL is already running")
        self._reap()
        if not _bindable(self.port):
            raise RuntimeError(f"port {self.port} on {_HOST} already in use")
        first = not (self.data_dir / "PG_VERSION").is_file()
        if first:
            self._initdb(timeout)
        try:
            self._spawn()
            self._wait_ready(timeout)
            if first:
                self._create_user_and_database(timeout)
        except BaseException:
            self.kill()
            raise
        log.info("PostgreSQL pid %s on %s:%s", self.pid, _HOST, self.port)

    def stop(self, timeout: float = 15) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint); SIGKILL if stuck."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "PostgreSQL not stopped in %ss; killing it:\n%s", timeout, self.log_tail()
                )
                self.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (a crash; the next start recovers)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _kill_tree(proc.pid)
        self._reap()

    def close(self) -> None:
        """Stop the server and remove a cluster directory this object created (as root)."""
        self.stop()
        if self._dir_finalizer is not None:
            self._dir_finalizer()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log."""
        with (
            contextlib.suppress(FileNotFoundError),
            self.log_file.open(encoding="utf-8", errors="replace") as handle,
        ):
            return "\n".join(deque((line.rstrip("\n") for line in handle), maxlen=n))
        return "(no server log yet)"

    # -- internals ---------------------------------------------------------------------------

    def _run(self, argv: list[str], timeout: float, *, stdin: bytes | None = None) -> str:
        return run_tool(
            argv,
            timeout,
            input=stdin,
            cwd=self.workdir,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )

    # Popen's identity for children: the postgres user when we are root, else our own.
    @property
    def _uid(self) -> int | None:
        return self._as.pw_uid if self._as else None

    @property
    def _gid(self) -> int | None:
        return self._as.pw_gid if self._as else None

    @property
    def _extra_groups(self) -> list[int] | None:
        return [] if self._as else None

    def _initdb(self, timeout: float) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                _SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # a lab cluster: the OS writes it out soon enough
            ],
            timeout,
        )
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._as is not None:
            os.chown(self.socket_dir, self._as.pw_uid, self._as.pw_gid)

    def _spawn(self) -> None:
        with self.log_file.open("ab") as log_handle:
            if self._as is not None:
                os.chown(self.log_file, self._as.pw_uid, self._as.pw_gid)
            self._proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={_HOST}",
                    "-c",
                    f"unix_socket_directories={self.socket_dir}",
                    "-c",
                    "logging_collector=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=log_handle,
                cwd=self.workdir,
                start_new_session=True,  # no terminal signals from the test's session
                user=self._uid,
                group=self._gid,
                extra_groups=self._extra_groups,
            )
        self._finalizer = weakref.finalize(self, _kill_group, self._proc)

    def _wait_ready(self, timeout: float) -> None:
        """Wait for ``ready`` in postmaster.pid (PostgreSQL >= 10 writes it when it accepts)."""
        deadline = time.monotonic() + timeout
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(self._failure(f"postgres exited with code {code}"))
            with contextlib.suppress(FileNotFoundError, PermissionError):
                lines = pid_file.read_text(encoding="utf-8").splitlines()
                if lines and lines[0].strip() == str(self._proc.pid) and "ready" in lines[-1]:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(self._failure(f"PostgreSQL not ready in {timeout}s"))
            time.sleep(0.02)

    def _create_user_and_database(self, timeout: float) -> None:
        quoted_password = self.password.replace("'", "''")
        sql = (
            f'CREATE ROLE "{self.user}" LOGIN CREATEDB PASSWORD \'{quoted_password}\';\n'
            f'CREATE DATABASE "{self.database}" OWNER "{self.user}";\n'
        )
        self._run(
            [
                str(self.bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                _SUPERUSER,
                "-d",
                "postgres",
            ],
            timeout,
            stdin=sql.encode(),
        )

    def _reap(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            self._proc.wait()
            log.info("PostgreSQL pid %s exited with %s", self._proc.pid, self._proc.returncode)
            self._proc = None

    def _failure(self, what: str) -> str:
        return f"{what}; data {self.data_dir}; server log tail:\n{self.log_tail()}"


def _kill_tree(postmaster: int) -> None:
    """SIGKILL the postmaster and its children, and wait until they are gone.

    Every backend calls setsid() (its own process group), so killing the postmaster's group
    is not enough; a backend left running would hold the old shared memory and the next
    start would refuse it ("pre-existing shared memory block is still in use"). The
    postmaster is stopped first so that it forks nothing new while its children are listed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(postmaster, signal.SIGSTOP)
    doomed = [*_live_children(postmaster), postmaster]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in doomed):
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL processes {doomed} still alive 10s after SIGKILL")
        time.sleep(0.01)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _kill_tree(proc.pid)
    proc.wait()


def _stat_fields(pid: int | str) -> list[str] | None:
    """``state ppid pgrp ...`` of /proc/<pid>/stat (comm may hold spaces), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _live_children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and int(fields[1]) == parent and fields[0] not in ("Z", "X"):
                children.append(int(entry.name))
    return children
