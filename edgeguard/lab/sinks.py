"""A signal sink for driver tests: it records what a driver reports, from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

from edgeguard.alarm_model import Action, DeviceState, DeviceStatus, InputSignal

WAIT = 5.0


class RecordingSink:
    """Thread-safe ``SignalSink``. With ``auto_record`` it calls ``on_recorded`` at once,
    standing in for the durable write; without, the test does it."""

    def __init__(self, *, auto_record: bool = True) -> None:
        self.auto_record = auto_record
        self.signals: list[InputSignal] = []
        self.statuses: list[DeviceStatus] = []
        self._cond = threading.Condition()

    def submit(self, signal: InputSignal) -> None:
        with self._cond:
            self.signals.append(signal)
            self._cond.notify_all()
        if self.auto_record and signal.on_recorded is not None:
            signal.on_recorded()

    def device_status(self, status: DeviceStatus) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_signals(self, count: int, timeout: float = WAIT) -> bool:
        return self.wait(lambda: len(self.signals) >= count, timeout)

    def seen(self) -> list[tuple[str, Action]]:
        with self._cond:
            return [(s.source, s.action) for s in self.signals]

    def wait_seen(self, *expected: tuple[str, Action], timeout: float = WAIT) -> bool:
        return self.wait(lambda: self.seen() == list(expected), timeout)

    def states(self) -> list[DeviceState]:
        with self._cond:
            return [status.state for status in self.statuses]

    def wait_states(self, *expected: DeviceState, timeout: float = WAIT) -> bool:
        return self.wait(lambda: self.states() == list(expected), timeout)
