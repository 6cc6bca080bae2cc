"""A site on a REAL three-node RabbitMQ cluster (edgeguard/lab/rabbitmq.py), given the three
nodes' MQTT-over-TLS ports as `mqtt.nodes`: while simulated buttons are pressed without pause,
the node the site is on is killed with SIGKILL, then the node leading the police's alarm queue.
An AMQP consumer (aio-pika) on a durable quorum queue bound to amq.topic counts what arrives:
every alarm message the site recorded arrives at least once, and the site moves to a live node
each time. MQTT 3.1.1 (RabbitMQ 3.10's plugin), client id = certificate CN = site id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import paho.mqtt.client as mqtt
import pytest
from aio_pika.abc import AbstractIncomingMessage
from paho.mqtt.enums import CallbackAPIVersion

from edgeguard.lab.harness import DaemonProcess, Site, make_site
from edgeguard.lab.pki import DevPKI
from edgeguard.lab.rabbitmq import POLICE_QUEUE_PREFIX, RabbitCluster, RabbitNode
from edgeguard.receiver import Receiver
from edgeguard.signing import load_public_key

# the module's cluster starts inside its first test: up to the lab's rejoin wait (rabbitmq.py)
pytestmark = pytest.mark.timeout(600)

SITE = "hosp-01"
QUEUE = f"{POLICE_QUEUE_PREFIX}test-alarms"
BUTTONS = ("b1", "b2", "b3")
PRESSES = 30  # at least; the stream goes on until the second kill is behind it
TIMEOUT = 60.0  # bounds every wait (a node restart alone takes ~6 s on an idle 2-core VM)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    pki = DevPKI(tmp_path_factory.mktemp("pki"))
    rabbit = RabbitCluster(tmp_path_factory.mktemp("rabbit"), pki, sites=[SITE])
    rabbit.start()
    try:
        yield rabbit
    finally:
        rabbit.stop()


def _until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ConnectionError, OSError):
            value = predicate()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class AlarmConsumer:
    """A police receiver as an AMQP consumer of the quorum queue, on its own loop in a thread:
    it verifies each message (routing key `edgeguard.hosp-01.alarm.b1` → the MQTT topic),
    records its (event_id, seq) and acks it; when its node dies it goes on to the next."""

    def __init__(self, cluster: RabbitCluster, site_key: Path) -> None:
        self.cluster = cluster
        self.receiver = Receiver({SITE: load_public_key(site_key)})
        self.keys: set[tuple[str, int]] = set()
        self.deliveries = 0
        self.redelivered = 0
        self.warnings: list[str] = []
        self.connections: list[str] = []  # the node of each connection it made
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> AlarmConsumer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)

    def received(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self.keys)

    async def _main(self) -> None:
        turn = 0
        while not self._stop.is_set():
            node = self.cluster.nodes[turn % len(self.cluster.nodes)]
            turn += 1
            if not node.running:
                continue
            with contextlib.suppress(Exception):  # its node died: on to the next one
                await self._consume(node)
            await asyncio.sleep(0.2)

    async def _consume(self, node: RabbitNode) -> None:
        connection = await aio_pika.connect(self.cluster.amqp_url(node), timeout=10)
        async with connection:
            self.connections.append(node.name)
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_a: lost.set())
            channel = await connection.channel()
            channel.close_callbacks.add(lambda *_a: lost.set())
            await channel.set_qos(prefetch_count=20)
            queue = await channel.get_queue(QUEUE)
            await queue.consume(self._on_message)
            while not (self._stop.is_set() or lost.is_set()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 0.2)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        topic = (message.routing_key or "").replace(".", "/")  # no dots in ids (NAME_PATTERN)
        received = self.receiver.handle(topic, message.body)
        with self._lock:
            self.deliveries += 1
            self.redelivered += bool(message.redelivered)
            if received.warning:
                self.warnings.append(received.warning)
            elif received.payload is not None:
                self.keys.add((str(received.payload["event_id"]), int(received.payload["seq"])))
        await message.ack()


class Presser:
    """Presses and releases the site's buttons in turn, one action every ``pause`` s, until
    stopped and at least ``PRESSES`` presses are done."""

    def __init__(self, daemon: DaemonProcess, pause: float = 0.2) -> None:
        self.daemon = daemon
        self.pause = pause
        self.presses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            held: set[str] = set()
            turn = 0
            while self.presses < PRESSES or not self._stop.is_set():
                button = BUTTONS[turn % len(BUTTONS)]
                turn += 1
                if button in held:
                    self.daemon.release(button)
                    held.discard(button)
                else:
                    self.daemon.press(button)  # returns once durably recorded
                    held.add(button)
                    self.presses += 1
                time.sleep(self.pause)
            for button in held:
                self.daemon.release(button)
        except BaseException as exc:  # handed to the test in stop()
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def wait_presses(self, count: int, what: str) -> None:
        _until(lambda: self.presses >= count or self.error, what)
        assert self.error is None, self.error

    def finish(self) -> None:
        """Stop once at least ``PRESSES`` presses are done."""
        self._stop.set()

    def stop(self) -> None:
        self.finish()
        self._thread.join(TIMEOUT + PRESSES * self.pause * 2)
        assert not self._thread.is_alive(), "the presser did not finish"
        assert self.error is None, self.error


def _site(tmp_path: Path, cluster: RabbitCluster) -> Site:
    pair = cluster.pki.client(SITE)
    first, *others = cluster.nodes
    mqtt = {
        "host": "localhost",  # the name in the nodes' certificate
        "port": first.mqtts_port,
        "nodes": [f"localhost:{node.mqtts_port}" for node in others],
        "protocol": "3.1.1",
        "client_id": SITE,  # the lab's permissions: a session's client id is its user (CN)
        "tls": {"ca_file": str(cluster.pki.ca_file), "cert_file": str(pair.cert),
                "key_file": str(pair.key)},
        "reconnect_max": 2.0,
    }  # fmt: skip
    inputs = [{"type": "simulated", "name": name, "location": "er"} for name in BUTTONS]
    return make_site(tmp_path / "site", None, site_id=SITE, inputs=inputs, mqtt_extra=mqtt)


def _node_of(
    cluster: RabbitCluster, daemon: DaemonProcess, dead: RabbitNode | None = None
) -> RabbitNode | None:
    """The node the site is connected to now, or None while it is not (or still seems to be
    on ``dead``: it may not have seen that node die yet)."""
    link = daemon.status()["link"]
    if not link["connected"]:
        return None
    port = int(link["broker"].rsplit(":", 1)[1])
    node = next(node for node in cluster.nodes if node.mqtts_port == port)
    return None if node is dead else node


def _queue_leader(cluster: RabbitCluster) -> RabbitNode:
    rows = json.loads(cluster.ctl("list_queues", "name", "leader", "--formatter", "json"))
    leader = next(row["leader"] for row in rows if row["name"] == QUEUE)
    return cluster.node_of(leader)


def _recorded(site: Site) -> set[tuple[str, int]]:
    """Every alarm message the site recorded in its outbox: (event_id, seq)."""
    with contextlib.closing(sqlite3.connect(f"file:{site.db}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT event_id, seq FROM outbox WHERE topic LIKE ?", (f"edgeguard/{SITE}/alarm/%",)
        ).fetchall()
    return {(str(event_id), int(seq)) for event_id, seq in rows}


def _declare_queue(cluster: RabbitCluster, node: RabbitNode) -> None:
    """The police's alarm queue, declared from ``node``: its leader is there at first (3.10's
    default `queue_leader_locator` is `client-local`)."""

    async def declare() -> None:
        async with await aio_pika.connect(cluster.amqp_url(node)) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind("amq.topic", "edgeguard.*.alarm.#")

    asyncio.run(declare())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_site_moves_to_a_live_node_and_every_alarm_arrives(
    tmp_path: Path, cluster: RabbitCluster, cleanup: list[Callable[[], None]]
) -> None:
    # the queue's leader on eg2, where the site goes when eg1 dies: the second kill then
    # takes the site's node and the queue's leader at once (the test holds either way)
    _declare_queue(cluster, cluster.nodes[1])
    site = _site(tmp_path, cluster)
    daemon = DaemonProcess(site)
    daemon.start(timeout=TIMEOUT)
    cleanup.append(daemon.stop)
    consumer = AlarmConsumer(cluster, site.public_key).__enter__()
    cleanup.append(lambda: consumer.__exit__(None, None, None))
    first = _until(lambda: _node_of(cluster, daemon), "the site connected")
    assert first is cluster.nodes[0]
    presser = Presser(daemon)
    presser.start()
    cleanup.append(presser.finish)
    moves: list[tuple[str, str]] = []

    # 1. the node the site is on dies: the site moves to another
    presser.wait_presses(4, "presses before the first kill")
    cluster.kill(first)
    second = _until(lambda: _node_of(cluster, daemon, first), "the site on another node")
    moves.append((first.name, second.name))
    presser.wait_presses(presser.presses + 3, "presses after the move")

    # 2. the killed node rejoins; then the node leading the alarm queue dies (the site's own,
    # or not): the queue elects a new leader on the remaining two, and the site moves if
    # it was on it
    cluster.restart(first)
    cluster.wait_running(3, timeout=TIMEOUT)
    cluster.wait_queue_online(QUEUE, 3, timeout=TIMEOUT)
    cluster.wait_queue_online(f"mqtt-subscription-{SITE}qos1", 3, timeout=TIMEOUT)
    leader = _queue_leader(cluster)
    on = _until(lambda: _node_of(cluster, daemon), "the site connected before the second kill")
    cluster.kill(leader)
    third = _until(lambda: _node_of(cluster, daemon, leader), "the site on a live node")
    if third is not on:
        moves.append((on.name, third.name))
    presser.wait_presses(presser.presses + 3, "presses after the second kill")
    presser.stop()

    # every alarm message the site recorded arrives, at least once
    _until(
        lambda: daemon.status()["link"]["connected"] and daemon.status()["outbox"]["pending"] == 0,
        "the site's outbox empty",
    )
    recorded = _recorded(site)
    assert len(recorded) >= 2 * PRESSES  # a press and a release each
    _until(lambda: consumer.received() >= recorded, "every alarm message at the consumer")
    consumer.__exit__(None, None, None)
    assert consumer.warnings == []
    assert consumer.received() == recorded
    log = daemon.log_text()
    for lost, found in moves:
        lost_port = cluster.node_of(lost).mqtts_port
        found_port = cluster.node_of(found).mqtts_port
        assert f"police link DOWN on localhost:{lost_port}" in log
        assert f"police link up (localhost:{found_port}, node " in log
    print(
        f"moves {moves}; queue leader killed: {leader.name}; {len(recorded)} alarm messages, "
        f"{consumer.deliveries} deliveries ({consumer.redelivered} redelivered); consumer "
        f"connections {consumer.connections}"
    )


def _mqtt(
    cluster: RabbitCluster, cn: str, node: RabbitNode, *, clean: bool = True
) -> tuple[mqtt.Client, Any]:
    """A connected MQTT 3.1.1 client and the queue of what it receives."""
    pair = cluster.pki.client(cn)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=cn, protocol=mqtt.MQTTv311, clean_session=clean
    )
    client.tls_set(
        ca_certs=str(cluster.pki.ca_file), certfile=str(pair.cert), keyfile=str(pair.key)
    )
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.on_message = lambda _c, _u, message: received.put(message)
    client.connect("localhost", node.mqtts_port, keepalive=10)
    client.loop_start()
    assert connected.wait(TIMEOUT)
    return client, received


@pytest.mark.slow
def test_retained_messages_stay_on_their_node_and_skip_wildcards(cluster: RabbitCluster) -> None:
    """What docs/mqtt-api.md 11.1 says of the retained `status` and `device` messages."""
    eg1, eg2 = [node for node in cluster.nodes if node.running][:2]  # one may have been killed
    topic = f"edgeguard/{SITE}/device/retained-probe"
    site, _ = _mqtt(cluster, SITE, eg1, clean=False)  # leaves the site's session alone
    try:
        info = site.publish(topic, b"online", qos=1, retain=True)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()
    finally:
        site.disconnect()
        site.loop_stop()
    seen = {}
    subscriptions = [(eg1, topic), (eg2, topic), (eg1, f"edgeguard/{SITE}/device/+"),
                     (eg1, "edgeguard/#")]  # fmt: skip
    for index, (node, topic_filter) in enumerate(subscriptions):
        police, received = _mqtt(cluster, "police", node)
        try:
            police.subscribe(topic_filter, qos=1)
            wait = TIMEOUT if index == 0 else 3.0  # the first must come, the others would at once
            with contextlib.suppress(queue.Empty):
                message = received.get(timeout=wait)
                seen[(node.name, topic_filter)] = (message.payload, message.retain)
        finally:
            police.disconnect()
            police.loop_stop()
    assert seen == {(eg1.name, topic): (b"online", True)}
