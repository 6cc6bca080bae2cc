"""What every paho-mqtt 2.x link of edgeguard shares: the site's uplinks (``site_link.py``) and
the police receiver's broker links (``edgeguard/police/link.py``).

paho runs its own network thread; a link's callbacks there only hand work to the event loop
(``_to_loop``, ``call_soon_threadsafe``), where the link's state lives. Every link keeps its
broker session (Clean Start 0, session expiry), logs in with the endpoint's credentials and TLS,
reconnects with paho's back-off and turns Nagle's algorithm off. A link given several nodes of
one broker (``mqtt.nodes``) goes round them: after a failed connect or a lost connection the
next reconnect goes to the next node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgeguard.broker_nodes import format_address
from edgeguard.config import BrokerEndpoint

logger = logging.getLogger(__name__)


def no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Turn Nagle's algorithm off: paho does not, and a PUBLISH held back behind an un-ACKed
    small packet waits for the peer's delayed ACK — 40 ms on Linux (measured in bench/)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def apply_login(client: mqtt.Client, broker: BrokerEndpoint) -> None:
    """Username/password and TLS (CA, client certificate, host-name check) of ``broker``."""
    if broker.username is not None:
        client.username_pw_set(
            broker.username, broker.password.get_secret_value() if broker.password else None
        )
    tls = broker.tls
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(not tls.check_hostname)


def connect_persistent(
    client: mqtt.Client, broker: BrokerEndpoint, keepalive: int, *, v5: bool = True
) -> None:
    """Connect in the background and start paho's network thread, keeping the broker's session:
    Clean Start 0 on the very first connect too (the broker may hold our session, and messages
    queued in it, from before a restart), with the endpoint's session expiry on MQTT 5."""
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = broker.session_expiry
    client.connect_async(
        broker.host,
        broker.effective_port(),
        keepalive=keepalive,
        clean_start=False,
        properties=properties,
    )
    client.loop_start()


class PahoLink(ABC):
    """One paho client and its link state (``connected``, ``last_error``) on the loop.

    A subclass builds ``client`` with ``_new_client`` and provides, on paho's thread,
    ``_on_connect``, ``_on_publish`` and ``_on_message``; on the loop, ``_went_up`` and
    ``_went_down`` (the link's own bookkeeping and its handler) and ``_log_down``.
    """

    client: mqtt.Client

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connected = False
        self.last_error: str | None = None
        self._stopping = False
        self._nodes: list[tuple[str, int]] = []
        self._node = 0  # paho's thread: the index of the node connected to, or tried next
        # the loop's view: the node of the link's last up or down, and where it goes next
        self.node = ""
        self.next_node: str | None = None

    def _new_client(
        self,
        broker: BrokerEndpoint,
        client_id: str,
        *,
        v5: bool,
        reconnect_max: float,
        clean_session: bool | None = None,
        manual_ack: bool = False,
        nodes: Sequence[tuple[str, int]] = (),
    ) -> mqtt.Client:
        """A client with ``broker``'s login, paho's reconnect back-off up to ``reconnect_max``,
        TCP_NODELAY, and this link's callbacks. ``nodes``: every address of the broker, in the
        order they are tried, ``broker``'s own first (default: that one alone)."""
        self._nodes = list(nodes) or [(broker.host, broker.effective_port())]
        self._node = 0
        self.node = format_address(self._nodes[0])
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=manual_ack,
        )
        client.enable_logger(logging.getLogger("edgeguard.paho"))
        apply_login(client, broker)
        client.reconnect_delay_set(min_delay=broker.reconnect_min, max_delay=reconnect_max)  # type: ignore[arg-type]
        client.on_socket_open = no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    async def _disconnect(self) -> None:
        """Disconnect and stop paho's thread; the link going down is then no failure."""
        self._stopping = True
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    # --- paho thread ------------------------------------------------------------------------
    def _to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._on_loop, fn, *args)
        except RuntimeError:  # loop closed during shutdown
            logger.debug("event loop closed; dropped %s", getattr(fn, "__name__", fn))

    @abstractmethod
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None: ...

    @property
    def nodes(self) -> list[str]:
        """Every address of the broker, in the order the link tries them."""
        return [format_address(address) for address in self._nodes]

    def _current_node(self) -> str:
        return format_address(self._nodes[self._node])

    def _move_on(self, client: mqtt.Client) -> str | None:
        """After a failed connect or a lost connection: the next reconnect goes to the next
        node, in turn (paho's back-off unchanged); that node, or None with one node only.

        paho's ``host``/``port`` setters refuse here: they accept a change only while the
        connection is closed, and in ``on_connect_fail`` paho is still "connecting", in
        ``on_disconnect`` still "connected" (its state moves on after the callback). Its next
        ``reconnect()`` reads the two attributes the setters write, so they are set directly,
        on paho's own thread, between two attempts."""
        if len(self._nodes) < 2 or self._stopping:
            return None
        self._node = (self._node + 1) % len(self._nodes)
        client._host, client._port = self._nodes[self._node]
        return self._current_node()

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        node = self._current_node()
        self._to_loop(self._set_down, f"connect to {node} failed", node, self._move_on(client))

    def _on_disconnect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        node = self._current_node()
        self._to_loop(self._set_down, str(reason), node, self._move_on(client))

    @abstractmethod
    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None: ...

    @abstractmethod
    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None: ...

    # --- loop side --------------------------------------------------------------------------
    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Where paho's callbacks' work runs on the loop: a subclass may withhold it."""
        fn(*args)

    def _set_up(self) -> None:
        self.connected = True
        self.last_error = None
        self._went_up()

    def _set_down(self, reason: str, node: str | None = None, next_node: str | None = None) -> None:
        """``node``: the node the link lost or could not reach; ``next_node``: the one it
        tries next, when it moved on."""
        was_up = self.connected
        self.connected = False
        self.last_error = reason
        if node is not None:
            self.node = node
        self.next_node = next_node
        self._log_down(reason, was_up=was_up)
        if was_up:
            self._went_down(reason)

    @abstractmethod
    def _went_up(self) -> None: ...

    @abstractmethod
    def _went_down(self, reason: str) -> None: ...

    @abstractmethod
    def _log_down(self, reason: str, *, was_up: bool) -> None: ...
