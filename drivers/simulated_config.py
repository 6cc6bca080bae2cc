"""The `simulated` input's config."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edgeguard.config_base import PointConfig
from edgeguard.driver_api import DriverConfig


class SimulatedInputConfig(DriverConfig, PointConfig):
    """A button that exists only in software (`edgeguard simulate press NAME`)."""

    implementation: ClassVar[str] = "edgeguard_drivers.simulated:SimulatedButton"

    type: Literal["simulated"] = Field(description="Driver type: `simulated`.")
