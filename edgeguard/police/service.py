"""PoliceService: the receiver on an asyncio loop, and the API the dashboard calls.

Everything runs on the service's loop: paho's callbacks arrive through the link's one bridge
(``call_soon_threadsafe``), and the store is only ever touched from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from typing import Any, Literal, get_args

from edgeguard.ids import iso_ms, utc_now
from edgeguard.payloads import ack_topic
from edgeguard.police.amqp_link import AmqpLink
from edgeguard.police.city_intake import CityIntake
from edgeguard.police.config import PoliceConfig
from edgeguard.police.feed import UpdateFeed
from edgeguard.police.handler import MessageHandler
from edgeguard.police.link import ActionError, BrokerLink, Link
from edgeguard.police.pg_listen import NotifyFeed
from edgeguard.police.receipts import ReceiptSender
from edgeguard.police.site_keys import SiteKeys
from edgeguard.police.store import open_store
from edgeguard.police.tracker import Tracker
from edgeguard.receiver import Receiver, load_site_keys

logger = logging.getLogger(__name__)

PoliceState = Literal["acknowledged", "dispatched", "resolved"]
POLICE_STATES: tuple[str, ...] = get_args(PoliceState)
ACK_TIMEOUT_S = 5.0
TICK_S = 1.0
HOUSEKEEPING_ROUNDS = 60  # every minute: orphan snapshots and old rows of the changes feed
CHANGES_KEPT = 100_000  # the live feed's table; a dashboard further behind starts afresh
MAX_BY = 100

REGISTRY_ROUNDS = 5  # the city receivers' registry, every 5 s

__all__ = ["ActionError", "PoliceService", "PoliceState"]


class PoliceService:
    def __init__(self, config: PoliceConfig) -> None:
        self.config = config
        self.store = open_store(config)
        self.tracker = Tracker(config.lost_after)
        # the store dedupes by (site, event_id, seq): nothing remembered per message here
        self.receiver = Receiver(load_site_keys(config.keys_dir), remember=0)
        site_keys = SiteKeys(self.receiver, config.keys_dir)
        names = {site: p.name for site, p in config.sites.items() if p.name}
        self.receipts = ReceiptSender(config, self._link_named)
        self.handler = MessageHandler(
            self.store,
            self.tracker,
            self.receiver,
            config.snapshots_path(),
            names,
            on_stored=self.receipts.send if self.receipts.enabled else None,
            site_keys=site_keys,
        )
        self.feed: UpdateFeed | NotifyFeed = (
            UpdateFeed(self.store, self._build_update)
            if config.postgres is None
            else NotifyFeed(config.postgres.dsn.get_secret_value(), self._build_update)
        )
        self.intake: CityIntake | None = None
        if config.amqp is not None and config.postgres is not None:
            self.intake = CityIntake(
                self.store,
                self.tracker,
                self.receiver,
                self.receipts,
                handler_args={
                    "snapshots_dir": config.snapshots_path(),
                    "names": names,
                    "site_keys": site_keys,
                },
                dsn=config.postgres.dsn.get_secret_value(),
            )
        self._link: Link | None = None  # the primary broker's link (or the cluster's)
        self._links: list[Link] = []  # with the secondary's, when configured
        self._started_at = iso_ms(utc_now())
        self._up: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self.intake is not None:
            await self._start_city(self.intake)
            return
        loop = asyncio.get_running_loop()
        self._seed_sites()
        self.store.prune_changes(CHANGES_KEPT)
        self.feed.last_id = self.store.last_change_id()
        primary = BrokerLink(self.config, _LinkEvents(self, "primary"), loop)
        self._link = primary
        self._links = [primary]
        if self.config.mqtt_secondary is not None:
            events = _LinkEvents(self, "secondary")
            secondary = self.config.mqtt_secondary
            self._links.append(
                BrokerLink(self.config, events, loop, mqtt=secondary, name="secondary")
            )
        primary.start()
        for link in self._links[1:]:
            assert isinstance(link, BrokerLink)
            link.start()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="police-supervise"),
            asyncio.create_task(self.feed.run(), name="police-feed"),
        ]
        logger.info(
            "police receiver %s: %d site key(s), database %s%s",
            self.config.receiver_id,
            len(self.receiver.keys),
            self.config.database,
            f", shared group {self.config.shared_group}" if self.config.shared_group else "",
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.receipts.stop()
        for link in self._links:
            assert isinstance(link, BrokerLink | AmqpLink)
            await link.stop()
        if self.intake is not None:
            await asyncio.to_thread(self.intake.close)
        self.feed.pump()
        self._stopped = True  # callbacks still queued on the loop are dropped
        logger.info("police receiver %s stopped", self.config.receiver_id)

    def close(self) -> None:
        """Close the database (after stop(); the web layer must be done with the store)."""
        self.store.close()

    async def _start_city(self, intake: CityIntake) -> None:
        """The city receiver: one of several on a RabbitMQ cluster and PostgreSQL."""
        assert self.config.amqp is not None
        await asyncio.to_thread(self._seed_sites)
        link = AmqpLink(
            self.config.amqp,
            self.config.receiver_id,
            alarms=intake.alarms,
            supervision=intake.supervision,
            on_link=self._on_city_link,
        )
        self._link = link
        self._links = [link]
        link.start()
        self._tasks = [
            asyncio.create_task(self._supervise_city(intake, link), name="police-supervise"),
            asyncio.create_task(self.feed.run(), name="police-feed"),
        ]
        logger.info(
            "police receiver %s (city): %d site key(s), %s, cluster %s",
            self.config.receiver_id,
            len(self.receiver.keys),
            self.store.db.name,
            ", ".join(self.config.amqp.nodes),
        )

    def _on_city_link(self, connected: bool) -> None:
        if self.intake is not None:
            self.intake.on_link(connected)
        if self.intake is not None and not self._stopped:
            self.intake.supervision_thread.submit(self._guarded, self.store.note_link)

    async def _supervise_city(self, intake: CityIntake, link: AmqpLink) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(TICK_S)
            rounds += 1
            try:
                await intake.tick(await link.supervision_lag())
                if rounds % REGISTRY_ROUNDS == 0:
                    intake.note_alive(self._registry_detail(intake, link))
                if rounds % HOUSEKEEPING_ROUNDS == 0:
                    await asyncio.to_thread(self.housekeeping)
            except Exception:
                logger.exception("site supervision failed this round")

    def _registry_detail(self, intake: CityIntake, link: AmqpLink) -> dict[str, Any]:
        return {
            "started_at": self._started_at,
            "node": link.node,
            "connected": link.connected,
            "supervisor": intake.lock.held,
            "stored": intake.stored,
            "batches": intake.batches,
            "receipts_sent": self.receipts.sent,
        }

    def _seed_sites(self) -> None:
        """Every site with a key or a policy has a row (one transaction), and the tracker
        starts from what the database says."""
        known = {row["id"]: row for row in self.store.sites()}
        missing = []
        for site in sorted({*self.receiver.keys, *self.config.sites}):
            policy = self.config.sites.get(site)
            if site not in known or (policy and policy.name):
                missing.append((site, policy.name if policy else None))
        self.store.ensure_sites(missing)
        for row in self.store.sites():
            self.tracker.seed(row["id"], row["state"], row["reason"])

    async def _supervise(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(TICK_S)
            rounds += 1
            try:
                for update in self.tracker.tick():
                    self.handler.apply(update)
                if rounds % HOUSEKEEPING_ROUNDS == 0:
                    self.housekeeping()
                self.feed.pump()
            except Exception:
                logger.exception("site supervision failed this round")

    def _link_named(self, name: str) -> Link | None:
        """The link a message came on if it is up, else any link that is up."""
        up = [link for link in self._links if link.connected]
        return next((link for link in up if link.name == name), up[0] if up else None)

    def housekeeping(self) -> None:
        """Snapshots of alarms never received go, and the changes feed keeps its last rows:
        without this a receiver that runs for months grows its database without bound."""
        self.handler.prune_orphans()
        self.store.prune_changes(CHANGES_KEPT)

    # --- the link's events (on the loop) ----------------------------------------------------
    def on_link(self, connected: bool, name: str = "primary") -> None:
        """Supervision runs while at least one broker link is up: the first link up gives
        every site a full timeout, the last link down suspends it."""
        was_up = bool(self._up)
        if connected:
            self._up.add(name)
        else:
            self._up.discard(name)
        if self._up and not was_up:
            self.tracker.connected()
        elif was_up and not self._up:
            self.tracker.disconnected()
        self._guarded(self.store.note_link)

    def on_message(
        self, topic: str, body: bytes, retained: bool, arrived: float, link: str = "primary"
    ) -> bool:
        """True once the message is done with (stored, or rejected and recorded): the link
        acks it. False when the database or the disk refused it: the link tries again. A
        message that makes the handler fail otherwise (a bug) is logged, recorded as a warning
        and dropped: retried, it would hold one of the broker's in-flight slots for ever."""
        if self._stopped:
            return False
        try:
            self.handler.handle(topic, body, retained, arrived, link)
        except (sqlite3.Error, OSError):
            logger.exception("police: message on %s not stored", topic)
            return False
        except Exception as exc:
            logger.exception("police: message on %s could not be handled: dropped", topic)
            site = topic.split("/")[1] if topic.count("/") >= 2 else "?"
            text = f"could not be handled (dropped): {exc!r}"
            return self._guarded(self.handler.warn, site, topic, text)
        self._pump()
        return True

    def _guarded(self, fn: Any, *args: Any) -> bool:
        """Run ``fn``; False (logged) if it failed or the service has stopped."""
        if self._stopped:
            return False
        try:
            fn(*args)
        except Exception:
            logger.exception("police: failed to handle an event")
            return False
        self._pump()
        return True

    def _pump(self) -> None:
        try:
            self.feed.pump()
        except Exception:  # the event is stored: the feed's own poll catches up
            logger.exception("police: live updates failed")

    # --- the dashboard's API ----------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """Live updates: {"type": "alarm"|"site"|"warning"|"link", "data": {...}}."""
        return self.feed.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.feed.unsubscribe(queue)

    def link(self) -> dict[str, Any]:
        """The broker link: connected, since (UTC), last_error, broker, receiver_id; with a
        second broker, the first link that is up (the primary if none is) and ``links``:
        every link's own."""
        if len(self._links) > 1:
            infos = [link.info() for link in self._links]
            shown = next((info for info in infos if info["connected"]), infos[0])
            return {**shown, "links": infos}
        if self._link is None:
            return {
                "connected": False,
                "since": None,
                "last_error": "not started",
                "broker": f"{self.config.mqtt.host}:{self.config.mqtt.effective_port()}",
                "receiver_id": self.config.receiver_id,
                "session_present": None,
            }
        return self._link.info()

    def sites(self) -> list[dict[str, Any]]:
        """The store's site rows plus live supervision: heartbeat_age_s, lost_after_s and
        supervised (False while the broker link is down: states are not current then)."""
        return [self._live(row) for row in self.store.sites()]

    def site(self, site: str) -> dict[str, Any] | None:
        row = self.store.site(site)
        return None if row is None else self._live(row)

    def _live(self, row: dict[str, Any]) -> dict[str, Any]:
        age = self.tracker.heartbeat_age(row["id"])
        return {
            **row,
            "heartbeat_age_s": None if age is None else round(age, 1),
            "lost_after_s": self.config.lost_after(row["id"]),
            "supervised": self.tracker.link_up,
        }

    async def act(self, event_id: str, state: PoliceState, by: str) -> dict[str, Any]:
        """Publish the police's ack (docs/mqtt-api.md 4.5) and wait for the broker's PUBACK;
        record the action and return the updated alarm row. ActionError says what failed."""
        if state not in POLICE_STATES:
            raise ActionError(f"state must be one of {', '.join(POLICE_STATES)}")
        by = by.strip() if isinstance(by, str) else ""
        if not 1 <= len(by) <= MAX_BY or not by.isprintable():
            raise ActionError(f"`by` must be 1-{MAX_BY} printable characters")
        alarm = (
            await asyncio.to_thread(self.store.alarm_row, event_id)
            if isinstance(event_id, str)
            else None
        )
        if alarm is None:
            raise ActionError(f"unknown alarm {str(event_id)[:80]!r}")
        link = next((ln for ln in self._links if ln.connected), self._link)
        if link is None:
            raise ActionError("the receiver is not started")
        at = iso_ms(utc_now())
        ack = {"event_id": event_id, "state": state, "by": by, "at": at}
        body = json.dumps(ack, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            await link.publish(ack_topic(alarm["site"]), body, ACK_TIMEOUT_S)
        except ActionError as exc:
            logger.error("police %s of %s by %s failed: %s", state, event_id, by, exc)
            await asyncio.to_thread(
                self.store.record_action, event_id, state, by, ok=False, error=str(exc), at=at
            )
            self.feed.pump()
            raise
        logger.info("police %s %s by %s (PUBACK received)", state, event_id, by)
        await asyncio.to_thread(self.store.record_action, event_id, state, by, ok=True, at=at)
        self.feed.pump()
        row = await asyncio.to_thread(self.store.alarm_row, event_id)
        assert row is not None
        return row

    def _build_update(self, what: str, key: str) -> dict[str, Any] | None:
        if what == "alarm":
            return self.store.alarm_row(key)
        if what == "site":
            return self.site(key)
        if what == "warning":
            return self.store.warning(int(key))
        if what == "link":
            return self.link()
        return None


class _LinkEvents:
    """One broker link's events, named, into the service (the LinkHandler of that link)."""

    def __init__(self, service: PoliceService, name: str) -> None:
        self.service = service
        self.name = name

    def on_link(self, connected: bool) -> None:
        self.service.on_link(connected, self.name)

    def on_message(self, topic: str, body: bytes, retained: bool, arrived: float) -> bool:
        return self.service.on_message(topic, body, retained, arrived, self.name)
