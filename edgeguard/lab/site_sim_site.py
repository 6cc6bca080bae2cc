"""One simulated site of the site simulator (edgeguard/lab/site_sim.py): its MQTT session on
aiomqtt, its retained status and Will, its heartbeats and its alarms, each published until
PUBACK and, with receipts, again until the police platform's signed receipt. Its connection
is a :class:`~edgeguard.lab.site_sim_session.Session`.

Payloads and signatures come from the daemon's own code (``edgeguard.payloads``,
``edgeguard.signing.Signer.encode``, ``edgeguard.receipts.parse_receipt``), so a police
receiver checks them exactly as it checks a real site's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeguard.alarm_model import MessageType
from edgeguard.ids import iso_ms, utc_now, uuid7
from edgeguard.lab.site_sim_model import AlarmTrace, SimConfig, SimStats, SiteIdentity
from edgeguard.lab.site_sim_session import Session, drop, either
from edgeguard.payloads import (
    ack_topic,
    alarm_payload,
    alarm_topic,
    heartbeat_payload,
    heartbeat_topic,
    parse_police_ack,
    status_payload,
    status_topic,
)
from edgeguard.receipts import ReceiptError, parse_receipt, receipt_topic
from edgeguard.store import AlarmRecord

logger = logging.getLogger(__name__)
PAHO_LOG = logging.getLogger("edgeguard.lab.site_sim.paho")
# paho logs every lost connection as an error (a killed site's own included): each is counted in
# the stats and kept as the site's last_error instead
PAHO_LOG.setLevel(logging.CRITICAL)

LOCATION = {"id": "er", "label": "急诊分诊台", "building": "门诊楼", "floor": "1F", "zone": "ER"}
STOP_TIMEOUT_S = 5.0  # the offline status's PUBACK, then DISCONNECT's, at stop()
REFUSED_BACKOFF_S = 5.0  # a refused publish (MQTT 5 PUBACK failure) is tried again after this


@dataclass
class SiteContext:
    """What the sites of one process share."""

    config: SimConfig
    stats: SimStats
    police_keys: list[Ed25519PublicKey]
    ramp: Callable[[], contextlib.AbstractAsyncContextManager[None]]
    settled: Callable[[], None]  # an alarm is done (receipted, or PUBACKed without receipts)


class SimSite:
    """One hospital: a session kept up (reconnecting with back-off), heartbeats on demand of
    the engine's ticker, alarms raised on demand."""

    def __init__(self, identity: SiteIdentity, ctx: SiteContext) -> None:
        self.site = identity.site
        self.identity = identity
        self.ctx = ctx
        self.config = ctx.config
        self.signer = identity.signer()
        self.client_id = self.config.client_id.format(site=self.site)
        self.status_topic = status_topic(self.site)
        self.heartbeat_topic = heartbeat_topic(self.site)
        self.ack_topic = ack_topic(self.site)
        self.receipt_topic = receipt_topic(self.site)
        self.subscriptions = [(self.ack_topic, 1)]
        if self.config.subscribes_receipts:
            self.subscriptions.append((self.receipt_topic, 1))
        self.session: Session | None = None
        self._tls: ssl.SSLContext | None = None
        self._refused_logged = False
        self.killed = False
        self.silenced = False
        self.last_error: str | None = None
        self.seq = 0
        self.alarms: dict[tuple[str, int], AlarmTrace] = {}
        self._receipts: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._unacked: set[tuple[str, int]] = set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._up = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._log_id = 0
        self._log_hash = b""
        self._restart()

    def _restart(self) -> None:
        """The daemon (re)starts: new started_at, heartbeat counter from 1, a log entry."""
        self.started_at = utc_now()
        self._started = time.monotonic()
        self.counter = 0
        self._log(b"daemon.start")

    def _log(self, entry: bytes) -> None:
        """The head of a hash-chained event log, as the heartbeat reports it (log_head)."""
        self._log_id += 1
        self._log_hash = hashlib.sha256(self._log_hash + entry).digest()

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.site)

    async def stop(self) -> None:
        """A clean stop: `offline` (retained) and DISCONNECT, so no Will."""
        self._stopping = True
        for task in list(self._deliveries):
            task.cancel()
        session = self.session
        if session is not None and not self.killed:
            offline = session.publish(self.status_topic, self._status("offline"), 1, retain=True)
            self.ctx.stats.statuses += 1
            if offline is not None:
                await asyncio.wait(either(offline, session.lost), timeout=STOP_TIMEOUT_S,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                await asyncio.wait_for(session.client.__aexit__(None, None, None), STOP_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._deliveries, return_exceptions=True)

    def kill(self) -> None:
        """Gone without a word (power cut, crash): the socket closed without DISCONNECT."""
        self.killed = True
        self._up.clear()
        if self.session is not None:
            self.session.abort()

    async def revive(self) -> None:
        """Start again after kill(), as a restarted daemon: new started_at, counter from 1.
        Alarms not yet PUBACKed (or, with receipts, not yet receipted) are published again."""
        if not self.killed or self._stopping:
            return
        if self._task is not None:  # ending its session, or waiting to reconnect
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.killed = False
        self._restart()
        self.start()

    async def _run(self) -> None:
        delay = self.config.reconnect_min_s
        while not (self._stopping or self.killed):
            session = await self._connect()
            if session is None:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(2 * delay, self.config.reconnect_max_s)
                continue
            delay = self.config.reconnect_min_s
            if self.killed or self._stopping:
                session.abort()
            else:
                self._open(session)
            await self._serve(session)

    async def _connect(self) -> Session | None:
        async with self.ctx.ramp():
            if self._stopping or self.killed:
                return None
            if self.identity.cert is not None and self._tls is None:
                # made once (~1 ms of CPU), in a thread, kept for every reconnection
                self._tls = await asyncio.to_thread(tls_context, self.identity)
            client = self._client()
            entering = asyncio.ensure_future(client.__aenter__())
            try:
                await asyncio.shield(entering)
            except asyncio.CancelledError:  # stop() while connecting: finish, then let go
                with contextlib.suppress(Exception):
                    await entering
                drop(client)
                raise
            except Exception as exc:  # noqa: BLE001 - MqttError, or a bug: the site tries again
                drop(client)
                self.ctx.stats.connect_failures += 1
                self.last_error = str(exc) if isinstance(exc, aiomqtt.MqttError) else repr(exc)
                return None
        self.ctx.stats.connects += 1
        client.pending_calls_threshold = 1 << 30
        return Session(client, asyncio.get_running_loop())

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        v5 = cfg.protocol == "5"
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = cfg.session_expiry
        # the Will is signed anew for each connection, as the daemon does (docs/mqtt-api.md 4.2)
        will = aiomqtt.Will(self.status_topic, self._status("offline"), qos=1, retain=True)
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=None if v5 else False,
            clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=cfg.keepalive,
            timeout=cfg.connect_timeout_s,
            tls_context=self._tls,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            logger=PAHO_LOG,
        )

    def _open(self, session: Session) -> None:
        """As the daemon on CONNACK: subscribe to its acks (and receipts), say `online`. The
        broker handles them in order, before any alarm published on this connection."""
        session.paho.subscribe(self.subscriptions)
        session.publish(self.status_topic, self._status("online"), 1, retain=True)
        self.ctx.stats.statuses += 1
        self.session = session
        self._up.set()

    async def _serve(self, session: Session) -> None:
        try:
            async for message in session.client.messages:
                self._on_message(str(message.topic), message.payload)
        except aiomqtt.MqttError as exc:
            self.last_error = str(exc.__cause__ or exc)
        finally:
            if self.session is session:
                self.session = None
                self._up.clear()
            if not session.lost.done():
                session.lost.set_result(None)
            self.ctx.stats.subscribe_refused += session.subscribe_refused
            if not self._stopping:
                self.ctx.stats.links_lost += 1

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        uptime = time.monotonic() - self._started
        return self.signer.encode(status_payload(self.site, state, self.started_at, uptime))

    # --- heartbeats -------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """One heartbeat, if connected and not silenced (counted only when sent, as the
        daemon's: a gap in the counter while connected means lost heartbeats)."""
        session = self.session
        if session is None or self.silenced or self.killed:
            return
        self.counter += 1
        payload = heartbeat_payload(
            self.site,
            self.counter,
            uptime_s=time.monotonic() - self._started,
            open_alarms=len(self.alarms),
            pending=len(self._unacked),
            log_head=(self._log_id, self._log_hash.hex()),
        )
        body = self.signer.encode(payload)
        session.publish(self.heartbeat_topic, body, self.config.heartbeat_qos)
        self.ctx.stats.heartbeats += 1

    def keepalive(self) -> None:
        if self.session is not None:
            self.session.keepalive()

    # --- alarms -----------------------------------------------------------------------------
    def raise_alarm(self, source: str | None = None) -> AlarmTrace:
        """A new panic alarm (its own source, so every one is a `new` message with a new
        event_id), signed now and delivered in the background."""
        self.seq += 1
        source = source or f"button-{self.seq:04d}"
        now = utc_now()
        record = AlarmRecord(
            event_id=uuid7(),
            kind="panic",
            priority=1,
            source=source,
            location_key=str(LOCATION["id"]),
            location=dict(LOCATION),
            occurred_at=iso_ms(now),
            recorded_at=iso_ms(now),
            state="active",
            detail={"input": source, "simulated": True},
        )
        payload = alarm_payload(record, MessageType.NEW, self.seq, self.site, self.config.site_name)
        body = self.signer.encode(payload)
        trace = AlarmTrace(self.site, record.event_id, self.seq, source, time.monotonic(),
                           time.time())  # fmt: skip
        key = (record.event_id, self.seq)
        self.alarms[key] = trace
        self._unacked.add(key)
        self._log(f"alarm.new {record.event_id}".encode())
        if self.config.receipts:
            self._receipts[key] = asyncio.get_running_loop().create_future()
        self.ctx.stats.alarms += 1
        task = asyncio.get_running_loop().create_task(
            self._deliver(trace, alarm_topic(self.site, source), body)
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return trace

    async def _deliver(self, trace: AlarmTrace, topic: str, body: bytes) -> None:
        """Publish (the same bytes each time) until PUBACK; with receipts, again after
        resend_after_s without the receipt (each wait doubling up to resend_max_s, as the
        daemon's), for as long as it takes."""
        cfg, stats, key = self.config, self.ctx.stats, (trace.event_id, trace.seq)
        resends = 0
        while True:
            while self.session is None:
                await self._up.wait()
            session = self.session
            waiting = session.publish(topic, body, 1)
            trace.publishes += 1
            stats.alarm_publishes += 1
            if trace.published_mono is None:
                trace.published_mono, trace.published_wall = time.monotonic(), time.time()
            if waiting is None:  # not sent: the link is going down
                await asyncio.wait({session.lost}, timeout=1.0)
                continue
            await asyncio.wait(either(waiting, session.lost), timeout=cfg.puback_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if not waiting.done():
                session.forget(waiting)
                stats.resent_no_puback += 1
                continue
            if not waiting.result():
                stats.puback_refused += 1
                await asyncio.sleep(REFUSED_BACKOFF_S)
                continue
            self._unacked.discard(key)
            if trace.puback_mono is None:
                trace.puback_mono, trace.puback_wall = time.monotonic(), time.time()
                stats.alarms_pubacked += 1
                if not cfg.receipts:
                    self.ctx.settled()
            receipt = self._receipts.get(key)
            if receipt is None:
                return
            if not receipt.done():
                wait = min(cfg.resend_after_s * 2 ** min(resends, 20), cfg.resend_max_s)
                await asyncio.wait({receipt}, timeout=wait)
            if receipt.done():
                del self._receipts[key]
                return
            resends += 1
            stats.resent_no_receipt += 1
            self._unacked.add(key)

    # --- messages from the police -----------------------------------------------------------
    def _on_message(self, topic: str, payload: Any) -> None:
        body = payload if isinstance(payload, bytes) else str(payload).encode()
        if topic == self.receipt_topic:
            self._on_receipt(body)
        elif topic == self.ack_topic:
            try:
                parse_police_ack(body)
            except ValueError:
                self.ctx.stats.acks_rejected += 1
            else:
                self.ctx.stats.acks += 1

    def _on_receipt(self, body: bytes) -> None:
        stats = self.ctx.stats
        try:
            receipt = parse_receipt(body, self.ctx.police_keys, self.site)
        except ReceiptError as exc:
            stats.receipts_rejected += 1
            self.last_error = f"receipt refused: {exc}"
            if not self._refused_logged:  # once per site: the count is in the stats
                self._refused_logged = True
                logger.warning("%s: receipt refused: %s", self.site, exc)
            return
        trace = self.alarms.get((receipt.event_id, receipt.seq))
        if trace is None:
            stats.receipts_unknown += 1
            return
        stats.receipts += 1
        trace.receipts += 1
        if trace.receipt_mono is None:
            trace.receipt_mono, trace.receipt_wall = time.monotonic(), time.time()
            trace.stored_at = json.loads(body)["stored_at"]  # the police's clock, validated
            trace.receiver = receipt.receiver
            stats.alarms_receipted += 1
            self.ctx.settled()
        waiting = self._receipts.get((receipt.event_id, receipt.seq))
        if waiting is not None and not waiting.done():
            waiting.set_result(None)  # may come before its PUBACK: _deliver sees it then


def tls_context(identity: SiteIdentity) -> ssl.SSLContext:
    """The site's TLS client context, as the daemon's (paho ``tls_set``): the CA, its own
    certificate, the broker's host name checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(identity.ca_file))
    context.load_cert_chain(str(identity.cert), str(identity.cert_key))
    return context
