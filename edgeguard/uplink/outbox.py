"""The outbox publisher: recorded messages go to the broker in order, QoS 1, ``inflight_window``
ahead of their PUBACKs; a row is marked delivered only when its PUBACK arrives.

Rows live in the store until delivered; this object holds the undelivered ones in memory (read
back from the store at start-up) and never drops one. On reconnect the lane resends the
messages that had no PUBACK first, in order (paho's own resend is off, see site_link.py), and
everything not yet sent follows. A row
the broker refuses (negative PUBACK) waits with its own back-off, so it never holds up the
alarms behind it.

With a second transmission path (docs/transmission-paths.md) every row goes to the primary
broker's lane first; a row the primary has not PUBACKed in time, or any row while the primary
is down, is also put on the secondary broker's lane (edgeguard/uplink/failover.py decides
when). A row is delivered when either broker PUBACKs it; each lane keeps the rows' order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from edgeguard.alarms import is_alarm_message
from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.failover import Failover
from edgeguard.uplink.lane import STALE_INFLIGHT_S, Lane, in_order
from edgeguard.uplink.receipt_wait import ReceiptWait
from edgeguard.uplink.site_link import Uplink

logger = logging.getLogger(__name__)

__all__ = ["STALE_INFLIGHT_S", "Outbox"]

Overdue = Callable[[list[OutboxRow]], None]


class Outbox:
    def __init__(self, window: int, mark_delivered: Callable[[list[int]], Awaitable[None]]) -> None:
        self._mark_delivered = mark_delivered
        self.pending: dict[int, OutboxRow] = {}
        self.primary = Lane("primary", window, self.pending)
        self.secondary: Lane | None = None
        self.failover: Failover | None = None
        self.on_overdue: Overdue | None = None
        self._delivered: list[int] = []
        self._flushing: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._volatile_ids = 0
        self.receipts: ReceiptWait | None = None  # with receipts on (edgeguard/receipts.py)

    # --- the primary lane, as the rest of the daemon knew the outbox ------------------------
    @property
    def window(self) -> int:
        return self.primary.window

    @window.setter
    def window(self, value: int) -> None:
        self.primary.window = value

    @property
    def uplink(self) -> Uplink | None:
        return self.primary.uplink

    @property
    def _unsent(self) -> deque[int]:
        return self.primary.unsent

    def connected(self) -> bool:
        """At least one broker link is up."""
        return self.primary.connected or (self.secondary is not None and self.secondary.connected)

    # --- paths ------------------------------------------------------------------------------
    def enable_failover(
        self, after_s: float, secondary_window: int | None, on_overdue: Overdue | None
    ) -> None:
        """A second broker (``secondary_window`` given) and/or an SMS path (``on_overdue``):
        rows the primary does not deliver in time move on (edgeguard/uplink/failover.py)."""
        if secondary_window is not None and self.secondary is None:
            self.secondary = Lane("secondary", secondary_window, self.pending)
        self.on_overdue = on_overdue
        secondary = self.secondary
        self.failover = Failover(
            after_s,
            primary_ok=lambda: self.primary.ok(after_s),
            secondary_ok=None if secondary is None else lambda: secondary.ok(after_s),
            to_secondary=self._to_secondary,
            overdue=self._overdue,
        )
        self.failover.track(in_order(self.pending))

    def _to_secondary(self, row_ids: list[int]) -> None:
        if self.secondary is not None:
            self.secondary.requeue(row_ids)

    def _overdue(self, row_ids: list[int]) -> None:
        rows = [self.pending[row_id] for row_id in row_ids if row_id in self.pending]
        if rows and self.on_overdue is not None:
            try:
                self.on_overdue(rows)
            except Exception:
                logger.exception("outbox: the overdue-message handler failed")

    # --- feeding ----------------------------------------------------------------------------
    def load(self, rows: list[OutboxRow]) -> None:
        """Take the undelivered rows found in the store at start-up."""
        for row in rows:
            self.pending.setdefault(row.id, row)
        self.primary.unsent = deque(in_order(self.pending))
        if rows:
            logger.info("outbox: %d message(s) from before the restart to deliver", len(rows))
        self.primary.pump()
        if self.failover is not None:
            self.failover.track(in_order(self.pending))

    def add(self, rows: list[OutboxRow]) -> None:
        """Rows just committed, in commit (id) order."""
        new = []
        for row in rows:
            if row.id not in self.pending:
                self.pending[row.id] = row
                new.append(row.id)
        self.primary.append(new)
        if self.failover is not None:
            self.failover.track(new)

    def add_volatile(self, topic: str, payload: bytes, event_id: str) -> None:
        """A message that could not be stored (the store is failing): sent all the same, first
        in line, and forgotten once PUBACKed. Negative ids keep it apart from stored rows."""
        self._volatile_ids -= 1
        row = OutboxRow(self._volatile_ids, topic, payload, 1, False, event_id, "unrecorded")
        self.pending[row.id] = row
        self.primary.requeue({row.id})
        if self.failover is not None:
            self.failover.track([row.id])

    # --- link events ------------------------------------------------------------------------
    def attach(self, uplink: Uplink) -> None:
        """Use a new uplink (start-up, or a reload that changed the MQTT settings). Whatever the
        previous client had in flight is sent again through the new one: its PUBACKs will
        never come, and its packet ids mean nothing to the new client."""
        self.primary.attach(uplink)

    def attach_secondary(self, uplink: Uplink) -> None:
        assert self.secondary is not None
        self.secondary.attach(uplink)

    def on_disconnected(self) -> None:
        """Either link went down: rows waiting on it move on to the next path now."""
        if self.failover is not None:
            self.failover.advance()

    def delivered_by(self, lane: Lane, mid: int, ok: bool, reason: str) -> None:
        """A PUBACK on ``lane``'s link: a positive one delivers its row, whichever lane sent it
        first; the lane then sends what waits."""
        row_id = lane.on_puback(mid, ok, reason)
        if row_id is not None:
            row = self.pending.pop(row_id, None)
            if (
                row is not None
                and row_id > 0
                and self.receipts is not None
                and is_alarm_message(row)
            ):
                self.receipts.delivered(row)
            if self.failover is not None:
                self.failover.forget(row_id)
            if row_id > 0:
                self._delivered.append(row_id)
                self._schedule_flush()
        lane.pump()
        self._check_drained()

    # --- sending ----------------------------------------------------------------------------
    def pump(self) -> None:
        self.primary.pump()
        if self.secondary is not None:
            self.secondary.pump()

    def await_receipts(self, rows: list[OutboxRow]) -> None:
        """At start: delivered alarm messages still without their receipt wait anew."""
        if self.receipts is not None:
            for row in rows:
                self.receipts.delivered(row)

    def check_receipts(self) -> None:
        """Alarm messages whose receipt is overdue are published again, in order."""
        if self.receipts is None:
            return
        rows = self.receipts.due()
        if rows:
            logger.warning(
                "outbox: %d alarm message(s) without the police's receipt %g s after the "
                "broker's PUBACK: published again",
                len(rows),
                self.receipts.resend_after_s,
            )
            self.add(rows)

    def check_stale(self) -> None:
        """Safety net: a message without PUBACK for long while connected is sent again."""
        self.primary.check_stale()
        if self.secondary is not None:
            self.secondary.check_stale()

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

    def close(self) -> None:
        if self.failover is not None:
            self.failover.close()

    def stats(self) -> dict[str, int]:
        primary = self.primary.stats()
        out = {"pending": len(self.pending), **primary}
        if self.secondary is not None:
            out.update({f"secondary_{k}": v for k, v in self.secondary.stats().items()})
        if self.receipts is not None:
            out.update(self.receipts.stats())
        if self.failover is not None:
            out["handed_over"] = self.failover.handed_over
            out["overdue"] = self.failover.overdue_rows
        return out
