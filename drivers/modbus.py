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
import re
import threading
import time
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edgeguard.model import Action, DeviceState

from .base import (
    NAME_PATTERN,
    DriverConfig,
    DriverError,
    InputDriver,
    Name,
    PointConfig,
    PointEntry,
    SetupFailure,
    SignalSink,
)
from .gpio import Contact
from .logs import LogLimiter
from .logs import held as held_suffix

logger = logging.getLogger(__name__)

MAX_BITS_PER_READ = 2000  # Modbus: read discrete inputs, 1-2000 bits per request
STOP_JOIN = 2.0  # seconds stop() waits for the poll thread (a request lasts <= timeout <= 1 s)
LOG_BURST = 5  # log lines per key and window beyond which repeated failures are held back
LOG_WINDOW = 60.0

Address = Annotated[int, Field(ge=0, le=65535)]


class ModbusPointConfig(PointConfig):
    """One discrete input of a module: what it raises, and how its contact is wired."""

    name: Name | None = Field(
        default=None,
        description="Source name of this input in alarms and status. Default: "
        "`<input name>-di<address>`.",
    )
    contact: Contact = Field(
        default=Contact.NO,
        description="NO: pressing closes the contact, the input reads 1 when pressed. NC: "
        "pressing opens it, the input reads 0 when pressed (a cut wire then also raises the "
        "alarm, which is why NC is preferred for panic buttons).",
    )


class ModbusInputConfig(DriverConfig):
    """A Modbus digital-input module, over TCP or RTU (serial), polled by the daemon."""

    type: Literal["modbus"] = Field(description="Driver type: `modbus`.")
    transport: Literal["tcp", "rtu"] = Field(
        description="`tcp`: Modbus TCP (module or gateway on the network). `rtu`: Modbus RTU "
        "on a serial line (RS-485 adapter)."
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        description="tcp only (required): IP address or host name of the module or gateway.",
    )
    port: int | str | None = Field(
        default=None,
        description="tcp: TCP port, default 502. rtu (required): serial device, preferably a "
        "stable `/dev/serial/by-id/...` path. Opened exclusively.",
    )
    baudrate: int = Field(
        default=9600,
        gt=0,
        le=4_000_000,
        description="rtu only: line speed in baud, as set on the module.",
    )
    parity: Literal["N", "E", "O"] = Field(
        default="N",
        description="rtu only: parity, `N` (none), `E` (even) or `O` (odd), as set on the "
        "module. The Modbus standard default is `E`; many modules ship with `N`.",
    )
    stopbits: Literal[1, 2] = Field(
        default=1, description="rtu only: stop bits, 1 or 2, as set on the module."
    )
    bytesize: Literal[8] = Field(
        default=8, description="rtu only: data bits; Modbus RTU frames are always 8 bits."
    )
    unit: int = Field(
        default=1,
        ge=1,
        le=247,
        description="Modbus unit (slave / device) id of the module, 1-247.",
    )
    poll_interval: float = Field(
        default=0.05,
        ge=0.005,
        le=60.0,
        description="Seconds from the start of one poll to the start of the next (0.05 = "
        "20 polls/s). An input change shorter than this may be missed.",
    )
    timeout: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Seconds to wait for the module's answer to one request (and for a TCP "
        "connection). A request that times out is a failed poll; it is not retried.",
    )
    failures_before_fault: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Consecutive failed polls after which the module is reported `fault`, "
        "which raises a `device_fault` alarm at `location`. The next successful poll reports "
        "it `online` again and clears that alarm.",
    )
    reconnect_min: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description="Seconds between polls once the module is reported `fault`, at first; the "
        "interval doubles after each further failure, up to `reconnect_max`.",
    )
    reconnect_max: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        description="Longest interval between polls of a module reported `fault`, seconds: how "
        "long its return can take to be noticed.",
    )
    location: Name = Field(
        description="Location key of the module itself: where its `device_fault` alarm is "
        "raised when it stops answering."
    )
    inputs: dict[Address, ModbusPointConfig] = Field(
        min_length=1,
        description="The module's discrete inputs by Modbus address (0-65535, as the request "
        "addresses them: 0-based; a manual's input '1' or '10001' is usually address 0), "
        "each with its location, kind, priority, contact (NO/NC) and optional source name. "
        f"All are read with one request per poll, so they must lie within "
        f"{MAX_BITS_PER_READ} consecutive addresses.",
    )

    @model_validator(mode="after")
    def check(self) -> Self:
        self._check_transport()
        low, high = min(self.inputs), max(self.inputs)
        if high - low + 1 > MAX_BITS_PER_READ:
            raise ValueError(
                f"inputs {low}..{high} span {high - low + 1} addresses; one Modbus request "
                f"reads at most {MAX_BITS_PER_READ}: split the module into two inputs"
            )
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be less than reconnect_min")
        seen: dict[str, int] = {}
        for address in sorted(self.inputs):
            source = self.source_name(address)
            if not _is_name(source):
                raise ValueError(
                    f"input {address}: default source name {source!r} is not a valid name "
                    "(at most 64 characters): shorten the input name or give this input a name"
                )
            if source in seen:
                raise ValueError(
                    f"inputs {seen[source]} and {address} share the source name {source!r}"
                )
            seen[source] = address
        return self

    def _check_transport(self) -> None:
        given = self.model_fields_set
        if self.transport == "tcp":
            if self.host is None:
                raise ValueError("transport tcp needs `host`")
            serial_only = sorted(given & {"baudrate", "parity", "stopbits", "bytesize"})
            if serial_only:
                raise ValueError(f"{', '.join(serial_only)}: only for transport rtu")
            if self.port is None:
                self.port = 502
            elif isinstance(self.port, str):
                if not self.port.isdigit():
                    raise ValueError("transport tcp: `port` is a TCP port number")
                self.port = int(self.port)
            if not 1 <= self.port <= 65535:
                raise ValueError("transport tcp: `port` must be 1-65535")
        else:
            if self.host is not None:
                raise ValueError("host: only for transport tcp (rtu uses `port`)")
            if not isinstance(self.port, str) or not self.port:
                raise ValueError("transport rtu needs `port`: the serial device path")

    def point_entries(self) -> list[PointEntry]:
        inputs = self.inputs.items()
        return [
            (self.source_name(address), point, ("inputs", address)) for address, point in inputs
        ]

    def source_name(self, address: int) -> str:
        """Source name of an input address: its configured ``name``, or ``<input>-di<addr>``."""
        point = self.inputs.get(address)
        if point is not None and point.name is not None:
            return point.name
        return f"{self.name}-di{address}"

    @property
    def endpoint(self) -> str:
        """Where the module is, for logs and status: ``host:port`` or the serial device."""
        if self.transport == "tcp":
            return f"{self.host}:{self.port}"
        return str(self.port)


def _is_name(text: str) -> bool:
    return re.fullmatch(NAME_PATTERN, text) is not None


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
