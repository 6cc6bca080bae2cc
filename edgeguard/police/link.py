"""The receiver's MQTT link (paho-mqtt 2.x, MQTT 5): fixed client id, Clean Start = 0 with a
session expiry (alarms are queued at the broker while the receiver is away), TLS client
certificate, keepalive <= 8 s, reconnect with exponential back-off (paho's network thread,
``reconnect_delay_set``).

On the paho base the site's uplinks use too (``edgeguard/uplink/paho_link.py``): paho's
callbacks run in its network thread and each is handed to the event loop through ``_to_loop``
(``call_soon_threadsafe``), the one bridge; nothing else runs in that thread.

Messages are acknowledged by hand (``manual_ack``): the PUBACK of a QoS 1 message leaves only
once the handler says it is stored, or rejected and recorded, so a receiver killed in between
gets it again from its persistent session. A message the handler could not store (the
database locked, the disk full) is retried every ``RETRY_S`` and stays unacknowledged until
stored; when the connection drops first, the broker redelivers it on the next one instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.config import PoliceConfig, PoliceMqttConfig
from edgeguard.uplink.paho_link import PahoLink, connect_persistent

logger = logging.getLogger(__name__)

RETRY_S = 1.0  # a message the handler could not store is handed to it again after this


class ActionError(Exception):
    """A police action could not be carried out; the message says why, for the dispatcher."""


class Link(Protocol):
    """A receiver's link to the sites: an MQTT broker link, or the city's AMQP link."""

    name: str
    connected: bool

    def info(self) -> dict[str, Any]: ...

    async def publish(self, topic: str, payload: bytes, timeout: float) -> None: ...


class LinkHandler(Protocol):
    """Receives the link's events on the event loop."""

    def on_link(self, connected: bool) -> None: ...

    def on_message(self, topic: str, body: bytes, retained: bool, arrived: float) -> bool:
        """True when the message is done with (stored, or rejected and recorded): it may be
        acknowledged. False: not stored, hand it over again later."""
        ...


@dataclass(frozen=True)
class _Delivery:
    """One received message, with what acknowledging it needs."""

    topic: str
    body: bytes
    retained: bool
    arrived: float
    mid: int
    qos: int
    connection: int  # which connection it came on: its mid means nothing on another


def subscriptions(group: str | None) -> list[str]:
    """Alarms and snapshots through the shared group; status, heartbeat and device topics
    never shared: every receiver must see every site's heartbeats, and retained messages are
    not delivered to shared subscriptions (MQTT 5, 4.8.2)."""
    if group is None:
        return ["edgeguard/+/#"]
    return [
        f"$share/{group}/edgeguard/+/alarm/#",
        f"$share/{group}/edgeguard/+/snapshot/#",
        "edgeguard/+/status",
        "edgeguard/+/heartbeat",
        "edgeguard/+/device/#",
    ]


class BrokerLink(PahoLink):
    def __init__(
        self,
        config: PoliceConfig,
        handler: LinkHandler,
        loop: asyncio.AbstractEventLoop,
        *,
        mqtt: PoliceMqttConfig | None = None,
        name: str = "primary",
    ) -> None:
        """``mqtt``: the broker of this link (default ``config.mqtt``); ``name`` for logs."""
        super().__init__(loop)
        self.config = config
        self.mqtt = mqtt if mqtt is not None else config.mqtt
        self.name = name
        self.handler = handler
        self.since = iso_ms(utc_now())
        self.session_present: bool | None = None
        self._pubacks: dict[int, asyncio.Future[ReasonCode]] = {}
        self._connection = 0  # counted in paho's thread, at each accepted CONNACK
        self.client = self._make_client()

    @property
    def broker(self) -> str:
        """The node this link is on, or tries next (`mqtt.host:port` without `nodes`)."""
        return self._current_node()

    def _make_client(self) -> mqtt.Client:
        cfg = self.mqtt
        client = self._new_client(
            cfg,
            self.config.receiver_id,
            v5=True,
            reconnect_max=cfg.reconnect_max,
            manual_ack=True,
            nodes=cfg.addresses(),
        )
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        cfg = self.mqtt
        connect_persistent(self.client, cfg, cfg.keepalive)
        logger.info(
            "police: connecting to %s as %s (MQTT 5%s)",
            self.broker,
            self.config.receiver_id,
            ", TLS" if cfg.tls else "",
        )

    async def stop(self) -> None:
        await self._disconnect()
        for future in self._pubacks.values():
            future.cancel()
        self._pubacks.clear()

    def info(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "since": self.since,
            "last_error": self.last_error,
            "broker": self.broker,
            "receiver_id": self.config.receiver_id,
            "session_present": self.session_present,
            "name": self.name,
        }

    # --- publishing acks (on the loop) ------------------------------------------------------
    async def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        """Publish at QoS 1, not retained, and wait for the broker's PUBACK."""
        if not self.connected:
            raise ActionError(f"police broker link down ({self.last_error or 'not connected'})")
        info = self.client.publish(topic, payload, qos=1, retain=False)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ActionError(f"not sent: {mqtt.error_string(info.rc)}")
        future: asyncio.Future[ReasonCode] = self.loop.create_future()
        self._pubacks[info.mid] = future
        try:
            reason = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ActionError(
                f"no PUBACK from the broker within {timeout:g} s (the ack may still be "
                "delivered: resending it is safe)"
            ) from None
        finally:
            self._pubacks.pop(info.mid, None)
        if reason.is_failure:
            raise ActionError(f"the broker refused the ack: {reason}")

    # --- paho thread: hand everything to the loop -------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            self._to_loop(self._set_down, f"refused: {reason}")
            return
        self._connection += 1
        client.subscribe([(topic, 1) for topic in subscriptions(self.config.shared_group)])
        self._to_loop(self._session_up, bool(getattr(flags, "session_present", False)))

    def _on_subscribe(
        self, _client: mqtt.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._to_loop(logger.error, "police: broker refused subscriptions: %s", refused)

    def _on_publish(
        self, _client: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any
    ) -> None:
        self._to_loop(self._puback, mid, reason)

    def _on_message(self, _client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()  # supervision times arrival, on this receiver's clock
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker should refuse such a topic
            topic = "edgeguard/?/invalid-topic"
        delivery = _Delivery(
            topic,
            bytes(message.payload),
            message.retain,
            arrived,
            message.mid,
            message.qos,
            self._connection,
        )
        self._to_loop(self._deliver, delivery)

    # --- loop side --------------------------------------------------------------------------
    def _deliver(self, message: _Delivery) -> None:
        """Hand a message to the handler; acknowledge it once the handler is done with it."""
        if self._stopping or message.connection != self._connection:
            return  # unacknowledged: the broker delivers it again on the next connection
        done = self.handler.on_message(
            message.topic, message.body, message.retained, message.arrived
        )
        if message.qos == 0:
            return  # nothing to acknowledge, nothing queued to get it back from
        if done:
            self.client.ack(message.mid, message.qos)
            return
        logger.warning(
            "police: message on %s not stored: trying again in %g s", message.topic, RETRY_S
        )
        self.loop.call_later(RETRY_S, self._deliver, message)

    def _puback(self, mid: int, reason: ReasonCode) -> None:
        future = self._pubacks.get(mid)
        if future is not None and not future.done():
            future.set_result(reason)

    def _session_up(self, session_present: bool) -> None:
        self.session_present = session_present
        self._set_up()

    def _went_up(self) -> None:
        self.since = iso_ms(utc_now())
        logger.info(
            "police: broker link up (%s, session %s)",
            self.broker,
            "resumed" if self.session_present else "new",
        )
        self.handler.on_link(True)

    def _log_down(self, reason: str, *, was_up: bool) -> None:
        if self._stopping:
            logger.info("police: disconnected from the broker (stopping)")
        elif was_up:
            logger.error("police: broker link DOWN: %s", reason)
        else:
            logger.warning("police: cannot reach the broker %s: %s", self.broker, reason)

    def _went_down(self, reason: str) -> None:
        self.since = iso_ms(utc_now())
        self.handler.on_link(False)
