"""Modbus RTU / TCP digital-input modules (pymodbus, synchronous client).

One poll thread per module reads the contiguous range of discrete inputs that covers every
configured address with one ``read_discrete_inputs`` request per poll, and reports edges with
the contact semantics of a GPIO button (NO: pressed when the input reads 1; NC: pressed when it
reads 0). The state found at the first successful poll is reported for every input, pressed or
not, so that a button released while the daemon was down ends its alarm; after that only
changes are reported. ``failures_before_fault`` consecutive failed polls report the module as
``fault`` (the daemon raises ``device_fault`` at the module's location); the next successful
poll reports it ``online`` again, and inputs that changed meanwhile are reported.

Coils are outputs: ``set_coil`` writes one through the same client, under the same lock as the
polls, from any thread. Docs: docs/drivers/modbus.md.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edgeguard.alarm_model import Action, DeviceState
from edgeguard.config_base import PointConfig
from edgeguard.driver_api import DriverError, InputDriver, SetupFailure, SignalSink

from .gpio_config import Contact
from .logs import LogLimiter
from .logs import held as held_suffix
from .modbus_config import ModbusInputConfig

logger = logging.getLogger(__name__)

STOP_JOIN = 2.0  # seconds stop() waits for the poll thread (a request lasts <= timeout <= 1 s)
LOG_BURST = 5  # log lines per key and window beyond which repeated failures are held back
LOG_WINDOW = 60.0

class PollError(Exception):
    """A poll or coil write that got no usable answer from the module."""


class _PymodbusLogFilter(logging.Filter):
    """pymodbus logs an ERROR for every failed connect or unanswered request; a module that is
    away would fill the journal at the poll rate. This keeps ``LOG_BURST`` lines per message
    and minute (the driver logs the transitions itself)."""

    def __init__(self) -> None:
        super().__init__()
        self._limiter = LogLimiter(burst=LOG_BURST, window=LOG_WINDOW)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        return self._limiter.allow(str(record.msg)[:80]) is not None


_pymodbus_filter_lock = threading.Lock()
_pymodbus_filter: _PymodbusLogFilter | None = None


def _quiet_pymodbus() -> None:
    global _pymodbus_filter  # noqa: PLW0603 - one filter per process, installed on first use
    with _pymodbus_filter_lock:
        if _pymodbus_filter is None:
            _pymodbus_filter = _PymodbusLogFilter()
            logging.getLogger("pymodbus.logging").addFilter(_pymodbus_filter)


Client = ModbusTcpClient | ModbusSerialClient


class ModbusInput(InputDriver[ModbusInputConfig]):
    type_name = "modbus"

    def __init__(self, config: ModbusInputConfig, sink: SignalSink) -> None:
        super().__init__(config, sink)
        self._first = min(config.inputs)
        self._count = max(config.inputs) - self._first + 1
        self._io_lock = threading.Lock()  # the client: polls and coil writes, one at a time
        self._client: Client | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._logs = LogLimiter(burst=LOG_BURST, window=LOG_WINDOW)
        # poll thread only:
        self._reported: dict[int, bool] | None = None  # address -> pressed, as last reported
        self._state: DeviceState | None = None
        self._failures = 0
        self._polls = 0

    # -- contract ---------------------------------------------------------------------------

    def points(self) -> dict[str, PointConfig]:
        return {self.config.source_name(addr): point for addr, point in self.config.inputs.items()}

    def start(self) -> None:
        """Create the client and start polling. Never fails because the module is absent:
        that is reported as ``fault`` after ``failures_before_fault`` polls."""
        if self._thread is not None:
            return
        try:
            client = self._make_client()
        except (ValueError, TypeError, RuntimeError) as exc:
            self.report(DeviceState.FAULT, error=str(exc))
            raise DriverError(
                f"modbus {self.name}: cannot set up a client for {self.config.endpoint}: {exc}",
                SetupFailure.PERMANENT,
            ) from exc
        _quiet_pymodbus()
        self._stopped.clear()
        self._reported = None
        self._state = None
        self._failures = 0
        with self._io_lock:
            self._client = client
        self._thread = threading.Thread(target=self._run, name=f"modbus-{self.name}", daemon=True)
        self._thread.start()
        logger.info(
            "modbus %s: polling unit %d at %s, discrete inputs %d..%d every %g s",
            self.name,
            self.config.unit,
            self.config.endpoint,
            self._first,
            self._first + self._count - 1,
            self.config.poll_interval,
        )

    def stop(self) -> None:
        self._stopped.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=STOP_JOIN)
            if thread.is_alive():
                logger.warning("modbus %s: poll thread did not stop in time", self.name)
        with self._io_lock:
            client, self._client = self._client, None
        if client is not None:
            _close(client)

    # -- outputs ----------------------------------------------------------------------------

    def set_coil(self, address: int, value: bool) -> None:
        """Write one coil (function 05) of the module; blocks up to ``timeout`` seconds.

        Thread-safe: it waits for a poll in progress. Raises ``PollError`` if the driver is
        not started or the module did not confirm the write.
        """
        if not 0 <= address <= 65535:
            raise ValueError(f"coil address {address} is not 0-65535")
        with self._io_lock:
            client = self._client
            if client is None:
                raise PollError(f"modbus {self.name}: not started")
            try:
                response = client.write_coil(address, value, device_id=self.config.unit)
            except (ModbusException, OSError) as exc:  # a TCP reset escapes pymodbus as OSError
                _close(client)  # reconnect afresh on the next request
                raise PollError(f"modbus {self.name}: writing coil {address}: {exc}") from exc
        if response.isError():
            raise PollError(
                f"modbus {self.name}: coil {address}: exception response "
                f"{_exception_name(response.exception_code)}"
            )
        logger.info("modbus %s: coil %d set %s", self.name, address, "on" if value else "off")

    # -- polling (poll thread) ----------------------------------------------------------------

    @property
    def polls(self) -> int:
        """Successful polls since start (for benchmarks and diagnostics)."""
        return self._polls

    def _make_client(self) -> Client:
        cfg = self.config
        if cfg.transport == "tcp":
            assert cfg.host is not None
            assert isinstance(cfg.port, int)
            return ModbusTcpClient(
                cfg.host, port=cfg.port, timeout=cfg.timeout, retries=0, name=cfg.name
            )
        assert isinstance(cfg.port, str)
        return ModbusSerialClient(
            cfg.port,
            baudrate=cfg.baudrate,
            bytesize=cfg.bytesize,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            timeout=cfg.timeout,
            retries=0,
            name=cfg.name,
        )

    def _run(self) -> None:
        cfg = self.config
        backoff = cfg.reconnect_min
        next_poll = time.monotonic()
        while not self._stopped.is_set():
            try:
                bits = self._read()
            except PollError as exc:
                self._failed(exc)
                if self._state is DeviceState.FAULT:
                    next_poll = time.monotonic() + backoff
                    backoff = min(2 * backoff, cfg.reconnect_max)
                else:
                    next_poll += cfg.poll_interval
            except Exception as exc:  # a bug must not end supervision of the module
                held = self._logs.allow("bug")
                if held is not None:
                    logger.exception(
                        "modbus %s: poll failed unexpectedly%s", self.name, held_suffix(held)
                    )
                self._failed(exc)
                next_poll = time.monotonic() + cfg.reconnect_min
            else:
                backoff = cfg.reconnect_min
                self._polls += 1
                self._succeeded(bits)
                next_poll += cfg.poll_interval
            now = time.monotonic()
            next_poll = max(next_poll, now)  # after a slow poll, start at once; no catching up
            if self._stopped.wait(next_poll - now):
                break

    def _read(self) -> list[bool]:
        with self._io_lock:
            client = self._client
            if client is None:
                raise PollError("client closed")
            try:
                response = client.read_discrete_inputs(
                    self._first, count=self._count, device_id=self.config.unit
                )
            except (ModbusException, OSError) as exc:  # a TCP reset escapes pymodbus as OSError
                _close(client)  # drop late answers and stale bytes: reconnect afresh
                raise PollError(str(exc)) from exc
        if response.isError():
            raise PollError(
                f"exception response {_exception_name(response.exception_code)} to read "
                f"discrete inputs {self._first}..{self._first + self._count - 1}"
            )
        bits = list(response.bits)
        if len(bits) < self._count:
            raise PollError(f"short answer: {len(bits)} of {self._count} inputs")
        return bits[: self._count]

    def _succeeded(self, bits: list[bool]) -> None:
        cfg = self.config
        if self._state is not DeviceState.ONLINE:
            if self._state is DeviceState.FAULT:
                logger.warning(
                    "modbus %s: unit %d at %s answers again after %d failed polls",
                    self.name,
                    cfg.unit,
                    cfg.endpoint,
                    self._failures,
                )
            else:
                logger.info("modbus %s: unit %d at %s online", self.name, cfg.unit, cfg.endpoint)
            self._report(DeviceState.ONLINE)
        self._failures = 0
        first_poll = self._reported is None
        reported = self._reported if self._reported is not None else {}
        for address, point in cfg.inputs.items():
            closed = bits[address - self._first]
            pressed = closed if point.contact is Contact.NO else not closed
            if not first_poll and reported.get(address) == pressed:
                continue
            if first_poll and pressed:
                logger.warning(
                    "modbus %s: input %d (%s) in alarm at start-up",
                    self.name,
                    address,
                    cfg.source_name(address),
                )
            if self._emit(address, pressed=pressed, closed=closed):
                reported[address] = pressed  # else: submitted again at the next poll
        self._reported = reported

    def _report(self, state: DeviceState, **detail: Any) -> None:
        cfg = self.config
        self._state = state
        self.report(
            state,
            driver="modbus",
            transport=cfg.transport,
            endpoint=cfg.endpoint,
            unit=cfg.unit,
            **detail,
        )

    def _failed(self, exc: BaseException) -> None:
        cfg = self.config
        self._failures += 1
        if self._failures < cfg.failures_before_fault or self._state is DeviceState.FAULT:
            held = self._logs.allow("poll")
            if held is not None:
                logger.debug(
                    "modbus %s: poll %d failed: %s%s",
                    self.name,
                    self._failures,
                    exc,
                    held_suffix(held),
                )
            return
        logger.warning(
            "modbus %s: unit %d at %s not answering (%d failed polls): %s; reporting fault, "
            "retrying every %g-%g s",
            self.name,
            cfg.unit,
            cfg.endpoint,
            self._failures,
            exc,
            cfg.reconnect_min,
            cfg.reconnect_max,
        )
        self._report(
            DeviceState.FAULT,
            error=str(exc) or type(exc).__name__,
            failed_polls=self._failures,
        )

    def _emit(self, address: int, *, pressed: bool, closed: bool) -> bool:
        action = Action.ACTIVE if pressed else Action.NORMAL
        source = self.config.source_name(address)
        detail: dict[str, Any] = {"address": address, "value": int(closed)}
        try:
            self.sink.submit(self.signal(source, action, **detail))
        except Exception:
            held = self._logs.allow("submit")
            if held is not None:
                logger.exception(
                    "modbus %s: could not submit %s %s; trying again at the next poll%s",
                    self.name,
                    source,
                    action.value,
                    held_suffix(held),
                )
            return False
        return True


def _close(client: Client) -> None:
    client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves close() unannotated


def _exception_name(code: int) -> str:
    names = {
        1: "illegal function",
        2: "illegal data address",
        3: "illegal data value",
        4: "device failure",
        6: "device busy",
        10: "gateway path unavailable",
        11: "gateway target failed to respond",
    }
    return f"{code} ({names.get(code, 'unknown')})"
