"""A simulated button for the demo, commissioning and tests: pressed over the control socket."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from edgeguard.alarm_model import Action, DeviceState
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import (
    DriverError,
    InputDriver,
    SetupFailure,
    SignalSink,
)

from .simulated_config import SimulatedInputConfig

logger = logging.getLogger(__name__)


class SimulatedButton(InputDriver[SimulatedInputConfig]):
    type_name = "simulated"

    def __init__(self, config: SimulatedInputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._pressed = False
        self._lock = threading.Lock()
        self._running = False

    def points(self) -> dict[str, PointConfig]:
        return {self.name: self.config}

    def start(self) -> None:
        self._running = True
        self.report(DeviceState.ONLINE, driver="simulated")

    def stop(self) -> None:
        self._running = False

    @property
    def pressed(self) -> bool:
        return self._pressed

    def press(
        self,
        on_recorded: Callable[[], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._set(pressed=True, on_recorded=on_recorded, on_failed=on_failed)

    def release(
        self,
        on_recorded: Callable[[], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._set(pressed=False, on_recorded=on_recorded, on_failed=on_failed)

    def _set(
        self,
        *,
        pressed: bool,
        on_recorded: Callable[[], None] | None,
        on_failed: Callable[[BaseException], None] | None,
    ) -> None:
        if not self._running:
            raise DriverError(f"simulated input {self.name} is not running", SetupFailure.RETRY)
        with self._lock:
            self._pressed = pressed
        action = Action.ACTIVE if pressed else Action.NORMAL
        logger.info("simulated %s %s", self.name, "press" if pressed else "release")
        signal = self.signal(self.name, action, simulated=True)
        self.sink.submit(dataclasses.replace(signal, on_recorded=on_recorded, on_failed=on_failed))
