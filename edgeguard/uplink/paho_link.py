"""What every paho-mqtt 2.x link of edgeguard shares: the site's uplinks (``site_link.py``) and
the police receiver's broker links (``edgeguard/police/link.py``).

paho runs its own network thread; a link's callbacks there only hand work to the event loop
(``_to_loop``, ``call_soon_threadsafe``), where the link's state lives. Every link keeps its
broker session (Clean Start 0, session expiry), logs in with the endpoint's credentials and TLS,
reconnects with paho's back-off and turns Nagle's algorithm off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

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

    def _new_client(
        self,
        broker: BrokerEndpoint,
        client_id: str,
        *,
        v5: bool,
        reconnect_max: float,
        clean_session: bool | None = None,
        manual_ack: bool = False,
    ) -> mqtt.Client:
        """A client with ``broker``'s login, paho's reconnect back-off up to ``reconnect_max``,
        TCP_NODELAY, and this link's callbacks."""
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

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._to_loop(self._set_down, "connect failed")

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._to_loop(self._set_down, str(reason))

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

    def _set_down(self, reason: str) -> None:
        was_up = self.connected
        self.connected = False
        self.last_error = reason
        self._log_down(reason, was_up=was_up)
        if was_up:
            self._went_down(reason)

    @abstractmethod
    def _went_up(self) -> None: ...

    @abstractmethod
    def _went_down(self, reason: str) -> None: ...

    @abstractmethod
    def _log_down(self, reason: str, *, was_up: bool) -> None: ...
