"""One transmission path's line of outbox messages: its uplink, the rows waiting to be sent on
it (in order), and the rows in flight awaiting their PUBACK.

The rows themselves live in the outbox's ``pending`` map, shared by every lane: a row one lane
delivered is gone from it, and the other lanes skip it (or ignore its late PUBACK).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable

from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.site_link import NotConnectedError, Uplink

logger = logging.getLogger(__name__)

STALE_INFLIGHT_S = 30.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0


class Lane:
    def __init__(self, name: str, window: int, pending: dict[int, OutboxRow]) -> None:
        self.name = name
        self.window = window
        self.pending = pending
        self.uplink: Uplink | None = None
        self.unsent: deque[int] = deque()
        self.inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, sent at)
        self._refusals: dict[int, int] = {}  # row id -> negative PUBACKs so far
        self.published = 0
        self.acked = 0
        self._ever_up = False
        self._since = time.monotonic()

    @property
    def connected(self) -> bool:
        return self.uplink is not None and self.uplink.connected

    def ok(self, grace: float) -> bool:
        """Connected, or not yet given up on: a link that was up and dropped has failed at
        once; one that never came up since start-up fails after ``grace`` seconds."""
        if self.connected:
            return True
        return not self._ever_up and time.monotonic() - self._since < grace

    # --- feeding ----------------------------------------------------------------------------
    def append(self, row_ids: Iterable[int]) -> None:
        """Rows just committed, in order, after everything already in line."""
        self.unsent.extend(row_ids)
        self.pump()

    def requeue(self, row_ids: Iterable[int]) -> None:
        """Put rows back in line, in order (see ``in_order``)."""
        waiting = {row_id for row_id in row_ids if row_id in self.pending}
        if waiting:
            self.unsent = deque(in_order(waiting | set(self.unsent)))
            self.pump()

    # --- link events ------------------------------------------------------------------------
    def attach(self, uplink: Uplink) -> None:
        """A new uplink: what the previous one had in flight is sent again through it."""
        self.uplink = uplink
        if self.inflight:
            requeued = {row_id for row_id, _ in self.inflight.values()}
            self.inflight.clear()
            self.requeue(requeued)

    def on_connected(self) -> None:
        """What was in flight when the link dropped is sent again first, in outbox order, and
        new rows after it (the uplink turned paho's own resend off: it could be overtaken)."""
        self._ever_up = True
        requeued = {row_id for row_id, _ in self.inflight.values()}
        self.inflight.clear()
        self.requeue(requeued)
        self.pump()

    def on_puback(self, mid: int, ok: bool, reason: str) -> int | None:
        """The row this PUBACK delivers (still pending), or None."""
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return None
        row_id = entry[0]
        if ok:
            self.acked += 1
            self._refusals.pop(row_id, None)
            return row_id if row_id in self.pending else None
        if row_id in self.pending:
            self._refused(row_id, reason)
        return None

    def _refused(self, row_id: int, reason: str) -> None:
        refusals = self._refusals.get(row_id, 0) + 1
        self._refusals[row_id] = refusals
        delay = min(RETRY_MIN_S * 2 ** (refusals - 1), RETRY_MAX_S)
        logger.error(
            "outbox: %s broker refused message %d on %s: %s (attempt %d, again in %.0f s)",
            self.name,
            row_id,
            self.pending[row_id].topic,
            reason,
            refusals,
            delay,
        )
        asyncio.get_running_loop().call_later(delay, self.requeue, {row_id})

    # --- sending ----------------------------------------------------------------------------
    def pump(self) -> None:
        uplink = self.uplink
        if uplink is None or not uplink.connected:
            return
        while self.unsent and len(self.inflight) < self.window:
            row_id = self.unsent[0]
            row = self.pending.get(row_id)
            if row is None:
                self.unsent.popleft()
                continue
            try:
                mid = uplink.publish(row.topic, row.payload, row.qos, row.retain)
            except NotConnectedError:
                return
            self.unsent.popleft()
            self.published += 1
            self.inflight[mid] = (row_id, time.monotonic())

    def check_stale(self) -> None:
        """Safety net: a message without PUBACK for long while connected is sent again."""
        if not self.connected:
            return
        now = time.monotonic()
        stale = {mid for mid, (_, sent) in self.inflight.items() if now - sent > STALE_INFLIGHT_S}
        rows = {self.inflight.pop(mid)[0] for mid in stale}
        for row_id in rows & set(self.pending):
            logger.warning(
                "outbox: no PUBACK for message %d on the %s broker after %.0f s; sending again",
                row_id,
                self.name,
                STALE_INFLIGHT_S,
            )
        self.requeue(rows)

    def stats(self) -> dict[str, int]:
        return {
            "inflight": len(self.inflight),
            "published": self.published,
            "acked": self.acked,
        }


def in_order(row_ids: set[int] | dict[int, OutboxRow]) -> list[int]:
    """Sending order: messages sent from memory while the store failed (negative ids, -1 the
    oldest) first, in the order they were made, then stored rows by id."""
    return sorted(row_ids, key=lambda row_id: (row_id > 0, abs(row_id)))
