"""Config fields every serial-port input shares (no pyserial here)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from edgeguard.driver_api import DriverConfig


class SerialLinkConfig(DriverConfig):
    """Fields every serial-port input shares."""

    port: str = Field(
        min_length=1,
        description="Serial device, preferably a stable `/dev/serial/by-id/...` path, or a "
        "pyserial URL such as `rfc2217://host:4000`. Opened exclusively (flock).",
    )
    baudrate: int = Field(default=9600, gt=0, le=4_000_000, description="Line speed in baud.")
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
    def _check_reconnect(self) -> Self:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be less than reconnect_min")
        return self

    def serial_options(self) -> dict[str, Any]:
        """Framing options for pyserial beyond the baud rate (default 8N1)."""
        return {}
