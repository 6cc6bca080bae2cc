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
import queue
import threading
import time
from typing import Annotated, Any, Literal, Self

import serial
from pydantic import Field, model_validator

from edgeguard.model import Action, AlarmKind, DeviceState, InputSignal

from .base import (
    DriverConfig,
    DriverError,
    InputDriver,
    Name,
    PointConfig,
    PointEntry,
    SetupFailure,
    SignalSink,
)
from .serial_protocol import (
    DEV_PATTERN,
    MAX_LINE,
    BoxFrame,
    DuplicateFilter,
    Event,
    FrameError,
    LineSplitter,
    Overlong,
    Reason,
    Seen,
    encode_ack,
    encode_nak,
    is_dev_id,
    parse_box_line,
)

logger = logging.getLogger(__name__)

READ_TIMEOUT = 0.2  # seconds; bounds how long stop() waits for the reader
WRITE_TIMEOUT = 0.5
OUTBOX_SIZE = 256
MAX_INPUT_NAME = 64 - 1 - 16  # "<input>-<dev>" must still be a 64-character Name
LOG_PREVIEW = 48

DevId = Annotated[str, Field(pattern=DEV_PATTERN)]


class SerialDeviceConfig(PointConfig):
    """One button (channel) of a serial box, by the device id the box sends."""

    name: Name | None = Field(
        default=None,
        description="Source name of this button in alarms and status. Default: "
        "`<input name>-<device id>`.",
    )


class SerialInputConfig(DriverConfig):
    """A button box on a serial port speaking the EGB1 line protocol (docs/serial-protocol.md)."""

    type: Literal["serial"] = Field(description="Driver type: `serial`.")
    port: str = Field(
        min_length=1,
        description="Serial device, preferably a stable `/dev/serial/by-id/...` path, or a "
        "pyserial URL such as `rfc2217://host:4000`. Opened exclusively (flock).",
    )
    baudrate: int = Field(
        default=9600,
        gt=0,
        le=4_000_000,
        description="Line speed in baud; always 8 data bits, no parity, 1 stop bit (8N1), no "
        "flow control.",
    )
    location: Name = Field(
        description="Location key at which buttons not listed under `devices` are reported. A "
        "press from an unlisted button still raises a panic alarm (with `unknown_device`).",
    )
    devices: dict[DevId, SerialDeviceConfig] = Field(
        default_factory=dict,
        description="The box's buttons by device id (1-16 characters: letters, digits, '_', "
        "'-', starting with a letter or digit), each with its location, kind, priority and "
        "optional source name.",
    )
    supervision_timeout: float | None = Field(
        default=None,
        ge=1.0,
        le=86400.0,
        description="Seconds within which every device listed under `devices` must send a "
        "frame (a heartbeat `HB` or an event). A device silent for longer makes the box report "
        "`fault` (which raises a `device_fault` alarm at the box's location) until it is heard "
        "again. Default: no supervision.",
    )
    reconnect_min: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description="Seconds before the first attempt to reopen a port that is missing or "
        "disappeared; the interval doubles after each failed attempt.",
    )
    reconnect_max: float = Field(
        default=10.0,
        gt=0.0,
        le=600.0,
        description="Longest interval between attempts to reopen the port, seconds.",
    )

    @model_validator(mode="after")
    def check_names(self) -> Self:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be less than reconnect_min")
        if len(self.name) > MAX_INPUT_NAME:
            raise ValueError(
                f"serial input name must be at most {MAX_INPUT_NAME} characters, so that "
                "'<name>-<device id>' fits in 64"
            )
        seen: dict[str, str] = {}
        for dev in self.devices:
            source = self.source_name(dev)
            self._check_no_shadow(dev, source)
            if source in seen:
                raise ValueError(f"devices {seen[source]!r} and {dev!r} share the name {source!r}")
            seen[source] = dev
        return self

    def _check_no_shadow(self, dev: str, source: str) -> None:
        prefix = f"{self.name}-"
        other = source.removeprefix(prefix)
        if source.startswith(prefix) and other != dev and is_dev_id(other):
            raise ValueError(
                f"device {dev!r}: name {source!r} is the default name of device {other!r}"
            )

    def point_entries(self) -> list[PointEntry]:
        return [
            (self.source_name(dev), device, ("devices", dev))
            for dev, device in self.devices.items()
        ]

    def source_name(self, dev: str) -> str:
        """Source name of a device id: its configured ``name``, or ``<input>-<dev>``."""
        device = self.devices.get(dev)
        if device is not None and device.name is not None:
            return device.name
        return f"{self.name}-{dev}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Outgoing:
    epoch: int  # the connection the reply belongs to; dropped if the port was reopened since
    data: bytes
    what: str


class _LogLimiter:
    """At most ``burst`` log lines per key in ``window`` seconds; counts what it holds back."""

    def __init__(self, burst: int = 5, window: float = 60.0, max_keys: int = 1024) -> None:
        self.burst = burst
        self.window = window
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[float, int, int]] = {}  # key: (start, logged, held)

    def allow(self, key: str) -> int | None:
        """None: do not log. Otherwise log, mentioning the returned count of held-back lines."""
        now = time.monotonic()
        with self._lock:
            if len(self._slots) >= self.max_keys and key not in self._slots:
                self._slots.clear()
            start, logged, held = self._slots.get(key, (now, 0, 0))
            if now - start >= self.window:
                start, logged = now, 0
            if logged >= self.burst:
                self._slots[key] = (start, logged, held + 1)
                return None
            self._slots[key] = (start, logged + 1, 0)
            return held


def _preview(raw: bytes) -> str:
    """A safe, bounded rendering of received bytes for a log line."""
    text = repr(raw[:LOG_PREVIEW])
    return text + "..." if len(raw) > LOG_PREVIEW else text


def _held(count: int) -> str:
    return f" ({count} similar not logged)" if count else ""


class SerialButtonBox(InputDriver[SerialInputConfig]):
    type_name = "serial"

    def __init__(self, config: SerialInputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._lock = threading.Lock()  # duplicate filter, discovered points
        self._port_lock = threading.Lock()  # the port object and its epoch: writes and close
        self._port: serial.Serial | None = None
        self._epoch = 0
        self._dupes = DuplicateFilter()
        self._discovered: dict[str, PointConfig] = {}
        self._outbox: queue.Queue[_Outgoing] = queue.Queue(maxsize=OUTBOX_SIZE)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state: DeviceState | None = None
        self._logs = _LogLimiter()
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

    def start(self) -> None:
        if self._threads:
            return
        self._stopped.clear()
        self._open_first()
        self._threads = [
            threading.Thread(target=self._read_loop, name=f"serial-{self.name}-rx", daemon=True),
            threading.Thread(target=self._write_loop, name=f"serial-{self.name}-tx", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._cancel_read()
        for thread in self._threads:
            thread.join(timeout=1.0)
            if thread.is_alive():
                logger.warning("serial %s: thread %s did not stop in time", self.name, thread.name)
        self._threads = []
        self._close_port()
        self._state = None  # a restart reports its state afresh

    @property
    def port_name(self) -> str:
        return self.config.port

    # -- port lifecycle (reader thread) -------------------------------------------------------

    def _open_first(self) -> None:
        try:
            self._open()
        except ValueError as exc:
            self._set_state(DeviceState.FAULT, error=str(exc))
            raise DriverError(
                f"serial {self.name}: cannot use port {self.port_name!r}: {exc}",
                SetupFailure.PERMANENT,
            ) from exc
        except OSError as exc:  # serial.SerialException is an OSError
            logger.warning(
                "serial %s: cannot open %s: %s; retrying in the background",
                self.name,
                self.port_name,
                exc,
            )
            self._set_state(DeviceState.OFFLINE, port=self.port_name, error=str(exc))

    def _open(self) -> None:
        port = serial.serial_for_url(
            self.port_name,
            self.config.baudrate,
            timeout=READ_TIMEOUT,
            write_timeout=WRITE_TIMEOUT,
            exclusive=True,
        )
        with self._port_lock:
            self._port = port
            self._epoch += 1
        with self._lock:
            self._dupes.clear()  # duplicates are recognised per connection
        opened = time.monotonic()  # every device gets a full supervision interval from here
        self._heard = dict.fromkeys(self.config.devices, opened)
        self._silent = []
        logger.info("serial %s: opened %s at %d baud", self.name, self.port_name, port.baudrate)
        self._set_state(
            DeviceState.ONLINE, driver="serial", port=self.port_name, baudrate=port.baudrate
        )

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is None:
            return
        try:
            port.close()
        except OSError as exc:
            logger.debug("serial %s: closing %s: %s", self.name, self.port_name, exc)

    def _cancel_read(self) -> None:
        with self._port_lock:
            cancel = getattr(self._port, "cancel_read", None)
        if callable(cancel):
            try:
                cancel()
            except (OSError, NotImplementedError):
                logger.debug("serial %s: cancel_read failed", self.name)

    def _read_loop(self) -> None:
        delay = self.config.reconnect_min
        while not self._stopped.is_set():
            with self._port_lock:
                port, epoch = self._port, self._epoch
            if port is None:
                if self._stopped.wait(delay):
                    break
                reopened = self._reopen()
                delay = (
                    self.config.reconnect_min
                    if reopened
                    else min(2 * delay, self.config.reconnect_max)
                )
                continue
            self._serve(port, epoch)
            self._close_port()

    def _reopen(self) -> bool:
        if self._stopped.is_set():
            return False
        try:
            self._open()
        except (OSError, ValueError) as exc:
            logger.debug("serial %s: reopening %s failed: %s", self.name, self.port_name, exc)
            return False
        return True

    def _serve(self, port: serial.Serial, epoch: int) -> None:
        splitter = LineSplitter()
        while not self._stopped.is_set():
            try:
                data = port.read(1)
                waiting = port.in_waiting if data else 0
                if waiting:
                    data += port.read(waiting)
            except OSError as exc:  # SerialException too: device unplugged, pty closed, EIO
                if not self._stopped.is_set():
                    self._lost(exc)
                return
            for item in splitter.feed(data):
                try:
                    self._handle(item, epoch)
                except Exception:  # a bug with one line must not stop the reader
                    logger.exception("serial %s: handling a line failed", self.name)
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

    def _lost(self, exc: BaseException) -> None:
        logger.warning(
            "serial %s: port %s lost (%s); reopening every %.1f-%.1f s",
            self.name,
            self.port_name,
            exc,
            self.config.reconnect_min,
            self.config.reconnect_max,
        )
        self._set_state(DeviceState.OFFLINE, port=self.port_name, error=str(exc))

    def _set_state(self, state: DeviceState, **detail: Any) -> None:
        if state is self._state:
            return
        self._state = state
        try:
            self.report(state, **detail)
        except Exception:
            logger.exception("serial %s: reporting %s failed", self.name, state.value)

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
                    _preview(raw),
                    _held(held),
                )
            return
        if held is not None:
            logger.warning(
                "serial %s (%s): rejected frame, NAK %s: %s: %s%s",
                self.name,
                self.port_name,
                error.reason.value,
                error.message,
                _preview(raw),
                _held(held),
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
        if frame.dev not in self.config.devices:
            self._discover(source, frame)
            detail["unknown_device"] = True
        return dataclasses.replace(
            self.signal(source, action, **detail),
            on_recorded=functools.partial(self._recorded, frame, token, epoch),
            on_failed=functools.partial(self._failed, frame, token),
        )

    def _discover(self, source: str, frame: BoxFrame) -> None:
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
        with self._lock:
            self._discovered.setdefault(
                source, PointConfig(location=self.config.location, kind=AlarmKind.PANIC)
            )

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

    # -- replies (writer thread) -------------------------------------------------------------

    def _send(self, data: bytes, epoch: int, what: str) -> None:
        try:
            self._outbox.put_nowait(_Outgoing(epoch, data, what))
        except queue.Full:
            logger.warning("serial %s: reply queue full, dropping %s", self.name, what)

    def _write_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self._outbox.get(timeout=READ_TIMEOUT)
            except queue.Empty:
                continue
            self._write(item)

    def _write(self, item: _Outgoing) -> None:
        with self._port_lock:
            if self._port is None or item.epoch != self._epoch:
                logger.debug(
                    "serial %s: port reopened or closed, dropping %s", self.name, item.what
                )
                return
            try:
                self._port.write(item.data)
            except OSError as exc:  # SerialTimeoutException, SerialException, EIO
                held = self._logs.allow("write")
                if held is not None:
                    logger.warning(
                        "serial %s (%s): writing %s failed: %s%s",
                        self.name,
                        self.port_name,
                        item.what,
                        exc,
                        _held(held),
                    )
