"""One MQTT connection of a simulated site (edgeguard/lab/site_sim_site.py) on aiomqtt.

aiomqtt connects (the TLS handshake in the loop's executor) and runs the socket on the event
loop. Publishing goes straight to the paho client under it, without a task per message, and
PUBACKs come back through our own ``on_publish``, which also sees MQTT 5 refusals (aiomqtt's
publish ignores reason codes). Writes happen on the loop's next round rather than through
aiomqtt's thread-safe hand-over (a self-pipe write, two epoll changes and a loop round per
message), and there is no keepalive task per client: the engine's ticker calls
``keepalive()`` (paho's ``loop_misc``) for every session once a second."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode


class Session:
    """One connection of a site: the aiomqtt client, the paho client under it, the PUBACKs it
    awaits. ``lost`` is resolved when the connection ends, however it ends."""

    def __init__(self, client: aiomqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.paho: mqtt.Client = client._client
        self.loop = loop
        self.lost: asyncio.Future[None] = loop.create_future()
        self._pubacks: dict[int, asyncio.Future[bool]] = {}
        self.subscribe_refused = 0
        self.paho.on_publish = self._on_publish
        self.paho.on_subscribe = self._on_subscribe  # aiomqtt's would log our SUBACKs as unknown
        self.paho.on_socket_register_write = self._want_write
        misc = client._misc_task
        if misc is not None:
            misc.cancel()

    def publish(
        self, topic: str, body: bytes, qos: int, *, retain: bool = False
    ) -> asyncio.Future[bool] | None:
        """Send now; with QoS 1, a future of the PUBACK (True: accepted). None: not sent."""
        info = self.paho.publish(topic, body, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS or qos == 0:
            return None
        waiting = self.loop.create_future()
        self._pubacks[info.mid] = waiting
        return waiting

    def keepalive(self) -> None:
        """paho's periodic work: PINGREQ when due, the link declared dead without PINGRESP."""
        self.paho.loop_misc()

    def _want_write(self, _c: mqtt.Client, _u: Any, _sock: Any) -> None:
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        sock = self.paho.socket()
        if sock is None:
            return
        try:
            self.paho.loop_write()
        except Exception:  # noqa: BLE001 - as aiomqtt's writer: the connection broke
            self.abort()
            return
        if self.paho.want_write() and self.paho.socket() is sock:  # the kernel's buffer is full
            self.loop.add_writer(sock.fileno(), self._flush)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        waiting = self._pubacks.pop(mid, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(not reason.is_failure)

    def forget(self, waiting: asyncio.Future[bool]) -> None:
        for mid, other in list(self._pubacks.items()):
            if other is waiting:
                del self._pubacks[mid]

    def abort(self) -> None:
        """Close the TCP connection without DISCONNECT, as a crashed host's kernel would: the
        broker publishes the Will. paho sees the end on its next read and ends the session."""
        sock = self.paho.socket()
        if isinstance(sock, socket.socket):  # an SSLSocket too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        self.subscribe_refused += sum(1 for code in codes if code.is_failure)


def drop(client: aiomqtt.Client) -> None:
    """Let go of a connection that never became a session (refused, timed out, or stopping)."""
    with contextlib.suppress(Exception):
        client._client.disconnect()


def either(*futures: asyncio.Future[Any]) -> set[asyncio.Future[Any]]:
    """Futures of different types as one set for asyncio.wait."""
    return set(futures)
