"""Order per site across a reconnect: a row that was in flight (sent, no PUBACK) when the link
dropped reaches the broker again before any newer row. Real mosquitto, the real Uplink and Lane,
and a TCP proxy between them that can swallow traffic and cut the connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edgeguard.config import EdgeguardConfig
from edgeguard.ids import utc_now
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import lab_broker
from edgeguard.signing import Signer
from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.lane import Lane
from edgeguard.uplink.site_link import Uplink

SITE = "order-site"
TOPIC = f"edgeguard/{SITE}/alarm"


class FreezingProxy:
    """Forwards TCP both ways; ``freeze`` makes the open connections swallow what either side
    sends (as a dead link does), ``cut`` closes them. New connections are forwarded again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._frozen: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._links += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if src not in self._frozen:
                    dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        with self._lock:
            self._frozen.update(self._links)

    def cut(self) -> None:
        with self._lock:
            links, self._links = self._links, []
        for sock in links:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._server.close()
        self.cut()


class Arrivals:
    """An independent subscriber: the row ids in the order the broker delivered them."""

    def __init__(self, broker: Mosquitto) -> None:
        self.ids: list[int] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="order-watch")
        self._client.on_message = lambda _c, _u, msg: self.ids.append(int(msg.payload))
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe(TOPIC, qos=1)
        self._client.loop_start()

    def first_arrivals(self) -> list[int]:
        return list(dict.fromkeys(self.ids))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class LaneHandler:
    """What the outbox does with the link's events, for one lane."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane

    def on_connected(self, node: str) -> None:
        self.lane.on_connected()

    def on_disconnected(self, reason: str, node: str) -> None:
        pass

    def on_puback(self, mid: int, ok: bool, reason: str) -> None:
        row_id = self.lane.on_puback(mid, ok, reason)
        if row_id is not None:
            del self.lane.pending[row_id]
        self.lane.pump()

    def on_ack_message(self, payload: bytes) -> None:
        pass


def _config(port: int) -> EdgeguardConfig:
    return EdgeguardConfig.model_validate({
        "site": {"id": SITE, "name": "order"}, "signing": {"private_key": "/k"},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min": 0.1, "reconnect_max": 0.5,
                 "inflight_window": 20, "keepalive": 5},
    })


def _rows(first: int, last: int) -> dict[int, OutboxRow]:
    return {i: OutboxRow(i, TOPIC, str(i).encode(), 1, False, None, "new")
            for i in range(first, last + 1)}


async def _until(what: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = lab_broker(tmp_path / "broker", tls=False)
    yield server
    server.stop()


def _slow_after_connect(uplink: Uplink, delay: float) -> None:
    """paho's thread pauses right after our on_connect (as on a busy machine): whatever paho
    would do next on that connection waits, while the event loop runs on."""
    original = uplink.client.on_connect

    def slowed(*args: Any) -> None:
        assert original is not None
        original(*args)
        time.sleep(delay)

    uplink.client.on_connect = slowed


async def _scenario(broker: Mosquitto) -> tuple[list[int], int]:
    proxy = FreezingProxy(broker.port)
    arrivals = Arrivals(broker)
    pending: dict[int, OutboxRow] = {}
    lane = Lane("primary", 20, pending)
    uplink = Uplink(_config(proxy.port), Signer(Ed25519PrivateKey.generate()),
                    LaneHandler(lane), asyncio.get_running_loop(), utc_now())
    lane.attach(uplink)
    _slow_after_connect(uplink, 1.0)
    uplink.start()
    try:
        pending.update(_rows(1, 10))
        lane.append(range(1, 11))
        await _until(lambda: not pending)
        for cycle in range(3):
            base = 11 + cycle * 40
            proxy.freeze()  # the link dies silently with one alarm on the wire
            pending.update(_rows(base, base))
            lane.append([base])
            proxy.cut()
            await _until(lambda: not uplink.connected)
            pending.update(_rows(base + 1, base + 39))  # newer alarms while the link is down
            lane.append(range(base + 1, base + 40))
            await _until(lambda: not pending)
        await _until(lambda: len(arrivals.first_arrivals()) == 130)
        return arrivals.first_arrivals(), uplink.connects
    finally:
        await uplink.stop()
        arrivals.close()
        proxy.close()


def test_a_row_in_flight_at_a_disconnect_arrives_before_newer_rows(broker: Mosquitto) -> None:
    order, connects = asyncio.run(_scenario(broker))
    assert connects == 4
    assert order == sorted(order)
    assert order == list(range(1, 131))
