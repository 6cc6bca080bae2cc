"""The outbox publisher: recorded messages go to the broker in order, QoS 1, ``inflight_window``
ahead of their PUBACKs; a row is marked delivered only when its PUBACK arrives.

Rows live in the store until delivered; this object holds the undelivered ones in memory (read
back from the store at start-up) and never drops one. On reconnect paho itself resends the
messages it had in flight (same packet ids); everything not yet sent follows in order.
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
        self._delivered: list[int] = []
        self._flushing: asyncio.Task[None] | None = None
        self._retry_delay = RETRY_MIN_S
        self._paused_until = 0.0
        self._resume: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        self._volatile_ids = 0
        self.published = 0
        self.acked = 0

    # --- feeding ----------------------------------------------------------------------------
    def load(self, rows: list[OutboxRow]) -> None:
        """Take the undelivered rows found in the store at start-up."""
        for row in rows:
            self.pending.setdefault(row.id, row)
        self._unsent = deque(sorted(self.pending))
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
        self._unsent.appendleft(row.id)
        self.pump()

    # --- link events ------------------------------------------------------------------------
    def on_connected(self) -> None:
        self._retry_delay = RETRY_MIN_S
        self.pump()

    def on_disconnected(self) -> None:
        """Nothing to undo: paho keeps in-flight messages and resends them on reconnect."""

    def on_puback(self, mid: int, ok: bool, reason: str) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        row_id = entry[0]
        if ok:
            self.acked += 1
            self._retry_delay = RETRY_MIN_S
            if self.pending.pop(row_id, None) is not None and row_id > 0:
                self._delivered.append(row_id)
                self._schedule_flush()
        else:
            row = self.pending.get(row_id)
            logger.error(
                "outbox: broker refused message %d on %s: %s (retry in %.0f s)",
                row_id,
                row.topic if row else "?",
                reason,
                self._retry_delay,
            )
            self._unsent.appendleft(row_id)
            self._pause()
        self.pump()

    # --- sending ----------------------------------------------------------------------------
    def pump(self) -> None:
        uplink = self.uplink
        if uplink is None or not uplink.connected or time.monotonic() < self._paused_until:
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
            if row.qos == 0:
                self.pending.pop(row_id, None)
                self._delivered.append(row_id)
                self._schedule_flush()
            else:
                self._inflight[mid] = (row_id, time.monotonic())

    def check_stale(self) -> None:
        """Safety net: a message without PUBACK for long while connected is sent again."""
        if self.uplink is None or not self.uplink.connected:
            return
        now = time.monotonic()
        stale = [mid for mid, (_, sent) in self._inflight.items() if now - sent > STALE_INFLIGHT_S]
        for mid in stale:
            row_id, _ = self._inflight.pop(mid)
            if row_id in self.pending:
                logger.warning(
                    "outbox: no PUBACK for message %d after %.0f s; sending again",
                    row_id,
                    STALE_INFLIGHT_S,
                )
                self._unsent.appendleft(row_id)
        if stale:
            self._unsent = deque(sorted(set(self._unsent)))
            self.pump()

    def _pause(self) -> None:
        self._paused_until = time.monotonic() + self._retry_delay
        loop = asyncio.get_running_loop()
        if self._resume is not None:
            self._resume.cancel()
        self._resume = loop.call_later(self._retry_delay, self.pump)
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)

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
