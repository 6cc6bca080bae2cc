"""What a city receiver does with the batches of its AMQP link (edgeguard/police/amqp_link.py),
off the event loop.

* Alarm batches (the shared queue) run on a thread of their own: verified and stored in one
  transaction (``MessageHandler.handle_alarm_batch``); the link acknowledges them only after
  that commit, and the receipts go out once it has. A database error leaves the batch
  unacknowledged, to be tried again (or taken by another receiver if this one dies): the
  alarms wait in the queue. A batch that trips a bug is handled again one message at a time,
  so that only the message at fault is dropped (with a warning).
* Supervision batches (status, heartbeats, device states of every site) run on another single
  thread with the tracker: every receiver keeps every site's state in memory, and only the
  supervisor (edgeguard/police/leader.py) writes it, in one transaction per batch, and ticks
  the tracker to decide "site lost". It does not decide while its own supervision lags
  (messages waiting at the broker, or held here for more than a second or two) nor while the
  broker delivers every site's heartbeats late (ingress_lag.py): a heartbeat not yet read, or
  not yet passed on, is not a silent site.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.amqp_link import Delivery
from edgeguard.police.handler import MessageHandler
from edgeguard.police.ingress_lag import IngressLag
from edgeguard.police.leader import SupervisorLock
from edgeguard.police.receipts import ReceiptSender
from edgeguard.police.store import PoliceStore
from edgeguard.police.tracker import SiteUpdate, Tracker
from edgeguard.receiver import Receiver

logger = logging.getLogger(__name__)

MAX_BACKLOG = 2000  # supervision messages waiting at the broker beyond which nobody is lost
MAX_HELD_S = 2.0  # ... or held here, unread, for longer than this
MAX_INGRESS_S = 3.0  # ... or heartbeats reaching the platform this much later than usual
REGISTRY_EVERY_S = 5.0


def database_errors() -> tuple[type[BaseException], ...]:
    """What a store raises when the database (not the message) is at fault."""
    errors: list[type[BaseException]] = [sqlite3.Error, OSError]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - a single station without the city extra
        pass
    return tuple(errors)


class SupervisionWrites:
    """The supervision handler's store: site rows are kept, merged per site, and written in one
    transaction by ``flush`` when this receiver is the supervisor; device states and warnings
    are written at once by the supervisor only (every receiver sees the same messages)."""

    def __init__(self, store: PoliceStore, lock: SupervisorLock) -> None:
        self.store = store
        self.lock = lock
        self.pending: dict[str, tuple[dict[str, Any], bool]] = {}

    def update_site(self, site: str, values: dict[str, Any], *, announce: bool = True) -> None:
        old_values, old_announce = self.pending.get(site, ({}, False))
        self.pending[site] = ({**old_values, **values}, old_announce or announce)

    def record_device(self, site: str, payload: dict[str, Any]) -> None:
        if self.lock.held:
            self.store.record_device(site, payload)

    def add_warning(self, site: str | None, topic: str | None, text: str) -> int:
        return self.store.add_warning(site, topic, text) if self.lock.held else 0

    def flush(self) -> int:
        """Write what is pending if this receiver supervises (else forget it); the rows."""
        pending, self.pending = self.pending, {}
        if not self.lock.held or not pending:
            return 0
        self.store.update_sites([(site, v, a) for site, (v, a) in pending.items()])
        return len(pending)


class CityIntake:
    def __init__(
        self,
        store: PoliceStore,
        tracker: Tracker,
        receiver: Receiver,
        receipts: ReceiptSender,
        *,
        handler_args: dict[str, Any],
        dsn: str,
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.receipts = receipts
        self.lock = SupervisorLock(dsn, store.receiver)
        self.writes = SupervisionWrites(store, self.lock)
        self.ingress = IngressLag()
        self.alarm_handler = MessageHandler(store, tracker, receiver, **handler_args)
        # the handler calls only update_site, record_device and add_warning on this store
        self.supervision_handler = MessageHandler(
            cast(PoliceStore, self.writes),
            tracker,
            receiver,
            heartbeat_delay=self.ingress.heartbeat,
            **handler_args,
        )
        self.alarm_thread = ThreadPoolExecutor(1, thread_name_prefix="police-alarms")
        self.supervision_thread = ThreadPoolExecutor(1, thread_name_prefix="police-supervision")
        self.db_errors = database_errors()
        self.stored = 0
        self.batches = 0
        self.suspended = False

    # --- alarms -----------------------------------------------------------------------------
    async def alarms(self, batch: list[Delivery]) -> bool:
        loop = asyncio.get_running_loop()
        messages = [(d.topic, d.body, "amqp") for d in batch]
        try:
            stored = await loop.run_in_executor(self.alarm_thread, self._store_alarms, messages)
        except self.db_errors as exc:
            logger.error("police: %d message(s) not stored, kept to try again: %s", len(batch), exc)
            return False
        for site, payload, link in stored:
            self.receipts.send(site, payload, link)
        self.stored += len(stored)
        self.batches += 1
        return True

    def _store_alarms(self, messages: list[tuple[str, bytes, str]]) -> list[Any]:
        try:
            return self.alarm_handler.handle_alarm_batch(messages)
        except self.db_errors:
            raise
        except Exception:
            logger.exception("police: a batch failed: handled again one message at a time")
        stored: list[Any] = []
        for message in messages:
            try:
                stored += self.alarm_handler.handle_alarm_batch([message])
            except self.db_errors:
                raise
            except Exception as exc:
                logger.exception("police: message on %s could not be handled: dropped", message[0])
                site = message[0].split("/")[1] if message[0].count("/") >= 2 else "?"
                self.alarm_handler.warn(
                    site, message[0], f"could not be handled (dropped): {exc!r}"
                )
        return stored

    # --- supervision ------------------------------------------------------------------------
    async def supervision(self, batch: list[Delivery]) -> bool:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.supervision_thread, self._supervise, batch)
        return True  # supervision is of the moment: a write that failed is not kept

    def _supervise(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            try:
                self.supervision_handler.handle(
                    delivery.topic, delivery.body, False, delivery.arrived, "amqp"
                )
            except Exception:
                logger.exception("police: supervision message on %s not handled", delivery.topic)
        self._flush()

    def _flush(self) -> None:
        try:
            self.writes.flush()
        except self.db_errors as exc:
            logger.error("police: supervision not written this round: %s", exc)

    async def tick(self, lag: tuple[int, float] | None) -> None:
        """Every second, on the supervision thread: hold or take the supervisor lock, then (as
        supervisor, and not lagging) decide which sites are lost."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.supervision_thread, self._tick, lag)

    def _tick(self, lag: tuple[int, float] | None) -> None:
        was_supervisor = self.lock.held
        if not self.lock.check():
            return
        if not was_supervisor:
            self._take_over()
        late = self.ingress.excess_s()
        lagging = lag is None or lag[0] > MAX_BACKLOG or lag[1] > MAX_HELD_S or late > MAX_INGRESS_S
        if lagging != self.suspended:
            self.suspended = lagging
            if not lagging:  # what arrived late was not silence: every site's timer anew
                self.tracker.connected()
            logger.warning(
                "supervision %s (%s; heartbeats %.1f s later than usual)",
                "suspended: the platform is behind" if lagging else "resumed",
                "link down" if lag is None else f"{lag[0]} waiting, oldest held {lag[1]:.1f} s",
                late,
            )
        if not lagging:
            for update in self.tracker.tick():
                self.supervision_handler.apply(update)
        self._flush()

    def _take_over(self) -> None:
        """A new supervisor writes down what it knows that the database does not say."""
        try:
            known = {row["id"]: row for row in self.store.sites()}
        except self.db_errors as exc:
            logger.error("police: the new supervisor cannot read the sites: %s", exc)
            return
        for site, view in self.tracker.views().items():
            row = known.get(site)
            if row is None or (row["state"], row["reason"], row["alert"]) != (
                view.state,
                view.reason,
                view.alert,
            ):
                self.supervision_handler.apply(view)

    def on_link(self, connected: bool) -> None:
        """From the loop: the tracker (on its thread) gives every site a full timeout when the
        link comes up, and decides nothing while it is down."""
        self.supervision_thread.submit(
            self.tracker.connected if connected else self.tracker.disconnected
        )

    def note_alive(self, detail: dict[str, Any]) -> None:
        """The receivers' registry (off the loop)."""
        self.supervision_thread.submit(self._note_alive, detail)

    def _note_alive(self, detail: dict[str, Any]) -> None:
        try:
            self.store.note_receiver(
                self.store.receiver, detail.get("started_at") or iso_ms(utc_now()), detail
            )
        except self.db_errors as exc:
            logger.error("police: receiver registry not written: %s", exc)

    def close(self) -> None:
        self.alarm_thread.shutdown(wait=True)
        self.supervision_thread.shutdown(wait=True)
        self.lock.close()


__all__ = ["CityIntake", "SiteUpdate", "SupervisionWrites"]
