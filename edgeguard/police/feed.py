"""Live updates for the dashboard, read from the database's ``changes`` table: polled every
250 ms and pumped at once after this receiver's own writes, so that every receiver sharing the
database sees what any of them stored. Each subscriber has a bounded queue: a slow one loses
its oldest updates and never holds the service up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from edgeguard.police.store import PoliceStore

logger = logging.getLogger(__name__)

POLL_S = 0.25
QUEUE_SIZE = 1000

Builder = Callable[[str, str], dict[str, Any] | None]


class Subscribers:
    """The dashboard's bounded queues: a slow one loses its oldest updates."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.maxsize)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.queues.discard(queue)

    def put(self, update: dict[str, Any]) -> None:
        for queue in self.queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # drop the oldest
            queue.put_nowait(update)


class UpdateFeed(Subscribers):
    def __init__(self, store: PoliceStore, build: Builder, maxsize: int = QUEUE_SIZE) -> None:
        super().__init__(maxsize)
        self.store = store
        self.build = build
        self.last_id = store.last_change_id()

    def pump(self) -> None:
        """Hand every change since the last pump to the subscribers."""
        while True:
            changes = self.store.changes_since(self.last_id)
            if not changes:
                return
            for change in changes:
                self.last_id = int(change["id"])
                if self.queues:
                    self._emit(str(change["what"]), str(change["key"]))

    def _emit(self, what: str, key: str) -> None:
        try:
            data = self.build(what, key)
        except Exception:
            logger.exception("cannot build the %s update %r", what, key)
            return
        if data is None:
            return
        self.put({"type": what, "data": data})

    async def run(self) -> None:
        while True:
            try:
                self.pump()
            except Exception:
                logger.exception("live updates: cannot read changes")
            await asyncio.sleep(POLL_S)
