"""The one thread-safe bridge from driver threads to the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from edgeguard.alarm_model import DeviceStatus, InputSignal

logger = logging.getLogger(__name__)


class Bridge:
    """Implements ``SignalSink``: drivers call it from any thread; each call becomes a task on
    the loop, started in call order (so signals reach the store in the order they came)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_signal: Callable[[InputSignal], Coroutine[Any, Any, None]],
        on_status: Callable[[DeviceStatus], Coroutine[Any, Any, None]],
    ) -> None:
        self.loop = loop
        self._on_signal = on_signal
        self._on_status = on_status
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, signal: InputSignal) -> None:
        self._schedule(self._on_signal, signal)

    def device_status(self, status: DeviceStatus) -> None:
        self._schedule(self._on_status, status)

    def _schedule(self, fn: Callable[[Any], Coroutine[Any, Any, None]], item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._start, fn, item)
        except RuntimeError:
            logger.critical("event loop is closed: %r could not be handled", item)

    def _start(self, fn: Callable[[Any], Coroutine[Any, Any, None]], item: Any) -> None:
        task = self.loop.create_task(fn(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self, timeout: float) -> None:
        """Wait for the signals already handed over to be handled."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
