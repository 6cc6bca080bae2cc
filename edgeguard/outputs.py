"""Outputs — sounders, strobes, relays — switched by alarms according to rules in the config.

An output is on while at least one alarm that matches its rule is still in the state the rule
names (until reset, until the input is restored, or until the police acknowledge). Outputs
never block the alarm path: the controller runs on the event loop, but every write to a pin or
a Modbus coil happens on its own worker thread, and a failing output is logged, not raised.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edgeguard.alarm_model import AlarmState
from edgeguard.outputs_config import GpioOutputConfig, OutputBase, RuleConfig, Until
from edgeguard.store import AlarmRecord

if TYPE_CHECKING:
    from edgeguard.alarms import AlarmChange

logger = logging.getLogger(__name__)

_STATE_RANK = {state.value: state.rank for state in AlarmState}


def matches(output: OutputBase, record: AlarmRecord) -> bool:
    """Whether ``record`` is an alarm this output's rule sounds for (whatever its state)."""
    rule = output.rule
    if record.priority > rule.max_priority:
        return False
    if rule.kinds and record.kind not in rule.kinds:
        return False
    if rule.locations and record.location_key not in rule.locations:
        return False
    return output.sound_at_source or output.location != record.location_key


def still_on(rule: RuleConfig, record: AlarmRecord) -> bool:
    """Whether the alarm still holds the output on, by the rule's ``until``."""
    if record.state == AlarmState.RESET:
        return False
    if rule.until is Until.RESTORED:
        return record.input_active
    if rule.until is Until.ACKNOWLEDGED:
        return _STATE_RANK[record.state] < AlarmState.ACKNOWLEDGED.rank
    return True


class OutputController:
    """Keeps every output on while an alarm holds it, off otherwise."""

    def __init__(self, outputs: list[Any], pin_factory: Any | None, coil_writer: Any) -> None:
        self.outputs = {output.name: output for output in outputs}
        self._pin_factory = pin_factory
        self._coil_writer = coil_writer  # (input name, address, value) -> None, blocking
        self._holding: dict[str, set[str]] = {name: set() for name in self.outputs}
        self._devices: dict[str, Any] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outputs")
        self.is_on: dict[str, bool] = dict.fromkeys(self.outputs, False)

    def start(self, open_alarms: list[AlarmRecord]) -> None:
        for output in self.outputs.values():
            self._submit(self._open, output)
        for record in open_alarms:
            self.recompute(record)

    def close(self) -> None:
        for name in self.outputs:
            if self.is_on[name]:
                self._drive(name, on=False)
        self._executor.submit(self._close_devices)
        self._executor.shutdown(wait=True)

    def on_alarm(self, _what: AlarmChange, record: AlarmRecord | None) -> None:
        """AlarmService listener (event loop): recompute the outputs this alarm concerns."""
        if record is not None:
            self.recompute(record)

    def recompute(self, record: AlarmRecord) -> None:
        """Each output on while an alarm it follows holds it (at start: the open alarms)."""
        for name, output in self.outputs.items():
            holding = self._holding[name]
            if matches(output, record) and still_on(output.rule, record):
                holding.add(record.event_id)
            else:
                holding.discard(record.event_id)
            if bool(holding) != self.is_on[name]:
                self._drive(name, on=bool(holding))

    # --- hardware, on the worker thread -----------------------------------------------------
    def _drive(self, name: str, *, on: bool) -> None:
        self.is_on[name] = on
        logger.info("output %s %s", name, "ON" if on else "off")
        self._submit(self._write, self.outputs[name], on)

    def _submit(self, fn: Any, *args: Any) -> None:
        future = self._executor.submit(fn, *args)
        future.add_done_callback(_log_failure)

    def _open(self, output: Any) -> None:
        if isinstance(output, GpioOutputConfig):
            from gpiozero import DigitalOutputDevice

            self._devices[output.name] = DigitalOutputDevice(
                output.pin,
                active_high=output.active_high,
                initial_value=False,
                pin_factory=self._pin_factory,
            )

    def _write(self, output: Any, on: bool) -> None:
        if isinstance(output, GpioOutputConfig):
            device = self._devices.get(output.name)
            if device is None:
                raise RuntimeError(f"output {output.name}: pin {output.pin} is not open")
            device.value = on
        else:
            self._coil_writer(output.input, output.address, on)

    def _close_devices(self) -> None:
        for device in self._devices.values():
            device.close()
        self._devices.clear()


def _log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        logger.error("output failed: %s", exc)
