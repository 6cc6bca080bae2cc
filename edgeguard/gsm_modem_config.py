"""Configuration of the GSM/4G modem that sends alarm SMS when both brokers fail
(docs/transmission-paths.md). Pure pydantic: imported by edgeguard.config."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from edgeguard.config_base import StrictModel

PhoneNumber = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,20}$")]


class SmsConfig(StrictModel):
    """The SMS path: a GSM/4G modem on a serial port (AT commands, 3GPP TS 27.005 text mode
    with UCS2), used for the chosen priorities only when no broker has the alarm in time."""

    port: str = Field(
        min_length=1,
        description="Serial device of the modem's AT port, preferably a stable "
        "`/dev/serial/by-id/...` path (a Quectel EC25 exposes it as the third USB interface).",
    )
    baudrate: int = Field(default=115200, gt=0, le=4_000_000, description="Line speed in baud.")
    recipients: list[PhoneNumber] = Field(
        min_length=1,
        max_length=10,
        description="Phone numbers that receive the alarm SMS, e.g. `+8613800138000`.",
    )
    priorities: list[Annotated[int, Field(ge=1, le=4)]] = Field(
        default_factory=lambda: [1],
        min_length=1,
        description="Alarm priorities sent by SMS (1 = life safety).",
    )
    supervision_interval_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Seconds between checks of the modem (`AT+CREG?`, `AT+CSQ`); a modem that "
        "does not answer or is not registered on a network is reported as a device fault.",
    )
    command_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="How long to wait for the answer to an AT command."
    )
    send_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=180,
        description="How long to wait for `+CMGS` after the text (the network can take tens of "
        "seconds).",
    )
    reconnect_max: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Longest interval between attempts to reopen the port, seconds.",
    )
