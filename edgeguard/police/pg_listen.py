"""Live updates on PostgreSQL: ``LISTEN edgeguard_changes``, not a table polled.

Every write of the store sends ``NOTIFY edgeguard_changes, '<what>:<key>'`` in its transaction;
PostgreSQL delivers it at commit, to every instance listening (any receiver's write reaches
every dashboard). The listener collects what arrives within ``COALESCE_S``, keeps each thing
once (a site that sent ten heartbeats is one update), builds the updates off the event loop
and hands them to the subscribers (the same queues and shape as feed.UpdateFeed). After its
connection fails it reconnects, and sends a ``resync`` update: a dashboard then reloads its
state, since what changed in between was not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from edgeguard.police.feed import QUEUE_SIZE, Builder, Subscribers
from edgeguard.police.store import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

COALESCE_S = 0.1
RECONNECT_S = 1.0
MAX_PER_ROUND = 5000  # things built in one round; more wait for the next


class NotifyFeed(Subscribers):
    def __init__(self, dsn: str, build: Builder, maxsize: int = QUEUE_SIZE) -> None:
        super().__init__(maxsize)
        self.dsn = dsn
        self.build = build
        self.last_id = 0  # the SQLite feed's cursor; unused here
        self.listening = False
        self._heard: dict[tuple[str, str], None] = {}
        self._wake = asyncio.Event()

    def pump(self) -> None:
        """Nothing to do: the notifications come by themselves."""

    async def run(self) -> None:
        emitter = asyncio.get_running_loop().create_task(self._emit_rounds())
        try:
            first = True
            while True:
                try:
                    await self._listen(resync=not first)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the server went away: again
                    logger.error("live updates: LISTEN connection failed: %s", exc)
                self.listening = False
                first = False
                await asyncio.sleep(RECONNECT_S)
        finally:
            emitter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await emitter

    async def _listen(self, *, resync: bool) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening = True
            if resync:
                self.put({"type": "resync", "data": {}})
            async for notify in conn.notifies():
                what, _, key = notify.payload.partition(":")
                self._heard[(what, key)] = None
                self._wake.set()

    async def _emit_rounds(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            heard = list(self._heard)[:MAX_PER_ROUND]
            for item in heard:
                del self._heard[item]
            if self._heard:
                self._wake.set()
            if not self.queues:
                continue
            updates = await asyncio.to_thread(self._build_all, heard)
            for update in updates:
                self.put(update)

    def _build_all(self, heard: list[tuple[str, str]]) -> list[dict[str, Any]]:
        updates = []
        for what, key in heard:
            try:
                data = self.build(what, key)
            except Exception:
                logger.exception("cannot build the %s update %r", what, key)
                continue
            if data is not None:
                updates.append({"type": what, "data": data})
        return updates
