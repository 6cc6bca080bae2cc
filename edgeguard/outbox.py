"""The outbox publisher: recorded messages go to the broker in order, QoS 1, ``inflight_window``
ahead of their PUBACKs; a row is marked delivered only when its PUBACK arrives.

Rows live in the store until delivered; this object holds the undelivered ones in memory (read
back from the store at start-up) and never drops one. On reconnect paho itself resends the
messages it had in flight (same packet ids); everything not yet sent follows in order. A row
the broker refuses (negative PUBACK) waits with its own back-off, so it never holds up the
alarms behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from edgeguard.store import OutboxRow
from edgeguard.uplink import NotConnectedError, Uplink

logger = logging.getLogger(__name__)

STALE_INFLIGHT_S = 30.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0


class Outbox:
    def __init__(self, window: int, mark_delivered: Callable[[list[int]], Awaitable[None]]) -> None:
        self.window = window
        self._mark_delivered = mark_delivered
        self.uplink: Uplink | None = None
        self.pending: dict[int, OutboxRow] = {}
        self._unsent: deque[int] = deque()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, sent at)
        self._refusals: dict[int, int] = {}  # row id -> negative PUBACKs so far
        self._delivered: list[int] = []
        self._flushing: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._volatile_ids = 0
        self.published = 0
        self.acked = 0

    # --- feeding ----------------------------------------------------------------------------
    def load(self, rows: list[OutboxRow]) -> None:
        """Take the undelivered rows found in the store at start-up."""
        for row in rows:
            self.pending.setdefault(row.id, row)
        self._unsent = deque(_in_order(self.pending))
        if rows:
            logger.info("outbox: %d message(s) from before the restart to deliver", len(rows))
        self.pump()

    def add(self, rows: list[OutboxRow]) -> None:
        """Rows just committed, in commit (id) order."""
        for row in rows:
            if row.id not in self.pending:
                self.pending[row.id] = row
                self._unsent.append(row.id)
        self.pump()

    def add_volatile(self, topic: str, payload: bytes, event_id: str) -> None:
        """A message that could not be stored (the store is failing): sent all the same, first
        in line, and forgotten once PUBACKed. Negative ids keep it apart from stored rows."""
        self._volatile_ids -= 1
        row = OutboxRow(self._volatile_ids, topic, payload, 1, False, event_id, "unrecorded")
        self.pending[row.id] = row
        self._requeue({row.id})

    # --- link events ------------------------------------------------------------------------
    def attach(self, uplink: Uplink) -> None:
        """Use a new uplink (start-up, or a reload that changed the MQTT settings). Whatever the
        previous client had in flight is sent again through the new one: its PUBACKs will
        never come, and its packet ids mean nothing to the new client."""
        self.uplink = uplink
        if self._inflight:
            requeued = {row_id for row_id, _ in self._inflight.values()}
            self._inflight.clear()
            self._requeue(requeued)

    def on_connected(self) -> None:
        # paho resends what was in flight on this (re)connect: time them from now, or the
        # stale check would send every one of them again after a long outage.
        now = time.monotonic()
        self._inflight = {mid: (row_id, now) for mid, (row_id, _) in self._inflight.items()}
        self.pump()

    def on_puback(self, mid: int, ok: bool, reason: str) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        row_id = entry[0]
        if ok:
            self.acked += 1
            self._refusals.pop(row_id, None)
            if self.pending.pop(row_id, None) is not None and row_id > 0:
                self._delivered.append(row_id)
                self._schedule_flush()
        elif row_id in self.pending:
            self._refused(row_id, reason)
        self.pump()
        self._check_drained()

    def _refused(self, row_id: int, reason: str) -> None:
        refusals = self._refusals.get(row_id, 0) + 1
        self._refusals[row_id] = refusals
        delay = min(RETRY_MIN_S * 2 ** (refusals - 1), RETRY_MAX_S)
        logger.error(
            "outbox: broker refused message %d on %s: %s (attempt %d, again in %.0f s)",
            row_id,
            self.pending[row_id].topic,
            reason,
            refusals,
            delay,
        )
        asyncio.get_running_loop().call_later(delay, self._requeue, {row_id})

    def _requeue(self, row_ids: set[int]) -> None:
        """Put rows back in line, in order (see ``_in_order``)."""
        waiting = {row_id for row_id in row_ids if row_id in self.pending}
        if waiting:
            self._unsent = deque(_in_order(waiting | set(self._unsent)))
            self.pump()

    # --- sending ----------------------------------------------------------------------------
    def pump(self) -> None:
        uplink = self.uplink
        if uplink is None or not uplink.connected:
            return
        while self._unsent and len(self._inflight) < self.window:
            row_id = self._unsent[0]
            row = self.pending.get(row_id)
            if row is None:
                self._unsent.popleft()
                continue
            try:
                mid = uplink.publish(row.topic, row.payload, row.qos, row.retain)
            except NotConnectedError:
                return
            self._unsent.popleft()
            self.published += 1
            self._inflight[mid] = (row_id, time.monotonic())

    def check_stale(self) -> None:
        """Safety net: a message without PUBACK for long while connected is sent again."""
        if self.uplink is None or not self.uplink.connected:
            return
        now = time.monotonic()
        stale = {mid for mid, (_, sent) in self._inflight.items() if now - sent > STALE_INFLIGHT_S}
        rows = {self._inflight.pop(mid)[0] for mid in stale}
        for row_id in rows:
            logger.warning(
                "outbox: no PUBACK for message %d after %.0f s; sending again",
                row_id,
                STALE_INFLIGHT_S,
            )
        self._requeue(rows)

    # --- recording deliveries ---------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._delivered:
            ids, self._delivered = self._delivered, []
            try:
                await self._mark_delivered(ids)
            except Exception:
                logger.exception("outbox: could not record %d deliveries; will retry", len(ids))
                self._delivered = ids + self._delivered
                await asyncio.sleep(1.0)
        self._flushing = None
        self._check_drained()

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending and every delivery is recorded (or timeout); True when
        all was delivered."""
        self._check_drained()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _check_drained(self) -> None:
        flushing = self._flushing is not None and not self._flushing.done()
        if not self.pending and not self._delivered and not flushing:
            self._drained.set()
        else:
            self._drained.clear()

    def stats(self) -> dict[str, int]:
        return {
            "pending": len(self.pending),
            "inflight": len(self._inflight),
            "published": self.published,
            "acked": self.acked,
        }


def _in_order(row_ids: set[int] | dict[int, OutboxRow]) -> list[int]:
    """Sending order: messages sent from memory while the store failed (negative ids, -1 the
    oldest) first, in the order they were made, then stored rows by id."""
    return sorted(row_ids, key=lambda row_id: (row_id > 0, abs(row_id)))
