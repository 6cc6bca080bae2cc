"""A panic-button box on a serial port (RS-232/RS-485 adapter or USB serial), EGB1 protocol.

The box sends one line per button event and repeats it until it gets the ACK; the ACK is sent
only once the alarm path has durably recorded the signal (its ``on_recorded`` callback), so a
press is never confirmed to the box before it is safe. Protocol: docs/serial-protocol.md.

Threads: a reader owns the port (open, read, reconnect with backoff, close); a writer sends
ACK/NAK lines from a queue, so the event loop that calls ``on_recorded`` never blocks on the
port. Duplicates are recognised per connection: after the port was reopened a repeat of a
frame is raised again (at least once, never lost).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any

from edgeguard.alarm_model import Action, AlarmKind, DeviceState, InputSignal
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import SignalSink

from .logs import held as held_suffix
from .logs import preview
from .serial_box_config import SerialInputConfig
from .serial_link import SerialLineDriver
from .serial_protocol import (
    MAX_LINE,
    BoxFrame,
    DuplicateFilter,
    Event,
    FrameError,
    Overlong,
    Reason,
    Seen,
    encode_ack,
    encode_nak,
    parse_box_line,
)

logger = logging.getLogger(__name__)

MAX_DISCOVERED = 4096  # unlisted devices kept as points (the console lists them)


class SerialButtonBox(SerialLineDriver[SerialInputConfig]):
    type_name = "serial"

    def __init__(self, config: SerialInputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._dupes = DuplicateFilter()  # guarded by self._lock, like _discovered
        self._discovered: dict[str, PointConfig] = {}
        self._unlisted_heartbeats: set[str] = set()  # devices already warned about
        self._heard: dict[str, float] = {}  # listed device -> time.monotonic() of its last frame
        self._silent: list[str] = []

    # -- contract ---------------------------------------------------------------------------

    def points(self) -> dict[str, PointConfig]:
        """Configured buttons, plus unlisted ones seen since start (reported at `location`)."""
        points = {source: point for source, point, _ in self.config.point_entries()}
        with self._lock:
            points.update(self._discovered)
        return points

    # -- hooks of SerialLineDriver -------------------------------------------------------------

    def _on_opened(self) -> None:
        with self._lock:
            self._dupes.clear()  # duplicates are recognised per connection
        opened = time.monotonic()  # every device gets a full supervision interval from here
        self._heard = dict.fromkeys(self.config.devices, opened)
        self._silent = []

    def _after_read(self) -> None:
        self._supervise()

    def _supervise(self) -> None:
        """Runs after every read (at least every READ_TIMEOUT): report listed devices that have
        been silent for longer than ``supervision_timeout``, and their return."""
        timeout = self.config.supervision_timeout
        if timeout is None:
            return
        now = time.monotonic()
        silent = sorted(dev for dev, heard in self._heard.items() if now - heard > timeout)
        if silent == self._silent:
            return
        self._silent = silent
        if silent:
            logger.warning(
                "serial %s: no frame from %s for more than %.0f s",
                self.name,
                ", ".join(silent),
                timeout,
            )
            self._set_state(
                DeviceState.FAULT,
                port=self.port_name,
                silent=silent,
                error=f"no frame for more than {timeout:g} s",
            )
        else:
            logger.info("serial %s: every device heard again", self.name)
            self._set_state(DeviceState.ONLINE, driver="serial", port=self.port_name)

    # -- frames -------------------------------------------------------------------------------

    def _handle(self, item: bytes | Overlong, epoch: int) -> None:
        if isinstance(item, Overlong):
            error = FrameError(Reason.LENGTH, f"line longer than {MAX_LINE} bytes")
            self._reject(error, item.prefix + b"...", epoch)
            return
        try:
            frame = parse_box_line(item)
        except FrameError as error:
            self._reject(error, item, epoch)
            return
        if frame.dev in self._heard:
            self._heard[frame.dev] = time.monotonic()
        if frame.event is Event.HB:
            self._heartbeat(frame, epoch)
        else:
            self._event(frame, epoch)

    def _reject(self, error: FrameError, raw: bytes, epoch: int) -> None:
        held = self._logs.allow(error.reason.value)
        if error.reason is Reason.GARBAGE:
            if held is not None:
                logger.warning(
                    "serial %s (%s): dropped a line without $EGB1 start: %s%s",
                    self.name,
                    self.port_name,
                    preview(raw),
                    held_suffix(held),
                )
            return
        if held is not None:
            logger.warning(
                "serial %s (%s): rejected frame, NAK %s: %s: %s%s",
                self.name,
                self.port_name,
                error.reason.value,
                error.message,
                preview(raw),
                held_suffix(held),
            )
        nak = encode_nak(error.dev, error.seq, error.reason)
        self._send(nak, epoch, f"NAK {error.reason.value}")

    def _heartbeat(self, frame: BoxFrame, epoch: int) -> None:
        if frame.dev not in self.config.devices:
            self._warn_unlisted_heartbeat(frame.dev)
        self._send(encode_ack(frame.dev, frame.seq), epoch, f"ACK {frame.dev}/{frame.seq} HB")

    def _warn_unlisted_heartbeat(self, dev: str) -> None:
        """Once per device (and for at most 256 devices): heartbeats come all the time."""
        if dev in self._unlisted_heartbeats or len(self._unlisted_heartbeats) >= 256:
            return
        self._unlisted_heartbeats.add(dev)
        logger.warning(
            "serial %s (%s): heartbeats from unlisted device %r (a press from it is still "
            "raised, at %s)",
            self.name,
            self.port_name,
            dev,
            self.config.location,
        )

    def _event(self, frame: BoxFrame, epoch: int) -> None:
        with self._lock:
            seen, token = self._dupes.admit(frame.key)
        if seen is Seen.RECORDED:
            logger.debug("serial %s: repeat of recorded %s, ACK again", self.name, frame)
            self._send(encode_ack(frame.dev, frame.seq), epoch, f"ACK {frame.dev}/{frame.seq}")
            return
        if seen is Seen.PENDING:
            logger.debug("serial %s: repeat of %s still being recorded", self.name, frame)
            return
        signal = self._signal_for(frame, token, epoch)
        try:
            self.sink.submit(signal)
        except Exception:
            logger.exception(
                "serial %s: could not submit %s; waiting for a repeat", self.name, frame
            )
            with self._lock:
                self._dupes.failed(frame.key, token)

    def _signal_for(self, frame: BoxFrame, token: int, epoch: int) -> InputSignal:
        source = self.config.source_name(frame.dev)
        action = Action.ACTIVE if frame.event is Event.PRESS else Action.NORMAL
        detail: dict[str, Any] = {
            "dev": frame.dev,
            "seq": frame.seq,
            "port": self.port_name,
            "event": frame.event.value.lower(),
        }
        point = None
        if frame.dev not in self.config.devices:
            point = self._discover(source, frame)
            detail["unknown_device"] = True
        return dataclasses.replace(
            self.signal(source, action, point, **detail),
            on_recorded=functools.partial(self._recorded, frame, token, epoch),
            on_failed=functools.partial(self._failed, frame, token),
        )

    def _discover(self, source: str, frame: BoxFrame) -> PointConfig:
        """Log the unlisted device and list its point (at most MAX_DISCOVERED of them: a box
        sending ever new device ids must not grow memory; the alarm is raised either way)."""
        point = PointConfig(location=self.config.location, kind=AlarmKind.PANIC)
        with self._lock:
            full = source not in self._discovered and len(self._discovered) >= MAX_DISCOVERED
            if not full:
                point = self._discovered.setdefault(source, point)
        logger.warning(
            "serial %s (%s): %s from unlisted device %r: raising a %s alarm at %s as %s",
            self.name,
            self.port_name,
            frame.event.value,
            frame.dev,
            AlarmKind.PANIC.value,
            self.config.location,
            source,
        )
        if full:
            logger.warning("serial %s: %d unlisted devices already listed; %s is not added to "
                           "the points", self.name, MAX_DISCOVERED, source)
        return point

    def _recorded(self, frame: BoxFrame, token: int, epoch: int) -> None:
        """``on_recorded``: runs on the daemon's event loop, so it only queues the ACK."""
        with self._lock:
            still_current = self._dupes.recorded(frame.key, token)
        if still_current:
            self._send(encode_ack(frame.dev, frame.seq), epoch, f"ACK {frame.dev}/{frame.seq}")
        else:
            logger.info(
                "serial %s: %s recorded after the port was reopened; the box's repeat will be "
                "recorded and ACKed again",
                self.name,
                frame,
            )

    def _failed(self, frame: BoxFrame, token: int, exc: BaseException) -> None:
        """``on_failed``: forget the frame, so the box's next repeat is submitted again."""
        with self._lock:
            self._dupes.failed(frame.key, token)
        logger.error(
            "serial %s: %s could not be recorded (%s); not ACKed, waiting for the box to repeat",
            self.name,
            frame,
            exc,
        )
