"""Run a real RabbitMQ cluster (Debian's rabbitmq-server 3.10, MQTT plugin) on loopback.

Each node (``eg1@localhost``, ``eg2@localhost``, ...) has its own directory (mnesia, logs,
config, pid file) and its own ports, all chosen at run time: AMQP, MQTT, MQTT over TLS and the
Erlang distribution port. The cluster shares one Erlang cookie (``home/.erlang.cookie``; the
nodes and ``rabbitmqctl`` get that ``HOME``) and runs its own ``epmd`` on a free port
(``ERL_EPMD_PORT``), so neither clashes with a system RabbitMQ or epmd.

Forming the cluster: node 1 boots alone; nodes 2..N boot together with node 1 as their
``classic_config`` peer and join it on their first boot (what ``rabbitmqctl stop_app;
join_cluster; start_app`` does, without three CLI round trips per node). Users and
permissions come from a definitions file every node loads at boot:

* every site (certificate CN = site id = MQTT username) and the police user log in over MQTT
  with their TLS client certificate (``mqtt.ssl_cert_login``, ``ssl_cert_login_from =
  common_name``); sites have no password at all; the police user also has one, for AMQP;
* an MQTT session (client id) must equal the username: a user may only use queues named
  ``mqtt-subscription-<its name>qos0/1``, so nobody attaches to another user's session queue;
* topic permissions on ``amq.topic`` (the MQTT plugin maps ``/`` to ``.``; the regexes match
  the routing key) mirror :data:`edgeguard.lab.broker.ACL_RULES`;
* QoS 1 subscriptions of persistent sessions live on quorum queues
  (``mqtt.durable_queue_type = quorum``), replicated on every node.

As root, the nodes run as root (RabbitMQ allows it); everything stays in ``workdir``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from edgeguard.lab.broker import _answers_connect, _bindable, free_port
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.procs import run_tool

log = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_STOP_TIMEOUT = 30.0
#: How long a restarted node may take to rejoin (see RabbitCluster.restart).
_REJOIN_TIMEOUT = 180.0
_PLUGINS = ("rabbitmq_mqtt", "rabbitmq_auth_mechanism_ssl")
#: Queues the police user may declare and consume over AMQP (competing receivers).
POLICE_QUEUE_PREFIX = "edgeguard-police."


def rabbitmq_sbin() -> Path:
    """The ``sbin`` of the newest installed ``/usr/lib/rabbitmq/lib/rabbitmq_server-*``.

    Not ``/usr/sbin/rabbitmq-server``: Debian's wrapper switches to the ``rabbitmq`` user and
    its fixed directories.
    """
    found = sorted(
        Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/sbin/rabbitmq-server"),
        key=lambda p: _version_key(p.parent.parent.name.removeprefix("rabbitmq_server-")),
    )
    if not found or shutil.which("epmd") is None:
        raise FileNotFoundError(
            "RabbitMQ not found under /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin, or epmd"
            " not on PATH (apt-get install rabbitmq-server)"
        )
    return found[-1].parent


def rabbitmq_version() -> str:
    """The installed RabbitMQ version, e.g. ``3.10.8``."""
    return rabbitmq_sbin().parent.name.removeprefix("rabbitmq_server-")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


@dataclass
class RabbitNode:
    """One node of a :class:`RabbitCluster`: its name, ports and directory."""

    index: int
    name: str
    workdir: Path
    amqp_port: int
    mqtt_port: int
    mqtts_port: int
    dist_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    output: IO[bytes] | None = field(default=None, repr=False)
    finalizer: weakref.finalize[[subprocess.Popen[bytes]], RabbitNode] | None = field(
        default=None, repr=False
    )

    @property
    def running(self) -> bool:
        """True while the node's Erlang VM runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The OS pid of the node's ``beam.smp`` (the start script execs into it)."""
        return self.proc.pid if self.running and self.proc else None

    @property
    def ports(self) -> list[int]:
        return [self.amqp_port, self.mqtt_port, self.mqtts_port, self.dist_port]

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of each of the node's logs and of its stdout/stderr.

        Each file gets its own tail: the boot banner on stdout must not hide why the node
        waits (the node log says so: "Waiting for Mnesia tables", a quorum queue recovery).
        """
        parts = [f"--- {self.name} ---"]
        for path in [*sorted(self.log_dir.glob("*.log")), self.workdir / "stdout.log"]:
            lines: deque[str] = deque(maxlen=n)
            with (
                contextlib.suppress(FileNotFoundError),
                path.open(encoding="utf-8", errors="replace") as handle,
            ):
                lines.extend(line.rstrip("\n") for line in handle)
            parts.append(f"[{path.name}]")
            parts.extend(lines)
        return "\n".join(parts)


@dataclass(frozen=True)
class _User:
    name: str
    password: str | None
    topic_write: str
    topic_read: str
    extra_queues: str = ""


class RabbitCluster:
    """``size`` RabbitMQ nodes on loopback, clustered, with the MQTT plugin and the site users.

    ``with RabbitCluster(tmp_path / "rabbit", pki, sites=["hosp-01"]) as cluster: ...``
    """

    def __init__(
        self,
        workdir: Path,
        pki: DevPKI,
        *,
        sites: Sequence[str] = ("hosp-01", "hosp-02"),
        police: str = "police",
        size: int = 3,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.sbin = rabbitmq_sbin()
        self.version = rabbitmq_version()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.sites = list(sites)
        self.police = police
        self.police_password = secrets.token_urlsafe(12)
        self.home = self.workdir / "home"
        self.epmd_port = free_port()
        self._epmd: subprocess.Popen[bytes] | None = None
        self._epmd_finalizer: weakref.finalize[[subprocess.Popen[bytes]], RabbitCluster] | None
        self._epmd_finalizer = None
        taken: set[int] = {self.epmd_port}
        self.nodes: list[RabbitNode] = []
        for index in range(1, size + 1):
            amqp, mqtt, mqtts, dist = (_free_port_not_in(taken) for _ in range(4))
            name = f"eg{index}"
            self.nodes.append(
                RabbitNode(index, f"{name}@localhost", self.workdir / name, amqp, mqtt, mqtts, dist)
            )
        self.start_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, node: RabbitNode | int | None = None, timeout: float = _REJOIN_TIMEOUT) -> None:
        """Start the whole cluster (``node`` None), or restart one node, which rejoins. A node
        joining at first boot may also wait for the MQTT plugin's client-id tracker (a Ra
        cluster) to elect a leader, up to the plugin's own 100 s on a loaded machine (seen in
        a fresh-clone run: eg2 not up after 90 s, `mqtt_node: leader call - leader not
        known`), so the default wait is longer than that."""
        if node is not None:
            self._start_node(self._node(node), timeout)
            return
        began = time.monotonic()
        try:
            self._prepare()
            self._start_epmd()
            first, *others = self.nodes
            self._start_node(first, timeout)
            if others:
                with ThreadPoolExecutor(len(others)) as pool:
                    for future in [pool.submit(self._start_node, n, timeout) for n in others]:
                        future.result()
            self.wait_running(len(self.nodes), timeout=timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        log.info("RabbitMQ %s cluster of %d up in %.1fs", self.version, len(self.nodes),
                 self.start_seconds)

    def restart(self, node: RabbitNode | int, timeout: float = _REJOIN_TIMEOUT) -> None:
        """Start a stopped node again; if it will not boot, rebuild it from scratch.

        A restarted node rejoins with its old data. Its MQTT plugin first asks a peer for the
        members of the client-id tracker (a Ra cluster) and may wait up to 100 s for the
        answer on a loaded machine, so ``timeout`` is longer than that. A node that still
        does not boot is forgotten by the cluster, its data wiped and started as a new
        member: the cluster is whole again for what follows, and the log says why.
        """
        n = self._node(node)
        try:
            self._start_node(n, timeout)
        except RuntimeError as exc:
            log.warning("%s did not rejoin; rebuilding it as a new member: %s", n.name, exc)
            self.rebuild(n, timeout)

    def rebuild(self, node: RabbitNode | int, timeout: float = _REJOIN_TIMEOUT) -> None:
        """Forget a stopped node, wipe its data and start it as a new member."""
        n = self._node(node)
        self.kill(n)
        self.ctl("forget_cluster_node", n.name)
        shutil.rmtree(n.workdir / "mnesia", ignore_errors=True)
        self._start_node(n, timeout)
        if n is self.nodes[0]:  # its classic_config peer is itself: it booted alone
            peer = self._first_running_but(n)
            for args in (("stop_app",), ("join_cluster", peer.name), ("start_app",)):
                self.ctl(*args, node=n, timeout=timeout)
            self._wait_mqtt(n, timeout)

    def stop(self) -> None:
        """Stop every node (SIGTERM: a clean shutdown; SIGKILL if stuck), then epmd."""
        live = [n for n in self.nodes if n.running]
        for n in live:
            assert n.proc is not None
            n.proc.terminate()
        for n in live:
            assert n.proc is not None
            try:
                n.proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM; killing it\n%s", n.name, n.log_tail())
        for n in self.nodes:
            self.kill(n)
        if self._epmd_finalizer is not None:
            self._epmd_finalizer()
            self._epmd_finalizer = None
            self._epmd = None

    def kill(self, node: RabbitNode | int) -> None:
        """SIGKILL a node's VM and its helper processes (a crash of that machine)."""
        n = self._node(node)
        if n.proc is not None:
            if n.proc.poll() is None:  # never signal a pid that has been reaped (reuse)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(n.proc.pid, signal.SIGKILL)
            n.proc.wait()
            log.info("%s pid %s exited with %s", n.name, n.proc.pid, n.proc.returncode)
        if n.finalizer is not None:
            n.finalizer.detach()
            n.finalizer = None
        if n.output is not None:
            n.output.close()
            n.output = None
        n.proc = None

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

    # -- queries -----------------------------------------------------------------------------

    def ctl(self, *args: str, node: RabbitNode | int | None = None, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> args...`` (the first running node by default)."""
        return self._cli("rabbitmqctl", *args, node=node, timeout=timeout)

    def running_nodes(self, node: RabbitNode | int | None = None) -> list[str]:
        """The node names the cluster (as seen by ``node``) reports as running."""
        status = json.loads(self.ctl("cluster_status", "--formatter", "json", node=node))
        names: list[str] = status["running_nodes"]
        return sorted(names)

    def wait_running(self, count: int, timeout: float = 60) -> list[str]:
        """Wait until the cluster reports ``count`` running nodes; return their names."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            with contextlib.suppress(RuntimeError):
                seen = self.running_nodes()
                if len(seen) == count:
                    return seen
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cluster reports running {seen}, not {count} nodes, after {timeout}s\n"
                    + self.log_tails()
                )
            time.sleep(0.5)

    def wait_queue_online(self, queue: str, count: int, timeout: float = 60) -> None:
        """Wait until ``count`` members of quorum queue ``queue`` run (a node that just
        rejoined recovers its members a moment after its listeners open)."""
        deadline = time.monotonic() + timeout
        online: list[str] = []
        while True:
            with contextlib.suppress(RuntimeError, ValueError):
                rows = json.loads(self.ctl("list_queues", "name", "online", "--formatter", "json"))
                online = next((r["online"] for r in rows if r["name"] == queue), [])
                if len(online) >= count:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue {queue!r} has members {online} online after {timeout}s")
            time.sleep(0.3)

    def amqp_url(self, node: RabbitNode | int, user: str | None = None) -> str:
        """An AMQP URL for the police user (the only one with a password) on ``node``."""
        n = self._node(node)
        return f"amqp://{user or self.police}:{self.police_password}@{_HOST}:{n.amqp_port}/"

    def log_tails(self, n: int = 30) -> str:
        """Every node's log tail (for failure messages)."""
        return "\n".join(node.log_tail(n) for node in self.nodes)

    def node_of(self, name: str) -> RabbitNode:
        """The node named ``name`` (``eg1@localhost``)."""
        return next(n for n in self.nodes if n.name == name)

    # -- internals ---------------------------------------------------------------------------

    def _node(self, node: RabbitNode | int) -> RabbitNode:
        return self.nodes[node] if isinstance(node, int) else node

    def _prepare(self) -> None:
        self.home.mkdir(exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(20).upper())
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(_PLUGINS)}].\n", "ascii")
        (self.workdir / "rabbitmq-env.conf").write_text("", "ascii")  # not /etc/rabbitmq's
        definitions = self.workdir / "definitions.json"
        definitions.write_text(json.dumps(self._definitions(), indent=1), "utf-8")
        definitions.chmod(0o600)  # holds the police password's hash
        for n in self.nodes:
            n.workdir.mkdir(exist_ok=True)
            (n.workdir / "rabbitmq.conf").write_text(self._config(n, definitions), "utf-8")

    def _start_epmd(self) -> None:
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", _HOST],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._epmd_finalizer = weakref.finalize(self, _kill_group, self._epmd)
        deadline = time.monotonic() + 5
        while _bindable(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"epmd did not listen on {_HOST}:{self.epmd_port}")
            time.sleep(0.01)

    def _start_node(self, n: RabbitNode, timeout: float) -> None:
        if n.running:
            raise RuntimeError(f"{n.name} is already running")
        self.kill(n)  # reap a node that died on its own
        busy = [p for p in n.ports if not _bindable(p)]
        if busy:
            raise RuntimeError(f"{n.name}: port(s) {busy} on {_HOST} already in use")
        n.output = (n.workdir / "stdout.log").open("ab")
        n.proc = subprocess.Popen(
            [str(self.sbin / "rabbitmq-server")],
            stdin=subprocess.DEVNULL,
            stdout=n.output,
            stderr=n.output,
            cwd=n.workdir,
            env=self._env(n, server=True),
            # its own group: kill() takes erl_child_setup and inet_gethost down with the VM
            start_new_session=True,
        )
        n.finalizer = weakref.finalize(n, _kill_group, n.proc)
        self._wait_mqtt(n, timeout)

    def _wait_mqtt(self, n: RabbitNode, timeout: float) -> None:
        assert n.proc is not None
        deadline = time.monotonic() + timeout
        # The MQTT listeners open once the node has booted, joined and loaded definitions.
        while not _answers_connect(n.mqtt_port):
            if not n.running:
                code = n.proc.returncode
                self.kill(n)
                raise RuntimeError(f"{n.name} exited with {code}\n{n.log_tail(60)}")
            if time.monotonic() > deadline:
                tail = n.log_tail(60)
                self.kill(n)
                raise RuntimeError(f"{n.name}: MQTT not up in {timeout}s\n{tail}")
            time.sleep(0.1)
        log.info("%s pid %s up (mqtt %s, mqtts %s, amqp %s)", n.name, n.pid, n.mqtt_port,
                 n.mqtts_port, n.amqp_port)

    def _cli(self, tool: str, *args: str, node: RabbitNode | int | None, timeout: float) -> str:
        target = self._node(node) if node is not None else self._first_running()
        argv = [str(self.sbin / tool), "-q", "-n", target.name, *args]
        return run_tool(
            argv,
            timeout,
            env=self._env(target, server=False),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
        )

    def _first_running_but(self, node: RabbitNode) -> RabbitNode:
        for n in self.nodes:
            if n.running and n is not node:
                return n
        raise RuntimeError(f"no node of the cluster but {node.name} is running")

    def _first_running(self) -> RabbitNode:
        for n in self.nodes:
            if n.running:
                return n
        raise RuntimeError("no node of the cluster is running")

    def _env(self, n: RabbitNode, *, server: bool) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.home),  # the cluster's .erlang.cookie, for nodes and CLI alike
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": _HOST,
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": n.name,
            "RABBITMQ_MNESIA_BASE": str(n.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(n.log_dir),
            "RABBITMQ_CONFIG_FILE": str(n.workdir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(n.workdir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(n.workdir / "pid"),
            # the CLI's own distribution port: any free one (the default is a fixed range)
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
        }
        if server:
            env |= {
                "RABBITMQ_DIST_PORT": str(n.dist_port),
                # exec the VM (no signal-forwarding shell): the Popen pid is beam.smp's
                "RUNNING_UNDER_SYSTEMD": "true",
                # no scheduler busy-waiting: three nodes share this machine's cores with
                # everything else, and spinning schedulers take CPU the others need
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface "
                "{127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none",
            }
        return env

    def _config(self, n: RabbitNode, definitions: Path) -> str:
        server = self.pki.server("localhost")
        lines = [
            "loopback_users = none",
            f"listeners.tcp.1 = {_HOST}:{n.amqp_port}",
            "listeners.ssl = none",
            f"mqtt.listeners.tcp.1 = {_HOST}:{n.mqtt_port}",
            f"mqtt.listeners.ssl.1 = {_HOST}:{n.mqtts_port}",
            "mqtt.allow_anonymous = false",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "mqtt.ssl_cert_login = true",
            "mqtt.durable_queue_type = quorum",
            "mqtt.subscription_ttl = 86400000",
            "mqtt.prefetch = 100",
            "ssl_cert_login_from = common_name",
            f"ssl_options.cacertfile = {self.pki.ca_file}",
            f"ssl_options.certfile = {server.cert}",
            f"ssl_options.keyfile = {server.key}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
            f"load_definitions = {definitions}",
            "log.console = false",
            "log.file.level = info",
            "cluster_formation.peer_discovery_backend = classic_config",
            f"cluster_formation.classic_config.nodes.1 = {self.nodes[0].name}",
        ]
        return "\n".join(lines) + "\n"

    def _users(self) -> Iterable[_User]:
        for site in self.sites:
            s = re.escape(site)
            yield _User(
                site,
                None,
                topic_write=rf"^edgeguard\.{s}\.((alarm|event|device|snapshot)(\..+)?|status|heartbeat)$",
                topic_read=rf"^edgeguard\.{s}\.(ack|receipt)$",
            )
        yield _User(
            self.police,
            self.police_password,
            topic_write=r"^edgeguard\.[^.]+\.(ack|receipt)$",
            topic_read=r"^edgeguard\.",
            extra_queues="|" + re.escape(POLICE_QUEUE_PREFIX) + ".*",
        )

    def _definitions(self) -> dict[str, object]:
        users, permissions, topic_permissions = [], [], []
        for user in self._users():
            users.append(
                {
                    "name": user.name,
                    # sites: no password, so only their certificate logs them in
                    "password_hash": _password_hash(user.password) if user.password else "",
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": [],
                }
            )
            own = rf"mqtt-subscription-{re.escape(user.name)}qos[01]{user.extra_queues}"
            permissions.append(
                {
                    "user": user.name,
                    "vhost": "/",
                    "configure": rf"^({own})$",
                    "write": rf"^(amq\.topic|{own})$",
                    "read": rf"^(amq\.topic|{own})$",
                }
            )
            topic_permissions.append(
                {
                    "user": user.name,
                    "vhost": "/",
                    "exchange": "amq.topic",
                    "write": user.topic_write,
                    "read": user.topic_read,
                }
            )
        return {
            "rabbit_version": self.version,
            "users": users,
            "vhosts": [{"name": "/"}],
            "permissions": permissions,
            "topic_permissions": topic_permissions,
        }


def _password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _free_port_not_in(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
