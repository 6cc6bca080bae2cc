"""A panic button on a GPIO pin (gpiozero; lgpio on a Raspberry Pi, MockFactory in tests).

A press fires on the first edge: there is no debounce delay on the alarm path. After an
edge the line is ignored for ``lockout`` seconds (contact bounce), then re-read, so a release
that happened during the lockout is still reported.

With ``supervision_pin`` the button's cable carries a second, normally closed loop (through the
button box's tamper switch, or a wire pair looped at the button). While that loop reads open
(cable cut, box opened) the button is reported `fault`, which raises a `device_fault` alarm at
its location; the loop closing again reports it `online` and restores the fault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Self

from edgeguard.alarm_model import Action, DeviceState
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import (
    DriverError,
    InputDriver,
    SetupFailure,
    SignalSink,
)

from .gpio_config import Contact, GpioInputConfig, Pull

logger = logging.getLogger(__name__)


class GpioButton(InputDriver[GpioInputConfig]):
    type_name = "gpio"

    def __init__(
        self, config: GpioInputConfig, sink: SignalSink, pin_factory: Any | None = None
    ) -> None:
        super().__init__(config, sink)
        self._pin_factory = pin_factory
        self._device: Any = None
        self._lock = threading.Lock()
        self._reported_pressed = False
        self._lockout_timer: threading.Timer | None = None
        self._stopped = threading.Event()
        self._supervision_wire: Any = None  # the supervision wire's input device, when configured
        self._wire_closed: bool | None = None

    @classmethod
    def from_config(
        cls, config: GpioInputConfig, sink: SignalSink, hardware: Mapping[str, Any]
    ) -> Self:
        return cls(config, sink, pin_factory=hardware.get("pin_factory"))

    def points(self) -> dict[str, PointConfig]:
        return {self.name: self.config}

    def start(self) -> None:
        from gpiozero import DigitalInputDevice
        from gpiozero.exc import GPIOZeroError

        cfg = self.config
        pull_up: bool | None = {Pull.UP: True, Pull.DOWN: False, Pull.NONE: None}[cfg.pull]
        # With a bias gpiozero derives the active level itself (pull-up: active low). Without
        # one it needs it given; we read "closed contact" as active and map NO/NC below.
        active_state = None if pull_up is not None else True
        self._stopped.clear()
        try:
            device = DigitalInputDevice(
                cfg.pin,
                pull_up=pull_up,
                active_state=active_state,
                bounce_time=None,
                pin_factory=self._pin_factory,
            )
        except (GPIOZeroError, OSError, ValueError) as exc:
            self.report(DeviceState.FAULT, error=str(exc))
            raise DriverError(f"gpio {cfg.name}: cannot open pin {cfg.pin}: {exc}") from exc
        except Exception as exc:
            self.report(DeviceState.FAULT, error=str(exc))
            raise DriverError(
                f"gpio {cfg.name}: pin {cfg.pin}: {exc}", SetupFailure.PERMANENT
            ) from exc
        self._device = device
        device.when_activated = self._on_edge
        device.when_deactivated = self._on_edge
        self._supervision_wire = self._open_supervision()
        self._report_wire()
        with self._lock:
            # Report the state found at start, pressed or not: a button released while the
            # daemon was down must end its input's alarm, or that alarm could never be reset.
            self._reported_pressed = self._pressed_now()
            if self._reported_pressed:
                logger.warning("gpio %s: pressed at start-up", cfg.name)
            self._emit(pressed=self._reported_pressed)

    def _open_supervision(self) -> Any:
        from gpiozero import DigitalInputDevice
        from gpiozero.exc import GPIOZeroError

        cfg = self.config
        if cfg.supervision_pin is None:
            return None
        pull_up = {Pull.UP: True, Pull.DOWN: False, Pull.NONE: None}[cfg.supervision_pull]
        try:
            wire = DigitalInputDevice(
                cfg.supervision_pin,
                pull_up=pull_up,
                active_state=None if pull_up is not None else True,
                bounce_time=None,
                pin_factory=self._pin_factory,
            )
        except (GPIOZeroError, OSError, ValueError) as exc:
            self._device.close()
            self._device = None
            self.report(DeviceState.FAULT, error=str(exc))
            raise DriverError(
                f"gpio {cfg.name}: cannot open supervision pin {cfg.supervision_pin}: {exc}"
            ) from exc
        wire.when_activated = self._report_wire
        wire.when_deactivated = self._report_wire
        return wire

    def _report_wire(self) -> None:
        """The button's health: online, or fault while its supervision loop is open. Runs at
        start and on gpiozero's callback thread for every edge of the loop."""
        cfg = self.config
        detail: dict[str, Any] = {
            "driver": "gpio", "pin": str(cfg.pin), "contact": cfg.contact.value
        }  # fmt: skip
        wire = self._supervision_wire
        if wire is None:
            self.report(DeviceState.ONLINE, **detail)
            return
        closed = bool(wire.is_active)
        with self._lock:
            if closed == self._wire_closed or self._stopped.is_set():
                return
            self._wire_closed = closed
        detail["supervision_pin"] = str(cfg.supervision_pin)
        if closed:
            self.report(DeviceState.ONLINE, **detail)
        else:
            logger.warning("gpio %s: supervision loop open (cable cut or box opened)", cfg.name)
            self.report(DeviceState.FAULT, reason="supervision loop open", **detail)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._lockout_timer is not None:
                self._lockout_timer.cancel()
                self._lockout_timer = None
        for device in (self._device, self._supervision_wire):
            if device is not None:
                device.close()
        self._device = self._supervision_wire = None
        self._wire_closed = None

    def _pressed_now(self) -> bool:
        closed = bool(self._device.is_active)
        return closed if self.config.contact is Contact.NO else not closed

    def _on_edge(self) -> None:
        """Called on gpiozero's callback thread for every edge."""
        with self._lock:
            if self._lockout_timer is None:
                self._report_change()

    def _report_change(self) -> None:
        """Report the line if it changed; the caller holds the lock, so that the edge thread
        and the lockout timer hand their signals over in the order they saw them."""
        if self._stopped.is_set() or self._device is None:
            return
        pressed = self._pressed_now()
        if pressed == self._reported_pressed:
            return
        self._reported_pressed = pressed
        self._start_lockout()
        self._emit(pressed=pressed)

    def _start_lockout(self) -> None:
        if self.config.lockout <= 0:
            return
        timer = threading.Timer(self.config.lockout, self._end_lockout)
        timer.daemon = True
        self._lockout_timer = timer
        timer.start()

    def _end_lockout(self) -> None:
        with self._lock:
            self._lockout_timer = None
            self._report_change()

    def _emit(self, *, pressed: bool) -> None:
        """Hand a signal to the sink (non-blocking: the bridge only schedules it)."""
        action = Action.ACTIVE if pressed else Action.NORMAL
        self.sink.submit(self.signal(self.name, action, pin=str(self.config.pin)))
