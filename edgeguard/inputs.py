"""Starts, supervises and stops the input drivers. One failing driver is reported (device
status ``fault``) and retried or disabled; it never takes the daemon down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from edgeguard.alarm_model import DeviceState, DeviceStatus
from edgeguard.driver_api import (
    DriverConfig,
    DriverError,
    InputDriver,
    SetupFailure,
    SignalSink,
    SoftwareButton,
)
from edgeguard.driver_registry import driver_class

logger = logging.getLogger(__name__)

RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0


class InputManager:
    def __init__(self, sink: SignalSink, hardware: Mapping[str, Any] | None = None) -> None:
        self.sink = sink
        self.hardware: Mapping[str, Any] = hardware or {}
        self.drivers: dict[str, InputDriver[Any]] = {}
        self._retries: dict[str, asyncio.Task[None]] = {}

    def _build(self, config: DriverConfig) -> InputDriver[Any]:
        return driver_class(config.type).from_config(config, self.sink, self.hardware)

    async def start_all(self, configs: list[DriverConfig]) -> None:
        for config in configs:
            if not config.enabled:
                logger.info("input %s is disabled in the config", config.name)
                continue
            driver = self._build(config)
            self.drivers[config.name] = driver
            await self._start(driver)

    async def _start(self, driver: InputDriver[Any], delay: float = RETRY_MIN_S) -> None:
        try:
            await asyncio.to_thread(driver.start)
        except DriverError as exc:
            logger.error("input %s failed to start (%s): %s", driver.name, exc.failure.value, exc)
            self.sink.device_status(
                DeviceStatus(driver.name, DeviceState.FAULT, {"error": str(exc)})
            )
            if exc.failure is SetupFailure.RETRY:
                self._retries[driver.name] = asyncio.create_task(self._retry(driver, delay))
        except Exception as exc:
            logger.exception("input %s crashed on start; disabled", driver.name)
            self.sink.device_status(
                DeviceStatus(driver.name, DeviceState.FAULT, {"error": f"crashed: {exc}"})
            )
        else:
            logger.info("input %s (%s) started", driver.name, driver.type_name)

    async def _retry(self, driver: InputDriver[Any], delay: float) -> None:
        await asyncio.sleep(delay)
        self._retries.pop(driver.name, None)
        await self._start(driver, min(delay * 2, RETRY_MAX_S))

    async def stop_all(self) -> None:
        for task in self._retries.values():
            task.cancel()
        for task in self._retries.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._retries.clear()
        for driver in self.drivers.values():
            try:
                await asyncio.to_thread(driver.stop)
            except Exception:
                logger.exception("input %s failed to stop", driver.name)
        self.drivers.clear()

    def simulated(self, name: str) -> SoftwareButton:
        driver = self.drivers.get(name)
        if not isinstance(driver, SoftwareButton):
            known = sorted(n for n, d in self.drivers.items() if isinstance(d, SoftwareButton))
            raise KeyError(
                f"no simulated input {name!r} (simulated inputs: {', '.join(known) or 'none'})"
            )
        return driver
