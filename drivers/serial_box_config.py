"""The `serial` input's config: an EGB1 button box and its buttons."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from edgeguard.config_base import Name, PointConfig, PointEntry

from .serial_link_config import SerialLinkConfig
from .serial_protocol import DEV_PATTERN, is_dev_id

MAX_INPUT_NAME = 64 - 1 - 16  # "<input>-<dev>" must still be a 64-character Name

DevId = Annotated[str, Field(pattern=DEV_PATTERN)]


class SerialDeviceConfig(PointConfig):
    """One button (channel) of a serial box, by the device id the box sends."""

    name: Name | None = Field(
        default=None,
        description="Source name of this button in alarms and status. Default: "
        "`<input name>-<device id>`.",
    )


class SerialInputConfig(SerialLinkConfig):
    """A button box on a serial port speaking the EGB1 line protocol (docs/serial-protocol.md)."""

    implementation: ClassVar[str] = "edgeguard_drivers.serial_box:SerialButtonBox"

    type: Literal["serial"] = Field(description="Driver type: `serial`.")
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

    @model_validator(mode="after")
    def check_names(self) -> Self:
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
