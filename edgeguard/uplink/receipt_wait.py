"""Alarm messages the broker has PUBACKed, waiting for the police platform's receipt
(edgeguard/receipts.py). One without its receipt ``resend_after_s`` after its PUBACK is due to
be published again; after that PUBACK it waits anew, for as long as it takes, each wait twice
the last up to ``resend_max_s``: receipts come late when the police broker is saturated, and
resends every few seconds from thousands of sites would saturate it further.

A receipt can overtake the PUBACK of its own message (the police store it before our paho
thread hands us the PUBACK): such early receipts are kept, bounded, and settle the message when
its PUBACK comes."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeguard.receipts import load_receipt_keys
from edgeguard.receipts_config import ReceiptsConfig
from edgeguard.store_outbox import OutboxRow

if TYPE_CHECKING:
    from edgeguard.uplink.outbox import Outbox
    from edgeguard.writer import StoreWriter

logger = logging.getLogger(__name__)

MAX_EARLY = 10_000

Key = tuple[str, int]  # (event_id, seq): what a receipt names


def key_of(row: OutboxRow) -> Key | None:
    """The (event_id, seq) of an alarm message, as its receipt will name it."""
    if row.event_id is None or row.seq is None:
        return None
    return row.event_id, row.seq


class ReceiptWait:
    def __init__(
        self,
        keys: list[Ed25519PublicKey],
        resend_after_s: float,
        *,
        resend: bool,
        resend_max_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys  # the police platform's: a receipt must verify with one of them
        self.resend_after_s = resend_after_s
        self.resend_max_s = max(resend_after_s, resend_max_s or resend_after_s)
        self._resends: dict[Key, int] = {}  # times published again, for the back-off
        self.resend = resend  # False: only shown, never published again (receipts optional)
        self.clock = clock
        self.waiting: dict[Key, tuple[OutboxRow, float]] = {}
        self._early: OrderedDict[Key, None] = OrderedDict()
        self.resent = 0

    def delivered(self, row: OutboxRow) -> None:
        """The broker PUBACKed this alarm message: its receipt is awaited from now."""
        key = key_of(row)
        if key is None:
            return
        if key in self._early:
            del self._early[key]
            self._resends.pop(key, None)
            return
        wait = min(self.resend_after_s * 2 ** self._resends.get(key, 0), self.resend_max_s)
        self.waiting[key] = (row, self.clock() + wait)

    def received(self, key: Key) -> None:
        """A genuine receipt for ``key`` (verified by the caller)."""
        self._resends.pop(key, None)
        if self.waiting.pop(key, None) is None:
            self._early[key] = None
            while len(self._early) > MAX_EARLY:
                self._early.popitem(last=False)

    def due(self) -> list[OutboxRow]:
        """The messages to publish again now, oldest first; they wait again after their next
        PUBACK (``delivered``)."""
        if not self.resend:
            return []
        now = self.clock()
        keys = [key for key, (_row, deadline) in self.waiting.items() if deadline <= now]
        rows = sorted((self.waiting.pop(key)[0] for key in keys), key=lambda row: row.id)
        for key in keys:
            self._resends[key] = min(self._resends.get(key, 0) + 1, 20)
        self.resent += len(rows)
        return rows

    def stats(self) -> dict[str, int]:
        return {"awaiting_receipt": len(self.waiting), "resent_for_receipt": self.resent}


def enable_receipts(config: ReceiptsConfig | None, outbox: Outbox) -> None:
    """The police platform's receipts (docs/mqtt-api.md 4.7), when configured: read at start
    (a change needs a restart); a key that cannot be read stops the start with its path."""
    if config is None:
        return
    keys = load_receipt_keys(config.police_keys)
    outbox.receipts = ReceiptWait(
        keys, config.resend_after_s, resend=config.required, resend_max_s=config.resend_max_s
    )


async def load_awaiting_receipts(writer: StoreWriter, outbox: Outbox) -> None:
    """At start: delivered alarm messages still without their receipt wait anew."""
    if outbox.receipts is None:
        return
    awaiting = await writer.run(lambda s: s.awaiting_receipts())
    outbox.await_receipts(awaiting)
    if awaiting:
        logger.info(
            "%d alarm message(s) from before the restart await the police's receipt "
            "(published again after %g s)",
            len(awaiting),
            outbox.receipts.resend_after_s,
        )
