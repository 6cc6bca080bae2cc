"""Live updates to the pages: a hub that fans events out to bounded queues, and the
Server-Sent Events response that drains one queue to one browser."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

QUEUE_SIZE = 500
KEEPALIVE_S = 15.0
Update = dict[str, Any]  # {"type": ..., "data": {...}}


class Hub:
    """Fan-out of updates. A subscriber that does not keep up loses its oldest updates (its
    page reloads the state when it sees the `gap` flag); publishing never waits."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Update]] = set()

    def subscribe(self) -> asyncio.Queue[Update]:
        queue: asyncio.Queue[Update] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Update]) -> None:
        self._queues.discard(queue)

    def publish(self, update: Update) -> None:
        for queue in list(self._queues):
            put_dropping_oldest(queue, update)

    @property
    def subscribers(self) -> int:
        return len(self._queues)


def put_dropping_oldest(queue: asyncio.Queue[Update], update: Update) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
        update = {**update, "gap": True}
    queue.put_nowait(update)


def _frame(update: Update) -> bytes:
    kind = str(update.get("type", "message"))
    data = json.dumps(update, ensure_ascii=False, default=str)
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def stream(
    request: web.Request,
    queue: asyncio.Queue[Update],
    first: Iterable[Update],
    still_allowed: Callable[[], bool | Awaitable[bool]],
) -> web.StreamResponse:
    """Send ``first``, then every update from ``queue`` until the browser goes away or its
    session ends (checked at each keep-alive; ``still_allowed`` may be a coroutine function,
    for a session store that blocks), when an `expired` event tells the page."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await response.write(b"retry: 2000\n\n")
        for update in first:
            await response.write(_frame(update))
        while True:
            try:
                update = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                allowed = still_allowed()
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    await response.write(_frame({"type": "expired"}))
                    break
                await response.write(b": keepalive\n\n")
                continue
            await response.write(_frame(update))
    except (ConnectionResetError, ConnectionError):
        logger.debug("live stream closed by the browser")
    return response
