"""Run a real mosquitto 2.x on loopback for tests, benchmarks and the demo.

Listeners (``per_listener_settings true``, so each has its own auth settings):

* plain TCP on ``127.0.0.1:port``: anonymous, **no ACL** (harness/benchmark convenience; a
  username sent in CONNECT is unauthenticated there, so an ACL would prove nothing). With
  ``plain=False`` there is none (the demo: a local user could read every site's traffic and
  forge police acks through it), and ``port`` is the TLS listener's;
* TLS on ``127.0.0.1:tls_port`` when a :class:`DevPKI` is given: a client certificate signed
  by the dev CA is required and its CN becomes the MQTT username. With ``acl=True`` the
  edgeguard ACL (:data:`ACL_RULES`) applies to this listener.

Persistence is on by default and survives :meth:`Mosquitto.restart`, so persistent sessions
and queued QoS 1 messages outlive a broker restart (and, up to the last autosave, a crash).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import weakref
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from edgeguard.lab.pki import DevPKI

log = logging.getLogger(__name__)

_FALLBACK_BINARY = Path("/usr/sbin/mosquitto")
_HOST = "127.0.0.1"
_STOP_TIMEOUT = 5.0

#: ACL applied to the TLS listener when ``acl=True``. ``pattern`` lines apply to every user
#: (``%u`` = username = certificate CN); ``topic`` lines after ``user police`` only to police.
ACL_RULES = """\
# A site (certificate CN = site id) publishes only under its own id, and never on its own
# ack topic (only the police write acks) ...
pattern write edgeguard/%u/alarm/#
pattern write edgeguard/%u/event/#
pattern write edgeguard/%u/status
pattern write edgeguard/%u/heartbeat
pattern write edgeguard/%u/device/#
pattern write edgeguard/%u/snapshot/#
# ... and reads only the police acks and receipts addressed to it.
pattern read edgeguard/%u/ack
pattern read edgeguard/%u/receipt

user police
topic read edgeguard/#
topic write edgeguard/+/ack
topic write edgeguard/+/receipt
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, chosen at random *below* the kernel's
    ephemeral range: a server that binds it seconds later (a RabbitMQ node boots for ~10 s)
    does not find it taken by some client's outgoing connection, which the kernel only ever
    gives ports from that range (thousands of them in the city benchmarks)."""
    low = _ephemeral_low()
    for _ in range(500):
        port = random.randint(max(10_000, low - 20_000), low - 1)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # crowded: let the OS pick
        sock.bind((_HOST, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text("ascii")
        return max(11_000, int(text.split()[0]))
    except (OSError, ValueError, IndexError):
        return 32_768


def mosquitto_binary() -> Path:
    """Locate the mosquitto executable or raise :class:`FileNotFoundError`."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    if os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    raise FileNotFoundError(
        "mosquitto not found on PATH nor at /usr/sbin/mosquitto (apt-get install mosquitto)"
    )


class Mosquitto:
    """A mosquitto subprocess whose config, logs and persistence db live in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        pki: DevPKI | None = None,
        acl: bool = False,
        port: int | None = None,
        tls_port: int | None = None,
        persistence: bool = True,
        log_to_file: bool = True,
        passwords: dict[str, str] | None = None,
        plain: bool = True,
    ) -> None:
        if acl and pki is None:
            raise ValueError("acl=True needs a pki: the ACL is enforced on the TLS listener")
        if not plain and pki is None:
            raise ValueError("plain=False needs a pki: the TLS listener is then the only one")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = mosquitto_binary()
        self.pki = pki
        self.acl = acl
        self.persistence = persistence
        self.passwords = passwords
        self.log_to_file = log_to_file
        self.plain = plain
        self.port: int = port if port is not None else free_port()
        self.tls_port: int | None = None
        if pki is not None:
            self.tls_port = tls_port
            while self.tls_port is None or (plain and self.tls_port == self.port):
                self.tls_port = free_port()
        if not plain:
            assert self.tls_port is not None
            self.port = self.tls_port
        self.config_file = self.workdir / "mosquitto.conf"
        self.acl_file = self.workdir / "acl"
        self.log_file = self.workdir / "mosquitto.log"
        self.stderr_file = self.workdir / "mosquitto.stderr"
        self.persistence_dir = self.workdir / "persistence"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], IO[bytes]], Mosquitto] | None
        self._finalizer = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the mosquitto process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the running broker, if any."""
        return self._proc.pid if self.running and self._proc else None

    def start(self, timeout: float = 10) -> None:
        """Start mosquitto and wait until every listener accepts TCP connections."""
        if self.running:
            raise RuntimeError("mosquitto is already running")
        self._reap()  # a broker that died on its own
        busy = [p for p in self._ports() if not _bindable(p)]
        if busy:
            raise RuntimeError(f"port(s) {busy} on {_HOST} already in use")
        self._write_config()
        try:
            self._spawn()
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        log.info("mosquitto pid %s listening on %s", self.pid, self._ports())

    def stop(self) -> None:
        """Terminate gracefully (mosquitto saves its persistence db on SIGTERM)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("mosquitto pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the broker (simulates a crash: nothing since the last autosave is saved)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        self._reap()

    def restart(self) -> None:
        """Stop, then start again on the same ports and with the same persistence db."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, n: int = 50) -> str:
        """Return the last ``n`` lines of mosquitto's log file followed by its stderr."""
        lines: deque[str] = deque(maxlen=n)
        for path in (self.log_file, self.stderr_file):
            with (
                contextlib.suppress(FileNotFoundError),
                path.open(encoding="utf-8", errors="replace") as handle,
            ):
                lines.extend(line.rstrip("\n") for line in handle)
        return "\n".join(lines)

    # -- internals ---------------------------------------------------------------------------

    @property
    def listener_ports(self) -> list[int]:
        """Every port the broker listens on."""
        return self._ports()

    def _ports(self) -> list[int]:
        return sorted({p for p in (self.port, self.tls_port) if p is not None})

    def _spawn(self) -> None:
        self._stderr = self.stderr_file.open("ab")
        self._proc = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            cwd=self.workdir,
        )
        # Never leave an orphan broker holding ports if the owner forgets stop() or crashes.
        self._finalizer = weakref.finalize(self, _kill_process, self._proc, self._stderr)

    def _reap(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            self._proc.wait()
            log.info("mosquitto pid %s exited with %s", self._proc.pid, self._proc.returncode)
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _wait_ready(self, timeout: float) -> None:
        """Wait for a CONNACK on the plain port.

        A bare TCP accept is not enough: mosquitto listens on each port *before* loading that
        listener's certificates and may still exit. It answers CONNECT only from its main loop,
        which starts after every listener (and the persistence db) is set up.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(self._failure(f"mosquitto exited with code {code}"))
            if _answers_connect(self.port, self._probe_tls()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(self._failure(f"no CONNACK on port {self.port} in {timeout}s"))
            time.sleep(0.01)

    def _probe_tls(self) -> ssl.SSLContext | None:
        """Without a plain listener, readiness is asked over TLS with a certificate of its own
        (its CN gets only the ACL's per-site patterns for a site that does not exist)."""
        if self.plain or self.pki is None:
            return None
        pair = self.pki.client("lab-readiness-probe")
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        context.check_hostname = False  # the server certificate is for "localhost"
        context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def _failure(self, what: str) -> str:
        return f"{what}; config {self.config_file}; log tail:\n{self.log_tail()}"

    def _write_config(self) -> None:
        if self.acl:
            self.acl_file.write_text(ACL_RULES, encoding="utf-8")
        self.config_file.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")

    def _config_lines(self) -> list[str]:
        lines = [
            "per_listener_settings true",
            "set_tcp_nodelay true",
            # Never drop QoS 1 alarms for a slow/offline persistent subscriber.
            "max_queued_messages 100000",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "persistent_client_expiration 1d",
            *self._user_lines(),
            *self._persistence_lines(),
            *self._log_lines(),
        ]
        if self.plain:
            lines += ["", f"listener {self.port} {_HOST}", *self._plain_auth_lines()]
        if self.pki is not None and self.tls_port is not None:
            lines += ["", *self._tls_listener_lines(self.pki, self.tls_port)]
        return lines

    def _plain_auth_lines(self) -> list[str]:
        """Anonymous, or username/password from a mosquitto_passwd file when ``passwords``."""
        if not self.passwords:
            return ["allow_anonymous true"]
        password_file = self.workdir / "passwords"
        password_file.write_text("", encoding="utf-8")
        for user, password in self.passwords.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(password_file), user, password],
                check=True,
                capture_output=True,
            )
        password_file.chmod(0o600)
        return ["allow_anonymous false", f"password_file {password_file}"]

    def _tls_listener_lines(self, pki: DevPKI, tls_port: int) -> list[str]:
        server = pki.server("localhost")
        lines = [
            f"listener {tls_port} {_HOST}",
            f"cafile {pki.ca_file}",
            f"certfile {server.cert}",
            f"keyfile {server.key}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
        ]
        if self.acl:
            lines.append(f"acl_file {self.acl_file}")
        return lines

    def _persistence_lines(self) -> list[str]:
        if not self.persistence:
            return ["persistence false"]
        self.persistence_dir.mkdir(exist_ok=True)
        return [
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            "autosave_on_changes false",
        ]

    def _log_lines(self) -> list[str]:
        if not self.log_to_file:
            # Quiet, but startup errors still reach mosquitto.stderr for log_tail().
            return ["log_dest stderr", "log_type error", "log_type warning"]
        return [
            f"log_dest file {self.log_file}",
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]

    @staticmethod
    def _user_lines() -> list[str]:
        # As root mosquitto would drop to user "mosquitto", which can read neither our 0600
        # keys nor write the persistence db in workdir: stay as the current user instead.
        if os.geteuid() != 0:
            return []
        return [f"user {pwd.getpwuid(os.geteuid()).pw_name}"]


def _kill_process(proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    stderr.close()


def _bindable(port: int) -> bool:
    """True if nothing listens on ``port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
        return True


#: MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, empty client id (broker assigns one).
_CONNECT = bytes.fromhex("100c00044d5154540402000a0000")
_CONNACK = bytes.fromhex("2002")  # fixed header + length; the return code may be a refusal
_DISCONNECT = bytes.fromhex("e000")


def _answers_connect(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """True if an MQTT broker on ``port`` answers a CONNECT (a refusal for want of a password
    also shows that every listener is up)."""
    try:
        with socket.create_connection((_HOST, port), timeout=1.0) as raw:
            sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
            with sock:
                sock.sendall(_CONNECT)
                reply = sock.recv(4)
                sock.sendall(_DISCONNECT)
    except OSError:
        return False
    return reply[:2] == _CONNACK and len(reply) == 4
