"""The site's MQTT link to a police broker (paho-mqtt 2.x, MQTT 5 or 3.1.1), one per broker.

On the paho base of ``paho_link.py``: every callback is handed to the event loop and handled
there, so the rest of the daemon never sees paho's thread. The link announces itself with a
retained ``status`` (``online``) and leaves a Will that sets ``offline`` if it vanishes; it
subscribes to the police acknowledgements with a persistent session, so acks sent while the
site was away are delivered when it returns. With `nodes`, it moves to the broker's next node
when the one it is on dies (``paho_link.py``); its logs and status name the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edgeguard.config import BrokerConfig, EdgeguardConfig, MqttProtocol
from edgeguard.ids import iso_ms_from_epoch
from edgeguard.payloads import ack_topic, status_payload, status_topic
from edgeguard.receipts import receipt_topic
from edgeguard.signing import Signer
from edgeguard.uplink.paho_link import PahoLink, connect_persistent

logger = logging.getLogger(__name__)


class UplinkHandler(Protocol):
    """Receives the link's events on the event loop."""

    def on_connected(self, node: str) -> None:
        """``node``: the broker's address the link is on."""
        ...

    def on_disconnected(self, reason: str, node: str) -> None:
        """``node``: the broker's address the link lost."""
        ...

    def on_puback(self, mid: int, ok: bool, reason: str) -> None: ...

    def on_ack_message(self, payload: bytes) -> None: ...
    def on_receipt_message(self, payload: bytes) -> None: ...


class NotConnectedError(Exception):
    pass


def drop_session_messages(client: mqtt.Client) -> None:
    """Forget the QoS 1 messages paho keeps for resending. paho resends them itself right after
    ``on_connect`` — but on its own thread, so a new message the loop publishes meanwhile can
    overtake them, and its resend loop stops at the first message it had queued (a later
    in-flight one is then never resent). The lane resends them instead, in outbox order. paho
    has no public call for this; the two attributes are those its own reconnect reset uses."""
    with client._out_message_mutex:
        client._out_messages.clear()
        client._inflight_messages = 0


class Uplink(PahoLink):
    def __init__(
        self,
        config: EdgeguardConfig,
        signer: Signer,
        handler: UplinkHandler,
        loop: asyncio.AbstractEventLoop,
        started_at: datetime,
        *,
        broker: BrokerConfig | None = None,
        path: str = "primary",
    ) -> None:
        """``broker``: the broker of this path (default ``config.mqtt``, the primary);
        ``path`` names it in logs and in the daemon's status."""
        super().__init__(loop)
        self.config = config
        self.broker = broker if broker is not None else config.mqtt
        self.path = path
        self.signer = signer
        self.handler = handler
        self.started_at = started_at
        self._started_monotonic = time.monotonic()
        self.last_change = time.time()
        self.connects = 0
        self._retired = False
        # publish() sends only on a connection the loop has seen come up (see _on_connect)
        self._session_lock = threading.Lock()
        self._session = 0
        self._open_session = -1
        self.client = self._make_client()

    @property
    def site(self) -> str:
        return self.config.site.id

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"edgeguard-{self.site}"

    @property
    def address(self) -> str:
        """The node the link is on, or last tried (its only one without `nodes`)."""
        return self.node

    def info(self) -> dict[str, Any]:
        """The link as the daemon's status shows it: with `nodes`, also which one it is on
        (or last tried), counted from 1."""
        nodes = self.nodes
        return {
            "connected": self.connected,
            "broker": self.address,
            **({"nodes": nodes, "node": nodes.index(self.node) + 1} if len(nodes) > 1 else {}),
            "since": iso_ms_from_epoch(self.last_change),
            "last_error": self.last_error,
        }

    # --- setup ------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.broker
        v5 = cfg.protocol is MqttProtocol.V5
        client = self._new_client(
            cfg,
            self.client_id,
            v5=v5,
            reconnect_max=cfg.reconnect_max,
            clean_session=None if v5 else False,
            nodes=cfg.addresses(),
        )
        will = self._status_message("offline")
        client.will_set(status_topic(self.site), will, qos=1, retain=True)
        # room for the lane's window and the link's own status and heartbeat messages, so a
        # lane message never waits in paho's queue
        client.max_inflight_messages_set(cfg.inflight_window + 4)
        client.max_queued_messages_set(0)
        client.on_pre_connect = self._on_pre_connect
        return client

    def _status_message(self, state: str) -> bytes:
        uptime = time.monotonic() - self._started_monotonic
        return self.signer.encode(status_payload(self.site, state, self.started_at, uptime))  # type: ignore[arg-type]

    def start(self) -> None:
        cfg = self.broker
        connect_persistent(self.client, cfg, cfg.keepalive, v5=cfg.protocol is MqttProtocol.V5)
        nodes = self.nodes
        logger.info(
            "mqtt %s: connecting to %s as %s (MQTT %s%s)%s",
            self.path,
            nodes[0],
            self.client_id,
            cfg.protocol.value,
            ", TLS" if cfg.tls else "",
            f"; nodes {', '.join(nodes)}" if len(nodes) > 1 else "",
        )

    async def stop(self, timeout: float = 3.0) -> None:
        """Say ``offline`` (retained) if connected, then disconnect and stop paho's thread.
        From here on none of this client's callbacks reach the handler."""
        self._retired = True
        if self.connected:
            info = self.client.publish(
                status_topic(self.site), self._status_message("offline"), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):  # link lost meanwhile
                await asyncio.to_thread(info.wait_for_publish, timeout)
        await self._disconnect()

    # --- use --------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        with self._session_lock:
            if not self.connected or self._open_session != self._session:
                raise NotConnectedError
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # QUEUE_SIZE too: paho dropped it
            raise NotConnectedError(mqtt.error_string(info.rc))
        return int(info.mid)

    # --- paho thread callbacks: hand everything to the loop ---------------------------------
    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        """Sign the Will anew before each (re)connect, so its time is that of the connection."""
        client.will_set(
            status_topic(self.site), self._status_message("offline"), qos=1, retain=True
        )

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        node = self._current_node()
        if reason.is_failure:
            logger.error("mqtt %s: %s refused the connection: %s", self.path, node, reason)
            self._to_loop(self._set_down, f"refused: {reason}", node)
            return
        with self._session_lock:  # no publish from the loop until it has seen this link-up
            self._session += 1
            session = self._session
            drop_session_messages(client)
        client.subscribe([(ack_topic(self.site), 1), (receipt_topic(self.site), 1)])
        client.publish(status_topic(self.site), self._status_message("online"), qos=1, retain=True)
        self._to_loop(self._session_up, session, node)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._to_loop(self.handler.on_puback, mid, not reason.is_failure, str(reason))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == ack_topic(self.site):
            handle = self.handler.on_ack_message
        elif message.topic == receipt_topic(self.site):
            handle = self.handler.on_receipt_message
        else:
            return
        try:  # even from a retired client: the broker counts the message as delivered to us
            self.loop.call_soon_threadsafe(handle, bytes(message.payload))
        except RuntimeError:
            logger.warning("event loop closed; a message on %s could not be handled", message.topic)

    # --- loop side --------------------------------------------------------------------------
    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a paho callback on the loop, unless this uplink was replaced meanwhile: a retired
        client's packet ids and link state mean nothing to the outbox any more."""
        if not self._retired:
            fn(*args)

    def _session_up(self, session: int, node: str) -> None:
        with self._session_lock:
            if session != self._session:
                return  # a later connect already replaced this one
            self._open_session = session
        self.node = node
        self._set_up()

    def _went_up(self) -> None:
        self.connects += 1
        self.last_change = time.time()
        nodes, where = self.nodes, self.node
        if len(nodes) > 1:
            where += f", node {nodes.index(self.node) + 1} of {len(nodes)}"
        logger.info("mqtt %s: police link up (%s)", self.path, where)
        self.handler.on_connected(self.address)

    def _log_down(self, reason: str, *, was_up: bool) -> None:
        then = f"; next: {self.next_node}" if self.next_node else ""
        if self._stopping:
            logger.info("mqtt %s: disconnected from the police broker (stopping)", self.path)
        elif was_up:
            logger.error(
                "mqtt %s: police link DOWN on %s: %s%s", self.path, self.node, reason, then
            )
        else:
            logger.warning("mqtt %s: cannot reach the police broker: %s%s", self.path, reason, then)

    def _went_down(self, reason: str) -> None:
        self.last_change = time.time()
        self.handler.on_disconnected(reason, self.node)
