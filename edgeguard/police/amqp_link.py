"""The city platform's receiver link: AMQP (aio-pika) to a RabbitMQ cluster whose MQTT plugin
the sites publish to (docs/city-platform.md).

The MQTT plugin routes a site's PUBLISH to ``amq.topic`` with the topic's ``/`` as ``.``, so an
AMQP queue bound there receives it. Two queues per receiver:

* ``{prefix}alarms``: one durable **quorum** queue shared by every receiver (competing
  consumers), bound to the sites' alarm and snapshot topics. A receiver takes up to
  ``prefetch`` messages, stores them in transactions of half that many and acknowledges them
  after the commit; a receiver that dies before that leaves them unacknowledged and RabbitMQ
  gives them to another. Stored twice is stored once (the database's unique key).
* ``{prefix}supervision.{receiver id}``: this receiver's own (exclusive, bounded) queue of
  every site's status, heartbeats and device states: every receiver sees all of them, so the
  one that takes over supervision already knows every site (edgeguard/police/leader.py).

The link tries its nodes in turn and moves to the next when its connection fails. Acks and
receipts go out to ``amq.topic`` (the site's MQTT subscription receives them) with publisher
confirms: ``publish`` returns once the cluster has the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.config import AmqpConfig
from edgeguard.police.link import ActionError

logger = logging.getLogger(__name__)

ALARM_KEYS = ("edgeguard.*.alarm.#", "edgeguard.*.snapshot.#")
SUPERVISION_KEYS = ("edgeguard.*.status", "edgeguard.*.heartbeat", "edgeguard.*.device.#")
SUPERVISION_MAX = 200_000  # messages; beyond, the oldest go (heartbeats age out anyway)
SUPERVISION_PREFETCH = 4000
CONNECT_TIMEOUT_S = 10.0
ALARM_BATCH_WAIT_S = 0.01  # a lone alarm waits this long for company before it is stored
SUPERVISION_BATCH_WAIT_S = 0.25
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # a batch the database refused, tried again after


@dataclass(frozen=True)
class Delivery:
    """One message from a queue: its MQTT topic, body and arrival (monotonic)."""

    topic: str
    body: bytes
    arrived: float


# A batch's handler: True once it is done with (stored, or rejected and recorded)
BatchSink = Callable[[list[Delivery]], Awaitable[bool]]


def mqtt_topic(routing_key: str) -> str:
    """The MQTT topic of a routing key (site ids hold no dot, so this is exact)."""
    return routing_key.replace(".", "/")


class _Batcher:
    """Collects one channel's deliveries and hands them to ``sink`` in batches, one batch at
    a time; acknowledges a batch (one ``multiple`` ack) once the sink is done with it, and
    keeps a refused batch (unacknowledged: nothing is lost if this receiver dies) to try it
    again."""

    def __init__(self, sink: BatchSink, max_size: int, max_wait: float) -> None:
        self.sink = sink
        self.max_size = max_size
        self.max_wait = max_wait
        self.pending: list[Any] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def add(self, message: Any) -> None:
        self.pending.append((message, time.monotonic()))
        if len(self.pending) == 1 or len(self.pending) >= self.max_size:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self.pending) < self.max_size:
                await asyncio.sleep(self.max_wait)
            batch, self.pending = self.pending[: self.max_size], self.pending[self.max_size :]
            if self.pending:
                self._wake.set()
            if batch:
                try:
                    await self._deliver(batch)
                except Exception:
                    logger.exception("a batch of %d message(s) was not acknowledged", len(batch))

    async def _deliver(self, batch: list[tuple[Any, float]]) -> None:
        deliveries = [
            Delivery(mqtt_topic(m.routing_key or ""), m.body, arrived) for m, arrived in batch
        ]
        for attempt in range(1_000_000):
            if await self.sink(deliveries):
                await batch[-1][0].ack(multiple=True)
                return
            await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])

    def oldest_age(self) -> float:
        """Seconds the oldest message not yet handed over has waited here."""
        return time.monotonic() - self.pending[0][1] if self.pending else 0.0

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class AmqpLink:
    """The receiver's connection to the cluster, on the event loop. ``on_link`` is told when
    it comes up or goes down; ``alarms`` and ``supervision`` get the batches."""

    name = "amqp"

    def __init__(
        self,
        config: AmqpConfig,
        receiver_id: str,
        *,
        alarms: BatchSink,
        supervision: BatchSink,
        on_link: Callable[[bool], None],
    ) -> None:
        self.config = config
        self.receiver_id = receiver_id
        self.alarm_sink = alarms
        self.supervision_sink = supervision
        self.on_link = on_link
        self.connected = False
        self.node: str | None = None
        self.since: str | None = None
        self.last_error: str | None = None
        self._exchange: Any = None
        self._connection: Any = None
        self._supervision_queue: Any = None
        self._supervision_batcher: _Batcher | None = None
        self._probe_channel: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alarm_queue(self) -> str:
        return f"{self.config.queue_prefix}alarms"

    @property
    def supervision_queue(self) -> str:
        return f"{self.config.queue_prefix}supervision.{self.receiver_id}"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="police-amqp")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def info(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "since": self.since,
            "last_error": self.last_error,
            "broker": self.node or ", ".join(self.config.nodes),
            "receiver_id": self.receiver_id,
            "session_present": None,
        }

    async def publish(self, topic: str, payload: bytes, timeout: float) -> None:
        """Publish to the site's MQTT topic, persistent, and wait for the cluster's confirm."""
        import aio_pika

        exchange = self._exchange
        if not self.connected or exchange is None:
            raise ActionError(f"cluster link down ({self.last_error or 'not connected'})")
        message = aio_pika.Message(payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await exchange.publish(
                message, routing_key=topic.replace("/", "."), mandatory=False, timeout=timeout
            )
        except TimeoutError:
            raise ActionError(
                f"no confirm from the cluster within {timeout:g} s (resending is safe)"
            ) from None
        except Exception as exc:
            raise ActionError(f"not confirmed by the cluster: {exc!r}") from exc

    async def supervision_lag(self) -> tuple[int, float] | None:
        """How far behind this receiver's supervision is: the messages still waiting in its
        queue at the broker, and the age (s) of the oldest one it holds but has not handed
        over; None while the link is down or the broker does not answer.

        Asked on a channel of its own: aiormq closes a channel whose RPC times out, and the
        consuming channels must never be the ones closed."""
        batcher, connection = self._supervision_batcher, self._connection
        if batcher is None or connection is None or not self.connected:
            return None
        try:
            if self._probe_channel is None or self._probe_channel.is_closed:
                self._probe_channel = await connection.channel()
            declared = await self._probe_channel.declare_queue(
                self.supervision_queue, passive=True, timeout=5
            )
        except Exception:  # noqa: BLE001 - a busy broker: unknown this round
            return None
        return int(declared.declaration_result.message_count or 0), batcher.oldest_age()

    # --- the connection's life --------------------------------------------------------------
    async def _run(self) -> None:
        for attempt in range(1_000_000_000):
            node = self.config.nodes[attempt % len(self.config.nodes)]
            try:
                await self._session(node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: the next node
                self.last_error = f"{node}: {exc!r}"[:300]
                logger.error("police cluster link %s: %s", node, self.last_error)
            finally:
                self._down()
            await asyncio.sleep(self.config.reconnect_s)

    async def _session(self, node: str) -> None:
        import aio_pika

        connection = await aio_pika.connect(
            self._url(node),
            ssl_context=self._ssl_context(),
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": f"edgeguard-police {self.receiver_id}"},
        )
        self._connection = connection
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.close_callbacks.add(
            lambda *_: None if closed.done() else closed.set_result(None)
        )
        batchers: list[_Batcher] = []
        try:
            batchers = await self._consume(connection, closed)
            self._up(node)
            await closed
            self.last_error = f"{node}: connection (or one of its channels) closed"
        finally:
            for batcher in batchers:
                await batcher.close()
            with contextlib.suppress(Exception):
                await connection.close()

    async def _consume(self, connection: Any, closed: asyncio.Future[None]) -> list[_Batcher]:
        """Declare, bind and consume; a consuming channel that closes (the broker closed it)
        ends the session as a lost connection does: the next one starts afresh."""

        def channel_closed(*_: Any) -> None:
            if not closed.done():
                closed.set_result(None)

        alarm_channel = await connection.channel()
        await alarm_channel.set_qos(prefetch_count=self.config.prefetch)
        alarms = await alarm_channel.declare_queue(
            self.alarm_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for key in ALARM_KEYS:
            await alarms.bind("amq.topic", routing_key=key)
        supervision_channel = await connection.channel()
        await supervision_channel.set_qos(prefetch_count=SUPERVISION_PREFETCH)
        supervision = await supervision_channel.declare_queue(
            self.supervision_queue,
            exclusive=True,
            arguments={"x-max-length": SUPERVISION_MAX, "x-overflow": "drop-head"},
        )
        for key in SUPERVISION_KEYS:
            await supervision.bind("amq.topic", routing_key=key)
        publish_channel = await connection.channel(publisher_confirms=True)
        self._exchange = await publish_channel.get_exchange("amq.topic", ensure=False)
        self._supervision_queue = supervision
        # half the prefetch per batch: the next batch arrives while this one is stored
        alarm_batcher = _Batcher(
            self.alarm_sink, max(1, self.config.prefetch // 2), ALARM_BATCH_WAIT_S
        )
        supervision_batcher = _Batcher(
            self.supervision_sink, SUPERVISION_PREFETCH // 2, SUPERVISION_BATCH_WAIT_S
        )
        await alarms.consume(alarm_batcher.add)
        await supervision.consume(supervision_batcher.add)
        self._supervision_batcher = supervision_batcher
        for channel in (alarm_channel, supervision_channel, publish_channel):
            channel.close_callbacks.add(channel_closed)
        return [alarm_batcher, supervision_batcher]

    def _up(self, node: str) -> None:
        self.connected, self.node, self.since = True, node, iso_ms(utc_now())
        self.last_error = None
        logger.info("police cluster link up: %s (queues %s, %s)", node, self.alarm_queue,
                    self.supervision_queue)  # fmt: skip
        self.on_link(True)

    def _down(self) -> None:
        self._exchange = None
        self._supervision_queue = None
        self._supervision_batcher = None
        self._probe_channel = None
        self._connection = None
        if self.connected:
            self.connected, self.since = False, iso_ms(utc_now())
            logger.error("police cluster link down: %s", self.last_error)
            self.on_link(False)

    def _url(self, node: str) -> str:
        host, _, port = node.rpartition(":")
        password = self.config.password.get_secret_value() if self.config.password else ""
        scheme = "amqps" if self.config.tls is not None else "amqp"
        user = urllib.parse.quote(self.config.username, safe="")
        vhost = urllib.parse.quote(self.config.vhost, safe="")
        return f"{scheme}://{user}:{urllib.parse.quote(password, safe='')}@{host}:{port}/{vhost}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if tls is None:
            return None
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        context.check_hostname = tls.check_hostname
        return context
