"""The outputs' config (sounders, strobes, relays and their rules): no store, no gpiozero."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from edgeguard.alarm_model import AlarmKind
from edgeguard.config_base import Name, StrictModel


class Until(StrEnum):
    RESET = "reset"  # until a person resets the alarm (the default: GB 50394 latching)
    RESTORED = "restored"  # until the input returns to normal (or the alarm is reset)
    ACKNOWLEDGED = "acknowledged"  # until the police acknowledge (or the alarm is reset)


class RuleConfig(StrictModel):
    """Which alarms switch the output on, and for how long."""

    max_priority: int = Field(
        default=1,
        ge=1,
        le=4,
        description="Alarms of this priority or more urgent (1 = life "
        "safety) switch the output on.",
    )
    kinds: list[AlarmKind] = Field(
        default_factory=list, description="Only these alarm kinds; empty: any kind."
    )
    locations: list[Name] = Field(
        default_factory=list, description="Only alarms at these location keys; empty: anywhere."
    )
    until: Until = Field(
        default=Until.RESET, description="`reset` (default), `restored` or `acknowledged`."
    )


class OutputBase(StrictModel):
    name: Name = Field(description="Unique name of this output.")
    location: Name | None = Field(
        default=None,
        description="Where the output is. Alarms raised at this same location "
        "leave it silent unless `sound_at_source` is true (a duress or hold-up button must not "
        "sound where it was pressed).",
    )
    sound_at_source: bool = Field(
        default=False, description="Also sound for alarms raised at the output's own location."
    )
    rule: RuleConfig = Field(default_factory=RuleConfig, description="When the output is on.")


class GpioOutputConfig(OutputBase):
    """A sounder, strobe or relay on a GPIO pin (gpiozero)."""

    type: Literal["gpio"] = Field(description="Output type: `gpio`.")
    pin: int | str = Field(description="Pin as gpiozero names it: 22, 'GPIO22' or 'BOARD15'.")
    active_high: bool = Field(
        default=True, description="True: the pin goes high to switch the output on."
    )


class ModbusCoilOutputConfig(OutputBase):
    """A relay on a coil of a Modbus module that is configured as a `modbus` input."""

    type: Literal["modbus_coil"] = Field(description="Output type: `modbus_coil`.")
    input: Name = Field(description="Name of the `modbus` input whose module has the coil.")
    address: int = Field(ge=0, le=65535, description="Coil address (0-based).")


OutputConfig = Annotated[GpioOutputConfig | ModbusCoilOutputConfig, Field(discriminator="type")]
