"""Supervision of the transmission paths (docs/transmission-paths.md): the primary broker link,
the secondary broker link and the SMS modem are each a device with a retained status on
``edgeguard/{site}/device/{device}``; a path lost while another works raises a ``device_fault``
alarm that reaches the police over the remaining path, restored when the path is back.

A broker link counts as lost when it has been down for ``grace`` seconds (the failover time):
a reconnect within that time is not reported. Runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from edgeguard.alarm_model import DeviceState, DeviceStatus
from edgeguard.broker_nodes import format_address
from edgeguard.config import PATH_DEVICES, EdgeguardConfig
from edgeguard.service import AlarmService

logger = logging.getLogger(__name__)


def several_paths(config: EdgeguardConfig) -> bool:
    return config.mqtt.secondary is not None or config.sms is not None


def failover_after(config: EdgeguardConfig) -> float:
    secondary = config.mqtt.secondary
    return secondary.failover_after_s if secondary is not None else 5.0


class PathSupervisor:
    def __init__(self, config: EdgeguardConfig, service: AlarmService) -> None:
        self.config = config
        self.service = service
        self.grace = failover_after(config)
        self.states: dict[str, tuple[DeviceState, dict[str, Any]]] = {}
        self._reported: dict[str, DeviceState] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Links not up within the grace time after start-up are reported lost."""
        self.link_down("primary", "not connected since start-up", initial=True)
        if self.config.mqtt.secondary is not None:
            self.link_down("secondary", "not connected since start-up", initial=True)

    # --- events (on the loop) ---------------------------------------------------------------
    def link_up(self, path: str, node: str | None = None) -> None:
        """``node``: the broker's address the link is on (default: its first)."""
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        self._set(path, DeviceState.ONLINE, {"path": path, "broker": node or self._broker(path)})

    def link_down(
        self, path: str, reason: str, node: str | None = None, *, initial: bool = False
    ) -> None:
        """``node``: the broker's address the link lost (default: its first). A link already
        down keeps the detail it went down with."""
        if path in self._timers:
            return
        detail = {"path": path, "broker": node or self._broker(path), "reason": reason[:200]}
        if not initial:
            self.states[path] = (DeviceState.OFFLINE, detail)
        loop = asyncio.get_running_loop()
        self._timers[path] = loop.call_later(self.grace, self._lost, path, detail)

    def modem_state(self, state: DeviceState, detail: dict[str, Any]) -> None:
        self._set("sms", state, {"path": "sms", **detail})

    def _lost(self, path: str, detail: dict[str, Any]) -> None:
        self._timers.pop(path, None)
        self._set(path, DeviceState.OFFLINE, detail)

    # --- reporting --------------------------------------------------------------------------
    def _broker(self, path: str) -> str | None:
        broker = self.config.mqtt if path == "primary" else self.config.mqtt.secondary
        return None if broker is None else format_address(broker.addresses()[0])

    def _set(self, path: str, state: DeviceState, detail: dict[str, Any]) -> None:
        self.states[path] = (state, detail)
        if self._reported.get(path) is state:
            return
        self._reported[path] = state
        level = logging.INFO if state is DeviceState.ONLINE else logging.ERROR
        logger.log(level, "transmission path %s: %s (%s)", path, state.value, detail)
        task = asyncio.get_running_loop().create_task(self._report(path, state, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, path: str, state: DeviceState, detail: dict[str, Any]) -> None:
        """The path's device status: the alarm book raises or restores its device_fault."""
        async with self._lock:  # one report after the other, in the order they happened
            await self.service.handle_status(DeviceStatus(PATH_DEVICES[path], state, detail))

    def status(self) -> dict[str, Any]:
        return {
            path: {"device": PATH_DEVICES[path], "state": state.value, **detail}
            for path, (state, detail) in self.states.items()
        }

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
