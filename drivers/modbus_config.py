"""The `modbus` input's config: a digital-input module over TCP or RTU (no pymodbus here)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from edgeguard.config_base import NAME_PATTERN, Name, PointConfig, PointEntry
from edgeguard.driver_api import DriverConfig

from .gpio_config import Contact

MAX_BITS_PER_READ = 2000  # Modbus: read discrete inputs, 1-2000 bits per request

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

    implementation: ClassVar[str] = "edgeguard_drivers.modbus:ModbusInput"
    has_coils: ClassVar[bool] = True

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
