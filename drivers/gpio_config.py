"""The `gpio` input's config (no gpiozero here: imported by the config)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from edgeguard.config_base import PointConfig
from edgeguard.driver_api import DriverConfig


class Contact(StrEnum):
    NO = "NO"  # normally open: pressing closes the contact
    NC = "NC"  # normally closed: pressing (or a cut wire) opens the contact


class Pull(StrEnum):
    UP = "up"
    DOWN = "down"
    NONE = "none"


class GpioInputConfig(DriverConfig, PointConfig):
    """A button wired to a GPIO pin."""

    implementation: ClassVar[str] = "edgeguard_drivers.gpio:GpioButton"

    type: Literal["gpio"] = Field(description="Driver type: `gpio`.")
    pin: int | str = Field(
        description="Pin as gpiozero names it: a BCM number (17), 'GPIO17' or 'BOARD11'."
    )
    contact: Contact = Field(
        default=Contact.NO,
        description="NO: pressing closes the contact. NC: pressing opens it (a cut wire then "
        "also raises the alarm, which is why NC is preferred for panic buttons).",
    )
    pull: Pull = Field(
        default=Pull.UP,
        description="Internal bias: `up` (contact switches to ground), `down` (contact switches "
        "to 3.3 V) or `none` (external resistor).",
    )
    lockout: float = Field(
        default=0.05,
        ge=0.0,
        le=5.0,
        description="Seconds after an edge during which further edges are ignored (bounce). "
        "The first edge is reported at once.",
    )
    supervision_pin: int | str | None = Field(
        default=None,
        description="A second pin on a normally closed supervision loop run with the button's "
        "cable (or its box's tamper switch): while it reads open the button is reported "
        "faulted (a `device_fault` alarm at its location) until the loop is closed again. "
        "Default: none.",
    )
    supervision_pull: Pull = Field(
        default=Pull.UP,
        description="Bias of the supervision pin, as `pull` (the loop closes to ground with `up`).",
    )
