"""The police side of end-to-end receipts (edgeguard/receipts.py): for every alarm message
stored, a signed receipt to its site, published on the link the message came on.

A receipt is sent after the commit and never blocks the next message. One that cannot be sent
(link down, no PUBACK in time, too many in flight) is dropped with a log line: the site, left
without it, publishes the message again, and its duplicate gets a receipt of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeguard.police.link import ActionError
from edgeguard.receipts import receipt_payload, receipt_topic
from edgeguard.signing import Signer

if TYPE_CHECKING:
    from edgeguard.police.config import PoliceConfig
    from edgeguard.police.link import Link

logger = logging.getLogger(__name__)

RECEIPT_TIMEOUT_S = 10.0
# receipts awaiting their PUBACK or confirm: a city's storm is one per alarm; beyond this the
# site's resend covers it
MAX_IN_FLIGHT = 20_000


class ReceiptSender:
    def __init__(self, config: PoliceConfig, link_for: Callable[[str], Link | None]) -> None:
        self.receiver_id = config.receiver_id
        self.signer = None if config.receipt_key is None else Signer.from_file(config.receipt_key)
        self.link_for = link_for
        self.sent = 0
        self.dropped = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.signer is not None

    def send(self, site: str, payload: dict[str, Any], link: str) -> None:
        """On the loop, right after the alarm message was stored (or found stored)."""
        if self.signer is None:
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.dropped += 1
            logger.warning(
                "receipt for %s seq %s dropped: %d in flight",
                site,
                payload.get("seq"),
                len(self._tasks),
            )
            return
        receipt = receipt_payload(
            site,
            str(payload["event_id"]),
            int(payload["seq"]),
            str(payload["message"]),
            self.receiver_id,
        )
        body = self.signer.encode(receipt)
        task = asyncio.get_running_loop().create_task(self._publish(site, body, link, receipt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, site: str, body: bytes, link: str, receipt: dict[str, Any]) -> None:
        target = self.link_for(link)
        try:
            if target is not None:
                await target.publish(receipt_topic(site), body, RECEIPT_TIMEOUT_S)
                self.sent += 1
                return
            why = "no broker link is up"
        except ActionError as exc:
            why = str(exc)
        self.dropped += 1
        logger.info(
            "receipt for %s %s seq %s not sent (the site will send the message again): %s",
            site, receipt["event_id"], receipt["seq"], why,
        )  # fmt: skip

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
