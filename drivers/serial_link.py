"""The shared plumbing of drivers that read lines from a serial port (button boxes, alarm
panels): the port is opened exclusively, read in a thread, reopened with back-off when it
vanishes (USB adapter unplugged) and reported `online`/`offline`; replies go out through a
writer thread so that the event loop never blocks on the port."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from abc import abstractmethod
from typing import Any, ClassVar, TypeVar

import serial

from edgeguard.alarm_model import DeviceState
from edgeguard.driver_api import DriverError, InputDriver, SetupFailure, SignalSink

from .logs import LogLimiter, held
from .serial_link_config import SerialLinkConfig
from .serial_protocol import LineSplitter, Overlong

logger = logging.getLogger(__name__)

READ_TIMEOUT = 0.2  # seconds; bounds how long stop() waits for the reader
WRITE_TIMEOUT = 0.5
OUTBOX_SIZE = 256


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    epoch: int  # the connection the reply belongs to; dropped if the port was reopened since
    data: bytes
    what: str


C = TypeVar("C", bound=SerialLinkConfig)


class SerialLineDriver(InputDriver[C]):
    """Base of line-oriented serial drivers; subclasses implement ``_handle`` for each line and
    may hook ``_on_opened``, ``_after_read``, ``_splitter``, ``_prepare``, ``_writes_replies``."""

    log_name: ClassVar[str] = "serial"

    def __init__(self, config: C, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._lock = threading.Lock()  # the subclass's own state
        self._port_lock = threading.Lock()  # the port object and its epoch: writes and close
        self._port: serial.Serial | None = None
        self._epoch = 0
        self._outbox: queue.Queue[Outgoing] = queue.Queue(maxsize=OUTBOX_SIZE)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state: DeviceState | None = None
        self._logs = LogLimiter()

    # -- hooks --------------------------------------------------------------------------------

    @abstractmethod
    def _handle(self, item: bytes | Overlong, epoch: int) -> None:
        """One complete line (or an over-long one) read on connection ``epoch``."""

    def _writes_replies(self) -> bool:
        return True

    def _online_detail(self) -> dict[str, Any]:
        return {"driver": self.type_name}

    def _on_opened(self) -> None:
        """Called after each (re)open, before the first read."""

    def _after_read(self) -> None:
        """Called after every read attempt, at least every READ_TIMEOUT."""

    def _splitter(self) -> LineSplitter:
        return LineSplitter()

    def _prepare(self, data: bytes) -> bytes:
        return data

    # -- contract -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stopped.clear()
        self._open_first()
        prefix = f"{self.log_name}-{self.name}"
        self._threads = [threading.Thread(target=self._read_loop, name=f"{prefix}-rx", daemon=True)]
        if self._writes_replies():
            self._threads.append(
                threading.Thread(target=self._write_loop, name=f"{prefix}-tx", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._cancel_read()
        for thread in self._threads:
            thread.join(timeout=1.0)
            if thread.is_alive():
                logger.warning(
                    "%s %s: thread %s did not stop in time", self.log_name, self.name, thread.name
                )
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
                f"{self.log_name} {self.name}: cannot use port {self.port_name!r}: {exc}",
                SetupFailure.PERMANENT,
            ) from exc
        except OSError as exc:  # serial.SerialException is an OSError
            logger.warning(
                "%s %s: cannot open %s: %s; retrying in the background",
                self.log_name,
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
            **self.config.serial_options(),
        )
        with self._port_lock:
            self._port = port
            self._epoch += 1
        self._on_opened()
        logger.info(
            "%s %s: opened %s at %d baud", self.log_name, self.name, self.port_name, port.baudrate
        )
        self._set_state(
            DeviceState.ONLINE, port=self.port_name, baudrate=port.baudrate, **self._online_detail()
        )

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is None:
            return
        try:
            port.close()
        except OSError as exc:
            logger.debug("%s %s: closing %s: %s", self.log_name, self.name, self.port_name, exc)

    def _cancel_read(self) -> None:
        with self._port_lock:
            cancel = getattr(self._port, "cancel_read", None)
        if callable(cancel):
            try:
                cancel()
            except (OSError, NotImplementedError):
                logger.debug("%s %s: cancel_read failed", self.log_name, self.name)

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
            logger.debug(
                "%s %s: reopening %s failed: %s", self.log_name, self.name, self.port_name, exc
            )
            return False
        return True

    def _serve(self, port: serial.Serial, epoch: int) -> None:
        splitter = self._splitter()
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
            for item in splitter.feed(self._prepare(data)):
                try:
                    self._handle(item, epoch)
                except Exception:  # a bug with one line must not stop the reader
                    logger.exception("%s %s: handling a line failed", self.log_name, self.name)
            self._after_read()

    def _lost(self, exc: BaseException) -> None:
        logger.warning(
            "%s %s: port %s lost (%s); reopening every %.1f-%.1f s",
            self.log_name,
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
            logger.exception("%s %s: reporting %s failed", self.log_name, self.name, state.value)

    # -- replies (writer thread) --------------------------------------------------------------

    def _send(self, data: bytes, epoch: int, what: str) -> None:
        try:
            self._outbox.put_nowait(Outgoing(epoch, data, what))
        except queue.Full:
            logger.warning("%s %s: reply queue full, dropping %s", self.log_name, self.name, what)

    def _write_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self._outbox.get(timeout=READ_TIMEOUT)
            except queue.Empty:
                continue
            self._write(item)

    def _write(self, item: Outgoing) -> None:
        with self._port_lock:
            if self._port is None or item.epoch != self._epoch:
                logger.debug(
                    "%s %s: port reopened or closed, dropping %s",
                    self.log_name,
                    self.name,
                    item.what,
                )
                return
            try:
                self._port.write(item.data)
            except OSError as exc:  # SerialTimeoutException, SerialException, EIO
                count = self._logs.allow("write")
                if count is not None:
                    logger.warning(
                        "%s %s (%s): writing %s failed: %s%s",
                        self.log_name,
                        self.name,
                        self.port_name,
                        item.what,
                        exc,
                        held(count),
                    )
